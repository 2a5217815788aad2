//! Real deployments on loopback: a *region* is identity + license served together (as
//! `credmesh dev` does) on fresh databases; a *gateway* is the verify service in its own
//! server, pointed at its region's identity and at pinned partner regions.

#![allow(dead_code)]

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use base64::Engine as _;
use credmesh_auth::{GrpcJwksSource, PrincipalKind, TokenValidator, ValidatorConfig};
use credmesh_credential::{keys::IssuerKey, sign_credential, to_qr};
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind, Envelope, VerificationOutcome},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as lpb, license_service_client::LicenseServiceClient},
    verify::v1::{
        PresentedCredential, VerificationResult, VerifyRequest, presented_credential::Form,
        verify_service_client::VerifyServiceClient,
    },
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

/// 2026-09-21: every test clock starts here.
pub const T0: i64 = 1_790_000_000;

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

pub async fn database(
    backend: Backend,
    keep: &mut Vec<credmesh_testkit::sqlite::SqliteDb>,
) -> String {
    match backend {
        Backend::Sqlite => {
            let db = credmesh_testkit::sqlite::SqliteDb::new().unwrap();
            let url = db.url();
            keep.push(db);
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

/// A valid USCC in `division` (GB/T 2260).
pub fn uscc(department: char, category: char, division: &str, n: u32) -> String {
    credmesh_uscc::Uscc::from_parts(department, category, division, &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// One region's identity and license services on one server.
pub struct Region {
    pub code: &'static str,
    pub addr: std::net::SocketAddr,
    pub clock: Arc<ManualClock>,
    pub identity: IdentityServiceClient<Channel>,
    pub license: LicenseServiceClient<Channel>,
    pub operator: IssuerKey,
    pub anchor_public: [u8; 32],
    /// The registration authority licenses are issued by.
    pub authority: String,
    pub division: &'static str,
    env: Option<RegionEnv>,
    stop: StopGuard,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// What outlives one run of a region: key files and databases.
pub struct RegionEnv {
    code: &'static str,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    identity_db: String,
    license_db: String,
    /// The public base URL published in the trust list, when not the server's own
    /// (a TLS front on another port).
    public_url: Option<String>,
    _sqlite: Vec<credmesh_testkit::sqlite::SqliteDb>,
}

pub async fn spawn_region(code: &'static str, backend: Backend, clock: Arc<ManualClock>) -> Region {
    spawn_region_at(code, backend, clock, None).await
}

/// A region publishing `public_url` as its public HTTP base (where partners fetch its
/// status lists) instead of its own address.
pub async fn spawn_region_at(
    code: &'static str,
    backend: Backend,
    clock: Arc<ManualClock>,
    public_url: Option<String>,
) -> Region {
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(backend, &mut sqlite).await;
    let license_db = database(backend, &mut sqlite).await;
    let env = RegionEnv {
        code,
        clock,
        dir: tempfile::tempdir().unwrap(),
        identity_db,
        license_db,
        public_url,
        _sqlite: sqlite,
    };
    start_region(env, None).await
}

async fn start_region(region_env: RegionEnv, addr: Option<std::net::SocketAddr>) -> Region {
    let RegionEnv {
        code,
        ref clock,
        ref dir,
        ref identity_db,
        ref license_db,
        ref public_url,
        ..
    } = region_env;
    let clock = clock.clone();
    let (identity_db, license_db) = (identity_db.clone(), license_db.clone());
    let (anchor_key, anchor) = write_key(dir.path(), "anchor.pem");
    let (_, token) = write_key(dir.path(), "token.pem");
    let (operator, _) = write_key(dir.path(), "operator.pem");
    let (_, signing) = write_key(dir.path(), "license-signing.pem");
    let (client_key, client_key_file) = write_key(dir.path(), "license-client.pem");
    let server_config = ServerConfig {
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let listener = bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap())).await;
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let public_url = public_url.clone().unwrap_or_else(|| url.clone());

    let identity_config = credmesh_identity::IdentityConfig::from_env(&env(&[
        ("CREDMESH_REGION", code.to_string()),
        ("DATABASE_URL", identity_db.clone()),
        ("CREDMESH_ANCHOR_KEY_FILE", anchor.display().to_string()),
        ("CREDMESH_TOKEN_KEY_FILE", token.display().to_string()),
        ("CREDMESH_PUBLIC_URL", public_url.clone()),
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
    register_service_client(&identity.identity, &client_key).await;

    let (division, authority) = match code {
        "SH" => (
            "310106",
            credmesh_license::domain::authority::SHANGHAI_JINGAN.to_string(),
        ),
        _ => ("320506", uscc('1', '1', "320506", 7)),
    };
    let mut license_env = vec![
        ("CREDMESH_REGION", code.to_string()),
        ("DATABASE_URL", license_db.clone()),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_key_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", url.clone()),
        ("CREDMESH_PUBLIC_URL", public_url.clone()),
    ];
    if code != "SH" {
        let table = dir.path().join("authorities.toml");
        std::fs::write(
            &table,
            format!(
                "[[authority]]\nuscc = \"{authority}\"\nname = \"苏州市吴中区市场监督管理局\"\n"
            ),
        )
        .unwrap();
        license_env.push((
            "CREDMESH_LICENSE_AUTHORITIES_FILE",
            table.display().to_string(),
        ));
    }
    let config = credmesh_license::LicenseConfig::from_env(&env(&license_env)).unwrap();
    let ldb = Db::connect(&license_db, &DbOptions::default())
        .await
        .unwrap();
    ldb.migrate(credmesh_license::migrations()).await.unwrap();
    let channel = credmesh_runtime::client::service_channel(&config.identity_url).unwrap();
    let registrar = config
        .client()
        .registrar(channel, dyn_clock.clone())
        .unwrap();
    let built = credmesh_license::build(&config, ldb, dyn_clock, &server_config, registrar)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::new(server_config, Metrics::new(), identity.validator)
        .with_service(identity.parts)
        .with_service(built.parts);
    let server = tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    assert!(
        built.registration.wait(Duration::from_secs(20)).await,
        "the license key was not registered"
    );
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    Region {
        code,
        addr,
        clock,
        identity: IdentityServiceClient::new(channel.clone()),
        license: LicenseServiceClient::new(channel),
        operator,
        anchor_public: anchor_key.public_key_bytes(),
        authority,
        division,
        env: Some(region_env),
        stop: StopGuard(Some(stop)),
        server: Some(server),
    }
}

async fn register_service_client(identity: &credmesh_identity::Identity, key: &IssuerKey) {
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

/// Binds `addr`, retrying briefly while a stopped server still holds the port.
async fn bind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}")
}

pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

impl Region {
    /// Starts the stopped region again on the same address, keys and databases.
    pub async fn restart(&mut self) {
        self.stop().await;
        let env = self.env.take().expect("a region restarts once at a time");
        *self = start_region(env, Some(self.addr)).await;
    }

    /// Stops the region's server (the partner "goes dark").
    pub async fn stop(&mut self) {
        self.stop.0.take().map(|s| s.send(()));
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

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

    /// Registers a client with `scopes` and returns a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        org: &str,
    ) -> String {
        let key = IssuerKey::generate(id).unwrap();
        let operator = self.token_for("operator", &self.operator).await;
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
            &operator,
        );
        self.identity.clone().register_client(req).await.unwrap();
        self.token_for(id, &key).await
    }

    /// A partner system (scope `verify`) and its token.
    pub async fn partner(&self, id: &str) -> String {
        self.client(
            id,
            PrincipalKind::Partner,
            &["verify"],
            &uscc('9', '1', "320506", 900),
        )
        .await
    }

    /// Establishes enterprise number `n`; its license version 1.
    pub async fn establish(&self, n: u32) -> lpb::LicenseVersion {
        let dept = self
            .client(
                &format!("dept-{n}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                &self.authority,
            )
            .await;
        let req = lpb::EstablishEnterpriseRequest {
            uscc: uscc('9', '1', self.division, n),
            name: format!("{}示例科技有限公司{n}", self.code),
            entity_type: "有限责任公司（自然人投资或控股）".into(),
            legal_representative: "王小明".into(),
            legal_representative_id_number: String::new(),
            registered_capital: Some(lpb::Money {
                amount: "500000.00".into(),
                currency_code: "CNY".into(),
            }),
            establishment_date: "2026-03-01".into(),
            business_term: Some(lpb::BusinessTerm {
                start_date: String::new(),
                end_date: String::new(),
                long_term: true,
            }),
            domicile: "示例路1号".into(),
            business_scope: "技术开发。".into(),
            registration_authority: self.authority.clone(),
            issue_date: String::new(),
            idempotency_key: String::new(),
        };
        self.license
            .clone()
            .establish_enterprise(with_token(req, &dept))
            .await
            .unwrap()
            .into_inner()
            .license
            .unwrap()
    }

    /// Revokes (吊销) enterprise `n`'s license.
    pub async fn revoke(&self, n: u32) {
        let dept = self
            .client(
                &format!("dept-r{n}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                &self.authority,
            )
            .await;
        self.license
            .clone()
            .revoke_license(with_token(
                lpb::RevokeLicenseRequest {
                    uscc: uscc('9', '1', self.division, n),
                    reason: "以欺骗手段取得登记".into(),
                    expected_version: 0,
                    idempotency_key: String::new(),
                },
                &dept,
            ))
            .await
            .unwrap();
    }

    /// Registers a test issuer key for `<region>/<service>` (as the operator) and
    /// returns it, for kinds no service issues yet.
    pub async fn issuer_key(&self, service: &str, kinds: &[CredentialKind]) -> IssuerKey {
        let probe = IssuerKey::generate("p").unwrap();
        let kid = credmesh_credential::kid_for(self.code, service, &probe.public_key_bytes());
        let pem = probe.to_pkcs8_pem();
        let key = IssuerKey::from_pkcs8_pem(&kid, &pem).unwrap();
        let operator = self.token_for("operator", &self.operator).await;
        self.identity
            .clone()
            .register_issuer_key(with_token(
                ipb::RegisterIssuerKeyRequest {
                    issuer: format!("{}/{service}", self.code),
                    kid: kid.clone(),
                    public_key: key.public_key_bytes().to_vec(),
                    kinds: kinds.iter().map(|k| *k as i32).collect(),
                    not_after: 0,
                },
                &operator,
            ))
            .await
            .unwrap();
        key
    }

    /// A presentation signed by `key` for this region, valid `[from, until)`.
    pub fn presentation(&self, key: &IssuerKey, service: &str, from: i64, until: i64) -> Envelope {
        let claim = |n: &str, v: &str| Claim {
            name: n.into(),
            value: v.into(),
        };
        sign_credential(
            &Credential {
                id: format!("urn:credmesh:presentation:{from}-{until}"),
                kind: CredentialKind::Presentation as i32,
                issuer: format!("{}/{service}", self.code),
                region: self.code.into(),
                subject: uscc('9', '1', self.division, 1),
                issued_at: from,
                not_before: from,
                not_after: until,
                status: None,
                claims: vec![claim("scenario", "bank-loan"), claim("name", "示例科技")],
                version: 0,
                nonce: [from.to_be_bytes(), until.to_be_bytes()].concat(),
            },
            key,
        )
    }
}

/// A verify gateway in its own server.
pub struct Gateway {
    pub addr: std::net::SocketAddr,
    pub client: VerifyServiceClient<Channel>,
    pub gateway: Arc<credmesh_verify::Gateway>,
    pub federation: Arc<credmesh_verify::federation::Federation>,
    pub db_url: String,
    _sqlite: Vec<credmesh_testkit::sqlite::SqliteDb>,
    _stop: StopGuard,
}

/// Gateway options beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub cache_url: Option<String>,
    pub cache_prefix: Option<String>,
    pub extra: Vec<(&'static str, String)>,
    /// Partners read from the own identity's imported lists instead of directly.
    pub imported: bool,
    /// Partner endpoints to use instead of the partner's own address (region code, URL).
    pub endpoints: Vec<(&'static str, String)>,
    /// Start even when a partner's trust list cannot be loaded.
    pub partners_may_fail: bool,
}

fn b64(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub async fn spawn_gateway(
    own: &Region,
    partners: &[&Region],
    backend: Backend,
    options: Options,
) -> Gateway {
    let mut sqlite = Vec::new();
    let db_url = database(backend, &mut sqlite).await;
    let partners = partners
        .iter()
        .map(|p| {
            let endpoint = if options.imported {
                "identity".to_string()
            } else if let Some((_, url)) = options.endpoints.iter().find(|(c, _)| *c == p.code) {
                url.clone()
            } else {
                format!("http://{}", p.addr)
            };
            format!("{}={endpoint}@{}", p.code, b64(&p.anchor_public))
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut pairs = vec![
        ("CREDMESH_REGION", own.code.to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("CREDMESH_IDENTITY_URL", format!("http://{}", own.addr)),
        ("CREDMESH_ANCHOR_PUBLIC_KEY", b64(&own.anchor_public)),
        ("CREDMESH_PARTNERS", partners),
        (
            "REDIS_URL",
            options
                .cache_url
                .clone()
                .unwrap_or_else(|| "memory://".into()),
        ),
        (
            "CREDMESH_CACHE_PREFIX",
            options
                .cache_prefix
                .clone()
                .unwrap_or_else(credmesh_testkit::redis::unique_prefix),
        ),
    ];
    pairs.extend(options.extra.iter().cloned());
    let config = credmesh_verify::VerifyConfig::from_env(&env(&pairs)).unwrap();
    let db = Db::connect(&db_url, &DbOptions::default()).await.unwrap();
    db.migrate(credmesh_verify::migrations()).await.unwrap();
    let clock = own.clock.clone();
    let for_validator = clock.clone();
    let validator = TokenValidator::new(
        Arc::new(GrpcJwksSource::new(
            credmesh_verify::federation::channel(&config.identity_url).unwrap(),
        )),
        ValidatorConfig::new(
            credmesh_auth::issuer_for_region(own.code),
            ["verify", "credmesh"],
        )
        .with_clock(Arc::new(move || for_validator.now())),
    );
    // The serving stack's settings (the per-partner rate limit among them) from the
    // same environment, as `credmesh serve verify` reads them.
    let server_config = ServerConfig::from_env(&env(&pairs)).unwrap();
    let built = credmesh_verify::build(&config, db, clock, &server_config, validator.clone())
        .await
        .unwrap();
    let failed = built.gateway.refresh_trust().await;
    assert!(
        failed.is_empty() || options.partners_may_fail,
        "every region's trust list loads: {failed:?} failed"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::new(server_config, Metrics::new(), validator).with_service(built.parts);
    tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Gateway {
        addr,
        client: VerifyServiceClient::new(channel),
        gateway: built.gateway,
        federation: built.federation,
        db_url,
        _sqlite: sqlite,
        _stop: StopGuard(Some(stop)),
    }
}

impl Region {
    /// Pins `partner`'s anchor in this region's identity and imports its trust list.
    pub async fn import_partner(&self, partner: &Region) {
        let operator = self.token_for("operator", &self.operator).await;
        let list = partner
            .identity
            .clone()
            .get_trust_list(ipb::GetTrustListRequest {})
            .await
            .unwrap()
            .into_inner();
        self.identity
            .clone()
            .pin_partner_anchor(with_token(
                ipb::PinPartnerAnchorRequest {
                    anchor: Some(ipb::PartnerAnchor {
                        region: partner.code.into(),
                        kid: list.anchor_kid.clone(),
                        public_key: partner.anchor_public.to_vec(),
                        pinned_at: 0,
                        endpoint: format!("http://{}", partner.addr),
                    }),
                },
                &operator,
            ))
            .await
            .unwrap();
        self.identity
            .clone()
            .import_partner_trust_list(with_token(
                ipb::ImportPartnerTrustListRequest {
                    trust_list: list.trust_list,
                },
                &operator,
            ))
            .await
            .unwrap();
    }
}

pub fn text(t: &str) -> Option<PresentedCredential> {
    Some(PresentedCredential {
        form: Some(Form::Text(t.to_string())),
    })
}

pub fn native(bytes: Vec<u8>) -> Option<PresentedCredential> {
    Some(PresentedCredential {
        form: Some(Form::Envelope(bytes)),
    })
}

pub fn qr_of(envelope: &Envelope) -> String {
    to_qr(envelope)
}

impl Gateway {
    pub async fn verify(
        &self,
        token: &str,
        credential: Option<PresentedCredential>,
    ) -> Result<VerificationResult, tonic::Status> {
        self.client
            .clone()
            .verify(with_token(VerifyRequest { credential }, token))
            .await
            .map(|r| r.into_inner().result.unwrap())
    }

    pub async fn verify_text(&self, token: &str, t: &str) -> VerificationResult {
        self.verify(token, text(t)).await.unwrap()
    }
}

/// The QR text of a license version.
pub fn license_qr(v: &lpb::LicenseVersion) -> String {
    v.credential.as_ref().unwrap().qr_text.clone()
}

#[track_caller]
pub fn assert_outcome(r: &VerificationResult, outcome: VerificationOutcome) {
    assert_eq!(
        r.outcome,
        outcome as i32,
        "expected {outcome:?}, got {:?} ({}: {})",
        VerificationOutcome::try_from(r.outcome),
        r.reason,
        r.detail
    );
}
