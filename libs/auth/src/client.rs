//! The client side of service-to-service calls: client assertions, a cached access
//! token, and a tower layer adding it to every outgoing call.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use credmesh_proto::identity::v1::identity_service_client::IdentityServiceClient;
use credmesh_proto::identity::v1::issue_token_request::Credential;
use credmesh_proto::identity::v1::{IssueTokenRequest, IssueTokenResponse};
use credmesh_telemetry::propagation::{TracedChannel, traced};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use futures::future::BoxFuture;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use tower::{BoxError, Layer, Service};

use crate::validator::jwt_error;
use crate::{AuthError, Clock, system_clock};

/// The `aud` of every client assertion.
pub const ASSERTION_AUDIENCE: &str = "credmesh-identity";
/// Lifetime of the assertions [`client_assertion`] makes, in seconds.
pub const ASSERTION_LIFETIME_SECS: i64 = 120;
/// The furthest ahead an accepted assertion may expire, in seconds.
pub const ASSERTION_MAX_LIFETIME_SECS: i64 = 300;

/// Claims of a client assertion (RFC 7523 style): the client proves it holds its key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssertionClaims {
    /// The client id.
    pub iss: String,
    /// The client id again.
    pub sub: String,
    /// [`ASSERTION_AUDIENCE`], or the token endpoint's URL (RFC 7523 §3); a received
    /// assertion may name several audiences, and this is the one accepted.
    pub aud: String,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Unique id: the identity service remembers it until `exp` to refuse replays.
    pub jti: String,
}

/// A client assertion for `client_id`, signed with its registered key, valid for
/// [`ASSERTION_LIFETIME_SECS`] from `now`.
pub fn client_assertion(client_id: &str, key: &SigningKey, now: i64) -> Result<String, AuthError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)
        .map_err(|e| AuthError::Signing(format!("no randomness for the assertion id: {e}")))?;
    let claims = AssertionClaims {
        iss: client_id.to_owned(),
        sub: client_id.to_owned(),
        aud: ASSERTION_AUDIENCE.to_owned(),
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
        jti: URL_SAFE_NO_PAD.encode(nonce),
    };
    let der = key
        .to_pkcs8_der()
        .map_err(|_| AuthError::InvalidKey("signing key cannot be encoded as pkcs#8".into()))?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("JWT".to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
        .map_err(|e| AuthError::Signing(e.to_string()))
}

/// The claims of an assertion as received: `aud` is one audience or several (RFC 7519
/// §4.1.3), as OAuth client libraries send either.
#[derive(Deserialize)]
struct ReceivedAssertion {
    iss: String,
    sub: String,
    aud: Audiences,
    #[serde(default)]
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audiences {
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    fn as_slice(&self) -> &[String] {
        match self {
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(many) => many,
        }
    }
}

/// Checks a client assertion against the client's registered raw public key: the
/// signature, `iss` = `sub` = `client_id`, an expiry in the future but at most
/// [`ASSERTION_MAX_LIFETIME_SECS`] ahead, a `jti`, and an `aud` naming the identity
/// service: [`ASSERTION_AUDIENCE`], or `token_endpoint`, the URL of its OAuth token
/// endpoint, which is what OAuth client libraries put there by default (RFC 7523 §3).
/// Another server's URL is refused, so an assertion a client made for some other
/// service cannot be replayed here.
///
/// The caller must refuse a `jti` it has seen before, remembering each until its `exp`;
/// after that this function refuses the assertion as expired.
pub fn verify_client_assertion(
    token: &str,
    client_id: &str,
    public_key: &[u8; 32],
    now: i64,
    token_endpoint: Option<&str>,
) -> Result<AssertionClaims, AuthError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let received = jsonwebtoken::decode::<ReceivedAssertion>(
        token,
        &DecodingKey::from_ed_der(public_key),
        &validation,
    )
    .map_err(jwt_error)?
    .claims;
    if received.iss != client_id || received.sub != client_id {
        return Err(AuthError::InvalidAssertion(
            "issuer and subject must both be the client id".into(),
        ));
    }
    let accepted: Vec<&str> = std::iter::once(ASSERTION_AUDIENCE)
        .chain(token_endpoint)
        .collect();
    let Some(aud) = received
        .aud
        .as_slice()
        .iter()
        .find(|a| accepted.contains(&a.as_str()))
        .cloned()
    else {
        return Err(AuthError::WrongAudience {
            expected: accepted.iter().map(|a| (*a).to_owned()).collect(),
            found: received.aud.as_slice().join(", "),
        });
    };
    let claims = AssertionClaims {
        iss: received.iss,
        sub: received.sub,
        aud,
        iat: received.iat,
        exp: received.exp,
        jti: received.jti,
    };
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    if claims.exp > now + ASSERTION_MAX_LIFETIME_SECS {
        return Err(AuthError::InvalidAssertion(
            "expiry is more than 5 minutes ahead".into(),
        ));
    }
    if claims.jti.is_empty() {
        return Err(AuthError::InvalidAssertion("no jti".into()));
    }
    Ok(claims)
}

/// Whatever issues tokens to a [`TokenSource`]: the identity service over gRPC, or a
/// function in tests and in-process wiring.
pub trait TokenIssuer: Send + Sync + 'static {
    /// Answers an `IssueToken` request.
    fn issue_token(
        &self,
        request: IssueTokenRequest,
    ) -> BoxFuture<'_, Result<IssueTokenResponse, tonic::Status>>;
}

/// How long an `IssueToken` call may take.
pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(5);

impl TokenIssuer for IdentityServiceClient<TracedChannel> {
    fn issue_token(
        &self,
        request: IssueTokenRequest,
    ) -> BoxFuture<'_, Result<IssueTokenResponse, tonic::Status>> {
        let mut client = self.clone();
        Box::pin(async move {
            let mut request = tonic::Request::new(request);
            request.set_timeout(ISSUE_TIMEOUT);
            // The inherent gRPC method, not this trait's.
            let call = IdentityServiceClient::issue_token(&mut client, request);
            match tokio::time::timeout(ISSUE_TIMEOUT, call).await {
                Ok(response) => response.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "identity did not issue a token in time",
                )),
            }
        })
    }
}

impl<F> TokenIssuer for F
where
    F: Fn(IssueTokenRequest) -> BoxFuture<'static, Result<IssueTokenResponse, tonic::Status>>
        + Send
        + Sync
        + 'static,
{
    fn issue_token(
        &self,
        request: IssueTokenRequest,
    ) -> BoxFuture<'_, Result<IssueTokenResponse, tonic::Status>> {
        self(request)
    }
}

/// A token is replaced this long before it expires.
pub const REFRESH_BEFORE_EXPIRY_SECS: i64 = 30;

/// Keeps an access token for one client and audience, obtaining a new one with a
/// client assertion when the cached one is within 30 s of expiry.
pub struct TokenSource {
    client_id: String,
    key: SigningKey,
    audience: String,
    scopes: Vec<String>,
    issuer: Arc<dyn TokenIssuer>,
    clock: Clock,
    cached: RwLock<Option<CachedToken>>,
    /// One fetch at a time; callers arriving meanwhile wait and reuse its token.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct CachedToken {
    token: Arc<str>,
    header: HeaderValue,
    refresh_at: i64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the token.
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `client_id` (signing assertions with `key`) asking `issuer` for
    /// tokens for `audience`, with all of the client's registered scopes.
    pub fn new(
        client_id: impl Into<String>,
        key: SigningKey,
        audience: impl Into<String>,
        issuer: Arc<dyn TokenIssuer>,
    ) -> Self {
        TokenSource {
            client_id: client_id.into(),
            key,
            audience: audience.into(),
            scopes: Vec::new(),
            issuer,
            clock: system_clock(),
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// A source asking the identity service reachable over `channel`. Its token requests
    /// are traced (`grpc.client` spans, trace context sent to identity).
    pub fn grpc(
        client_id: impl Into<String>,
        key: SigningKey,
        audience: impl Into<String>,
        channel: Channel,
    ) -> Self {
        Self::new(
            client_id,
            key,
            audience,
            Arc::new(IdentityServiceClient::new(traced(channel))),
        )
    }

    /// Asks for these scopes only (empty: all registered scopes).
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Reads time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The client id tokens are obtained for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A valid access token: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, AuthError> {
        Ok(self.current().await?.token.to_string())
    }

    /// The `authorization` header value, `Bearer <token>`, built once per token.
    pub async fn authorization(&self) -> Result<HeaderValue, AuthError> {
        Ok(self.current().await?.header)
    }

    /// Forgets the cached token, for example after a call was refused as
    /// unauthenticated because the token was revoked.
    pub fn invalidate(&self) {
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn current(&self) -> Result<CachedToken, AuthError> {
        if let Some(cached) = self.fresh() {
            return Ok(cached);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(cached) = self.fresh() {
            return Ok(cached);
        }
        let fetched = self.fetch().await?;
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(fetched.clone());
        Ok(fetched)
    }

    fn fresh(&self) -> Option<CachedToken> {
        let now = (self.clock)();
        self.cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|cached| now < cached.refresh_at)
            .cloned()
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let now = (self.clock)();
        let assertion = client_assertion(&self.client_id, &self.key, now)?;
        let response = self
            .issuer
            .issue_token(IssueTokenRequest {
                client_id: self.client_id.clone(),
                scopes: self.scopes.clone(),
                audience: self.audience.clone(),
                credential: Some(Credential::ClientAssertion(assertion)),
            })
            .await
            .map_err(|status| {
                tracing::warn!(
                    client_id = %self.client_id,
                    code = ?status.code(),
                    "identity refused to issue a token"
                );
                AuthError::TokenIssue(status)
            })?;
        let mut header = HeaderValue::try_from(format!("Bearer {}", response.access_token))
            .map_err(|_| AuthError::Malformed("issued token is not a valid header value".into()))?;
        header.set_sensitive(true);
        let lifetime = i64::from(response.expires_in);
        let refresh_in = (lifetime - REFRESH_BEFORE_EXPIRY_SECS).max(lifetime / 2);
        tracing::debug!(client_id = %self.client_id, lifetime, "obtained an access token");
        Ok(CachedToken {
            token: Arc::from(response.access_token),
            header,
            refresh_at: now + refresh_in,
        })
    }
}

/// A client-side tower layer adding `authorization: Bearer <token>` from a
/// [`TokenSource`] to every request; wrap a `Channel` with it and hand the result to a
/// generated client.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    source: Arc<TokenSource>,
}

impl BearerLayer {
    /// A layer taking tokens from `source`.
    pub fn new(source: Arc<TokenSource>) -> Self {
        BearerLayer { source }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service made by [`BearerLayer`]. When no token can be obtained the call fails
/// with the corresponding `tonic::Status` (tonic's client finds it in the error).
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    source: Arc<TokenSource>,
}

impl<S, B> Service<http::Request<B>> for BearerService<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let header = source
                .authorization()
                .await
                .map_err(|err| Box::new(err.to_status()) as BoxError)?;
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, header);
            inner.call(req).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::test_support::{NOW, TestClock};

    const CLIENT: &str = "svc-entcode";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    #[test]
    fn a_client_assertion_verifies_with_the_clients_public_key() {
        let assertion = client_assertion(CLIENT, &key(), NOW).unwrap();
        let claims = verify_client_assertion(
            &assertion,
            CLIENT,
            key().verifying_key().as_bytes(),
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(claims.iss, CLIENT);
        assert_eq!(claims.sub, CLIENT);
        assert_eq!(claims.aud, ASSERTION_AUDIENCE);
        assert_eq!(claims.exp, NOW + ASSERTION_LIFETIME_SECS);
        assert_eq!(URL_SAFE_NO_PAD.decode(&claims.jti).unwrap().len(), 16);

        let again = client_assertion(CLIENT, &key(), NOW).unwrap();
        let again =
            verify_client_assertion(&again, CLIENT, key().verifying_key().as_bytes(), NOW, None);
        assert_ne!(
            again.unwrap().jti,
            claims.jti,
            "every assertion has a fresh jti"
        );
    }

    #[test]
    fn a_replayed_but_expired_assertion_is_refused() {
        let assertion = client_assertion(CLIENT, &key(), NOW).unwrap();
        let public = key().verifying_key();
        let later = NOW + ASSERTION_LIFETIME_SECS;
        assert!(matches!(
            verify_client_assertion(&assertion, CLIENT, public.as_bytes(), later, None),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn an_assertion_for_another_client_or_key_is_refused() {
        let assertion = client_assertion(CLIENT, &key(), NOW).unwrap();
        let public = key().verifying_key();
        assert!(matches!(
            verify_client_assertion(&assertion, "svc-other", public.as_bytes(), NOW, None),
            Err(AuthError::InvalidAssertion(_))
        ));
        let stranger = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(matches!(
            verify_client_assertion(&assertion, CLIENT, stranger.as_bytes(), NOW, None),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn an_assertion_expiring_too_far_ahead_is_refused() {
        // Signed "in the future": from the verifier's view it lives 420 s.
        let assertion = client_assertion(CLIENT, &key(), NOW + 300).unwrap();
        let public = key().verifying_key();
        assert!(matches!(
            verify_client_assertion(&assertion, CLIENT, public.as_bytes(), NOW, None),
            Err(AuthError::InvalidAssertion(_))
        ));
    }

    /// An assertion for `CLIENT` with `aud` as given, signed with [`key`].
    fn assertion_to(aud: serde_json::Value) -> String {
        let claims = serde_json::json!({
            "iss": CLIENT, "sub": CLIENT, "aud": aud,
            "iat": NOW, "exp": NOW + 60, "jti": "j-1",
        });
        let der = key().to_pkcs8_der().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    #[test]
    fn the_audience_is_the_identity_service_or_its_token_endpoints_url() {
        const ENDPOINT: &str = "https://verify.sh.example.gov.cn/v1/token";
        let public = key().verifying_key();
        let check = |aud: serde_json::Value, endpoint: Option<&str>| {
            verify_client_assertion(&assertion_to(aud), CLIENT, public.as_bytes(), NOW, endpoint)
        };
        // The name, alone or among others, as a string or an array (RFC 7519 §4.1.3).
        assert_eq!(
            check(ASSERTION_AUDIENCE.into(), None).unwrap().aud,
            ASSERTION_AUDIENCE
        );
        let both = serde_json::json!(["https://elsewhere.example", ASSERTION_AUDIENCE]);
        assert_eq!(check(both, None).unwrap().aud, ASSERTION_AUDIENCE);
        // The token endpoint's URL, what OAuth libraries send by default, where it is known.
        assert_eq!(
            check(ENDPOINT.into(), Some(ENDPOINT)).unwrap().aud,
            ENDPOINT
        );
        assert_eq!(
            check(serde_json::json!([ENDPOINT]), Some(ENDPOINT))
                .unwrap()
                .aud,
            ENDPOINT
        );
        assert!(matches!(
            check(ENDPOINT.into(), None),
            Err(AuthError::WrongAudience { .. })
        ));
        // Another server's URL is refused: an assertion made for it cannot be replayed here.
        for other in [
            "https://bank.example/v1/token",
            "https://verify.sh.example.gov.cn/v1/token/",
            "credmesh-identity-js",
        ] {
            match check(other.into(), Some(ENDPOINT)) {
                Err(AuthError::WrongAudience { expected, found }) => {
                    assert_eq!(expected, [ASSERTION_AUDIENCE, ENDPOINT]);
                    assert_eq!(found, other);
                }
                answer => panic!("{other}: {answer:?}"),
            }
        }
        assert!(matches!(
            check(serde_json::json!([]), Some(ENDPOINT)),
            Err(AuthError::WrongAudience { .. })
        ));
    }

    /// An issuer that checks the assertion and hands out `token-<n>` for 300 s.
    fn counting_issuer(clock: &TestClock) -> (Arc<dyn TokenIssuer>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let now = clock.clock();
        let issuer = move |request: IssueTokenRequest| -> BoxFuture<
            'static,
            Result<IssueTokenResponse, tonic::Status>,
        > {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let Some(Credential::ClientAssertion(assertion)) = request.credential else {
                return Box::pin(async { Err(tonic::Status::unauthenticated("no assertion")) });
            };
            let verified = verify_client_assertion(
                &assertion,
                &request.client_id,
                key().verifying_key().as_bytes(),
                now(),
                None,
            );
            Box::pin(async move {
                verified.map_err(|e| e.to_status())?;
                Ok(IssueTokenResponse {
                    access_token: format!("token-{n}"),
                    token_type: "Bearer".into(),
                    expires_in: 300,
                    scopes: request.scopes,
                })
            })
        };
        (Arc::new(issuer), calls)
    }

    #[tokio::test]
    async fn the_token_source_caches_until_30_seconds_before_expiry() {
        let clock = TestClock::at(NOW);
        let (issuer, calls) = counting_issuer(&clock);
        let source = TokenSource::new(CLIENT, key(), "license", issuer).with_clock(clock.clock());

        assert_eq!(source.token().await.unwrap(), "token-1");
        clock.set(NOW + 269);
        assert_eq!(source.token().await.unwrap(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        clock.set(NOW + 270);
        assert_eq!(source.token().await.unwrap(), "token-2");
        source.invalidate();
        assert_eq!(source.token().await.unwrap(), "token-3");
    }

    #[tokio::test]
    async fn a_refused_issue_surfaces_the_identity_status() {
        let issuer = |_: IssueTokenRequest| -> BoxFuture<'static, Result<IssueTokenResponse, tonic::Status>> {
            Box::pin(async { Err(tonic::Status::permission_denied("client is disabled")) })
        };
        let source = TokenSource::new(CLIENT, key(), "license", Arc::new(issuer));
        let err = source.token().await.unwrap_err();
        assert_eq!(err.reason(), "AUTH_TOKEN_ISSUE_FAILED");
        assert_eq!(err.to_status().code(), tonic::Code::PermissionDenied);
    }

    #[tokio::test]
    async fn the_bearer_layer_adds_the_authorization_header() {
        let clock = TestClock::at(NOW);
        let (issuer, _) = counting_issuer(&clock);
        let source =
            Arc::new(TokenSource::new(CLIENT, key(), "license", issuer).with_clock(clock.clock()));
        let echo = tower::service_fn(|req: http::Request<()>| async move {
            Ok::<_, Infallible>(req.headers().get(http::header::AUTHORIZATION).cloned())
        });
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(source))
            .service(echo);
        let header = service.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(header.unwrap(), "Bearer token-1");
    }

    #[tokio::test]
    async fn the_bearer_layer_fails_the_call_with_a_status_when_no_token_is_issued() {
        let issuer = |_: IssueTokenRequest| -> BoxFuture<'static, Result<IssueTokenResponse, tonic::Status>> {
            Box::pin(async { Err(tonic::Status::unavailable("identity is down")) })
        };
        let source = Arc::new(TokenSource::new(CLIENT, key(), "license", Arc::new(issuer)));
        let called = Arc::new(AtomicUsize::new(0));
        let counter = called.clone();
        let inner = tower::service_fn(move |_: http::Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(()) }
        });
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(source))
            .service(inner);
        let err: BoxError = service.oneshot(http::Request::new(())).await.unwrap_err();
        let status = tonic::Status::from_error(err);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(called.load(Ordering::SeqCst), 0, "the call was not sent");
    }
}
