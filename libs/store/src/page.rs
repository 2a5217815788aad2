//! Opaque page tokens for list RPCs.
//!
//! A token is the last key of the previous page, hex-encoded so that clients treat it
//! as opaque and cannot confuse it with a key. Keyset paging (`WHERE key > $last ORDER
//! BY key LIMIT n`) keeps every page as cheap as the first, however long the list.

/// Default page size when a request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The effective page size: 0 → default, above the maximum → the maximum.
pub fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Encodes the last key of a page as the next page token.
pub fn encode_token(last_key: &str) -> String {
    last_key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a page token; `Ok("")` for the first page, `Err` for a token this service
/// did not make.
pub fn decode_token(token: &str) -> Result<String, InvalidPageToken> {
    if !token.len().is_multiple_of(2) {
        return Err(InvalidPageToken);
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or(InvalidPageToken)
        })
        .collect::<Result<Vec<u8>, _>>()?;
    String::from_utf8(bytes).map_err(|_| InvalidPageToken)
}

/// A page token that was not made by [`encode_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page token is not one this service issued")]
pub struct InvalidPageToken;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_round_trips_unicode_keys() {
        let key = "client:上海-1";
        assert_eq!(decode_token(&encode_token(key)).as_deref(), Ok(key));
        assert_eq!(decode_token("").as_deref(), Ok(""));
    }

    #[test]
    fn foreign_page_tokens_are_refused() {
        assert_eq!(decode_token("zz"), Err(InvalidPageToken));
        assert_eq!(decode_token("abc"), Err(InvalidPageToken));
    }

    #[test]
    fn page_size_has_a_default_and_a_ceiling() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(10_000), MAX_PAGE_SIZE);
    }
}
