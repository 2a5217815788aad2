//! Issuance: only to an enterprise whose license verifies as active, only by the
//! competent department, field values against the schema, idempotent; the commitment
//! path with its credit check and follow-up.

use credmesh_credential::{Outcome, StatusCache};
use credmesh_proto::{
    certificate::v1 as pb, credential::v1::Envelope, license::v1 as lpb, prost::Message as _,
};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_permit_for_an_active_license_verifies_and_a_retry_returns_the_same_one() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(1);
        app.establish(&uscc).await;
        let dept = app.department("market", MARKET).await;
        let mut req = food_permit(&uscc);
        req.idempotency_key = "issue-1".into();
        let c = app.issue(&dept, req.clone()).await.unwrap();
        assert_eq!(c.version, 1);
        assert_eq!(c.holder_name, "上海静安面馆有限公司");
        assert_eq!(c.state, pb::CertificateState::Active as i32);
        assert!(
            c.certificate_id
                .starts_with("1.2.156.3005.2.11100000000013127D002.")
        );
        let v = app.verify(&c).await;
        assert_eq!(v.outcome, Outcome::Valid, "{}", v.detail);
        let claims = v.credential.unwrap().claims;
        assert!(
            claims
                .iter()
                .any(|c| c.name == "address" && c.value.contains("南京西路"))
        );

        let again = app.issue(&dept, req).await.unwrap();
        assert_eq!(
            again.serial, c.serial,
            "{backend:?}: a retry must not issue twice"
        );
        assert_eq!(again.certificate_id, c.certificate_id);
        let all = app
            .certificate
            .clone()
            .list_certificates(with_token(
                pb::ListCertificatesRequest {
                    holder: uscc.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.certificates.len(), 1);

        // A mistyped holder is refused with the rule it breaks, not answered "none".
        let mut typo = uscc.clone();
        let last = if typo.ends_with('0') { '1' } else { '0' };
        typo.pop();
        typo.push(last);
        let status = assert_status(
            app.certificate
                .clone()
                .list_certificates(with_token(
                    pb::ListCertificatesRequest {
                        holder: typo,
                        ..Default::default()
                    },
                    &dept,
                ))
                .await,
            Code::InvalidArgument,
            "USCC_CHECK_DIGIT",
        );
        assert!(status.message().contains("check character"), "{status:?}");
        let fields = credmesh_proto::status::field_violations(&status);
        assert_eq!(fields[0].field, "holder", "{status:?}");
    }
}

#[tokio::test]
async fn bad_field_values_are_refused_with_every_field_named() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(2);
        app.establish(&uscc).await;
        let dept = app.department("market", MARKET).await;
        let mut req = food_permit(&uscc);
        req.fields.retain(|f| f.name != "address");
        req.fields[2].value = "游乐场".into();
        req.fields.push(pb::Field {
            name: "colour".into(),
            value: "red".into(),
        });
        let status = assert_status(
            app.issue(&dept, req).await,
            Code::InvalidArgument,
            "FIELD_VALUE_INVALID",
        );
        let fields: Vec<String> = credmesh_proto::status::field_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["fields[2].value", "fields[4].name", "fields"],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn only_the_competent_department_issues_a_type() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(3);
        app.establish(&uscc).await;
        let other = app.department("jingan-certs", JINGAN).await;
        assert_status(
            app.issue(&other, food_permit(&uscc)).await,
            Code::PermissionDenied,
            "NOT_ISSUING_DEPARTMENT",
        );
    }
}

#[tokio::test]
async fn deregistered_revoked_and_unknown_enterprises_get_no_permit_and_are_told_why() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("market", MARKET).await;
        let gone = sh_uscc(4);
        app.establish(&gone).await;
        app.close_license(&gone, true).await;
        let s = assert_status(
            app.issue(&dept, food_permit(&gone)).await,
            Code::FailedPrecondition,
            "ENTERPRISE_DEREGISTERED",
        );
        assert!(s.message().contains("股东会决议解散"), "{}", s.message());

        let revoked = sh_uscc(5);
        app.establish(&revoked).await;
        app.close_license(&revoked, false).await;
        let s = assert_status(
            app.issue(&dept, food_permit(&revoked)).await,
            Code::FailedPrecondition,
            "LICENSE_REVOKED",
        );
        assert!(s.message().contains("提交虚假材料"), "{}", s.message());

        assert_status(
            app.issue(&dept, food_permit(&sh_uscc(6))).await,
            Code::FailedPrecondition,
            "ENTERPRISE_NOT_REGISTERED",
        );
    }
}

/// The license service's current credential of `uscc` and the material a verifier
/// needs, fetched as the certificate service fetches them.
async fn license_material(
    app: &TestApp,
    uscc: &str,
    version: u32,
) -> (Envelope, credmesh_credential::TrustSnapshot, StatusCache) {
    let reader = app
        .client(
            &format!("reader-{uscc}-{version}"),
            credmesh_auth::PrincipalKind::Department,
            &["license.read"],
            JINGAN,
        )
        .await;
    let v = app
        .license
        .clone()
        .get_license_version(with_token(
            lpb::GetLicenseVersionRequest {
                uscc: uscc.into(),
                version,
            },
            &reader,
        ))
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    let envelope = v.credential.unwrap().envelope.unwrap();
    let list = credmesh_runtime::trust::fetch_trust_list(&app.identity)
        .await
        .unwrap();
    let trust = credmesh_credential::TrustSnapshot::from_trust_list(&list, app.now()).unwrap();
    let mut status = StatusCache::new();
    for purpose in [
        credmesh_proto::credential::v1::StatusPurpose::Revocation,
        credmesh_proto::credential::v1::StatusPurpose::Suspension,
        credmesh_proto::credential::v1::StatusPurpose::Superseded,
    ] {
        let env = app
            .license
            .clone()
            .get_status_list(lpb::GetStatusListRequest {
                list_id: "SH/license/0".into(),
                purpose: purpose as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status_list
            .unwrap();
        status.insert_signed(&env, &trust, 1 << 20).unwrap();
    }
    (envelope, trust, status)
}

#[tokio::test]
async fn forged_foreign_and_stale_license_credentials_are_refused() {
    use credmesh_certificate::license::{RegisterState, judge};
    let app = spawn_app(Backend::Sqlite).await;
    let uscc = sh_uscc(7);
    app.establish(&uscc).await;
    let active = RegisterState {
        state: "active",
        reason: String::new(),
    };
    let (envelope, trust, status) = license_material(&app, &uscc, 1).await;
    judge(&uscc, &envelope, &active, &trust, &status, app.now()).unwrap();

    // Forged: the payload changed after signing.
    let mut forged = envelope.clone();
    let mut credential =
        credmesh_proto::credential::v1::Credential::decode(forged.payload.as_slice()).unwrap();
    credential.claims[0].value = "冒名顶替有限公司".into();
    forged.payload = credential.encode_to_vec();
    let err = judge(&uscc, &forged, &active, &trust, &status, app.now()).unwrap_err();
    assert!(err.to_string().contains("does not allow"), "{err}");
    assert!(
        matches!(
            err,
            credmesh_certificate::error::CertificateError::LicenseNotActive {
                reason: "LICENSE_BAD_SIGNATURE",
                ..
            }
        ),
        "{err:?}"
    );

    // Signed by a key nobody trusts, naming the license service.
    let rogue = credmesh_credential::IssuerKey::generate(envelope.kid.clone()).unwrap();
    let foreign = credmesh_credential::sign_credential(&credential, &rogue);
    let err = judge(&uscc, &foreign, &active, &trust, &status, app.now()).unwrap_err();
    assert!(
        matches!(
            err,
            credmesh_certificate::error::CertificateError::LicenseNotActive {
                reason: "LICENSE_BAD_SIGNATURE" | "LICENSE_UNKNOWN_ISSUER",
                ..
            }
        ),
        "{err:?}"
    );

    // Another enterprise's genuine license.
    let err = judge(&sh_uscc(8), &envelope, &active, &trust, &status, app.now()).unwrap_err();
    assert!(
        matches!(
            err,
            credmesh_certificate::error::CertificateError::LicenseNotActive {
                reason: "LICENSE_SUBJECT_MISMATCH",
                ..
            }
        ),
        "{err:?}"
    );

    // Stale status data (older than the verifier's 10-minute bound) proves nothing.
    let err = judge(&uscc, &envelope, &active, &trust, &status, app.now() + 3600).unwrap_err();
    assert!(
        matches!(
            err,
            credmesh_certificate::error::CertificateError::LicenseNotActive {
                reason: "LICENSE_STATUS_UNKNOWN",
                ..
            }
        ),
        "{err:?}"
    );

    // A superseded version: the license was amended since.
    let token = app
        .client(
            "amender",
            credmesh_auth::PrincipalKind::Department,
            &["license.issue", "license.read"],
            JINGAN,
        )
        .await;
    app.license
        .clone()
        .amend_license(with_token(
            lpb::AmendLicenseRequest {
                uscc: uscc.clone(),
                domicile: Some("上海市静安区南京西路1200号".into()),
                reason: "迁址".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let (_, trust, status) = license_material(&app, &uscc, 2).await;
    let err = judge(&uscc, &envelope, &active, &trust, &status, app.now()).unwrap_err();
    assert!(
        matches!(
            err,
            credmesh_certificate::error::CertificateError::LicenseNotActive {
                reason: "LICENSE_SUPERSEDED",
                ..
            }
        ),
        "{err:?}"
    );
}

fn commitment(uscc: &str) -> pb::IssueOnCommitmentRequest {
    pb::IssueOnCommitmentRequest {
        holder: uscc.into(),
        type_code: FOOD.into(),
        fields: food_fields(),
        statement:
            "本单位承诺已具备食品经营许可条件，所提交材料真实有效，愿承担不实承诺的法律责任。"
                .into(),
        idempotency_key: "commit-1".into(),
    }
}

#[tokio::test]
async fn a_commitment_is_recorded_flagged_and_a_failed_follow_up_revokes() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(9);
        app.establish(&uscc).await;
        let ent = app.enterprise("ent-9", &uscc).await;
        let c = app
            .certificate
            .clone()
            .issue_on_commitment(with_token(commitment(&uscc), &ent))
            .await
            .unwrap()
            .into_inner()
            .certificate
            .unwrap();
        assert_eq!(c.follow_up, pb::FollowUpState::Pending as i32);
        let m = c.commitment.clone().unwrap();
        assert_eq!(m.credit_grade, "B");
        assert_eq!(m.committed_by, "ent-9");
        assert_eq!(m.statement_sha256.len(), 64);
        assert_eq!(app.verify(&c).await.outcome, Outcome::Valid);

        // Another enterprise cannot commit for it.
        let other = app.enterprise("ent-other", &sh_uscc(10)).await;
        assert_status(
            app.certificate
                .clone()
                .issue_on_commitment(with_token(commitment(&uscc), &other))
                .await,
            Code::PermissionDenied,
            "NOT_HOLDER",
        );

        let dept = app.department("market", MARKET).await;
        let revoked = app
            .certificate
            .clone()
            .record_follow_up(with_token(
                pb::RecordFollowUpRequest {
                    serial: c.serial.clone(),
                    compliant: false,
                    finding: "现场核查：无专间，不符合热食类制售条件".into(),
                    idempotency_key: String::new(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner()
            .certificate
            .unwrap();
        assert_eq!(revoked.state, pb::CertificateState::Revoked as i32);
        assert_eq!(revoked.follow_up, pb::FollowUpState::NonCompliant as i32);
        assert!(revoked.state_reason.contains("无专间"));
        assert!(matches!(
            app.verify(&c).await.outcome,
            Outcome::Revoked { superseded: false }
        ));
    }
}

#[tokio::test]
async fn a_d_grade_enterprise_or_a_revoked_license_cannot_commit() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = d_grade();
        app.establish(&uscc).await;
        let ent = app.enterprise("ent-d", &uscc).await;
        let s = assert_status(
            app.certificate
                .clone()
                .issue_on_commitment(with_token(commitment(&uscc), &ent))
                .await,
            Code::FailedPrecondition,
            "CREDIT_GRADE_REFUSED",
        );
        assert!(s.message().contains("grade"), "{backend:?}");

        // The license check comes first on the commitment path too: a revoked license
        // gets no permit however good the grade.
        let revoked = sh_uscc(7);
        app.establish(&revoked).await;
        app.close_license(&revoked, false).await;
        let holder = app.enterprise("ent-revoked", &revoked).await;
        let s = assert_status(
            app.certificate
                .clone()
                .issue_on_commitment(with_token(commitment(&revoked), &holder))
                .await,
            Code::FailedPrecondition,
            "LICENSE_REVOKED",
        );
        assert!(
            s.message().contains("提交虚假材料"),
            "{backend:?}: {}",
            s.message()
        );
    }
}
