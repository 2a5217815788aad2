//! The gRPC and HTTP/JSON adapters: request in, gateway call, answer out.

pub mod grpc;
pub mod http;

/// Whether presented text is empty or only ASCII whitespace: a credential that says
/// nothing (400 / INVALID_ARGUMENT `CREDENTIAL_MISSING`), on both adapters alike. The
/// OpenAPI document states the same rule as a pattern (a character other than space,
/// tab, line feed, form feed or carriage return), so the two cannot disagree over
/// Unicode's wider notion of whitespace.
fn blank(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_whitespace())
}
