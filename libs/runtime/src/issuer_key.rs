//! An issuing service's signing key: loaded from its PKCS#8 file, registered with the
//! identity service at start, and the readiness gate that keeps the service from issuing
//! credentials nobody could verify. One mechanism for every issuing service (license,
//! entcode, …); each names its issuer and the kinds its key may sign.
//!
//! Registration runs in the background and retries with exponential backoff until
//! identity answers, so the service can start before identity does (Kubernetes starts
//! pods in any order; `credmesh dev` serves everything from listeners that open after
//! all services are built). Until the key is registered the service reports NOT_SERVING
//! and should refuse to issue.
//!
//! Rotation is a restart with a new key file: its kid (derived from the public key) is
//! new, identity retires the issuer's previous active key and keeps it in the trust
//! list, so what the old key signed keeps verifying. A process started with a key
//! identity already holds as retired or revoked stays not ready, because what it signed
//! would not verify.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_credential::keys::{IssuerKey, kid_for};
use credmesh_proto::{
    credential::v1::{CredentialKind, KeyStatus},
    identity::v1::{
        RegisterIssuerKeyRequest, RegisterIssuerKeyResponse,
        identity_service_client::IdentityServiceClient,
    },
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tracing::Instrument as _;

use crate::server::Readiness;

/// Loads the PKCS#8 PEM signing key at `path`, naming it `<region>-<service>-<hash>`.
pub fn load_signing_key(path: &Path, region: &str, service: &str) -> anyhow::Result<IssuerKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the signing key file {}", path.display()))?;
    let probe = IssuerKey::from_pkcs8_pem("probe", &pem).with_context(|| {
        format!(
            "the signing key file {} is not a PKCS#8 Ed25519 key",
            path.display()
        )
    })?;
    let kid = kid_for(region, service, &probe.public_key_bytes());
    IssuerKey::from_pkcs8_pem(kid, &pem).map_err(Into::into)
}

/// Loads the service's identity client key (`CREDMESH_CLIENT_KEY_FILE`, PKCS#8 PEM),
/// naming it `client_id`.
pub fn load_client_key(path: Option<&Path>, client_id: &str) -> anyhow::Result<IssuerKey> {
    let path = path.context(
        "CREDMESH_CLIENT_KEY_FILE is required: the PKCS#8 PEM key of the service's identity client",
    )?;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the client key file {}", path.display()))?;
    IssuerKey::from_pkcs8_pem(client_id, &pem).with_context(|| {
        format!(
            "the client key file {} is not a PKCS#8 Ed25519 key",
            path.display()
        )
    })
}

/// The registrar for production: identity over `identity`, as the service's client
/// `client_id` proving itself with the key in `key_file` (`CREDMESH_CLIENT_KEY_FILE`).
pub fn grpc_registrar(
    client_id: &str,
    key_file: Option<&Path>,
    identity: Channel,
    clock: Arc<dyn crate::Clock>,
) -> anyhow::Result<Arc<dyn KeyRegistrar>> {
    let key = load_client_key(key_file, client_id)?;
    Ok(Arc::new(GrpcRegistrar::new(
        identity,
        client_id,
        &key,
        Arc::new(move || clock.now()),
    )))
}

/// Access tokens holding `scope`, from identity over `identity`, for the service's
/// client `client_id` proving itself with `key`. The audience is the region-wide
/// `credmesh`: a service-specific one would be refused where services share one server
/// (`credmesh dev`, tests).
pub fn service_tokens(
    client_id: &str,
    key: &IssuerKey,
    identity: Channel,
    scope: &'static str,
    clock: Arc<dyn crate::Clock>,
) -> Arc<TokenSource> {
    Arc::new(
        TokenSource::grpc(
            client_id.to_owned(),
            key.signing_key().clone(),
            "credmesh",
            identity,
        )
        .with_scopes([scope])
        .with_clock(Arc::new(move || clock.now())),
    )
}

/// An issuing service as identity knows it: its name, region and client
/// (`CREDMESH_REGION`, `CREDMESH_CLIENT_ID`, `CREDMESH_CLIENT_KEY_FILE`). Every issuing
/// service registers its signing key, asks for tokens to call other services and checks
/// its callers' tokens the same way; its configuration hands out one of these
/// (`config.client()`), and the rest is here once.
#[derive(Debug, Clone, Copy)]
pub struct ServiceClient<'a> {
    /// The service's name, the audience of the tokens it accepts (`license`, …).
    pub service: &'static str,
    /// The region code of its identity service (`SH`, …).
    pub region: &'a str,
    /// Its client id at identity.
    pub client_id: &'a str,
    /// The PKCS#8 PEM key it proves itself with (`CREDMESH_CLIENT_KEY_FILE`).
    pub key_file: Option<&'a Path>,
}

impl ServiceClient<'_> {
    /// The registrar of the service's signing key: identity over `identity`.
    pub fn registrar(
        &self,
        identity: Channel,
        clock: Arc<dyn crate::Clock>,
    ) -> anyhow::Result<Arc<dyn KeyRegistrar>> {
        grpc_registrar(self.client_id, self.key_file, identity, clock)
    }

    /// Access tokens holding `scope` for calling another service, from identity over
    /// `identity` (see [`service_tokens`]).
    pub fn tokens(
        &self,
        identity: Channel,
        scope: &'static str,
        clock: Arc<dyn crate::Clock>,
    ) -> anyhow::Result<Arc<TokenSource>> {
        Ok(service_tokens(
            self.client_id,
            &load_client_key(self.key_file, self.client_id)?,
            identity,
            scope,
            clock,
        ))
    }

    /// The validator of its callers' tokens: identity's keys over `identity`, refreshed
    /// in the background; tokens for this service or for every service.
    pub fn validator(&self, identity: Channel) -> Arc<credmesh_auth::TokenValidator> {
        credmesh_auth::TokenValidator::for_service(self.service, self.region, identity)
    }
}

/// Whatever registers issuer keys: identity over gRPC, or a function in benchmarks.
pub trait KeyRegistrar: Send + Sync + 'static {
    /// Answers a `RegisterIssuerKey` request.
    fn register(
        &self,
        request: RegisterIssuerKeyRequest,
    ) -> BoxFuture<'_, Result<RegisterIssuerKeyResponse, tonic::Status>>;
}

impl<F> KeyRegistrar for F
where
    F: Fn(
            RegisterIssuerKeyRequest,
        ) -> BoxFuture<'static, Result<RegisterIssuerKeyResponse, tonic::Status>>
        + Send
        + Sync
        + 'static,
{
    fn register(
        &self,
        request: RegisterIssuerKeyRequest,
    ) -> BoxFuture<'_, Result<RegisterIssuerKeyResponse, tonic::Status>> {
        self(request)
    }
}

/// Registers keys with identity over gRPC, authenticated as a service client.
#[derive(Debug, Clone)]
pub struct GrpcRegistrar {
    client: IdentityServiceClient<BearerService<ClientTrace<Channel>>>,
    tokens: Arc<TokenSource>,
}

/// How long one registration call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl GrpcRegistrar {
    /// A registrar calling identity over `channel` as `client_id`, proving itself with
    /// `client_key` (client assertions) and reading time from `clock`.
    pub fn new(
        channel: Channel,
        client_id: &str,
        client_key: &IssuerKey,
        clock: credmesh_auth::Clock,
    ) -> Self {
        let tokens = Arc::new(
            TokenSource::grpc(
                client_id,
                client_key.signing_key().clone(),
                "identity",
                channel.clone(),
            )
            .with_scopes(["identity.keys"])
            .with_clock(clock),
        );
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(channel);
        GrpcRegistrar {
            client: IdentityServiceClient::new(service),
            tokens,
        }
    }
}

impl KeyRegistrar for GrpcRegistrar {
    fn register(
        &self,
        request: RegisterIssuerKeyRequest,
    ) -> BoxFuture<'_, Result<RegisterIssuerKeyResponse, tonic::Status>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let mut request = tonic::Request::new(request);
            request.set_timeout(CALL_TIMEOUT);
            let answer = tokio::time::timeout(CALL_TIMEOUT, client.register_issuer_key(request))
                .await
                .map_err(|_| tonic::Status::deadline_exceeded("identity did not answer in time"))?;
            if let Err(status) = &answer
                && status.code() == tonic::Code::Unauthenticated
            {
                // A token identity no longer accepts: fetch a new one next time.
                self.tokens.invalidate();
            }
            answer.map(tonic::Response::into_inner)
        })
    }
}

/// Where the key's registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Not yet registered; the last attempt's outcome.
    Pending(String),
    /// Registered and active: the service may issue.
    Registered,
    /// Identity holds this key as retired or revoked: the service must not issue with it.
    Refused(String),
}

/// The registration state of the service's key, shared with readiness and the service.
#[derive(Debug)]
pub struct KeyRegistration {
    kid: String,
    state: watch::Sender<KeyState>,
}

impl KeyRegistration {
    /// A pending registration of `kid`.
    pub fn new(kid: &str) -> Arc<KeyRegistration> {
        Arc::new(KeyRegistration {
            kid: kid.to_string(),
            state: watch::channel(KeyState::Pending("not attempted yet".into())).0,
        })
    }

    /// The kid being registered.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The current state.
    pub fn state(&self) -> KeyState {
        self.state.borrow().clone()
    }

    /// `Ok` once registered; the reason otherwise.
    pub fn check(&self) -> Result<(), String> {
        match self.state() {
            KeyState::Registered => Ok(()),
            KeyState::Pending(why) => Err(format!("key {} not registered yet: {why}", self.kid)),
            KeyState::Refused(why) => Err(format!("key {} refused: {why}", self.kid)),
        }
    }

    /// Waits until the key is registered (or refused), at most `timeout`; whether it is
    /// registered.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let mut rx = self.state.subscribe();
        let done =
            tokio::time::timeout(timeout, rx.wait_for(|s| !matches!(s, KeyState::Pending(_))))
                .await;
        matches!(done, Ok(Ok(s)) if *s == KeyState::Registered)
    }

    /// Marks the key registered without asking identity (benchmarks and tests of the
    /// store alone).
    pub fn assume_registered(&self) {
        self.state.send_replace(KeyState::Registered);
    }

    fn set(&self, state: KeyState) {
        self.state.send_replace(state);
    }
}

/// Readiness: NOT_SERVING until the key is registered.
#[derive(Debug)]
pub struct KeyReady(pub Arc<KeyRegistration>);

impl Readiness for KeyReady {
    fn name(&self) -> &str {
        "issuer_key"
    }

    fn check(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { self.0.check().map_err(anyhow::Error::msg) })
    }
}

/// Backoff between registration attempts: from 200 ms, doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    let ms = 200u64.saturating_mul(1 << attempt.min(8));
    Duration::from_millis(ms.min(30_000))
}

/// Registers `key` as the issuer key of `issuer` (`<region>/<service>`), allowed to sign
/// `kinds`, in the background, retrying until identity answers.
pub fn spawn_registration(
    registrar: Arc<dyn KeyRegistrar>,
    key: &IssuerKey,
    issuer: String,
    kinds: &[CredentialKind],
    registration: Arc<KeyRegistration>,
) -> tokio::task::JoinHandle<()> {
    // The span is named after the service: `license.register_issuer_key`, ….
    let span_name = format!(
        "{}.register_issuer_key",
        issuer.split_once('/').map_or(issuer.as_str(), |(_, s)| s)
    );
    let request = RegisterIssuerKeyRequest {
        issuer,
        kid: key.kid().to_string(),
        public_key: key.public_key_bytes().to_vec(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
        not_after: 0,
    };
    tokio::spawn(async move {
        let mut attempt = 0u32;
        loop {
            // Each attempt is one trace: the token request and the registration, with
            // identity's server spans under them.
            let span = tracing::info_span!(
                "register_issuer_key",
                otel.name = %span_name,
                kid = %request.kid,
                attempt
            );
            match registrar.register(request.clone()).instrument(span).await {
                Ok(answer) => {
                    let status = answer
                        .key
                        .as_ref()
                        .and_then(|k| k.key.as_ref())
                        .map(|k| k.status)
                        .unwrap_or_default();
                    if status == KeyStatus::Active as i32 {
                        tracing::info!(
                            kid = %request.kid,
                            retired = ?answer.retired.as_ref().and_then(|r| r.key.as_ref()).map(|k| &k.kid),
                            "issuer key registered with identity"
                        );
                        registration.set(KeyState::Registered);
                    } else {
                        let state = KeyStatus::try_from(status)
                            .map(|s| s.as_str_name())
                            .unwrap_or("UNKNOWN");
                        tracing::error!(
                            kid = %request.kid,
                            state,
                            "identity holds this signing key as no longer active; start the service with the current key file"
                        );
                        registration.set(KeyState::Refused(format!(
                            "identity holds the key as {state}"
                        )));
                    }
                    return;
                }
                Err(status) => {
                    let wait = backoff(attempt);
                    let why = format!(
                        "identity answered {:?}: {}",
                        status.code(),
                        status.message()
                    );
                    if attempt < 3 {
                        tracing::info!(kid = %request.kid, error = %why, retry_in = ?wait, "issuer key registration pending");
                    } else {
                        tracing::warn!(kid = %request.kid, error = %why, retry_in = ?wait, "issuer key registration failing");
                    }
                    registration.set(KeyState::Pending(why));
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_200_ms_up_to_30_s() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(7), Duration::from_millis(25_600));
        assert_eq!(backoff(8), Duration::from_secs(30));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn registration_retries_until_identity_answers_and_refuses_a_retired_key() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let key = IssuerKey::generate("SH-license-t").unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let registrar = move |req: RegisterIssuerKeyRequest| -> BoxFuture<
            'static,
            Result<RegisterIssuerKeyResponse, tonic::Status>,
        > {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < 2 {
                    return Err(tonic::Status::unavailable("identity is starting"));
                }
                Ok(RegisterIssuerKeyResponse {
                    key: Some(credmesh_proto::identity::v1::IssuerKey {
                        key: Some(credmesh_proto::credential::v1::TrustedKey {
                            kid: req.kid,
                            status: if n == 2 {
                                KeyStatus::Active as i32
                            } else {
                                KeyStatus::Retired as i32
                            },
                            ..Default::default()
                        }),
                        registered_at: 0,
                    }),
                    retired: None,
                })
            })
        };
        let registrar: Arc<dyn KeyRegistrar> = Arc::new(registrar);
        let reg = KeyRegistration::new(key.kid());
        assert!(reg.check().is_err());
        let license = [CredentialKind::BusinessLicense];
        spawn_registration(
            registrar.clone(),
            &key,
            "SH/license".into(),
            &license,
            reg.clone(),
        );
        assert!(reg.wait(Duration::from_secs(5)).await);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(KeyReady(reg.clone()).check().await.is_ok());

        let again = KeyRegistration::new(key.kid());
        spawn_registration(
            registrar,
            &key,
            "SH/license".into(),
            &license,
            again.clone(),
        );
        assert!(!again.wait(Duration::from_secs(5)).await);
        assert!(matches!(again.state(), KeyState::Refused(_)));
    }
}
