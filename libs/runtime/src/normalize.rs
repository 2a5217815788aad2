//! Gives tonic's own transport-level refusals the codes and details every credmesh
//! error carries.
//!
//! tonic answers an undecodable request body with `INTERNAL` ("failed to decode Protobuf
//! message") and an oversized one with `OUT_OF_RANGE`; to a caller both are their own
//! fault, and gRPC's conventions name them `INVALID_ARGUMENT` and `RESOURCE_EXHAUSTED`.
//! Those statuses are produced inside generated code that no service can reach, so the
//! mapping lives here, once, on the way out. It only rewrites trailers-only answers
//! whose message tonic wrote; every other response passes untouched.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use axum::body::Body;
use credmesh_proto::status;
use futures::{FutureExt as _, future::Map};
use http::{HeaderMap, Request, Response};
use tonic::Code;
use tower::{Layer, Service};

/// The normalising layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct NormalizeLayer;

impl<S> Layer<S> for NormalizeLayer {
    type Service = Normalize<S>;
    fn layer(&self, inner: S) -> Normalize<S> {
        Normalize { inner }
    }
}

/// The normalising service; see [`NormalizeLayer`].
#[derive(Clone, Debug)]
pub struct Normalize<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Normalize<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// The service's own future, its answer rewritten on the way out: no allocation per
    /// call.
    type Future = Map<S::Future, fn(Answer) -> Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.inner.call(req).map(normalize as fn(Answer) -> Answer)
    }
}

type Answer = Result<Response<Body>, Infallible>;

/// The answer with tonic's transport-level refusal, if it is one, replaced.
fn normalize(answer: Answer) -> Answer {
    let mut resp = answer?;
    if let Some(replacement) = replacement(resp.headers()) {
        let headers = resp.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        if replacement.add_header(headers).is_err() {
            tracing::warn!("could not rewrite a transport error status");
        }
    }
    Ok(resp)
}

fn replacement(headers: &HeaderMap) -> Option<tonic::Status> {
    let code = headers.get("grpc-status")?.as_bytes();
    let message = tonic::Status::from_header_map(headers)?
        .message()
        .to_string();
    match code {
        b"13" if message.starts_with("failed to decode Protobuf message") => {
            Some(status::error_with_metadata(
                Code::InvalidArgument,
                "MALFORMED_REQUEST",
                "the request body is not a valid protobuf message for this method",
                [("detail", message)],
            ))
        }
        b"11" if message.contains("message length too large") => Some(status::error_with_metadata(
            Code::ResourceExhausted,
            "MESSAGE_TOO_LARGE",
            "the request is larger than this server accepts",
            [("detail", message)],
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(status: tonic::Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn decode_failures_become_invalid_argument_with_a_reason() {
        let h = headers_of(tonic::Status::internal(
            "failed to decode Protobuf message: invalid wire type",
        ));
        let s = replacement(&h).unwrap();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(status::reason(&s).as_deref(), Some("MALFORMED_REQUEST"));
    }

    #[test]
    fn oversized_messages_become_resource_exhausted() {
        let h = headers_of(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 100 bytes, the limit is: 10 bytes",
        ));
        assert_eq!(replacement(&h).unwrap().code(), Code::ResourceExhausted);
    }

    #[test]
    fn service_errors_pass_untouched() {
        let h = headers_of(tonic::Status::internal("database down"));
        assert!(replacement(&h).is_none());
        let h = headers_of(tonic::Status::out_of_range("page 9 of 3"));
        assert!(replacement(&h).is_none());
    }
}
