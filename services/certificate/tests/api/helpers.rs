//! `spawn_app`: identity, license and certificate served together on fresh databases,
//! with a manual clock shared by all three.

use std::{ops::Deref, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::{Policy, Presented, StatusCache, TrustSnapshot, Verification, verify};
pub use credmesh_harness::restaurant;
use credmesh_harness::{Running, Stack, env, migrated};
use credmesh_proto::{
    certificate::v1::{self as pb, certificate_service_client::CertificateServiceClient},
    credential::v1::{Envelope, StatusPurpose},
    license::v1 as lpb,
};
use credmesh_runtime::ServerConfig;
pub use credmesh_testkit::{BOTH, Backend, T0, assert_status, with_token};
use tonic::transport::Channel;

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
    pub certificate: CertificateServiceClient<Channel>,
    pub service: Arc<credmesh_certificate::Certificates>,
    stack: Running,
}

/// Identity's and license's clients, the clock and tokens come from the stack.
impl Deref for TestApp {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.stack
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let server = ServerConfig {
        max_message_bytes: 256 * 1024,
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let mut stack = Stack::start(
        backend,
        server,
        &[("certificate", &["identity.keys", "license.read"])],
    )
    .await;
    let (db, mut environment) = stack.issuing_env("certificate").await;
    environment.extend(env(&[
        (
            "CREDMESH_CREDIT_GRADE_SOURCE",
            format!("static:{}=D,*=B", d_grade()),
        ),
        // Thursday 1 October 2026 is a holiday in every test.
        ("CREDMESH_HOLIDAYS", "2026-10-01".into()),
    ]));
    let config = credmesh_certificate::CertificateConfig::from_env(&environment).unwrap();
    let db = migrated(&db, credmesh_certificate::migrations()).await;
    let channel = || credmesh_runtime::client::service_channel(&stack.url).unwrap();
    let registrar = config.client().registrar(channel(), stack.clock()).unwrap();
    let check =
        credmesh_certificate::grpc_license_check(&config, channel(), channel(), stack.clock())
            .unwrap();
    let built = credmesh_certificate::build(
        &config,
        db,
        stack.clock(),
        &stack.server,
        registrar,
        check,
        Arc::new(config.credit_grades.clone()),
    )
    .await
    .unwrap();
    let stack = stack
        .serve(vec![built.parts], &[("certificate", &built.registration)])
        .await;
    TestApp {
        certificate: CertificateServiceClient::new(stack.channel.clone()),
        service: built.certificates,
        stack,
    }
}

impl TestApp {
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
        let native = verify(
            Presented::Envelope(signed.envelope.as_ref().unwrap()),
            &trust,
            &cache,
            &Policy::default(),
            self.now(),
        );
        // The link a phone reads off the printed certificate is the same credential.
        assert!(
            signed
                .scan_url
                .ends_with(&credmesh_credential::scan_path(&signed.qr_text)),
            "{}",
            signed.scan_url
        );
        let linked = verify(
            Presented::detect(&signed.scan_url),
            &trust,
            &cache,
            &Policy::default(),
            self.now(),
        );
        assert_eq!(linked.outcome, native.outcome, "{}", linked.detail);
        assert_eq!(linked.credential, native.credential);
        native
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
