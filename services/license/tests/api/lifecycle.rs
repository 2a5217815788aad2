use credmesh_credential::Outcome;
use credmesh_proto::license::v1 as pb;
use credmesh_uscc::LicenseId;
use tonic::Code;

use credmesh_store::Db;

use crate::helpers::*;

fn amend_domicile(uscc: &str, domicile: &str) -> pb::AmendLicenseRequest {
    pb::AmendLicenseRequest {
        uscc: uscc.to_string(),
        domicile: Some(domicile.to_string()),
        reason: "住所变更".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_license_lives_through_establish_amend_amend_and_revoke() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 1);

        // Establish: version 1, current, verifiable in every form.
        let est = app.establish(&dept, restaurant(&uscc)).await.unwrap();
        let e = est.enterprise.unwrap();
        assert_eq!(e.state, pb::EnterpriseState::Active as i32);
        assert_eq!(e.current_version, 1);
        let v1 = est.license.unwrap();
        assert_eq!(v1.status, pb::VersionStatus::Current as i32);
        let id1 = LicenseId::parse(&v1.license_id).unwrap();
        assert_eq!(id1.issuer(), JINGAN);
        assert_eq!(id1.version(), 1);
        assert_eq!(id1.type_code(), "11100000000013127D001");
        let content = v1.content.as_ref().unwrap();
        assert_eq!(
            content.registration_authority_name,
            "上海市静安区市场监督管理局"
        );
        assert_eq!(content.issue_date, "2026-09-21");
        assert_eq!(
            v1.status_reference.as_ref().unwrap().list_id,
            "SH/license/0"
        );
        let checked = app.verify_all_forms(&v1).await;
        assert_eq!(
            checked.outcome,
            Outcome::Valid,
            "{backend:?}: {}",
            checked.detail
        );
        let claims = checked.credential.unwrap().claims;
        let claim = |n: &str| claims.iter().find(|c| c.name == n).map(|c| c.value.clone());
        assert_eq!(claim("name").as_deref(), Some("上海静安面馆有限公司"));
        assert_eq!(claim("business_term").as_deref(), Some("2026-03-01/.."));
        assert_eq!(
            claim("registered_capital").as_deref(),
            Some("500000.00 CNY")
        );

        // Two amendments: versions 2 and 3, each superseding the one before.
        app.env.clock.advance(300);
        let a2 = app
            .amend(
                &dept,
                pb::AmendLicenseRequest {
                    uscc: uscc.clone(),
                    name: Some("上海静安牛肉面馆有限公司".into()),
                    expected_version: 1,
                    reason: "名称变更".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(a2.superseded_version, 1);
        let v2 = a2.license.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(a2.enterprise.unwrap().name, "上海静安牛肉面馆有限公司");
        app.env.clock.advance(300);
        let v3 = app
            .amend(&dept, amend_domicile(&uscc, "上海市静安区南京西路2000号"))
            .await
            .unwrap()
            .license
            .unwrap();
        let id3 = LicenseId::parse(&v3.license_id).unwrap();
        assert_eq!(
            (id3.serial(), id3.version()),
            (id1.serial(), 3),
            "versions share the serial"
        );
        assert_eq!(
            v3.content.as_ref().unwrap().name,
            "上海静安牛肉面馆有限公司"
        );

        // Version 1 now answers revoked (superseded), version 3 valid.
        let old = app.version(&dept, &uscc, 1).await;
        assert_eq!(old.status, pb::VersionStatus::Superseded as i32);
        assert_ne!(old.superseded_at, 0);
        let checked = app.verify_all_forms(&old).await;
        assert_eq!(checked.outcome, Outcome::Revoked { superseded: true });
        assert_eq!(checked.reason, "SUPERSEDED");
        let current = app.get(&dept, &uscc).await;
        assert_eq!(current.license.as_ref().unwrap().version, 3);
        assert_eq!(
            app.verify_all_forms(current.license.as_ref().unwrap())
                .await
                .outcome,
            Outcome::Valid
        );

        // Revoke (吊销): the current version is revoked, nothing changes any more.
        let revoked = app
            .license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: uscc.clone(),
                    reason: "沪市监静处〔2026〕123号行政处罚决定".into(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        let e = revoked.enterprise.unwrap();
        assert_eq!(e.state, pb::EnterpriseState::Revoked as i32);
        assert_eq!(
            e.current_version, 3,
            "a revoked license keeps its last version"
        );
        let last = revoked.license.unwrap();
        assert_eq!(last.status, pb::VersionStatus::Revoked as i32);
        let checked = app.verify_all_forms(&last).await;
        assert_eq!(checked.outcome, Outcome::Revoked { superseded: false });
        let refused = app
            .amend(&dept, amend_domicile(&uscc, "上海市静安区南京西路3000号"))
            .await;
        let status = assert_status(refused, Code::FailedPrecondition, "LICENSE_REVOKED");
        assert!(status.message().contains("revoked"), "{}", status.message());
        let again = app
            .license
            .clone()
            .deregister_enterprise(with_token(
                pb::DeregisterEnterpriseRequest {
                    uscc: uscc.clone(),
                    reason: "注销".into(),
                    ..Default::default()
                },
                &dept,
            ))
            .await;
        assert_status(again, Code::FailedPrecondition, "LICENSE_REVOKED");

        // Versions page by page, oldest first; the history says who did what.
        let page1 = app
            .license
            .clone()
            .list_license_versions(with_token(
                pb::ListLicenseVersionsRequest {
                    uscc: uscc.clone(),
                    page_size: 2,
                    page_token: String::new(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            page1.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(page1.versions.iter().all(|v| v.credential.is_none()));
        let page2 = app
            .license
            .clone()
            .list_license_versions(with_token(
                pb::ListLicenseVersionsRequest {
                    uscc: uscc.clone(),
                    page_size: 2,
                    page_token: page1.next_page_token,
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            page2.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3]
        );
        assert!(page2.next_page_token.is_empty());
        let history = app
            .license
            .clone()
            .get_enterprise_history(with_token(
                pb::GetEnterpriseHistoryRequest {
                    uscc: uscc.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner()
            .entries;
        let actions: Vec<_> = history.iter().map(|h| h.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "license.establish",
                "license.amend",
                "license.amend",
                "license.revoke"
            ],
            "{backend:?}"
        );
        assert!(
            history
                .iter()
                .all(|h| h.actor == "sh-jingan" && h.actor_kind == "department")
        );
        let amended: serde_json::Value = serde_json::from_str(&history[1].detail_json).unwrap();
        assert_eq!(amended["changes"][0]["field"], "name");
        assert_eq!(amended["changes"][0]["from"], "上海静安面馆有限公司");
        assert_eq!(amended["acting_organization"], JINGAN);
        assert_eq!(amended["reason"], "名称变更");
        assert_eq!(history[1].at, app.now() - 300);
    }
}

#[tokio::test]
async fn deregistration_revokes_the_current_version_and_refuses_amendments() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 2);
        app.establish(&dept, restaurant(&uscc)).await.unwrap();
        let missing_reason = app
            .license
            .clone()
            .deregister_enterprise(with_token(
                pb::DeregisterEnterpriseRequest {
                    uscc: uscc.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await;
        assert_status(missing_reason, Code::InvalidArgument, "REASON_INVALID");
        let done = app
            .license
            .clone()
            .deregister_enterprise(with_token(
                pb::DeregisterEnterpriseRequest {
                    uscc: uscc.clone(),
                    reason: "股东会决议解散".into(),
                    expected_version: 1,
                    idempotency_key: "dereg-1".into(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        let e = done.enterprise.unwrap();
        assert_eq!(e.state, pb::EnterpriseState::Deregistered as i32);
        assert_eq!(e.state_reason, "股东会决议解散");
        assert_eq!(
            app.verify_all_forms(done.license.as_ref().unwrap())
                .await
                .outcome,
            Outcome::Revoked { superseded: false }
        );
        assert_status(
            app.amend(&dept, amend_domicile(&uscc, "上海市静安区某路1号"))
                .await,
            Code::FailedPrecondition,
            "ENTERPRISE_DEREGISTERED",
        );
        // A retried deregistration answers the first result.
        let retried = app
            .license
            .clone()
            .deregister_enterprise(with_token(
                pb::DeregisterEnterpriseRequest {
                    uscc: uscc.clone(),
                    reason: "股东会决议解散".into(),
                    expected_version: 1,
                    idempotency_key: "dereg-1".into(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(retried.enterprise.unwrap().updated_at, e.updated_at);
    }
}

#[tokio::test]
async fn a_retried_establish_returns_the_same_credential_and_a_changed_request_is_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 3);
        let mut req = restaurant(&uscc);
        req.idempotency_key = "est-310106-3".into();
        let first = app.establish(&dept, req.clone()).await.unwrap();
        app.env.clock.advance(30);
        let again = app.establish(&dept, req.clone()).await.unwrap();
        assert_eq!(again, first, "{backend:?}: the same answer, byte for byte");
        let (a, b) = (
            first.license.unwrap().credential.unwrap(),
            again.license.unwrap().credential.unwrap(),
        );
        assert_eq!(a.envelope, b.envelope);
        assert_eq!(a.vc_jwt, b.vc_jwt);

        let mut changed = req.clone();
        changed.name = "上海静安拉面馆有限公司".into();
        assert_status(
            app.establish(&dept, changed).await,
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED",
        );
        // Without the key, a second establishment of the code is refused.
        req.idempotency_key = String::new();
        assert_status(
            app.establish(&dept, req).await,
            Code::AlreadyExists,
            "ENTERPRISE_EXISTS",
        );
        let versions = app
            .license
            .clone()
            .list_license_versions(with_token(
                pb::ListLicenseVersionsRequest {
                    uscc: uscc.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner()
            .versions;
        assert_eq!(versions.len(), 1, "never a duplicate credential");
    }
}

/// The idempotency record of an establishment keeps a reference, and a replay rebuilds
/// the first answer from the stored rows: byte for byte the same encoded answer (the
/// same envelope, VC-JWT and QR form) even after the enterprise was amended and its
/// license revoked, since the answer is what the first call returned.
#[tokio::test]
async fn a_retried_establish_answers_the_first_credential_after_later_changes() {
    use credmesh_proto::prost::Message as _;
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 4);
        let mut req = restaurant(&uscc);
        req.idempotency_key = "est-310106-4".into();
        let first = app.establish(&dept, req.clone()).await.unwrap();
        let replayed = app.establish(&dept, req.clone()).await.unwrap();
        assert_eq!(
            replayed.encode_to_vec(),
            first.encode_to_vec(),
            "{backend:?}"
        );

        app.env.clock.advance(60);
        app.amend(&dept, amend_domicile(&uscc, "上海市静安区新闸路1号"))
            .await
            .unwrap();
        app.license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: uscc.clone(),
                    reason: "提交虚假材料取得登记".into(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap();
        app.env.clock.advance(60);
        let later = app.establish(&dept, req.clone()).await.unwrap();
        assert_eq!(
            later.encode_to_vec(),
            first.encode_to_vec(),
            "{backend:?}: the first answer, whatever happened since"
        );
        let credential = later.license.unwrap().credential.unwrap();
        assert!(!credential.qr_text.is_empty() && !credential.vc_jwt.is_empty());

        // What is stored per establishment is a reference, not the credential again.
        let (len,): (i64,) = match app.license_db().await {
            Db::Sqlite(p) => sqlx::query_as("SELECT max(length(response)) FROM idempotency")
                .fetch_one(&p)
                .await
                .unwrap(),
            Db::Postgres(p) => sqlx::query_as(
                "SELECT max(length(response))::BIGINT FROM idempotency WHERE scope LIKE 'license.EstablishEnterprise%'",
            )
            .fetch_one(&p)
            .await
            .unwrap(),
        };
        assert!(len < 100, "{backend:?}: {len} bytes stored for a replay");
    }
}

#[tokio::test]
async fn an_amendment_based_on_a_stale_version_or_changing_nothing_is_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 4);
        app.establish(&dept, restaurant(&uscc)).await.unwrap();
        app.amend(&dept, amend_domicile(&uscc, "上海市静安区新闸路1号"))
            .await
            .unwrap();
        let mut stale = amend_domicile(&uscc, "上海市静安区新闸路2号");
        stale.expected_version = 1;
        let status = assert_status(
            app.amend(&dept, stale).await,
            Code::Aborted,
            "VERSION_MISMATCH",
        );
        assert!(
            status.message().contains("current version"),
            "{}",
            status.message()
        );
        let same = amend_domicile(&uscc, "上海市静安区新闸路1号");
        assert_status(
            app.amend(&dept, same).await,
            Code::InvalidArgument,
            "AMENDMENT_EMPTY",
        );
        assert_status(
            app.amend(
                &dept,
                amend_domicile(&sh_uscc("310106", 999), "上海市静安区1号"),
            )
            .await,
            Code::NotFound,
            "ENTERPRISE_NOT_FOUND",
        );
    }
}

#[tokio::test]
async fn enterprises_are_listed_page_by_page_and_filtered() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        for n in 0..5 {
            let mut req = restaurant(&sh_uscc("310106", 100 + n));
            if n % 2 == 1 {
                req.registration_authority = MUNICIPAL.into();
            }
            app.establish(&op, req).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .license
                .clone()
                .list_enterprises(with_token(
                    pb::ListEnterprisesRequest {
                        page_size: 2,
                        page_token: token,
                        ..Default::default()
                    },
                    &op,
                ))
                .await
                .unwrap()
                .into_inner();
            seen.extend(page.enterprises.into_iter().map(|e| e.uscc));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 5, "{backend:?}");
        let municipal = app
            .license
            .clone()
            .list_enterprises(with_token(
                pb::ListEnterprisesRequest {
                    registration_authority: MUNICIPAL.into(),
                    state: pb::EnterpriseState::Active as i32,
                    ..Default::default()
                },
                &op,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(municipal.enterprises.len(), 2);
        // A mistyped authority code is refused with the rule it breaks, not answered
        // "no enterprises".
        let mut typo = MUNICIPAL.to_owned();
        let last = if typo.ends_with('0') { '1' } else { '0' };
        typo.pop();
        typo.push(last);
        let status = assert_status(
            app.license
                .clone()
                .list_enterprises(with_token(
                    pb::ListEnterprisesRequest {
                        registration_authority: typo,
                        ..Default::default()
                    },
                    &op,
                ))
                .await,
            Code::InvalidArgument,
            "USCC_CHECK_DIGIT",
        );
        assert!(
            status.message().contains("registration authority"),
            "{status:?}"
        );

        // Closed enterprises are listed by state (alone and with the authority), from
        // the index of closed ones; active ones by walking the codes.
        let revoked = sh_uscc("310106", 101);
        app.license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: revoked.clone(),
                    reason: "提交虚假材料取得登记".into(),
                    ..Default::default()
                },
                &op,
            ))
            .await
            .unwrap();
        let list = |state: pb::EnterpriseState, authority: &str| {
            let mut license = app.license.clone();
            let req = with_token(
                pb::ListEnterprisesRequest {
                    registration_authority: authority.into(),
                    state: state as i32,
                    ..Default::default()
                },
                &op,
            );
            async move {
                let page = license.list_enterprises(req).await.unwrap().into_inner();
                page.enterprises
                    .into_iter()
                    .map(|e| e.uscc)
                    .collect::<Vec<_>>()
            }
        };
        let closed = pb::EnterpriseState::Revoked;
        assert_eq!(list(closed, "").await, vec![revoked.clone()], "{backend:?}");
        assert_eq!(list(closed, MUNICIPAL).await, vec![revoked.clone()]);
        assert!(list(closed, JINGAN).await.is_empty());
        assert!(list(pb::EnterpriseState::Deregistered, "").await.is_empty());
        assert_eq!(list(pb::EnterpriseState::Active, "").await.len(), 4);
        assert_eq!(list(pb::EnterpriseState::Active, MUNICIPAL).await.len(), 1);
        assert_eq!(
            list(pb::EnterpriseState::Unspecified, MUNICIPAL)
                .await
                .len(),
            2
        );
    }
}
