//! Errors with google.rpc rich details, built the same way by every service.
//!
//! A caller always gets three things: the right gRPC code, a sentence a person can read
//! (the status message), and machine-readable details: an `ErrorInfo` with a stable
//! `reason` (such as `USCC_CHECK_DIGIT`) in the `credmesh` domain, plus a `BadRequest`
//! with field violations when the input was at fault. Partners switch on `reason`, never
//! on the message text.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every credmesh error.
pub const ERROR_DOMAIN: &str = "credmesh";

/// One field that failed validation, for `google.rpc.BadRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field path, such as `uscc` or `license.name`.
    pub field: String,
    /// Why the value was refused, as a sentence.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`, explained by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A status with `code`, the readable `message` and an `ErrorInfo` carrying `reason`.
pub fn error(code: Code, reason: &str, message: impl Into<String>) -> Status {
    error_with_metadata(
        code,
        reason,
        message,
        std::iter::empty::<(String, String)>(),
    )
}

/// The answer while a service's database is unreachable: `UNAVAILABLE`, reason
/// `DATABASE_UNAVAILABLE`, telling the caller a retry is safe.
pub fn database_unavailable() -> Status {
    error(
        Code::Unavailable,
        "DATABASE_UNAVAILABLE",
        "the service's database is unavailable right now; retry shortly (a retried change \
         with the same idempotency key is applied only once)",
    )
}

/// The answer to a caller over its rate limit: `RESOURCE_EXHAUSTED`, reason
/// `RATE_LIMITED`, the readable `message` naming the limit, an `ErrorInfo` with
/// `metadata` and `retry_after_seconds`, a `google.rpc.RetryInfo` saying how long to
/// wait, and a `retry-after` header (whole seconds, rounded up) for plain gRPC clients.
pub fn rate_limited<K, V>(
    message: impl Into<String>,
    retry_after: Duration,
    metadata: impl IntoIterator<Item = (K, V)>,
) -> Status
where
    K: Into<String>,
    V: Into<String>,
{
    let seconds = retry_after_seconds(retry_after);
    let mut info: std::collections::HashMap<String, String> = metadata
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    info.insert("retry_after_seconds".into(), seconds.to_string());
    let mut details = ErrorDetails::with_error_info(RATE_LIMITED, ERROR_DOMAIN, info);
    details.set_retry_info(Some(retry_after));
    let mut status = Status::with_error_details(Code::ResourceExhausted, message.into(), details);
    if let Ok(value) = seconds.to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// The stable reason of [`rate_limited`].
pub const RATE_LIMITED: &str = "RATE_LIMITED";

/// A wait as an HTTP `Retry-After` / gRPC `retry-after` value: whole seconds, rounded
/// up, at least 1 (a client told 0 would retry at once).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The `RetryInfo.retry_delay` of a status, if it carries one.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

/// Like [`error`], with `ErrorInfo.metadata` entries giving the facts behind the error
/// (for example the rule that refused and the count it saw).
pub fn error_with_metadata<K, V>(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    metadata: impl IntoIterator<Item = (K, V)>,
) -> Status
where
    K: Into<String>,
    V: Into<String>,
{
    let metadata: std::collections::HashMap<String, String> = metadata
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message.into(), details)
}

/// `INVALID_ARGUMENT` with an `ErrorInfo` and a `BadRequest` listing `violations`.
pub fn invalid_argument(
    reason: &str,
    message: impl Into<String>,
    violations: impl IntoIterator<Item = FieldViolation>,
) -> Status {
    let mut details =
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
    for v in violations {
        details.add_bad_request_violation(v.field, v.description);
    }
    Status::with_error_details(Code::InvalidArgument, message.into(), details)
}

/// The stable reason of a status made by this module, if it carries one.
pub fn reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// The field violations of a status made by [`invalid_argument`].
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|br| {
            br.field_violations
                .into_iter()
                .map(|v| FieldViolation::new(v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_reason_and_field_violations() {
        let status = invalid_argument(
            "USCC_CHECK_DIGIT",
            "unified social credit code check character is wrong",
            [FieldViolation::new(
                "uscc",
                "check character is 'K', found 'X'",
            )],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status).as_deref(), Some("USCC_CHECK_DIGIT"));
        let violations = field_violations(&status);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "uscc");
    }

    #[test]
    fn rate_limited_carries_reason_retry_info_and_a_retry_after_header() {
        let status = rate_limited(
            "client 'bank' is over its limit",
            Duration::from_millis(1500),
            [("limit", "2/s")],
        );
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(reason(&status).as_deref(), Some(RATE_LIMITED));
        assert_eq!(retry_delay(&status), Some(Duration::from_millis(1500)));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["retry_after_seconds"], "2");
        assert_eq!(info.metadata["limit"], "2/s");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_never_says_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_seconds(Duration::from_millis(3001)), 4);
    }

    #[test]
    fn error_with_metadata_round_trips_through_details() {
        let status = error_with_metadata(
            Code::FailedPrecondition,
            "RULE",
            "refused",
            [("count", "2")],
        );
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata.get("count").map(String::as_str), Some("2"));
    }
}
