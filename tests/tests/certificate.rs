//! The certificate service end to end, against the real `credmesh dev` binary: the
//! demo permit verifies VALID at the verify gateway; while the holder's data dispute is
//! open the gateway says "disputed" and names the field; after a revocation it says
//! REVOKED.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_auth::PrincipalKind;
use credmesh_e2e::{Dev, authed, credmesh_bin, operator_token};
use credmesh_proto::{
    certificate::v1::{self as pb, certificate_service_client::CertificateServiceClient},
    credential::v1::VerificationOutcome,
    verify::v1::{
        PresentedCredential, VerificationResult, VerifyRequest, presented_credential,
        verify_service_client::VerifyServiceClient,
    },
};
use tonic::transport::Channel;

/// The demo enterprise `credmesh dev` seeds, and the bureau that issued its permit.
const DEMO: &str = "91310106MA1FL3Q19D";
const MARKET: &str = "11310000MB2F10003D";

/// A client of `kind` for `org` with every scope its kind may hold; its token.
async fn client(
    channel: &Channel,
    operator: &str,
    id: &str,
    kind: PrincipalKind,
    org: &str,
) -> String {
    credmesh_e2e::client_token(
        channel,
        operator,
        kind,
        id,
        credmesh_identity::domain::scopes::all_for(kind),
        org,
    )
    .await
    .unwrap()
}

async fn verify(channel: &Channel, token: &str, qr: &str) -> VerificationResult {
    VerifyServiceClient::new(channel.clone())
        .verify(authed(
            VerifyRequest {
                credential: Some(PresentedCredential {
                    form: Some(presented_credential::Form::Text(qr.into())),
                }),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
}

/// Verifies until `done` holds (the gateway refreshes its own region's lists about
/// every second), at most 5 seconds.
async fn verify_until(
    channel: &Channel,
    token: &str,
    qr: &str,
    done: impl Fn(&VerificationResult) -> bool,
) -> VerificationResult {
    let start = std::time::Instant::now();
    loop {
        let r = verify(channel, token, qr).await;
        if done(&r) || start.elapsed() > std::time::Duration::from_secs(5) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_permit_verifies_is_shown_disputed_while_a_dispute_is_open_and_revoked_after() {
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let operator = operator_token(&dev.banner);
    let demo = dev
        .banner
        .lines()
        .skip_while(|l| !l.starts_with("demo food business permit"))
        .nth(1)
        .unwrap()
        .to_string();
    let serial = demo
        .strip_prefix("serial ")
        .expect("the banner names the permit's serial");
    let dept = client(
        &channel,
        &operator,
        "market-bureau",
        PrincipalKind::Department,
        MARKET,
    )
    .await;
    let holder = client(
        &channel,
        &operator,
        "demo-enterprise",
        PrincipalKind::Enterprise,
        DEMO,
    )
    .await;
    let mut certs = CertificateServiceClient::new(channel.clone());
    let permit = certs
        .get_certificate(authed(
            pb::GetCertificateRequest {
                serial: serial.into(),
            },
            &holder,
        ))
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();
    let qr = permit.credential.unwrap().qr_text;

    let r = verify_until(&channel, &operator, &qr, |r| {
        r.outcome == VerificationOutcome::Valid as i32
    })
    .await;
    assert_eq!(r.outcome, VerificationOutcome::Valid as i32, "{r:?}");
    assert!(!r.disputed);
    assert_eq!(
        r.kind,
        credmesh_proto::credential::v1::CredentialKind::Certificate as i32
    );

    certs
        .file_dispute(authed(
            pb::FileDisputeRequest {
                serial: serial.into(),
                fields: vec![pb::DisputedField {
                    name: "address".into(),
                    recorded_value: String::new(),
                    claimed_value: "上海市静安区南京西路1268号".into(),
                }],
                evidence_sha256: vec!["ab".repeat(32)],
                explanation: "门牌号有误".into(),
                idempotency_key: "e2e-dispute".into(),
            },
            &holder,
        ))
        .await
        .unwrap();
    let r = verify_until(&channel, &operator, &qr, |r| r.disputed).await;
    assert!(r.disputed, "{r:?}");
    assert_eq!(r.disputed_fields, ["address"]);
    assert_eq!(r.outcome, VerificationOutcome::Valid as i32);

    // Offline too: the gateway's trust bundle carries the signed dispute notice, and
    // `credmesh verify` says which field is disputed without asking anyone.
    let bundle = dev.data.join("trust-bundle.pb");
    let fetched = tokio::process::Command::new(credmesh_bin())
        .args([
            "verify",
            "--fetch",
            &format!("http://{}", dev.http),
            "--bundle",
        ])
        .arg(&bundle)
        .output()
        .await
        .unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let mut offline = tokio::process::Command::new(credmesh_bin())
        .args(["verify", "-", "--json", "--bundle"])
        .arg(&bundle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = offline.stdin.take().unwrap();
        stdin.write_all(qr.as_bytes()).await.unwrap();
    }
    let out = offline.wait_with_output().await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["disputed"], true, "{answer}");
    assert_eq!(answer["disputed_fields"], serde_json::json!(["address"]));

    certs
        .revoke_certificate(authed(
            pb::RevokeCertificateRequest {
                serial: serial.into(),
                reason: "e2e revocation".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
    let r = verify_until(&channel, &operator, &qr, |r| {
        r.outcome == VerificationOutcome::Revoked as i32
    })
    .await;
    assert_eq!(r.outcome, VerificationOutcome::Revoked as i32, "{r:?}");
    assert!(!r.superseded);
}

/// The commitment path (告知承诺) asks the inspection service for the credit grade: a D
/// imported there refuses the commitment with the grade named; after a B is imported,
/// the same commitment is issued.
#[tokio::test]
async fn commitments_are_judged_by_the_grade_the_inspection_service_holds() {
    use credmesh_proto::inspection::v1::{
        self as inpb, inspection_service_client::InspectionServiceClient,
    };
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let operator = operator_token(&dev.banner);
    let enterprise = client(
        &channel,
        &operator,
        "demo-ent",
        PrincipalKind::Enterprise,
        DEMO,
    )
    .await;
    let grade = |g: inpb::CreditGrade| inpb::ImportPolicyDataRequest {
        entries: vec![inpb::PolicyEntry {
            kind: inpb::PolicyKind::CreditGrade as i32,
            enterprise_uscc: DEMO.into(),
            grade: g as i32,
            note: "信用评价".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut inspection = InspectionServiceClient::new(channel.clone());
    inspection
        .import_policy_data(authed(grade(inpb::CreditGrade::D), &operator))
        .await
        .unwrap();
    let field = |name: &str, value: &str| pb::Field {
        name: name.into(),
        value: value.into(),
    };
    let commitment = pb::IssueOnCommitmentRequest {
        holder: DEMO.into(),
        type_code: "11100000000013127D002".into(),
        fields: vec![
            field("operator_name", "上海静安面馆有限公司"),
            field("legal_representative", "王小明"),
            field("address", "上海市静安区南京西路1000号"),
            field("main_business", "餐饮服务经营者"),
            field("business_items", "热食类食品制售"),
        ],
        statement:
            "本单位承诺已具备食品经营许可条件，所提交材料真实有效，愿承担不实承诺的法律责任。"
                .into(),
        idempotency_key: "grade-d".into(),
    };
    let mut certificates = CertificateServiceClient::new(channel.clone());
    let refused = certificates
        .issue_on_commitment(authed(commitment.clone(), &enterprise))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(
        credmesh_proto::status::reason(&refused).as_deref(),
        Some("CREDIT_GRADE_REFUSED")
    );

    inspection
        .import_policy_data(authed(grade(inpb::CreditGrade::B), &operator))
        .await
        .unwrap();
    let issued = certificates
        .issue_on_commitment(authed(
            pb::IssueOnCommitmentRequest {
                idempotency_key: "grade-b".into(),
                ..commitment
            },
            &enterprise,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(issued.certificate.is_some());
    dev.stop().await.unwrap();
}
