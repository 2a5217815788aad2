//! `spawn_app`: identity, license and inspection served together from one real server
//! on an ephemeral loopback port, on fresh databases, with one manual clock. The
//! inspection service reaches license and identity over that loopback address, as in
//! production.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    inspection::v1::{self as pb, inspection_service_client::InspectionServiceClient},
    license::v1::{self as lpb, license_service_client::LicenseServiceClient},
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

/// 2026-09-21 (CST), as in the license tests.
pub const T0: i64 = 1_790_000_000;
pub const DAY: i64 = 86_400;

/// Jing'an market regulation bureau (registers the test enterprises, plans).
pub const MARKET: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;
/// A second department: the health commission.
pub fn health() -> String {
    credmesh_uscc::Uscc::from_parts('1', '1', "310000", "00242081")
        .unwrap()
        .to_string()
}

pub struct TestApp {
    #[allow(dead_code)]
    pub addr: std::net::SocketAddr,
    pub clock: Arc<ManualClock>,
    pub inspection: InspectionServiceClient<Channel>,
    pub license: LicenseServiceClient<Channel>,
    pub identity: IdentityServiceClient<Channel>,
    #[allow(dead_code)]
    pub inspection_db: String,
    operator: IssuerKey,
    keys: std::sync::Mutex<HashMap<String, String>>,
    _dir: tempfile::TempDir,
    _sqlite: Vec<credmesh_testkit::sqlite::SqliteDb>,
    _stop: tokio::sync::oneshot::Sender<()>,
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

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, &[]).await
}

/// Starts the three services; `extra` adds inspection settings.
pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    use base64::Engine as _;
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(backend, &mut sqlite).await;
    let license_db = database(backend, &mut sqlite).await;
    let inspection_db = database(backend, &mut sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clock = ManualClock::new(T0);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (_, anchor) = write_key(d, "anchor.pem");
    let (_, token) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, license_signing) = write_key(d, "license-signing.pem");
    let (license_client, license_client_file) = write_key(d, "license-client.pem");
    let (_, signing) = write_key(d, "inspection-signing.pem");
    let (client, client_file) = write_key(d, "inspection-client.pem");
    let server_config = ServerConfig {
        max_message_bytes: 1024 * 1024,
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
    register_service(
        &identity.identity,
        "inspection",
        &client,
        &["identity.keys", "license.read", "identity.clients.read"],
    )
    .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");

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
        ("CREDMESH_IDENTITY_URL", url.clone()),
        ("CREDMESH_PUBLIC_URL", url.clone()),
    ]))
    .unwrap();
    let ldb = Db::connect(&license_db, &DbOptions::default())
        .await
        .unwrap();
    ldb.migrate(credmesh_license::migrations()).await.unwrap();
    let channel = credmesh_runtime::client::service_channel(&url).unwrap();
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

    let mut ienv = env(&[
        ("DATABASE_URL", inspection_db.clone()),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", url.clone()),
        ("CREDMESH_LICENSE_URL", url.clone()),
        ("CREDMESH_PUBLIC_URL", url.clone()),
    ]);
    for (k, v) in extra {
        ienv.insert(k.to_string(), v.to_string());
    }
    let config = credmesh_inspection::InspectionConfig::from_env(&ienv).unwrap();
    let idb = Db::connect(&inspection_db, &DbOptions::default())
        .await
        .unwrap();
    idb.migrate(credmesh_inspection::migrations())
        .await
        .unwrap();
    let ich = credmesh_runtime::client::service_channel(&url).unwrap();
    let registrar = config
        .client()
        .registrar(ich.clone(), dyn_clock.clone())
        .unwrap();
    let licenses =
        credmesh_inspection::grpc_license(&config, ich.clone(), ich, dyn_clock.clone()).unwrap();
    let built =
        credmesh_inspection::build(&config, idb, dyn_clock, &server_config, registrar, licenses)
            .await
            .unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::new(server_config, Metrics::new(), identity.validator)
        .with_service(identity.parts)
        .with_service(license.parts)
        .with_service(built.parts);
    tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    assert!(license.registration.wait(Duration::from_secs(20)).await);
    assert!(
        built.registration.wait(Duration::from_secs(20)).await,
        "the inspection key was not registered: {:?}",
        built.registration.state()
    );
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let app = TestApp {
        addr,
        clock,
        inspection: InspectionServiceClient::new(channel.clone()),
        license: LicenseServiceClient::new(channel.clone()),
        identity: IdentityServiceClient::new(channel),
        inspection_db,
        operator,
        keys: std::sync::Mutex::new(HashMap::new()),
        _dir: dir,
        _sqlite: sqlite,
        _stop: stop,
    };
    // The inspectors the tests name on plans: registered, as a plan requires.
    // A department sends only its own inspectors: the health commission has its own.
    for (id, cert) in [("insp-i1", "c1"), ("insp-i2", "c2"), ("insp", "cert")] {
        app.inspector(id, MARKET, cert).await;
    }
    app.inspector("insp-h1", &health(), "h1").await;
    app
}

pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

impl TestApp {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    async fn token_for(&self, client_id: &str, key: &IssuerKey) -> String {
        let assertion =
            credmesh_auth::client_assertion(client_id, key.signing_key(), self.now()).unwrap();
        self.identity
            .clone()
            .issue_token(ipb::IssueTokenRequest {
                client_id: client_id.to_string(),
                credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    pub async fn operator_token(&self) -> String {
        self.token_for("operator", &self.operator).await
    }

    /// Registers a client and returns a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        org: &str,
        cert: &str,
    ) -> String {
        let key = IssuerKey::generate(id).unwrap();
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
                    enforcement_certificate: cert.to_string(),
                    ..Default::default()
                },
                &self.operator_token().await,
            ))
            .await
            .unwrap();
        let token = self.token_for(id, &key).await;
        self.keys
            .lock()
            .unwrap()
            .insert(id.to_string(), key.to_pkcs8_pem().to_string());
        token
    }

    /// A fresh token for a registered client (after the clock moved).
    pub async fn token(&self, id: &str) -> String {
        let pem = self
            .keys
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .expect("a registered client");
        let key = IssuerKey::from_pkcs8_pem(id, &pem).unwrap();
        self.token_for(id, &key).await
    }

    pub async fn department(&self, id: &str, org: &str) -> String {
        self.client(
            id,
            PrincipalKind::Department,
            &[
                "license.issue",
                "license.read",
                "inspection.plan",
                "inspection.read",
                "inspection.policy",
                "inspection.credit",
            ],
            org,
            "",
        )
        .await
    }

    pub async fn inspector(&self, id: &str, org: &str, cert: &str) -> String {
        self.client(
            id,
            PrincipalKind::Inspector,
            &["inspection.read", "inspection.record"],
            org,
            cert,
        )
        .await
    }

    pub async fn enterprise(&self, uscc: &str) -> String {
        self.client(
            &format!("ent-{}", uscc.to_ascii_lowercase()),
            PrincipalKind::Enterprise,
            &["inspection.read", "inspection.respond"],
            uscc,
            "",
        )
        .await
    }

    /// Establishes a restaurant registered by the Jing'an bureau.
    pub async fn establish(&self, token: &str, uscc: &str) {
        self.license
            .clone()
            .establish_enterprise(with_token(
                lpb::EstablishEnterpriseRequest {
                    uscc: uscc.to_string(),
                    name: "上海静安面馆有限公司".into(),
                    entity_type: "有限责任公司（自然人投资或控股）".into(),
                    legal_representative: "王小明".into(),
                    registered_capital: Some(lpb::Money {
                        amount: "500000.00".into(),
                        currency_code: "CNY".into(),
                    }),
                    establishment_date: "2026-03-01".into(),
                    business_term: Some(lpb::BusinessTerm {
                        long_term: true,
                        ..Default::default()
                    }),
                    domicile: "上海市静安区南京西路1000号".into(),
                    business_scope: "餐饮服务；食品销售。".into(),
                    registration_authority: MARKET.into(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap();
    }

    pub async fn plan(
        &self,
        token: &str,
        req: pb::PlanInspectionRequest,
    ) -> Result<pb::plan_inspection_response::Decision, tonic::Status> {
        Ok(self
            .inspection
            .clone()
            .plan_inspection(with_token(req, token))
            .await?
            .into_inner()
            .decision
            .expect("a decision"))
    }

    pub async fn import(&self, token: &str, entries: Vec<pb::PolicyEntry>) {
        self.inspection
            .clone()
            .import_policy_data(with_token(
                pb::ImportPolicyDataRequest {
                    entries,
                    idempotency_key: String::new(),
                },
                token,
            ))
            .await
            .unwrap();
    }
}

/// A valid Shanghai enterprise code in Jing'an, varied by `n`.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// A routine food-safety plan of `uscc` starting `days` from now, by `inspector`.
pub fn routine(uscc: &str, start: i64, inspector: &str, cert: &str) -> pb::PlanInspectionRequest {
    pb::PlanInspectionRequest {
        enterprise_uscc: uscc.to_string(),
        items: vec!["food-safety".into()],
        r#type: pb::InspectionType::Routine as i32,
        plan_number: "沪静市监检〔2026〕12号".into(),
        inspectors: vec![pb::Inspector {
            client_id: inspector.to_string(),
            enforcement_certificate: cert.to_string(),
            department: String::new(),
        }],
        window_start: start,
        window_end: start + 10 * DAY,
        ..Default::default()
    }
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
    assert!(!status.message().is_empty());
    status
}
