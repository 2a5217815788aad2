//! Limits every gRPC call is held to: a bounded number in flight and a deadline.
//!
//! Both answer with proper gRPC statuses, never a dropped connection: too many calls in
//! flight → `RESOURCE_EXHAUSTED` at once (shedding load is kinder than queueing it), and
//! a call running past its deadline → `DEADLINE_EXCEEDED`. The deadline is the client's
//! `grpc-timeout` when it sent one, capped by the server's own maximum.

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use credmesh_proto::status;
use futures::future::Either;
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;
use tower::{Layer, Service};

/// The limits layer.
#[derive(Clone, Debug)]
pub struct LimitsLayer {
    permits: Arc<Semaphore>,
    max_timeout: Duration,
}

impl LimitsLayer {
    /// At most `concurrency` calls in flight, each for at most `max_timeout`.
    pub fn new(concurrency: usize, max_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            max_timeout,
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;
    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            inner,
            permits: self.permits.clone(),
            max_timeout: self.max_timeout,
        }
    }
}

/// The limits service; see [`LimitsLayer`].
#[derive(Clone, Debug)]
pub struct Limits<S> {
    inner: S,
    permits: Arc<Semaphore>,
    max_timeout: Duration,
}

impl<S, B> Service<Request<B>> for Limits<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// The call under its deadline and permit, or the refusal of an overloaded server:
    /// no allocation per call.
    type Future = Either<Limited<S::Future>, Ready<Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Either::Right(ready(Ok(status::error(
                Code::ResourceExhausted,
                "SERVER_OVERLOADED",
                "the server is handling too many requests; retry with backoff",
            )
            .into_http())));
        };
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(self.max_timeout, |t| t.min(self.max_timeout));
        // Called here, on the service poll_ready was called on; it runs when polled.
        Either::Left(Limited {
            call: tokio::time::timeout(timeout, self.inner.call(req)),
            timeout,
            _permit: permit,
        })
    }
}

pin_project_lite::pin_project! {
    /// A call holding its permit until it answers, answered `DEADLINE_EXCEEDED` when it
    /// runs past its deadline.
    pub struct Limited<F> {
        #[pin]
        call: tokio::time::Timeout<F>,
        timeout: Duration,
        _permit: OwnedSemaphorePermit,
    }
}

impl<F> Future for Limited<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.call.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(answer)) => Poll::Ready(answer),
            Poll::Ready(Err(_)) => Poll::Ready(Ok(status::error(
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
                format!(
                    "the call did not finish within its deadline of {:?}",
                    this.timeout
                ),
            )
            .into_http())),
        }
    }
}

/// Parses a gRPC `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[tokio::test]
    async fn calls_over_the_concurrency_limit_are_shed_with_resource_exhausted() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let slow = tower::service_fn(move |_req: Request<()>| {
            let rx = rx.clone();
            async move {
                if let Some(rx) = rx.lock().await.take() {
                    let _ = rx.await;
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        });
        let mut svc = LimitsLayer::new(1, Duration::from_secs(5)).layer(slow);
        let first = tokio::spawn(svc.call(Request::new(())));
        tokio::task::yield_now().await;
        let second = svc.call(Request::new(())).await.unwrap();
        assert_eq!(second.headers()["grpc-status"], "8");
        tx.send(()).unwrap();
        assert!(
            first
                .await
                .unwrap()
                .unwrap()
                .headers()
                .get("grpc-status")
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_their_deadline_answer_deadline_exceeded() {
        let never = tower::service_fn(|_req: Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let mut svc = LimitsLayer::new(8, Duration::from_secs(30)).layer(never);
        let mut req = Request::new(());
        req.headers_mut()
            .insert("grpc-timeout", "100m".parse().unwrap());
        let resp = svc.call(req).await.unwrap();
        assert_eq!(resp.headers()["grpc-status"], "4");
    }
}
