//! The response wrappers the server and client layers share.
//!
//! A gRPC call's status is known at one of three moments: in the response headers for a
//! "trailers-only" response (errors, mostly), in the trailers after the last message (every
//! successful unary call with tonic), or never, if the body is dropped half-way. So a layer that
//! wants the status wraps both the response future ([`ResponseFuture`]) and the response body
//! ([`ObservedBody`]); whichever sees the status first reports it, exactly once.
//!
//! Callers only meet these types as the `Response`/`Future` of the layered services.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::Span;

use crate::grpc;

/// How a call ended, as far as the layers could see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A gRPC call ended with this status (from the headers, the trailers, or derived from the
    /// HTTP status when there was none).
    Grpc(i32),
    /// A plain HTTP exchange (axum routes behind the same layer): final once the head is sent.
    Http(StatusCode),
    /// The response future or body was dropped before the call finished: the peer went away.
    Cancelled,
    /// The inner service or the body stream returned an error.
    Failed,
}

impl Outcome {
    /// The gRPC code this outcome counts as.
    pub(crate) fn grpc_code(self) -> i32 {
        match self {
            Outcome::Grpc(code) => code,
            Outcome::Http(status) if status.is_success() => 0,
            Outcome::Http(status) => grpc::code_from_http(status),
            Outcome::Cancelled => grpc::CANCELLED,
            Outcome::Failed => grpc::UNKNOWN,
        }
    }
}

/// Who wants to hear how a call ended. An enum rather than a trait object: two kinds, no boxing,
/// and stacked layers still see each other's bodies as plain `ObservedBody<ObservedBody<B>>`.
pub(crate) enum Observer {
    Metrics(crate::metrics::Observation),
    Span(crate::propagation::SpanObservation),
}

impl Observer {
    fn is_grpc(&self) -> bool {
        match self {
            Observer::Metrics(_) => true,
            Observer::Span(span) => span.is_grpc(),
        }
    }

    fn finish(self, outcome: Outcome) {
        match self {
            Observer::Metrics(metrics) => metrics.finish(outcome),
            Observer::Span(span) => span.finish(outcome),
        }
    }
}

/// An observer waiting for its call to end; reports exactly once, `Cancelled` if dropped first.
pub(crate) struct Completion(Option<Observer>);

impl Completion {
    pub(crate) fn new(observer: Observer) -> Self {
        Completion(Some(observer))
    }

    /// Nothing to report (a request the layer does not observe).
    pub(crate) fn none() -> Self {
        Completion(None)
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(observer) = self.0.take() {
            observer.finish(outcome);
        }
    }

    /// The response head is out: finish now unless the status can only be in the trailers.
    fn on_head(&mut self, status: StatusCode, headers: &HeaderMap) {
        let Some(observer) = &self.0 else { return };
        if !observer.is_grpc() {
            self.finish(Outcome::Http(status));
        } else if let Some(code) = grpc::grpc_status(headers) {
            // Trailers-only response: tonic puts the status in the headers.
            self.finish(Outcome::Grpc(code));
        } else if status != StatusCode::OK {
            self.finish(Outcome::Grpc(grpc::code_from_http(status)));
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

pin_project! {
    /// A response body that reports the call's gRPC status when the trailers go by (or the body
    /// ends without any, or is dropped). Frames pass through untouched.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        completion: Completion,
    }
}

impl<B> ObservedBody<B> {
    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedBody")
            .field("pending", &self.completion.0.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if this.completion.0.is_some() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        let code = grpc::grpc_status(trailers).unwrap_or(grpc::UNKNOWN);
                        this.completion.finish(Outcome::Grpc(code));
                    }
                }
                Some(Err(_)) => this.completion.finish(Outcome::Failed),
                // A gRPC body that ends without trailers never said how the call went.
                None => this.completion.finish(Outcome::Grpc(grpc::UNKNOWN)),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response future of the layered services: polls the inner future inside the request's
    /// span (if any), then hands the observer on to the body.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // Set when the remote parent could not be given to `span` (no OpenTelemetry layer, or
        // the span is filtered out): attached while polling, so the trace still passes through.
        remote: Option<opentelemetry::Context>,
        completion: Completion,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        span: Span,
        remote: Option<opentelemetry::Context>,
        completion: Completion,
    ) -> Self {
        ResponseFuture {
            inner,
            span,
            remote,
            completion,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ObservedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Drop order matters: the span is exited before the fallback context is detached.
        let _remote = this.remote.as_ref().map(|remote| remote.clone().attach());
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        let mut completion = mem::replace(this.completion, Completion::none());
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                completion.on_head(parts.status, &parts.headers);
                if body.is_end_stream() {
                    // Nobody will poll an empty body for trailers that cannot come.
                    completion.finish(Outcome::Grpc(grpc::UNKNOWN));
                }
                Ok(Response::from_parts(
                    parts,
                    ObservedBody {
                        inner: body,
                        completion,
                    },
                ))
            }
            Err(error) => {
                completion.finish(Outcome::Failed);
                Err(error)
            }
        })
    }
}
