//! `spawn_app`: identity, license and certificate served together on fresh databases,
//! with a manual clock shared by all three.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::{
    Policy, Presented, StatusCache, TrustSnapshot, Verification, keys::IssuerKey, verify,
};
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    certificate::v1::{self as pb, certificate_service_client::CertificateServiceClient},
    credential::v1::{Envelope, StatusPurpose},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
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

/// Monday 2026-09-21 22:13:20 CST.
pub const T0: i64 = 1_790_000_000;

/// The Jing'an market-regulation bureau (registers the test enterprises).
pub const JINGAN: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;
/// The municipal market-regulation bureau: issues food business permits.
pub const MARKET: &str = credmesh_certificate::domain::types::SH_MUNICIPAL_MARKET;
/// Food business permit type code.
pub const FOOD: &str = credmesh_certificate::domain::types::FOOD_BUSINESS;

/// A valid Shanghai enterprise code, varied by `n`.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// The enterprise whose credit grade is D in every test server.
pub fn d_grade() -> String {
    sh_uscc(999)
}

pub struct TestApp {
    pub clock: Arc<ManualClock>,
    pub certificate: CertificateServiceClient<Channel>,
    pub license: LicenseServiceClient<Channel>,
    pub identity: IdentityServiceClient<Channel>,
    pub service: Arc<credmesh_certificate::Certificates>,
    pub operator: IssuerKey,
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
    use base64::Engine as _;
    credmesh_telemetry::init_for_tests();
    let mut sqlite = Vec::new();
    let identity_db = database(backend, &mut sqlite).await;
    let license_db = database(backend, &mut sqlite).await;
    let cert_db = database(backend, &mut sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (_, anchor) = write_key(dir.path(), "anchor.pem");
    let (_, token) = write_key(dir.path(), "token.pem");
    let (operator, _) = write_key(dir.path(), "operator.pem");
    let (_, license_signing) = write_key(dir.path(), "license-signing.pem");
    let (license_client, license_client_file) = write_key(dir.path(), "license-client.pem");
    let (_, cert_signing) = write_key(dir.path(), "cert-signing.pem");
    let (cert_client, cert_client_file) = write_key(dir.path(), "cert-client.pem");
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
    register_service(
        &identity.identity,
        "certificate",
        &cert_client,
        &["identity.keys", "license.read"],
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

    let cert_config = credmesh_certificate::CertificateConfig::from_env(&env(&[
        ("DATABASE_URL", cert_db.clone()),
        (
            "CREDMESH_SIGNING_KEY_FILE",
            cert_signing.display().to_string(),
        ),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            cert_client_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", url.clone()),
        ("CREDMESH_LICENSE_URL", url.clone()),
        ("CREDMESH_PUBLIC_URL", url.clone()),
        (
            "CREDMESH_CREDIT_GRADE_SOURCE",
            format!("static:{}=D,*=B", d_grade()),
        ),
        // Thursday 1 October 2026 is a holiday in every test.
        ("CREDMESH_HOLIDAYS", "2026-10-01".into()),
    ]))
    .unwrap();
    let cdb = Db::connect(&cert_db, &DbOptions::default()).await.unwrap();
    cdb.migrate(credmesh_certificate::migrations())
        .await
        .unwrap();
    let identity_channel = credmesh_runtime::client::service_channel(&url).unwrap();
    let registrar = cert_config
        .client()
        .registrar(identity_channel.clone(), dyn_clock.clone())
        .unwrap();
    let check = credmesh_certificate::grpc_license_check(
        &cert_config,
        identity_channel.clone(),
        credmesh_runtime::client::service_channel(&url).unwrap(),
        dyn_clock.clone(),
    )
    .unwrap();
    let built = credmesh_certificate::build(
        &cert_config,
        cdb,
        dyn_clock.clone(),
        &server_config,
        registrar,
        check,
        Arc::new(cert_config.credit_grades.clone()),
    )
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
    for registration in [&license.registration, &built.registration] {
        assert!(
            registration.wait(Duration::from_secs(20)).await,
            "a key was not registered: {:?}",
            registration.state()
        );
    }
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    TestApp {
        clock,
        certificate: CertificateServiceClient::new(channel.clone()),
        license: LicenseServiceClient::new(channel.clone()),
        identity: IdentityServiceClient::new(channel),
        service: built.certificates,
        operator,
        _dir: dir,
        _sqlite: sqlite,
        _stop: stop,
    }
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

impl TestApp {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub async fn token_for(&self, client_id: &str, key: &IssuerKey) -> String {
        let assertion =
            credmesh_auth::client_assertion(client_id, key.signing_key(), self.now()).unwrap();
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
        let id = &id.to_ascii_lowercase();
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

    /// A department of `org` that issues certificates.
    pub async fn department(&self, id: &str, org: &str) -> String {
        self.client(
            id,
            PrincipalKind::Department,
            &["certificate.issue", "certificate.read"],
            org,
        )
        .await
    }

    /// The enterprise `uscc`'s own client.
    pub async fn enterprise(&self, id: &str, uscc: &str) -> String {
        self.client(
            id,
            PrincipalKind::Enterprise,
            &[
                "certificate.read",
                "certificate.commit",
                "certificate.dispute",
            ],
            uscc,
        )
        .await
    }

    /// Establishes `uscc` in the license register (Jing'an bureau).
    pub async fn establish(&self, uscc: &str) {
        let token = self
            .client(
                &format!("jingan-{uscc}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                JINGAN,
            )
            .await;
        self.license
            .clone()
            .establish_enterprise(with_token(restaurant(uscc), &token))
            .await
            .unwrap();
    }

    /// Deregisters or revokes `uscc`'s license.
    pub async fn close_license(&self, uscc: &str, deregister: bool) {
        let token = self
            .client(
                &format!("jingan-close-{uscc}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                JINGAN,
            )
            .await;
        let mut license = self.license.clone();
        if deregister {
            license
                .deregister_enterprise(with_token(
                    lpb::DeregisterEnterpriseRequest {
                        uscc: uscc.into(),
                        reason: "股东会决议解散".into(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap();
        } else {
            license
                .revoke_license(with_token(
                    lpb::RevokeLicenseRequest {
                        uscc: uscc.into(),
                        reason: "提交虚假材料取得登记".into(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap();
        }
    }

    pub async fn issue(
        &self,
        token: &str,
        req: pb::IssueCertificateRequest,
    ) -> Result<pb::Certificate, tonic::Status> {
        self.certificate
            .clone()
            .issue_certificate(with_token(req, token))
            .await
            .map(|r| r.into_inner().certificate.unwrap())
    }

    pub async fn get(&self, token: &str, serial: &str) -> pb::Certificate {
        self.certificate
            .clone()
            .get_certificate(with_token(
                pb::GetCertificateRequest {
                    serial: serial.into(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .certificate
            .unwrap()
    }

    /// What a relying party holds: identity's trust list and the certificate
    /// service's signed status lists of list 0.
    pub async fn verifier(&self) -> (TrustSnapshot, StatusCache) {
        let list = credmesh_runtime::trust::fetch_trust_list(&self.identity)
            .await
            .unwrap();
        let trust = TrustSnapshot::from_trust_list(&list, self.now()).unwrap();
        let mut cache = StatusCache::new();
        for purpose in [
            StatusPurpose::Revocation,
            StatusPurpose::Suspension,
            StatusPurpose::Superseded,
        ] {
            let env = self.status_list(purpose).await;
            cache.insert_signed(&env, &trust, 1 << 20).unwrap();
        }
        (trust, cache)
    }

    /// The certificate service's signed status list 0 for `purpose`, over gRPC.
    pub async fn status_list(&self, purpose: StatusPurpose) -> Envelope {
        self.certificate
            .clone()
            .get_status_list(pb::GetStatusListRequest {
                list_id: "SH/certificate/0".into(),
                purpose: purpose as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status_list
            .unwrap()
    }

    /// Verifies a certificate's signed credential as a relying party would.
    pub async fn verify(&self, c: &pb::Certificate) -> Verification {
        let (trust, cache) = self.verifier().await;
        let signed = c.credential.as_ref().expect("a signed credential");
        verify(
            Presented::Envelope(signed.envelope.as_ref().unwrap()),
            &trust,
            &cache,
            &Policy::default(),
            self.now(),
        )
    }
}

/// A complete establishment of a Jing'an restaurant.
pub fn restaurant(uscc: &str) -> lpb::EstablishEnterpriseRequest {
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
        registration_authority: JINGAN.into(),
        ..Default::default()
    }
}

fn field(name: &str, value: &str) -> pb::Field {
    pb::Field {
        name: name.into(),
        value: value.into(),
    }
}

/// The fields of a restaurant's food business permit.
pub fn food_fields() -> Vec<pb::Field> {
    vec![
        field("operator_name", "上海静安面馆有限公司"),
        field("legal_representative", "王小明"),
        field("address", "上海市静安区南京西路1000号"),
        field("main_business", "餐饮服务经营者"),
        field("business_items", "热食类食品制售"),
    ]
}

/// A food business permit for `uscc`.
pub fn food_permit(uscc: &str) -> pb::IssueCertificateRequest {
    pb::IssueCertificateRequest {
        holder: uscc.into(),
        type_code: FOOD.into(),
        fields: food_fields(),
        ..Default::default()
    }
}
