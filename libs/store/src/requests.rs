//! What a service's gRPC adapter needs from the store layer, answered as statuses a
//! caller can act on: the idempotency key of a mutation, page tokens, and answers
//! replayed from the idempotency table. One copy for every service, so every service
//! refuses a bad key or token with the same reason and field.

use credmesh_proto::prost::Message;
use credmesh_proto::status::{self, FieldViolation};
use credmesh_proto::tonic::{Code, Status};

use crate::idempotency::IdempotencyKey;
use crate::page;

/// The idempotency key of `operation` by `client_id` over the encoded `request`
/// (`None` when the caller sent no key), or INVALID_ARGUMENT `IDEMPOTENCY_KEY_INVALID`
/// on the `idempotency_key` field.
pub fn idempotency_key(
    operation: &str,
    client_id: &str,
    key: &str,
    request: &[u8],
) -> Result<Option<IdempotencyKey>, Status> {
    IdempotencyKey::new(operation, client_id, key, request).map_err(|e| {
        status::invalid_argument(
            "IDEMPOTENCY_KEY_INVALID",
            e.to_string(),
            [FieldViolation::new("idempotency_key", e.to_string())],
        )
    })
}

/// The same, for a request message (encoded here).
pub fn idempotency_key_of<M: Message>(
    operation: &str,
    client_id: &str,
    key: &str,
    request: &M,
) -> Result<Option<IdempotencyKey>, Status> {
    idempotency_key(operation, client_id, key, &request.encode_to_vec())
}

fn bad_page_token(description: String) -> Status {
    status::invalid_argument(
        "PAGE_TOKEN_INVALID",
        description.clone(),
        [FieldViolation::new("page_token", description)],
    )
}

/// The key a page token carries (empty for the first page), or INVALID_ARGUMENT
/// `PAGE_TOKEN_INVALID` on the `page_token` field.
pub fn page_token(token: &str) -> Result<String, Status> {
    page::decode_token(token).map_err(|e| bad_page_token(e.to_string()))
}

/// A page token whose key is a number (an offset or a row id; zero for the first page).
pub fn number_token<N: std::str::FromStr + Default>(token: &str) -> Result<N, Status> {
    let text = page_token(token)?;
    if text.is_empty() {
        return Ok(N::default());
    }
    text.parse()
        .map_err(|_| bad_page_token("the page token is not one this service issued".into()))
}

/// An answer stored by the idempotency table, decoded for the retry that asked again.
pub fn decode_replay<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|_| {
        status::error(
            Code::Internal,
            "INTERNAL",
            "a stored answer could not be read",
        )
    })
}

/// The bytes the idempotency table keeps for an answer: the encoded message, or nothing
/// for a refusal (a refused call is not remembered and may be retried).
pub fn encoded<M: Message>(answer: Result<M, Status>) -> Vec<u8> {
    answer.map(|m| m.encode_to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_strangers_are_refused_on_the_field() {
        assert_eq!(page_token("").unwrap(), "");
        let token = page::encode_token("91310000MA1K4ABC1X");
        assert_eq!(page_token(&token).unwrap(), "91310000MA1K4ABC1X");
        assert_eq!(number_token::<i64>(&page::encode_token("42")).unwrap(), 42);
        assert_eq!(number_token::<i64>("").unwrap(), 0);
        for bad in ["%%%", &page::encode_token("not-a-number")] {
            let status = number_token::<i64>(bad).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(
                status::reason(&status).as_deref(),
                Some("PAGE_TOKEN_INVALID")
            );
            assert_eq!(status::field_violations(&status)[0].field, "page_token");
        }
    }

    #[test]
    fn a_bad_idempotency_key_names_its_field() {
        assert!(idempotency_key("op", "client", "", b"x").unwrap().is_none());
        assert!(
            idempotency_key("op", "client", "k-1", b"x")
                .unwrap()
                .is_some()
        );
        let status = idempotency_key("op", "client", &"k".repeat(10_000), b"x").unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status::reason(&status).as_deref(),
            Some("IDEMPOTENCY_KEY_INVALID")
        );
        assert_eq!(
            status::field_violations(&status)[0].field,
            "idempotency_key"
        );
    }

    #[test]
    fn replays_decode_and_garbage_is_internal() {
        use credmesh_proto::prost_types::Timestamp;
        let m = Timestamp {
            seconds: 1_790_000_000,
            nanos: 7,
        };
        let bytes = encoded::<Timestamp>(Ok(m));
        assert_eq!(decode_replay::<Timestamp>(&bytes).unwrap(), m);
        assert!(encoded::<Timestamp>(Err(Status::internal("x"))).is_empty());
        assert_eq!(
            decode_replay::<Timestamp>(&[0xff, 0xff])
                .unwrap_err()
                .code(),
            Code::Internal
        );
    }
}
