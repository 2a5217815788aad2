//! `spawn_app`: the license service and the identity service it registers its key with,
//! served together from one real server on an ephemeral loopback port, on fresh
//! databases.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::{
    Policy, Presented, StatusCache, TrustSnapshot, Verification,
    envelope::{self, Context},
    keys::IssuerKey,
    verify,
};
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    credential::v1::{Envelope, StatusPurpose, TrustList},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as pb, license_service_client::LicenseServiceClient},
};
use credmesh_runtime::{Clock, ManualClock, Server, ServerConfig};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
use tonic::{Request, transport::Channel};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Seconds since the epoch at which every test clock starts: 2026-09-21 (CST).
pub const T0: i64 = 1_790_000_000;

/// The Jing'an district bureau of the built-in table.
pub const JINGAN: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;
/// The Pudong bureau.
pub const PUDONG: &str = credmesh_license::domain::authority::SHANGHAI_PUDONG;
/// The municipal bureau.
pub const MUNICIPAL: &str = credmesh_license::domain::authority::SHANGHAI_MUNICIPAL;

/// Files and databases that outlive one server, so a test can restart it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub identity_db: String,
    pub license_db: String,
    pub clock: Arc<ManualClock>,
    _sqlite: Vec<credmesh_testkit::sqlite::SqliteDb>,
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

/// Stops the server when dropped.
struct StopGuard(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

fn write_key(dir: &std::path::Path, name: &str) -> (IssuerKey, PathBuf) {
    let path = dir.join(name);
    if path.exists() {
        let pem = std::fs::read_to_string(&path).unwrap();
        return (IssuerKey::from_pkcs8_pem("t", &pem).unwrap(), path);
    }
    let key = IssuerKey::generate("t").unwrap();
    std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
    (key, path)
}

async fn database(
    backend: Backend,
    sqlite: &mut Vec<credmesh_testkit::sqlite::SqliteDb>,
) -> String {
    match backend {
        Backend::Sqlite => {
            let db = credmesh_testkit::sqlite::SqliteDb::new().unwrap();
            let url = db.url();
            sqlite.push(db);
            url
        }
        Backend::Postgres => credmesh_testkit::postgres::fresh_database().await.unwrap(),
    }
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
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(backend, &mut sqlite).await;
    let license_db = database(backend, &mut sqlite).await;
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        identity_db,
        license_db,
        clock: ManualClock::new(T0),
        _sqlite: sqlite,
    };
    start(env, options).await
}

/// A server whose license database is at `license_db` (identity on SQLite), for tests
/// that run the database themselves.
pub async fn spawn_on(license_db: String) -> TestApp {
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(Backend::Sqlite, &mut sqlite).await;
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        identity_db,
        license_db,
        clock: ManualClock::new(T0),
        _sqlite: sqlite,
    };
    start(env, Options::default()).await
}

async fn start(env: Env, options: Options) -> TestApp {
    use base64::Engine as _;
    let dir = env.dir.path();
    let (_, anchor) = write_key(dir, "anchor.pem");
    let (_, token) = write_key(dir, "token.pem");
    let (operator, _) = write_key(dir, "operator.pem");
    let (_, signing) = write_key(dir, "license-signing.pem");
    let (client_key, client_key_file) = write_key(dir, "license-client.pem");
    let server_config = ServerConfig {
        max_message_bytes: 256 * 1024,
        readiness_interval: Duration::from_millis(50),
        rate_limit: options.rate_limit.unwrap_or_default(),
        ..ServerConfig::default()
    };
    let clock: Arc<dyn Clock> = env.clock.clone();

    let identity_env: HashMap<String, String> = [
        ("DATABASE_URL", env.identity_db.clone()),
        ("CREDMESH_ANCHOR_KEY_FILE", anchor.display().to_string()),
        ("CREDMESH_TOKEN_KEY_FILE", token.display().to_string()),
        (
            "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let identity_config = credmesh_identity::IdentityConfig::from_env(&identity_env).unwrap();
    let db = Db::connect(&env.identity_db, &DbOptions::default())
        .await
        .unwrap();
    db.migrate(credmesh_identity::migrations()).await.unwrap();
    let identity = credmesh_identity::build(&identity_config, db, clock.clone(), &server_config)
        .await
        .unwrap();
    if !options.without_service_client {
        register_service_client(&identity.identity, &client_key).await;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let license_env: HashMap<String, String> = [
        ("DATABASE_URL", env.license_db.clone()),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_key_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", format!("http://{addr}")),
        ("CREDMESH_PUBLIC_URL", format!("http://{addr}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = credmesh_license::LicenseConfig::from_env(&license_env).unwrap();
    let ldb = Db::connect(&env.license_db, &DbOptions::default())
        .await
        .unwrap();
    ldb.migrate(credmesh_license::migrations()).await.unwrap();
    let channel = credmesh_runtime::client::service_channel(&config.identity_url).unwrap();
    let registrar = config.client().registrar(channel, clock.clone()).unwrap();
    let built = credmesh_license::build(&config, ldb, clock, &server_config, registrar)
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::new(server_config, Metrics::new(), identity.validator)
        .with_service(identity.parts)
        .with_service(built.parts);
    let server = tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    if !options.no_wait {
        assert!(
            built.registration.wait(Duration::from_secs(20)).await,
            "the license key was not registered: {:?}",
            built.registration.state()
        );
    }
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestApp {
        env,
        addr,
        license: LicenseServiceClient::new(channel.clone()),
        identity: IdentityServiceClient::new(channel),
        service: built.license,
        identity_service: identity.identity,
        operator,
        stop: StopGuard(Some(stop)),
        server,
    }
}

/// Registers client `license` (a service allowed to register its own keys).
pub async fn register_service_client(identity: &credmesh_identity::Identity, key: &IssuerKey) {
    let scopes = vec!["identity.keys".to_string()];
    let reg = Registration {
        client_id: "license",
        kind: PrincipalKind::Service.to_proto(),
        display_name: "license service",
        scopes: &scopes,
        public_key: &key.public_key_bytes(),
        ..Default::default()
    };
    let actor = credmesh_identity::store::Actor {
        client_id: "test",
        kind: "operator",
        trace_id: "",
    };
    match identity
        .register_client(&reg, actor, None, &|_| Vec::new())
        .await
    {
        Ok(_) | Err(credmesh_identity::error::IdentityError::ClientExists(_)) => {}
        Err(e) => panic!("registering the license client: {e}"),
    }
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
        let assertion =
            credmesh_auth::client_assertion(client_id, key.signing_key(), self.now()).unwrap();
        let resp = self
            .identity
            .clone()
            .issue_token(ipb::IssueTokenRequest {
                client_id: client_id.to_string(),
                scopes: vec![],
                audience: String::new(),
                credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
            })
            .await?;
        Ok(resp.into_inner().access_token)
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
        let key = IssuerKey::generate(id).unwrap();
        let req = with_token(
            ipb::RegisterClientRequest {
                client_id: id.to_string(),
                kind: kind.to_proto(),
                display_name: format!("test client {id}"),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                organization: org.to_string(),
                public_key: key.public_key_bytes().to_vec(),
                ..Default::default()
            },
            &self.operator_token().await,
        );
        self.identity.clone().register_client(req).await.unwrap();
        self.token_for(id, &key).await.unwrap()
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
        for other in [Presented::Qr(&c.qr_text), Presented::VcJwt(&c.vc_jwt)] {
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

pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// Asserts a status's code and stable reason.
#[track_caller]
pub fn assert_status(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: tonic::Code,
    reason: &str,
) -> tonic::Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        credmesh_proto::status::reason(&status).as_deref(),
        Some(reason),
        "{status:?}"
    );
    assert!(
        !status.message().is_empty(),
        "a readable message is expected"
    );
    status
}

/// A valid Shanghai enterprise code in `division`, varied by `n`.
pub fn sh_uscc(division: &str, n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', division, &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// A complete establishment of a Jing'an restaurant.
pub fn restaurant(uscc: &str) -> pb::EstablishEnterpriseRequest {
    pb::EstablishEnterpriseRequest {
        uscc: uscc.to_string(),
        name: "上海静安面馆有限公司".into(),
        entity_type: "有限责任公司（自然人投资或控股）".into(),
        legal_representative: "王小明".into(),
        legal_representative_id_number: String::new(),
        registered_capital: Some(pb::Money {
            amount: "500000.00".into(),
            currency_code: "CNY".into(),
        }),
        establishment_date: "2026-03-01".into(),
        business_term: Some(pb::BusinessTerm {
            start_date: String::new(),
            end_date: String::new(),
            long_term: true,
        }),
        domicile: "上海市静安区南京西路1000号".into(),
        business_scope: "餐饮服务；食品销售。".into(),
        registration_authority: JINGAN.into(),
        issue_date: String::new(),
        idempotency_key: String::new(),
    }
}
