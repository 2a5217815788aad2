//! `spawn_app`: the license service and the identity service it registers its key with,
//! served together from one real server on an ephemeral loopback port, on fresh
//! databases.

use std::{sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::{
    Policy, Presented, StatusCache, TrustSnapshot, Verification,
    envelope::{self, Context},
    keys::IssuerKey,
    verify,
};
pub use credmesh_harness::restaurant;
use credmesh_harness::{Files, StopGuard};
use credmesh_proto::{
    credential::v1::{Envelope, StatusPurpose, TrustList},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as pb, license_service_client::LicenseServiceClient},
};
use credmesh_runtime::{Clock, ManualClock, Server, ServerConfig};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
pub use credmesh_testkit::{BOTH, Backend, Databases, T0, assert_status, with_token};
use tonic::transport::Channel;

/// The Jing'an district bureau of the built-in table.
pub const JINGAN: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;
/// The Pudong bureau.
pub const PUDONG: &str = credmesh_license::domain::authority::SHANGHAI_PUDONG;
/// The municipal bureau.
pub const MUNICIPAL: &str = credmesh_license::domain::authority::SHANGHAI_MUNICIPAL;

/// Files and databases that outlive one server, so a test can restart it.
pub struct Env {
    pub dir: Files,
    pub identity_db: String,
    pub license_db: String,
    pub clock: Arc<ManualClock>,
    _databases: Databases,
}

pub struct TestApp {
    pub env: Env,
    pub addr: std::net::SocketAddr,
    pub license: LicenseServiceClient<Channel>,
    pub identity: IdentityServiceClient<Channel>,
    pub service: Arc<credmesh_license::License>,
    pub identity_service: Arc<credmesh_identity::Identity>,
    pub operator: IssuerKey,
    stop: StopGuard,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// How a server is started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Leave the license service's identity client unregistered.
    pub without_service_client: bool,
    /// Do not wait for the key registration.
    pub no_wait: bool,
    /// The per-client rate limit of both services (default: the server default).
    pub rate_limit: Option<credmesh_runtime::RateLimit>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, Options::default()).await
}

pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
    let mut databases = Databases::new();
    let identity_db = databases.fresh(backend).await;
    let license_db = databases.fresh(backend).await;
    start(new_env(identity_db, license_db, databases), options).await
}

/// A server whose license database is at `license_db` (identity on SQLite), for tests
/// that run the database themselves.
pub async fn spawn_on(license_db: String) -> TestApp {
    let mut databases = Databases::new();
    let identity_db = databases.fresh(Backend::Sqlite).await;
    start(
        new_env(identity_db, license_db, databases),
        Options::default(),
    )
    .await
}

fn new_env(identity_db: String, license_db: String, databases: Databases) -> Env {
    credmesh_telemetry::init_for_tests();
    Env {
        dir: Files::new(),
        identity_db,
        license_db,
        clock: ManualClock::new(T0),
        _databases: databases,
    }
}

async fn start(env: Env, options: Options) -> TestApp {
    let server = ServerConfig {
        max_message_bytes: 256 * 1024,
        readiness_interval: Duration::from_millis(50),
        rate_limit: options.rate_limit.unwrap_or_default(),
        ..ServerConfig::default()
    };
    let clock: Arc<dyn Clock> = env.clock.clone();
    let identity =
        credmesh_harness::identity(&env.dir, &env.identity_db, clock.clone(), &server, &[]).await;
    if !options.without_service_client {
        register_service_client(&identity.identity, &env.dir.key("license-client.pem").0).await;
    }
    let (listener, url) = credmesh_harness::loopback().await;
    let addr = listener.local_addr().unwrap();
    let built =
        credmesh_harness::license(&env.dir, &env.license_db, &url, clock, &server, &[]).await;
    let (stop, server) = credmesh_harness::serve(
        Server::new(server, Metrics::new(), identity.validator)
            .with_service(identity.parts)
            .with_service(built.parts),
        listener,
    );
    if !options.no_wait {
        credmesh_harness::wait_registered(&built.registration, "license").await;
    }
    let channel = credmesh_harness::connect(&url).await;
    TestApp {
        operator: env.dir.operator(),
        env,
        addr,
        license: LicenseServiceClient::new(channel.clone()),
        identity: IdentityServiceClient::new(channel),
        service: built.license,
        identity_service: identity.identity,
        stop,
        server,
    }
}

/// Registers client `license` (a service allowed to register its own keys).
pub async fn register_service_client(identity: &credmesh_identity::Identity, key: &IssuerKey) {
    credmesh_harness::register_service(identity, "license", key, &["identity.keys"]).await;
}

impl TestApp {
    pub fn now(&self) -> i64 {
        self.env.clock.now()
    }

    /// Stops the server and starts it again on the same databases and key files; with
    /// `new_signing_key`, the license signing key file is replaced first (a rotation).
    pub async fn restart(self, new_signing_key: bool) -> TestApp {
        self.restart_with(new_signing_key, Options::default()).await
    }

    /// [`TestApp::restart`] with start options.
    pub async fn restart_with(self, new_signing_key: bool, options: Options) -> TestApp {
        let TestApp {
            env,
            license,
            identity,
            stop,
            server,
            ..
        } = self;
        // Close our connections so graceful shutdown is not kept waiting.
        drop((license, identity, stop));
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        if new_signing_key {
            std::fs::remove_file(env.dir.path().join("license-signing.pem")).unwrap();
        }
        start(env, options).await
    }

    pub async fn token_for(
        &self,
        client_id: &str,
        key: &IssuerKey,
    ) -> Result<String, tonic::Status> {
        credmesh_harness::try_token(&self.identity, client_id, key, self.now()).await
    }

    pub async fn operator_token(&self) -> String {
        self.token_for("operator", &self.operator).await.unwrap()
    }

    /// Registers a client and returns a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        org: &str,
    ) -> String {
        let request = credmesh_harness::client_request(id, kind, scopes, org);
        credmesh_harness::new_client(&self.identity, &self.operator, self.now(), request)
            .await
            .1
    }

    /// A department of `authority` with issuing and reading rights.
    pub async fn department(&self, id: &str, authority: &str) -> String {
        self.client(
            id,
            PrincipalKind::Department,
            &["license.issue", "license.read"],
            authority,
        )
        .await
    }

    pub async fn establish(
        &self,
        token: &str,
        req: pb::EstablishEnterpriseRequest,
    ) -> Result<pb::EstablishEnterpriseResponse, tonic::Status> {
        self.license
            .clone()
            .establish_enterprise(with_token(req, token))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn amend(
        &self,
        token: &str,
        req: pb::AmendLicenseRequest,
    ) -> Result<pb::AmendLicenseResponse, tonic::Status> {
        self.license
            .clone()
            .amend_license(with_token(req, token))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get(&self, token: &str, uscc: &str) -> pb::GetLicenseResponse {
        self.license
            .clone()
            .get_license(with_token(
                pb::GetLicenseRequest {
                    uscc: uscc.to_string(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn version(&self, token: &str, uscc: &str, version: u32) -> pb::LicenseVersion {
        self.license
            .clone()
            .get_license_version(with_token(
                pb::GetLicenseVersionRequest {
                    uscc: uscc.to_string(),
                    version,
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .license
            .unwrap()
    }

    /// What a relying party holds: identity's trust list (checked against its anchor)
    /// and the license service's three status lists of list 0, each signed.
    pub async fn verifier(&self) -> (TrustSnapshot, StatusCache) {
        let r = self
            .identity
            .clone()
            .get_trust_list(ipb::GetTrustListRequest {})
            .await
            .unwrap()
            .into_inner();
        let anchor: [u8; 32] = r.anchor_public_key.as_slice().try_into().unwrap();
        let anchor = ed25519_dalek_key(&anchor);
        let list: TrustList =
            envelope::open(Context::TrustList, r.trust_list.as_ref().unwrap(), &anchor).unwrap();
        let trust = TrustSnapshot::from_trust_list(&list, self.now()).unwrap();
        let mut cache = StatusCache::new();
        for purpose in [
            StatusPurpose::Revocation,
            StatusPurpose::Suspension,
            StatusPurpose::Superseded,
        ] {
            let env = self.status_list("SH/license/0", purpose).await;
            cache.insert_signed(&env, &trust, 1 << 20).unwrap();
        }
        (trust, cache)
    }

    pub async fn status_list(&self, list_id: &str, purpose: StatusPurpose) -> Envelope {
        self.license
            .clone()
            .get_status_list(pb::GetStatusListRequest {
                list_id: list_id.to_string(),
                purpose: purpose as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status_list
            .unwrap()
    }

    /// Verifies every form of a version's credential and checks they agree.
    pub async fn verify_all_forms(&self, v: &pb::LicenseVersion) -> Verification {
        let (trust, cache) = self.verifier().await;
        let c = v.credential.as_ref().expect("a signed credential");
        let policy = Policy::default();
        let native = verify(
            Presented::Envelope(c.envelope.as_ref().unwrap()),
            &trust,
            &cache,
            &policy,
            self.now(),
        );
        // The link a phone reads off a printed or displayed license is the same credential.
        assert!(
            c.scan_url
                .ends_with(&credmesh_credential::scan_path(&c.qr_text)),
            "{}",
            c.scan_url
        );
        for other in [
            Presented::Qr(&c.qr_text),
            Presented::detect(&c.scan_url),
            Presented::VcJwt(&c.vc_jwt),
        ] {
            let v = verify(other, &trust, &cache, &policy, self.now());
            assert_eq!(
                v.outcome,
                native.outcome,
                "{:?}: {}",
                other.form(),
                v.detail
            );
            assert_eq!(v.credential, native.credential);
        }
        native
    }

    /// Opens the license database.
    pub async fn license_db(&self) -> Db {
        Db::connect(&self.env.license_db, &DbOptions::default())
            .await
            .unwrap()
    }

    /// A plain HTTP GET against the server; (status, content type, body).
    pub async fn http_get(&self, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let body = buf[split + 4..].to_vec();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        (code, content_type, dechunk(&head, body))
    }
}

/// Undoes chunked transfer encoding when the head says so.
fn dechunk(head: &str, body: Vec<u8>) -> Vec<u8> {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body;
    }
    let mut out = Vec::new();
    let mut rest = &body[..];
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
    out
}

fn ed25519_dalek_key(bytes: &[u8; 32]) -> credmesh_credential::VerifyingKey {
    credmesh_credential::VerifyingKey::from_bytes(bytes).unwrap()
}

/// A valid Shanghai enterprise code in `division`, varied by `n`.
pub fn sh_uscc(division: &str, n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', division, &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}
