//! `spawn_app`: identity, license and entcode served together from one real server on an
//! ephemeral loopback port, on fresh databases, with a manual clock. The identity and
//! license start-up follows the license service's own test helpers. [`spawn_with_sources`]
//! also serves the certificate and inspection services, wired to entcode as its permit
//! and credit grade sources, as their own test helpers start them.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    certificate::v1::certificate_service_client::CertificateServiceClient,
    entcode::v1::{self as epb, enterprise_code_service_client::EnterpriseCodeServiceClient},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as pb, license_service_client::LicenseServiceClient},
};
use credmesh_runtime::{Clock, ManualClock, Server, ServerConfig};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
use tonic::{Request, transport::Channel};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// SQLite and the in-process cache.
    Sqlite,
    /// PostgreSQL and Redis.
    Postgres,
}

pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Seconds since the epoch at which every test clock starts.
pub const T0: i64 = 1_790_000_000;

pub const JINGAN: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The certificate service, when spawned with sources.
    pub certificate: Option<CertificateServiceClient<Channel>>,
    pub clock: Arc<ManualClock>,
    pub license: LicenseServiceClient<Channel>,
    pub identity: IdentityServiceClient<Channel>,
    pub entcode: EnterpriseCodeServiceClient<Channel>,
    pub operator: IssuerKey,
    /// The key of entcode's identity client (may register entcode issuer keys).
    pub entcode_client: IssuerKey,
    /// entcode's cache: its URL and key prefix.
    pub cache: (String, String),
    /// entcode's database URL and the service itself, for a second replica on the same
    /// data.
    pub entcode_db: String,
    pub entcode_service: Arc<credmesh_entcode::Entcode>,
    _dir: tempfile::TempDir,
    _sqlite: Vec<credmesh_testkit::sqlite::SqliteDb>,
    _stop: StopGuard,
}

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

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

async fn register_service(
    identity: &credmesh_identity::Identity,
    id: &str,
    key: &IssuerKey,
    scopes: &[&str],
) {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let reg = Registration {
        client_id: id,
        kind: PrincipalKind::Service.to_proto(),
        display_name: id,
        scopes: &scopes,
        public_key: &key.public_key_bytes(),
        ..Default::default()
    };
    let actor = credmesh_identity::store::Actor {
        client_id: "test",
        kind: "operator",
        trace_id: "",
    };
    identity
        .register_client(&reg, actor, None, &|_| Vec::new())
        .await
        .unwrap();
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with_cache(backend, None).await
}

/// Like [`spawn_app`], with entcode's cache at `cache_url` when given.
pub async fn spawn_with_cache(backend: Backend, cache_url: Option<String>) -> TestApp {
    spawn(backend, cache_url, Sources::None).await
}

/// Which optional services entcode is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Neither the certificate nor the inspection service is configured.
    None,
    /// Both are served, and entcode asks them.
    Live,
    /// Both are configured at an address where nothing answers.
    Down,
}

/// Like [`spawn_app`], with the certificate and inspection services too (inspection's
/// default credit grade is A), and entcode asking them for permits and credit grades.
pub async fn spawn_with_sources(backend: Backend, sources: Sources) -> TestApp {
    spawn(backend, None, sources).await
}

async fn spawn(backend: Backend, cache_url: Option<String>, sources: Sources) -> TestApp {
    use base64::Engine as _;
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(backend, &mut sqlite).await;
    let license_db = database(backend, &mut sqlite).await;
    let entcode_db = database(backend, &mut sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, anchor) = write_key(d, "anchor.pem");
    let (_, token) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, license_signing) = write_key(d, "license-signing.pem");
    let (license_client, license_client_file) = write_key(d, "license-client.pem");
    let (_, entcode_signing) = write_key(d, "entcode-signing.pem");
    let (entcode_client, entcode_client_file) = write_key(d, "entcode-client.pem");
    let clock = ManualClock::new(T0);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let server_config = ServerConfig {
        max_message_bytes: 256 * 1024,
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };

    let identity_config = credmesh_identity::IdentityConfig::from_env(&env(&[
        ("DATABASE_URL", identity_db.clone()),
        ("CREDMESH_ANCHOR_KEY_FILE", anchor.display().to_string()),
        ("CREDMESH_TOKEN_KEY_FILE", token.display().to_string()),
        (
            "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes()),
        ),
    ]))
    .unwrap();
    let db = Db::connect(&identity_db, &DbOptions::default())
        .await
        .unwrap();
    db.migrate(credmesh_identity::migrations()).await.unwrap();
    let identity =
        credmesh_identity::build(&identity_config, db, dyn_clock.clone(), &server_config)
            .await
            .unwrap();
    register_service(
        &identity.identity,
        "license",
        &license_client,
        &["identity.keys"],
    )
    .await;
    let mut entcode_scopes = vec!["identity.keys", "license.read"];
    if sources != Sources::None {
        entcode_scopes.extend(["certificate.read", "inspection.credit"]);
    }
    register_service(
        &identity.identity,
        "entcode",
        &entcode_client,
        &entcode_scopes,
    )
    .await;
    let (certificate_client, certificate_client_file) = write_key(d, "certificate-client.pem");
    let (_, certificate_signing) = write_key(d, "certificate-signing.pem");
    let (inspection_client, inspection_client_file) = write_key(d, "inspection-client.pem");
    let (_, inspection_signing) = write_key(d, "inspection-signing.pem");
    if sources == Sources::Live {
        register_service(
            &identity.identity,
            "certificate",
            &certificate_client,
            &["identity.keys", "license.read"],
        )
        .await;
        register_service(
            &identity.identity,
            "inspection",
            &inspection_client,
            &["identity.keys", "license.read", "identity.clients.read"],
        )
        .await;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let license_config = credmesh_license::LicenseConfig::from_env(&env(&[
        ("DATABASE_URL", license_db.clone()),
        (
            "CREDMESH_SIGNING_KEY_FILE",
            license_signing.display().to_string(),
        ),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            license_client_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", format!("http://{addr}")),
        ("CREDMESH_PUBLIC_URL", format!("http://{addr}")),
    ]))
    .unwrap();
    let ldb = Db::connect(&license_db, &DbOptions::default())
        .await
        .unwrap();
    ldb.migrate(credmesh_license::migrations()).await.unwrap();
    let channel = credmesh_runtime::client::service_channel(&license_config.identity_url).unwrap();
    let registrar = license_config
        .client()
        .registrar(channel, dyn_clock.clone())
        .unwrap();
    let license = credmesh_license::build(
        &license_config,
        ldb,
        dyn_clock.clone(),
        &server_config,
        registrar,
    )
    .await
    .unwrap();

    let cache_url = cache_url.unwrap_or_else(|| match backend {
        Backend::Sqlite => "memory://".into(),
        Backend::Postgres => credmesh_testkit::redis::shared_url(),
    });
    let prefix = credmesh_testkit::redis::unique_prefix();
    let cache = (cache_url.clone(), prefix.clone());
    let mut entcode_env = env(&[
        ("DATABASE_URL", entcode_db.clone()),
        (
            "CREDMESH_SIGNING_KEY_FILE",
            entcode_signing.display().to_string(),
        ),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            entcode_client_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", format!("http://{addr}")),
        ("CREDMESH_LICENSE_URL", format!("http://{addr}")),
        ("REDIS_URL", cache_url),
        ("CREDMESH_CACHE_PREFIX", prefix),
    ]);
    let source_url = match sources {
        Sources::None => None,
        Sources::Live => Some(format!("http://{addr}")),
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        Sources::Down => Some("http://127.0.0.1:9".to_string()),
    };
    if let Some(url) = source_url {
        entcode_env.insert("CREDMESH_CERTIFICATE_URL".into(), url.clone());
        entcode_env.insert("CREDMESH_INSPECTION_URL".into(), url);
    }
    let entcode_config = credmesh_entcode::EntcodeConfig::from_env(&entcode_env).unwrap();
    let identity_channel =
        credmesh_runtime::client::service_channel(&entcode_config.identity_url).unwrap();
    let license_channel =
        credmesh_runtime::client::service_channel(&entcode_config.license_url).unwrap();
    let edb = Db::connect(&entcode_db, &DbOptions::default())
        .await
        .unwrap();
    edb.migrate(credmesh_entcode::migrations()).await.unwrap();
    let entcode = credmesh_entcode::build(
        &entcode_config,
        edb.clone(),
        dyn_clock.clone(),
        &server_config,
        entcode_config
            .client()
            .registrar(identity_channel.clone(), dyn_clock.clone())
            .unwrap(),
        credmesh_entcode::grpc_license(
            &entcode_config,
            identity_channel,
            license_channel,
            dyn_clock.clone(),
        )
        .unwrap(),
    )
    .await
    .unwrap();

    let mut registrations = vec![license.registration.clone()];
    let mut server = Server::new(server_config.clone(), Metrics::new(), identity.validator)
        .with_service(identity.parts)
        .with_service(license.parts)
        .with_service(entcode.parts);
    if sources == Sources::Live {
        let url = format!("http://{addr}");
        let cert_db = database(backend, &mut sqlite).await;
        let cert_config = credmesh_certificate::CertificateConfig::from_env(&env(&[
            ("DATABASE_URL", cert_db.clone()),
            (
                "CREDMESH_SIGNING_KEY_FILE",
                certificate_signing.display().to_string(),
            ),
            (
                "CREDMESH_CLIENT_KEY_FILE",
                certificate_client_file.display().to_string(),
            ),
            ("CREDMESH_IDENTITY_URL", url.clone()),
            ("CREDMESH_LICENSE_URL", url.clone()),
            ("CREDMESH_PUBLIC_URL", url.clone()),
        ]))
        .unwrap();
        let cdb = Db::connect(&cert_db, &DbOptions::default()).await.unwrap();
        cdb.migrate(credmesh_certificate::migrations())
            .await
            .unwrap();
        let ich = credmesh_runtime::client::service_channel(&url).unwrap();
        let certificate = credmesh_certificate::build(
            &cert_config,
            cdb,
            dyn_clock.clone(),
            &server_config,
            cert_config
                .client()
                .registrar(ich.clone(), dyn_clock.clone())
                .unwrap(),
            credmesh_certificate::grpc_license_check(
                &cert_config,
                ich.clone(),
                credmesh_runtime::client::service_channel(&url).unwrap(),
                dyn_clock.clone(),
            )
            .unwrap(),
            Arc::new(cert_config.credit_grades.clone()),
        )
        .await
        .unwrap();
        registrations.push(certificate.registration.clone());
        server = server.with_service(certificate.parts);

        let inspection_db = database(backend, &mut sqlite).await;
        let inspection_config = credmesh_inspection::InspectionConfig::from_env(&env(&[
            ("DATABASE_URL", inspection_db.clone()),
            (
                "CREDMESH_SIGNING_KEY_FILE",
                inspection_signing.display().to_string(),
            ),
            (
                "CREDMESH_CLIENT_KEY_FILE",
                inspection_client_file.display().to_string(),
            ),
            ("CREDMESH_IDENTITY_URL", url.clone()),
            ("CREDMESH_LICENSE_URL", url.clone()),
            ("CREDMESH_PUBLIC_URL", url.clone()),
            ("CREDMESH_INSPECTION_DEFAULT_GRADE", "A".into()),
        ]))
        .unwrap();
        let idb = Db::connect(&inspection_db, &DbOptions::default())
            .await
            .unwrap();
        idb.migrate(credmesh_inspection::migrations())
            .await
            .unwrap();
        let ich = credmesh_runtime::client::service_channel(&url).unwrap();
        let inspection = credmesh_inspection::build(
            &inspection_config,
            idb,
            dyn_clock.clone(),
            &server_config,
            inspection_config
                .client()
                .registrar(ich.clone(), dyn_clock.clone())
                .unwrap(),
            credmesh_inspection::grpc_license(
                &inspection_config,
                ich.clone(),
                ich,
                dyn_clock.clone(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        server = server.with_service(inspection.parts);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    for registration in &registrations {
        assert!(
            registration.wait(Duration::from_secs(20)).await,
            "a key was not registered: {:?}",
            registration.state()
        );
    }
    assert!(
        entcode.registration.wait(Duration::from_secs(20)).await,
        "entcode key not registered: {:?}",
        entcode.registration.state()
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestApp {
        addr,
        certificate: (sources == Sources::Live)
            .then(|| CertificateServiceClient::new(channel.clone())),
        clock,
        license: LicenseServiceClient::new(channel.clone()),
        identity: IdentityServiceClient::new(channel.clone()),
        entcode: EnterpriseCodeServiceClient::new(channel),
        operator,
        entcode_client,
        cache,
        entcode_db,
        entcode_service: entcode.entcode.clone(),
        _dir: dir,
        _sqlite: sqlite,
        _stop: StopGuard(Some(stop)),
    }
}

pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

impl TestApp {
    pub async fn token_for(&self, client_id: &str, key: &IssuerKey) -> String {
        let assertion =
            credmesh_auth::client_assertion(client_id, key.signing_key(), self.clock.now())
                .unwrap();
        self.identity
            .clone()
            .issue_token(ipb::IssueTokenRequest {
                client_id: client_id.to_string(),
                scopes: vec![],
                audience: String::new(),
                credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
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
        let operator = self.token_for("operator", &self.operator).await;
        self.identity
            .clone()
            .register_client(with_token(
                ipb::RegisterClientRequest {
                    client_id: id.to_string(),
                    kind: kind.to_proto(),
                    display_name: format!("test client {id}"),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    organization: org.to_string(),
                    public_key: key.public_key_bytes().to_vec(),
                    ..Default::default()
                },
                &operator,
            ))
            .await
            .unwrap();
        self.token_for(id, &key).await
    }

    /// The Jing'an bureau's department token.
    pub async fn department(&self) -> String {
        self.client(
            "sh-jingan",
            PrincipalKind::Department,
            &["license.issue", "license.read"],
            JINGAN,
        )
        .await
    }

    /// A token of the enterprise `uscc`.
    pub async fn enterprise(&self, uscc: &str) -> String {
        self.client(
            &format!("ent-{}", uscc.to_ascii_lowercase()),
            PrincipalKind::Enterprise,
            &["entcode.present", "verify"],
            uscc,
        )
        .await
    }

    /// A relying party (a partner bank) allowed to verify.
    pub async fn bank(&self) -> String {
        self.client("js-bank", PrincipalKind::Partner, &["verify"], "")
            .await
    }

    pub async fn establish(&self, dept: &str, uscc: &str) {
        self.license
            .clone()
            .establish_enterprise(with_token(restaurant(uscc), dept))
            .await
            .unwrap();
    }

    pub async fn code(
        &self,
        token: &str,
        uscc: &str,
    ) -> Result<epb::GetEnterpriseCodeResponse, tonic::Status> {
        self.entcode
            .clone()
            .get_enterprise_code(with_token(
                epb::GetEnterpriseCodeRequest {
                    uscc: uscc.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn present(
        &self,
        token: &str,
        uscc: &str,
        scenario: &str,
    ) -> Result<epb::CreatePresentationResponse, tonic::Status> {
        self.entcode
            .clone()
            .create_presentation(with_token(
                epb::CreatePresentationRequest {
                    uscc: uscc.to_string(),
                    scenario: scenario.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn verify(
        &self,
        token: &str,
        qr: &str,
    ) -> Result<epb::VerifyPresentationResponse, tonic::Status> {
        self.entcode
            .clone()
            .verify_presentation(with_token(
                epb::VerifyPresentationRequest {
                    qr_text: qr.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn revoke(&self, dept: &str, uscc: &str) {
        self.license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: uscc.to_string(),
                    reason: "沪市监静处〔2026〕123号行政处罚决定".into(),
                    ..Default::default()
                },
                dept,
            ))
            .await
            .unwrap();
    }

    /// GET `path` on the HTTP side of the server: status and body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// A valid Shanghai enterprise code in Jing'an, varied by `n`.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
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
