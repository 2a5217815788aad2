//! The permits linked to an enterprise (from the certificate service) on the scan page
//! and in GetEnterpriseCode, and the `permits` and `credit_grade` scenario fields (the
//! latter from the inspection service): real certificate and inspection services served
//! beside identity, license and entcode.

use credmesh_auth::PrincipalKind;
use credmesh_proto::{
    certificate::v1 as cpb,
    entcode::v1::{self as epb, PermitState, PresentationOutcome},
    status,
};
use tonic::Code;

use crate::helpers::{
    Backend, Sources, TestApp, sh_uscc, spawn_app, spawn_with_sources, with_token,
};

const MUNICIPAL_MARKET: &str = credmesh_certificate::domain::types::SH_MUNICIPAL_MARKET;
const FOOD: &str = credmesh_certificate::domain::types::FOOD_BUSINESS;

fn food_permit(uscc: &str) -> cpb::IssueCertificateRequest {
    let field = |name: &str, value: &str| cpb::Field {
        name: name.into(),
        value: value.into(),
    };
    cpb::IssueCertificateRequest {
        holder: uscc.into(),
        type_code: FOOD.into(),
        fields: vec![
            field("operator_name", "上海静安面馆有限公司"),
            field("legal_representative", "王小明"),
            field("address", "上海市静安区南京西路1000号"),
            field("main_business", "餐饮服务经营者"),
            field("business_items", "热食类食品制售"),
        ],
        ..Default::default()
    }
}

impl TestApp {
    /// Issues a food business permit to `uscc` as the municipal market bureau.
    pub(crate) async fn issue_food_permit(&self, bureau: &str, uscc: &str) -> cpb::Certificate {
        self.certificate
            .clone()
            .unwrap()
            .issue_certificate(with_token(food_permit(uscc), bureau))
            .await
            .unwrap()
            .into_inner()
            .certificate
            .unwrap()
    }

    /// Revokes the permit `serial` as the municipal market bureau.
    pub(crate) async fn revoke_permit(&self, bureau: &str, serial: &str) {
        self.certificate
            .clone()
            .unwrap()
            .revoke_certificate(with_token(
                cpb::RevokeCertificateRequest {
                    serial: serial.to_string(),
                    reason: "以欺骗手段取得许可".into(),
                    idempotency_key: String::new(),
                },
                bureau,
            ))
            .await
            .unwrap();
    }

    /// A department token of the municipal market bureau, which issues food permits.
    pub(crate) async fn market_bureau(&self) -> String {
        self.client(
            "sh-market",
            PrincipalKind::Department,
            &["certificate.issue", "certificate.read"],
            MUNICIPAL_MARKET,
        )
        .await
    }

    async fn put_scenario(&self, name: &str, fields: &[&str]) {
        let operator = self.token_for("operator", &self.operator).await;
        self.entcode
            .clone()
            .put_scenario(with_token(
                epb::PutScenarioRequest {
                    name: name.into(),
                    description: format!("{name}: a test scenario"),
                    fields: fields.iter().map(|f| f.to_string()).collect(),
                    reason: "tenders ask for permits and the credit grade".into(),
                    expected_version: None,
                    idempotency_key: String::new(),
                },
                &operator,
            ))
            .await
            .unwrap();
    }
}

fn disclosed(list: &[epb::Disclosed]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect()
}

#[tokio::test]
async fn the_code_shows_the_holders_permits_and_scenarios_disclose_permits_and_grade() {
    let app = spawn_with_sources(Backend::Sqlite, Sources::Live).await;
    let dept = app.department().await;
    let bureau = app.market_bureau().await;
    let (holder, other) = (sh_uscc(60), sh_uscc(61));
    app.establish(&dept, &holder).await;
    app.establish(&dept, &other).await;
    let valid = app.issue_food_permit(&bureau, &holder).await;
    let revoked = app.issue_food_permit(&bureau, &other).await;
    app.revoke_permit(&bureau, &revoked.serial).await;
    let me = app.enterprise(&holder).await;
    let them = app.enterprise(&other).await;

    // GetEnterpriseCode lists the permit with its type, state, department and last day.
    let code = app.code(&me, &holder).await.unwrap();
    assert!(!code.permits_unavailable);
    assert_eq!(code.permits.len(), 1, "{:?}", code.permits);
    let p = &code.permits[0];
    assert_eq!(p.serial, valid.serial);
    assert_eq!(p.type_code, FOOD);
    assert_eq!(p.type_name, "食品经营许可证");
    assert_eq!(p.state(), PermitState::Valid);
    assert_eq!(p.department, MUNICIPAL_MARKET);
    assert_eq!(p.department_name, "上海市市场监督管理局");
    assert_eq!(p.valid_until, valid.valid_until);
    let theirs = app.code(&them, &other).await.unwrap();
    assert_eq!(theirs.permits.len(), 1);
    assert_eq!(theirs.permits[0].state(), PermitState::Revoked);

    // The scan page shows it under the license, in Chinese and English.
    let (status, html) = app.http_get(&code.scan_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-outcome=\"VALID\""), "{html}");
    assert!(html.contains("许可证 · Permits"), "{html}");
    assert!(
        html.contains(&format!(
            "data-serial=\"{}\" data-state=\"valid\"",
            valid.serial
        )),
        "{html}"
    );
    assert!(html.contains("食品经营许可证"));
    assert!(html.contains("上海市市场监督管理局"));
    assert!(html.contains(&valid.valid_until));
    assert!(html.contains("有效期至 · Valid until"));
    assert!(html.find("id=\"disclosed\"") < html.find("id=\"permits\""));
    let (_, html) = app.http_get(&theirs.scan_path).await;
    assert!(
        html.contains(&format!(
            "data-serial=\"{}\" data-state=\"revoked\"",
            revoked.serial
        )),
        "{html}"
    );
    assert!(html.contains("已撤销 · revoked"), "{html}");

    // A scenario of permits and the credit grade discloses exactly those values: the
    // valid permits only, and the grade the inspection service answers (its default, A).
    app.put_scenario("tender-plus", &["name", "permits", "credit_grade"])
        .await;
    let shown = app.present(&me, &holder, "tender-plus").await.unwrap();
    let expected_permits = format!("食品经营许可证 {} 至{}", valid.serial, valid.valid_until);
    assert_eq!(
        disclosed(&shown.disclosed),
        [
            ("name", "上海静安面馆有限公司"),
            ("permits", expected_permits.as_str()),
            ("credit_grade", "A"),
        ]
    );
    let bank = app.bank().await;
    let checked = app
        .verify(&bank, &shown.presentation.unwrap().qr_text)
        .await
        .unwrap();
    assert_eq!(checked.outcome(), PresentationOutcome::Valid);
    assert_eq!(disclosed(&checked.disclosed), disclosed(&shown.disclosed));

    // A revoked permit is not disclosed as held.
    let shown = app.present(&them, &other, "tender-plus").await.unwrap();
    assert_eq!(
        disclosed(&shown.disclosed)[1..],
        [("permits", "无"), ("credit_grade", "A")]
    );
}

#[tokio::test]
async fn a_silent_certificate_service_leaves_the_license_and_refuses_the_extra_fields() {
    let app = spawn_with_sources(Backend::Sqlite, Sources::Down).await;
    let dept = app.department().await;
    let uscc = sh_uscc(62);
    app.establish(&dept, &uscc).await;
    let me = app.enterprise(&uscc).await;

    let code = app.code(&me, &uscc).await.unwrap();
    assert!(code.permits_unavailable);
    assert!(code.permits.is_empty());
    let (status, html) = app.http_get(&code.scan_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-outcome=\"VALID\""), "{html}");
    assert!(html.contains("南京西路"), "the license is still shown");
    assert!(html.contains("data-permits=\"unavailable\""), "{html}");
    assert!(html.contains("The permits could not be loaded"));

    for (scenario, field) in [("with-permits", "permits"), ("with-grade", "credit_grade")] {
        app.put_scenario(scenario, &["name", field]).await;
        let err = app.present(&me, &uscc, scenario).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(
            status::reason(&err).as_deref(),
            Some("FIELD_SOURCE_UNAVAILABLE")
        );
        assert!(err.message().contains(field), "{}", err.message());
    }
    // Scenarios of license fields only are unaffected.
    assert!(app.present(&me, &uscc, "basic").await.is_ok());

    // A license is not signed here, so its page asks the verify gateway: silent, the
    // page says it cannot be checked now (503, retry shortly), never "unknown issuer".
    let license = app
        .license
        .clone()
        .establish_enterprise(with_token(crate::helpers::restaurant(&sh_uscc(63)), &dept))
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap()
        .credential
        .unwrap();
    let path = credmesh_credential::qr::scan_path(&license.qr_text);
    let (status, html) = app.http_get(&path).await;
    assert_eq!(status, 503, "{html}");
    assert!(html.contains("data-outcome=\"UNAVAILABLE\""), "{html}");
    assert!(
        !html.contains("UNKNOWN_ISSUER") && !html.contains("签发者未知"),
        "{html}"
    );
}

#[tokio::test]
async fn without_the_optional_services_no_permits_are_shown_and_the_grade_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(63);
    app.establish(&dept, &uscc).await;
    let me = app.enterprise(&uscc).await;
    let code = app.code(&me, &uscc).await.unwrap();
    assert!(code.permits_unavailable && code.permits.is_empty());
    let (_, html) = app.http_get(&code.scan_path).await;
    assert!(!html.contains("id=\"permits\""), "{html}");

    app.put_scenario("with-grade", &["name", "credit_grade"])
        .await;
    let err = app.present(&me, &uscc, "with-grade").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("CREDMESH_INSPECTION_URL"),
        "{}",
        err.message()
    );
}

/// While the holder's data dispute about a permit is open, GetEnterpriseCode and the
/// scan page say the permit's data is disputed and name the fields, as the verify
/// gateway does; the permit keeps its state.
#[tokio::test]
async fn a_permit_under_an_open_data_dispute_is_shown_disputed_with_its_fields() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_with_sources(backend, Sources::Live).await;
        let dept = app.department().await;
        let bureau = app.market_bureau().await;
        let holder = sh_uscc(64);
        app.establish(&dept, &holder).await;
        let permit = app.issue_food_permit(&bureau, &holder).await;
        let me = app.enterprise(&holder).await;
        let code = app.code(&me, &holder).await.unwrap();
        assert!(code.permits[0].disputed_fields.is_empty(), "{backend:?}");
        let (_, html) = app.http_get(&code.scan_path).await;
        assert!(!html.contains("data-disputed"), "{html}");

        let filer = app
            .client(
                &format!("filer-{}", holder.to_ascii_lowercase()),
                PrincipalKind::Enterprise,
                &["certificate.dispute"],
                &holder,
            )
            .await;
        app.certificate
            .clone()
            .unwrap()
            .file_dispute(with_token(
                cpb::FileDisputeRequest {
                    serial: permit.serial.clone(),
                    fields: vec![cpb::DisputedField {
                        name: "address".into(),
                        recorded_value: String::new(),
                        claimed_value: "上海市静安区南京西路1001号".into(),
                    }],
                    evidence_sha256: vec!["ab".repeat(32)],
                    explanation: "门牌号登记有误".into(),
                    idempotency_key: String::new(),
                },
                &filer,
            ))
            .await
            .unwrap();

        let code = app.code(&me, &holder).await.unwrap();
        let p = &code.permits[0];
        assert_eq!(p.disputed_fields, ["address"], "{backend:?}");
        assert_eq!(p.state(), PermitState::Valid);
        let (status, html) = app.http_get(&code.scan_path).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&format!(
                "data-serial=\"{}\" data-state=\"valid\"",
                permit.serial
            )),
            "{html}"
        );
        assert!(html.contains("data-disputed=\"address\""), "{html}");
        assert!(
            html.contains("数据异议处理中 · Data disputed: address"),
            "{html}"
        );
    }
}
