//! Lowercase hex, the one spelling every service uses for digests, key ids and nonces in
//! keys shared between replicas and services (a nonce spent at entcode and at the verify
//! gateway must name the same cache key). A table lookup per nibble: `write!` per byte
//! cost more on the gateway's hot path than the SHA-256 it prints.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` in lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// `bytes` in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0x0f, 0xa0, 0xff]);
        assert_eq!(s, "000fa0ff");
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), expected);
    }
}
