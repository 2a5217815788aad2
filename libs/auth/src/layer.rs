//! The tower layer every service mounts in front of its tonic routes.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, Either};
use http::HeaderMap;
use tonic::server::NamedService;
use tower::{Layer, Service};

use crate::{Access, AccessPolicy, AuthError, Principal, TokenValidator};

/// Authenticates and authorises every gRPC call against an [`AccessPolicy`].
///
/// On success the [`Principal`] is in the request extensions, as an `Arc<Principal>`
/// shared with the validator's memory of the token (tonic hands the extensions to the
/// handler, see [`Principal::from_request`]); on failure the call is answered with a
/// gRPC error and the service behind is never called.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    validator: Arc<TokenValidator>,
    policy: Arc<AccessPolicy>,
}

impl AuthLayer {
    /// A layer validating tokens with `validator` and authorising with `policy`.
    pub fn new(validator: Arc<TokenValidator>, policy: Arc<AccessPolicy>) -> Self {
        AuthLayer {
            shared: Arc::new(Shared { validator, policy }),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Any response body with an empty default works: tonic's `Body` behind
/// `Server::builder().layer(..)`, axum's when layered onto `Routes::into_axum_router()`.
impl<S, B, ResBody> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    /// The service's own future when the decision needed no waiting (a token this
    /// process has seen, or a refusal); boxed only when a key set must be fetched first.
    type Future = Either<S::Future, BoxFuture<'static, Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let decided = match self.shared.begin(req.uri().path(), req.headers()) {
            Step::Decided(decision) => Some(decision),
            Step::Validate { token, access } => self
                .shared
                .validator
                .validate_now(token)
                .map(|validated| self.shared.finish(req.uri().path(), access, validated)),
        };
        match decided {
            Some(Ok(principal)) => {
                if let Some(principal) = principal {
                    req.extensions_mut().insert(principal);
                }
                // Called here, on the service poll_ready was called on.
                Either::Left(self.inner.call(req))
            }
            Some(Err(err)) => {
                let refused = refusal(&req, &err);
                Either::Right(Box::pin(async move { Ok(refused) }))
            }
            None => {
                // The clone may not be ready; keep the one poll_ready was called on.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = self.shared.clone();
                Either::Right(Box::pin(async move {
                    match shared.authorize(req.uri().path(), req.headers()).await {
                        Ok(principal) => {
                            if let Some(principal) = principal {
                                req.extensions_mut().insert(principal);
                            }
                            inner.call(req).await
                        }
                        Err(err) => Ok(refusal(&req, &err)),
                    }
                }))
            }
        }
    }
}

/// The answer to a refused call (logged at debug: refusals are the caller's business).
fn refusal<B, ResBody: Default>(
    req: &http::Request<B>,
    err: &AuthError,
) -> http::Response<ResBody> {
    tracing::debug!(
        method = req.uri().path(),
        reason = err.reason(),
        "refused a call"
    );
    err.to_status().into_http()
}

/// Lets one wrapped service be added to tonic `Routes` on its own:
/// `routes.add_service(auth_layer.layer(LicenseServiceServer::new(svc)))`.
impl<S: NamedService> NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

/// Where authorising a call stands before its token is validated.
enum Step<'a> {
    /// Decided without the token: refused, or a public method called without one.
    Decided(Result<Option<Arc<Principal>>, AuthError>),
    /// The token to validate, and the access the method asks for.
    Validate { token: &'a str, access: &'a Access },
}

impl Shared {
    /// The principal to attach, `None` for a public method called without a valid
    /// token, or why the call is refused.
    async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        match self.begin(path, headers) {
            Step::Decided(decision) => decision,
            Step::Validate { token, access } => {
                let validated = self.validator.validate(token).await;
                self.finish(path, access, validated)
            }
        }
    }

    /// The method's access and the call's token.
    fn begin<'a>(&'a self, path: &str, headers: &'a HeaderMap) -> Step<'a> {
        let Some(access) = self.policy.lookup(path) else {
            if !credmesh_proto::is_published_method(path) {
                return Step::Decided(Err(AuthError::UnknownMethod(
                    path.chars().take(200).collect(),
                )));
            }
            // A published method without a policy entry is a deployment fault: say so.
            tracing::warn!(
                method = path,
                "refused a method missing from the access policy"
            );
            return Step::Decided(Err(AuthError::MethodNotInPolicy(path.to_owned())));
        };
        match bearer_token(headers) {
            Ok(Some(token)) => Step::Validate { token, access },
            // A token is optional on a public method; a malformed one is ignored there.
            Ok(None) | Err(_) if *access == Access::Public => Step::Decided(Ok(None)),
            Ok(None) => Step::Decided(Err(AuthError::MissingToken)),
            Err(err) => Step::Decided(Err(err)),
        }
    }

    /// The decision once the token was validated.
    fn finish(
        &self,
        path: &str,
        access: &Access,
        validated: Result<Arc<Principal>, AuthError>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        if *access == Access::Public {
            // A valid token still tells the handler who calls.
            return Ok(validated.ok());
        }
        let principal = validated?;
        if let Err(err) = access.check(&principal) {
            tracing::info!(
                method = path,
                client_id = %principal.client_id,
                reason = err.reason(),
                "caller lacks the scope for this method"
            );
            return Err(err);
        }
        Ok(Some(principal))
    }
}

/// The token of an `authorization: Bearer <token>` header (scheme case-insensitive);
/// `None` when there is no such header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("authorization header is not ascii".into()))?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "authorization header is not `Bearer <token>`".into(),
        ));
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use credmesh_proto::status::reason;
    use tonic::{Code, Status};
    use tower::{ServiceBuilder, ServiceExt};

    use tonic::body::Body;

    use super::*;
    use crate::ValidatorConfig;
    use crate::test_support::{ISSUER, NOW, TestClock, claims, jwks_of, signer};

    const ISSUE: &str = "/credmesh.license.v1.LicenseService/IssueLicense";
    const GET: &str = "/credmesh.license.v1.LicenseService/GetLicense";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";

    /// An AuthLayer over a service answering OK with the caller's client id (or
    /// `anonymous`) in an `x-client-id` header.
    fn stack() -> (
        impl Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
        crate::TokenSigner,
    ) {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let validator = TokenValidator::new(
            jwks_of(&[&signer]),
            ValidatorConfig::new(ISSUER, ["license"]).with_clock(clock.clock()),
        );
        let policy = AccessPolicy::new()
            .service_default(
                "credmesh.license.v1.LicenseService",
                Access::Scope("license.read"),
            )
            .rule(ISSUE, Access::Scope("license.write"));
        let inner = tower::service_fn(|req: http::Request<Body>| async move {
            let caller = req
                .extensions()
                .get::<Arc<Principal>>()
                .map_or("anonymous".to_owned(), |p| p.client_id.clone());
            let mut response = http::Response::new(Body::empty());
            response
                .headers_mut()
                .insert("x-client-id", caller.parse().unwrap());
            Ok::<_, Infallible>(response)
        });
        let service = ServiceBuilder::new()
            .layer(AuthLayer::new(validator, Arc::new(policy)))
            .service(inner);
        (service, signer)
    }

    fn request(path: &str, token: Option<&str>) -> http::Request<Body> {
        let mut builder = http::Request::post(path).header("content-type", "application/grpc");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("bearer {token}"));
        }
        builder.body(Body::empty()).unwrap()
    }

    fn status_of(response: &http::Response<Body>) -> Status {
        Status::from_header_map(response.headers()).expect("a grpc-status header")
    }

    #[tokio::test]
    async fn a_call_without_a_token_is_unauthenticated_with_a_readable_reason() {
        let (service, _) = stack();
        let response = service.oneshot(request(GET, None)).await.unwrap();
        let status = status_of(&response);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status
                .message()
                .starts_with("no access token was sent; send 'authorization: Bearer <token>'"),
            "{}",
            status.message()
        );
        assert!(response.headers().contains_key("grpc-status-details-bin"));
        assert_eq!(reason(&status).as_deref(), Some("AUTH_TOKEN_MISSING"));
        assert!(
            !response.headers().contains_key("x-client-id"),
            "inner service not called"
        );
    }

    #[tokio::test]
    async fn a_token_without_the_scope_is_permission_denied() {
        let (service, signer) = stack();
        let token = signer.sign(&claims("svc-entcode", "license.read")).unwrap();
        let response = service.oneshot(request(ISSUE, Some(&token))).await.unwrap();
        let status = status_of(&response);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(reason(&status).as_deref(), Some("AUTH_SCOPE_MISSING"));
        assert_eq!(status.message(), "this call needs scope license.write");
    }

    #[tokio::test]
    async fn a_method_no_service_has_is_unimplemented_even_with_a_token() {
        let (service, signer) = stack();
        let token = signer
            .sign(&claims("svc", "license.read license.write"))
            .unwrap();
        let response = service
            .oneshot(request(
                "/credmesh.license.v1.LicenseService2/New",
                Some(&token),
            ))
            .await
            .unwrap();
        let status = status_of(&response);
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(reason(&status).as_deref(), Some("METHOD_UNKNOWN"));
    }

    #[tokio::test]
    async fn a_public_method_passes_without_a_token() {
        let (service, _) = stack();
        let response = service.oneshot(request(HEALTH, None)).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(response.headers()["x-client-id"], "anonymous");
    }

    #[tokio::test]
    async fn a_public_method_still_sees_the_caller_of_a_valid_token() {
        let (service, signer) = stack();
        let token = signer.sign(&claims("svc-verify", "")).unwrap();
        let response = service
            .oneshot(request(HEALTH, Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.headers()["x-client-id"], "svc-verify");
    }

    #[tokio::test]
    async fn the_inner_service_sees_the_principal_of_a_permitted_call() {
        let (service, signer) = stack();
        let token = signer
            .sign(&claims("svc-license-ui", "license.read"))
            .unwrap();
        let response = service.oneshot(request(GET, Some(&token))).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(response.headers()["x-client-id"], "svc-license-ui");
    }

    #[tokio::test]
    async fn calls_after_the_key_set_is_loaded_are_decided_at_once_with_the_same_answers() {
        let (mut service, signer) = stack();
        let token = signer
            .sign(&claims("svc-license-ui", "license.read"))
            .unwrap();
        // The first call fetches the key set (the waiting path); the next ones find the
        // key, or the remembered token, and call the inner service directly.
        for call in 0..3 {
            let response = service
                .ready()
                .await
                .unwrap()
                .call(request(GET, Some(&token)))
                .await
                .unwrap();
            assert!(
                response.headers().get("grpc-status").is_none(),
                "call {call}"
            );
            assert_eq!(response.headers()["x-client-id"], "svc-license-ui");
            let refused = service
                .ready()
                .await
                .unwrap()
                .call(request(ISSUE, Some(&token)))
                .await
                .unwrap();
            assert_eq!(status_of(&refused).code(), Code::PermissionDenied);
        }
        let fresh = signer.sign(&claims("svc-other", "license.read")).unwrap();
        let response = service.oneshot(request(GET, Some(&fresh))).await.unwrap();
        assert_eq!(response.headers()["x-client-id"], "svc-other");
    }

    #[tokio::test]
    async fn an_invalid_token_is_unauthenticated_and_never_echoed() {
        let (service, signer) = stack();
        let forged = signer.sign(&claims("svc", "license.read")).unwrap() + "x";
        let response = service.oneshot(request(GET, Some(&forged))).await.unwrap();
        let status = status_of(&response);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(!status.message().contains(&forged[..20]));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_malformed() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "BEARER abc".parse().unwrap());
        assert_eq!(bearer_token(&headers).unwrap(), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(matches!(
            bearer_token(&headers),
            Err(AuthError::Malformed(_))
        ));
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(matches!(
            bearer_token(&headers),
            Err(AuthError::MissingToken)
        ));
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }
}
