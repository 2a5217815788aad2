//! Lifecycle: suspend, reinstate, revoke, renew, expire — each seen by a verifier,
//! each audited, each only by the issuing department.

use credmesh_credential::Outcome;
use credmesh_proto::certificate::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn suspend_reinstate_renew_expire_and_revoke_as_a_verifier_sees_them() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(20);
        app.establish(&uscc).await;
        let dept = app.department("market", MARKET).await;
        let mut req = food_permit(&uscc);
        req.validity_days = 30;
        let v1 = app.issue(&dept, req).await.unwrap();
        let serial = v1.serial.clone();
        let mut api = app.certificate.clone();

        let suspended = api
            .suspend_certificate(with_token(
                pb::SuspendCertificateRequest {
                    serial: serial.clone(),
                    reason: "抽检不合格，限期整改".into(),
                    idempotency_key: "s1".into(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner()
            .certificate
            .unwrap();
        assert_eq!(suspended.state, pb::CertificateState::Suspended as i32);
        assert_eq!(
            app.verify(&v1).await.outcome,
            Outcome::Suspended,
            "{backend:?}"
        );
        assert_status(
            api.renew_certificate(with_token(
                pb::RenewCertificateRequest {
                    serial: serial.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await,
            Code::FailedPrecondition,
            "CERTIFICATE_STATE",
        );

        api.reinstate_certificate(with_token(
            pb::ReinstateCertificateRequest {
                serial: serial.clone(),
                reason: "整改合格".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
        assert_eq!(app.verify(&v1).await.outcome, Outcome::Valid);

        // Past its 30 days the permit is expired, and a renewal gives version 2.
        app.clock.advance(31 * 86_400);
        let dept = app.department("market-later", MARKET).await;
        assert_eq!(
            app.get(&dept, &serial).await.state,
            pb::CertificateState::Expired as i32
        );
        assert_eq!(app.verify(&v1).await.outcome, Outcome::Expired);
        let renewed = api
            .renew_certificate(with_token(
                pb::RenewCertificateRequest {
                    serial: serial.clone(),
                    validity_days: 365,
                    idempotency_key: "r1".into(),
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(renewed.superseded_version, 1);
        let v2 = renewed.certificate.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.state, pb::CertificateState::Active as i32);
        assert_eq!(app.verify(&v2).await.outcome, Outcome::Valid);
        assert!(matches!(
            app.verify(&v1).await.outcome,
            Outcome::Revoked { superseded: true }
        ));

        api.revoke_certificate(with_token(
            pb::RevokeCertificateRequest {
                serial: serial.clone(),
                reason: "以欺骗手段取得许可".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
        assert!(matches!(
            app.verify(&v2).await.outcome,
            Outcome::Revoked { superseded: false }
        ));
        assert_status(
            api.reinstate_certificate(with_token(
                pb::ReinstateCertificateRequest {
                    serial: serial.clone(),
                    reason: "x".into(),
                    idempotency_key: String::new(),
                },
                &dept,
            ))
            .await,
            Code::FailedPrecondition,
            "CERTIFICATE_STATE",
        );

        let history = app.service.store().history(&serial, 0, 100).await.unwrap();
        let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "certificate.issue",
                "certificate.suspend",
                "certificate.reinstate",
                "certificate.renew",
                "certificate.revoke"
            ],
            "{backend:?}"
        );
        assert!(history.iter().all(|h| h.actor.starts_with("market")));
        let versions = app.service.store().versions(&serial).await.unwrap();
        assert_eq!(versions.iter().filter(|v| v.is_current).count(), 1);
    }
}

#[tokio::test]
async fn only_the_issuing_department_changes_a_certificate() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let uscc = sh_uscc(21);
        app.establish(&uscc).await;
        let dept = app.department("market", MARKET).await;
        let c = app.issue(&dept, food_permit(&uscc)).await.unwrap();
        let other = app
            .department(
                "pudong",
                credmesh_certificate::domain::types::SH_PUDONG_MARKET,
            )
            .await;
        let holder = app.enterprise("ent-21", &uscc).await;
        for token in [&other, &holder] {
            let r = app
                .certificate
                .clone()
                .revoke_certificate(with_token(
                    pb::RevokeCertificateRequest {
                        serial: c.serial.clone(),
                        reason: "无权撤销".into(),
                        idempotency_key: String::new(),
                    },
                    token,
                ))
                .await;
            assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "{backend:?}");
            let mut api = app.certificate.clone();
            let serial = c.serial.clone();
            let refused = [
                api.suspend_certificate(with_token(
                    pb::SuspendCertificateRequest {
                        serial: serial.clone(),
                        reason: "无权暂停".into(),
                        idempotency_key: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
                api.reinstate_certificate(with_token(
                    pb::ReinstateCertificateRequest {
                        serial: serial.clone(),
                        reason: "无权恢复".into(),
                        idempotency_key: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
                api.renew_certificate(with_token(
                    pb::RenewCertificateRequest {
                        serial: serial.clone(),
                        validity_days: 365,
                        idempotency_key: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
                api.record_follow_up(with_token(
                    pb::RecordFollowUpRequest {
                        serial: serial.clone(),
                        compliant: false,
                        finding: "无权核查".into(),
                        idempotency_key: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
            ];
            for r in refused {
                assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "{backend:?}");
            }
        }
        // Refusals change nothing and audit no change.
        let history = app
            .service
            .store()
            .history(&c.serial, 0, 100)
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "{backend:?}");
        assert_eq!(app.get(&dept, &c.serial).await.version, 1);
        // The holder reads its own, another enterprise does not.
        assert_eq!(app.get(&holder, &c.serial).await.serial, c.serial);
        let stranger = app.enterprise("ent-x", &sh_uscc(22)).await;
        assert_status(
            app.certificate
                .clone()
                .get_certificate(with_token(
                    pb::GetCertificateRequest {
                        serial: c.serial.clone(),
                    },
                    &stranger,
                ))
                .await,
            Code::PermissionDenied,
            "NOT_HOLDER",
        );
    }
}

#[tokio::test]
async fn the_seeded_types_include_a_one_industry_one_permit_bundle() {
    use credmesh_certificate::domain::types::{
        CONVENIENCE_STORE_COMPREHENSIVE, SH_PUDONG_MARKET, public_hygiene_code,
    };
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("market", MARKET).await;
        let types = app
            .certificate
            .clone()
            .list_certificate_types(with_token(
                pb::ListCertificateTypesRequest::default(),
                &dept,
            ))
            .await
            .unwrap()
            .into_inner()
            .types;
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"食品经营许可证"), "{names:?}");
        assert!(names.contains(&"公共场所卫生许可证"), "{names:?}");
        assert_eq!(types.len(), 3);
        let bundle = types
            .iter()
            .find(|t| t.type_code == CONVENIENCE_STORE_COMPREHENSIVE)
            .unwrap();
        assert_eq!(bundle.industry, "便利店");
        assert_eq!(bundle.bundles, [FOOD.to_string(), public_hygiene_code()]);

        // The bundle is one credential, issued by its own department, naming the
        // industry and the permits it replaces.
        let uscc = sh_uscc(24);
        app.establish(&uscc).await;
        let pudong = app.department("pudong", SH_PUDONG_MARKET).await;
        let field = |name: &str, value: &str| pb::Field {
            name: name.into(),
            value: value.into(),
        };
        let c = app
            .issue(
                &pudong,
                pb::IssueCertificateRequest {
                    holder: uscc.clone(),
                    type_code: CONVENIENCE_STORE_COMPREHENSIVE.into(),
                    fields: vec![
                        field("operator_name", "上海浦东便利店有限公司"),
                        field("legal_representative", "李华"),
                        field("address", "上海市浦东新区世纪大道100号"),
                        field("food_business_items", "预包装食品销售"),
                    ],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let v = app.verify(&c).await;
        assert_eq!(v.outcome, Outcome::Valid, "{backend:?}: {}", v.detail);
        let claims = v.credential.unwrap().claims;
        let claim = |n: &str| {
            claims
                .iter()
                .find(|c| c.name == n)
                .map(|c| c.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(claim("industry"), "便利店");
        assert_eq!(
            claim("bundled_types"),
            format!("{FOOD},{}", public_hygiene_code())
        );

        // Operators register new types; departments cannot.
        let mut t = bundle.clone();
        t.type_code = "11310000MB2F10003D102".into();
        t.name = "行业综合许可证（小餐饮）".into();
        t.industry = "小餐饮".into();
        let register = |t: pb::CertificateType, token: String| {
            let mut api = app.certificate.clone();
            async move {
                api.register_certificate_type(with_token(
                    pb::RegisterCertificateTypeRequest {
                        r#type: Some(t),
                        idempotency_key: String::new(),
                    },
                    &token,
                ))
                .await
            }
        };
        assert_status(
            register(t.clone(), dept.clone()).await,
            Code::PermissionDenied,
            "AUTH_SCOPE_MISSING",
        );
        let operator = app
            .client(
                "type-admin",
                credmesh_auth::PrincipalKind::Operator,
                &["certificate.admin"],
                "",
            )
            .await;
        // A bundle of a type nobody registered is refused, naming the entry.
        let mut unknown = t.clone();
        unknown.bundles[1] = "11310000MB2F10003D999".into();
        let s = assert_status(
            register(unknown, operator.clone()).await,
            Code::InvalidArgument,
            "BUNDLED_TYPE_UNKNOWN",
        );
        let fields: Vec<String> = credmesh_proto::status::field_violations(&s)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["type.bundles[1]"], "{backend:?}");
        // So is a "bundle" of one permit.
        let mut single = t.clone();
        single.bundles.truncate(1);
        assert_status(
            register(single, operator.clone()).await,
            Code::InvalidArgument,
            "BUNDLE_INVALID",
        );
        let registered = register(t, operator)
            .await
            .unwrap()
            .into_inner()
            .r#type
            .unwrap();
        assert_eq!(registered.bundles, bundle.bundles);
    }
}

#[tokio::test]
async fn a_status_change_within_one_second_still_orders_the_signed_lists() {
    use credmesh_proto::{
        credential::v1::{StatusList, StatusPurpose},
        prost::Message as _,
    };
    let app = spawn_app(Backend::Sqlite).await;
    let uscc = sh_uscc(23);
    app.establish(&uscc).await;
    let dept = app.department("market", MARKET).await;
    let c = app.issue(&dept, food_permit(&uscc)).await.unwrap();
    let sequence = async |app: &TestApp| {
        let env = app.status_list(StatusPurpose::Suspension).await;
        StatusList::decode(env.payload.as_slice()).unwrap().sequence
    };
    let before = sequence(&app).await;
    app.certificate
        .clone()
        .suspend_certificate(with_token(
            pb::SuspendCertificateRequest {
                serial: c.serial.clone(),
                reason: "抽检".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
    let suspended = sequence(&app).await;
    app.certificate
        .clone()
        .reinstate_certificate(with_token(
            pb::ReinstateCertificateRequest {
                serial: c.serial.clone(),
                reason: "整改合格".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
    let reinstated = sequence(&app).await;
    // The manual clock has not moved: only the change counter orders them.
    assert!(
        before < suspended && suspended < reinstated,
        "{before} {suspended} {reinstated}"
    );
}

#[tokio::test]
async fn an_unchanged_list_is_served_signed_once_until_a_change_or_its_refresh_interval() {
    use credmesh_proto::{
        credential::v1::{Envelope, StatusList, StatusPurpose},
        prost::Message as _,
    };
    let app = spawn_app(Backend::Sqlite).await;
    let uscc = sh_uscc(24);
    app.establish(&uscc).await;
    let dept = app.department("market", MARKET).await;
    let c = app.issue(&dept, food_permit(&uscc)).await.unwrap();
    let list = async |app: &TestApp| app.status_list(StatusPurpose::Revocation).await;
    let unsigned = |env: &Envelope| StatusList::decode(env.payload.as_slice()).unwrap();
    let first = list(&app).await;
    app.clock.advance(30);
    assert_eq!(
        list(&app).await,
        first,
        "within the refresh interval the same signed list is served"
    );
    // A change is published at once, though the interval has not passed.
    app.certificate
        .clone()
        .revoke_certificate(with_token(
            pb::RevokeCertificateRequest {
                serial: c.serial.clone(),
                reason: "吊销".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
    let revoked = list(&app).await;
    assert_ne!(revoked, first);
    assert_eq!(
        unsigned(&revoked).updated_at,
        unsigned(&first).updated_at + 30
    );
    // Unchanged again: the next one is signed once the interval has passed.
    app.clock.advance(59);
    assert_eq!(list(&app).await, revoked);
    app.clock.advance(1);
    let refreshed = list(&app).await;
    assert_eq!(
        unsigned(&refreshed).updated_at,
        unsigned(&revoked).updated_at + 60
    );
    assert!(unsigned(&refreshed).sequence > unsigned(&revoked).sequence);
    assert_eq!(
        unsigned(&refreshed).encoded_list,
        unsigned(&revoked).encoded_list
    );
}
