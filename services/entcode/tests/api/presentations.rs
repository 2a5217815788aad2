//! Scenario presentations: exact disclosure, single use, expiry, revocation.

use credmesh_proto::{
    credential::v1::{Credential, CredentialKind},
    entcode::v1::PresentationOutcome,
    prost::Message as _,
};
use credmesh_runtime::Clock as _;
use tonic::Code;

use crate::helpers::{BOTH, Backend, read_qr, sh_uscc, spawn_app, spawn_with_cache};

/// The license claims each scenario must disclose, and only those.
const EXPECTED: &[(&str, &[&str])] = &[
    ("basic", &["name", "uscc", "entity_type", "domicile"]),
    (
        "bank-loan",
        &[
            "name",
            "uscc",
            "entity_type",
            "legal_representative",
            "registered_capital",
            "establishment_date",
            "business_term",
        ],
    ),
    (
        "bidding",
        &[
            "name",
            "uscc",
            "entity_type",
            "registered_capital",
            "business_scope",
            "business_term",
            "registration_authority",
        ],
    ),
    (
        "inspection",
        &[
            "name",
            "uscc",
            "domicile",
            "business_scope",
            "legal_representative",
        ],
    ),
];

#[tokio::test]
async fn each_scenario_discloses_exactly_its_fields_and_nothing_else() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(10);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        for (scenario, fields) in EXPECTED {
            let p = app.present(&me, &uscc, scenario).await.unwrap();
            assert_eq!(p.expires_at, app.clock.now() + 300, "5 minutes by default");
            let names: Vec<&str> = p.disclosed.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(&names, fields, "{scenario}: the answer");
            // The signed payload itself holds nothing more.
            let signed = p.presentation.clone().unwrap();
            let cred = Credential::decode(signed.envelope.unwrap().payload.as_slice()).unwrap();
            assert_eq!(cred.kind, CredentialKind::Presentation as i32);
            let signed_names: Vec<&str> = cred.claims.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(&signed_names, fields, "{scenario}: the credential");
            assert_eq!(cred.nonce.len(), 16);
            // And the verifier learns exactly the same.
            let v = app.verify(&bank, &signed.qr_text).await.unwrap();
            assert_eq!(v.outcome, PresentationOutcome::Valid as i32, "{v:?}");
            assert_eq!(v.scenario, *scenario);
            let verified: Vec<&str> = v.disclosed.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(&verified, fields, "{scenario}: the verification");
        }
        let err = app.present(&me, &uscc, "everything").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn only_the_enterprise_itself_may_present() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(11);
        app.establish(&dept, &uscc).await;
        let other = app.enterprise(&sh_uscc(12)).await;
        let err = app.present(&other, &uscc, "basic").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        let err = app.present(&dept, &uscc, "basic").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
}

#[tokio::test]
async fn a_second_use_is_refused_as_already_used() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(13);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        let qr = app
            .present(&me, &uscc, "bank-loan")
            .await
            .unwrap()
            .presentation
            .unwrap()
            .qr_text;
        let first = app.verify(&bank, &qr).await.unwrap();
        assert_eq!(first.outcome, PresentationOutcome::Valid as i32);
        let second = app.verify(&bank, &qr).await.unwrap();
        assert_eq!(second.outcome, PresentationOutcome::AlreadyUsed as i32);
        assert_eq!(second.reason, "ALREADY_USED");
        assert!(
            second.disclosed.is_empty(),
            "a refused answer discloses nothing"
        );
        // The scan page agrees when asked to check it.
        let (_, html) = app.http_post(&crate_scan_path(&qr)).await;
        assert!(
            html.contains("ALREADY_USED") && html.contains("已使用"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn a_scanned_presentation_image_is_a_link_that_verifies_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(14);
    let me = app.enterprise(&uscc).await;
    let bank = app.bank().await;
    app.establish(&dept, &uscc).await;
    let answer = app.present(&me, &uscc, "bank-loan").await.unwrap();
    let presentation = answer.presentation.unwrap();

    // The image holds the scan page's URL, which carries the QR text, both in the PNG
    // and the SVG (the same code).
    let link = read_qr(&presentation.qr_png);
    assert_eq!(link, answer.scan_url);
    assert_eq!(link, format!("http://{}{}", app.addr, answer.scan_path));
    assert_eq!(
        credmesh_credential::unwrap_scan_url(&link),
        presentation.qr_text
    );
    assert_eq!(
        presentation.qr_svg,
        credmesh_entcode::api::http::qr_svg(&link).unwrap()
    );

    // A bank's scanner hands over the link as read: it verifies, and only once.
    let first = app.verify(&bank, &link).await.unwrap();
    assert_eq!(
        first.outcome,
        PresentationOutcome::Valid as i32,
        "{first:?}"
    );
    let again = app.verify(&bank, &presentation.qr_text).await.unwrap();
    assert_eq!(again.outcome, PresentationOutcome::AlreadyUsed as i32);
}

fn crate_scan_path(qr: &str) -> String {
    credmesh_entcode::api::http::scan_path(qr)
}

#[tokio::test]
async fn an_expired_presentation_is_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(14);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        let qr = app
            .present(&me, &uscc, "basic")
            .await
            .unwrap()
            .presentation
            .unwrap()
            .qr_text;
        app.clock.advance(300 + 31);
        let v = app.verify(&bank, &qr).await.unwrap();
        assert_eq!(v.outcome, PresentationOutcome::Expired as i32, "{v:?}");
        assert!(v.disclosed.is_empty());
    }
}

#[tokio::test]
async fn a_presentation_of_a_revoked_enterprise_is_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(15);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        let qr = app
            .present(&me, &uscc, "bidding")
            .await
            .unwrap()
            .presentation
            .unwrap()
            .qr_text;
        app.revoke(&dept, &uscc).await;
        let v = app.verify(&bank, &qr).await.unwrap();
        assert_eq!(
            v.outcome,
            PresentationOutcome::LicenseNotActive as i32,
            "{v:?}"
        );
        assert!(v.disclosed.is_empty());
        // And no new presentation can be made.
        let err = app.present(&me, &uscc, "basic").await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
    }
}

#[tokio::test]
async fn a_tampered_presentation_does_not_verify() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(16);
    let me = app.enterprise(&uscc).await;
    let bank = app.bank().await;
    app.establish(&dept, &uscc).await;
    let mut envelope = app
        .present(&me, &uscc, "basic")
        .await
        .unwrap()
        .presentation
        .unwrap()
        .envelope
        .unwrap();
    let mut cred = Credential::decode(envelope.payload.as_slice()).unwrap();
    cred.claims.push(credmesh_proto::credential::v1::Claim {
        name: "legal_representative".into(),
        value: "forged".into(),
    });
    envelope.payload = cred.encode_to_vec();
    let qr = credmesh_credential::qr::to_qr(&envelope);
    let v = app.verify(&bank, &qr).await.unwrap();
    assert_eq!(v.outcome, PresentationOutcome::BadSignature as i32, "{v:?}");
}

#[tokio::test]
async fn verification_is_refused_when_the_nonce_record_is_unreachable() {
    // A Redis of our own, stopped before the check: the service must not guess.
    let mut redis = credmesh_testkit::redis::RedisServer::start().await.unwrap();
    let app = spawn_with_cache(Backend::Postgres, Some(redis.url())).await;
    let dept = app.department().await;
    let uscc = sh_uscc(17);
    let me = app.enterprise(&uscc).await;
    let bank = app.bank().await;
    app.establish(&dept, &uscc).await;
    let qr = app
        .present(&me, &uscc, "basic")
        .await
        .unwrap()
        .presentation
        .unwrap()
        .qr_text;
    redis.stop().await;
    let err = app.verify(&bank, &qr).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        credmesh_proto::status::reason(&err).as_deref(),
        Some("NONCE_STORE_UNAVAILABLE")
    );
}

#[tokio::test]
async fn a_use_recorded_by_the_verify_gateway_counts_here_too() {
    // The gateway records `nonce/<issuer>/<hex>` under the shared prefix; so does entcode.
    let app = spawn_app(Backend::Postgres).await;
    let dept = app.department().await;
    let uscc = sh_uscc(18);
    let me = app.enterprise(&uscc).await;
    let bank = app.bank().await;
    app.establish(&dept, &uscc).await;
    let signed = app
        .present(&me, &uscc, "bank-loan")
        .await
        .unwrap()
        .presentation
        .unwrap();
    let cred = Credential::decode(signed.envelope.unwrap().payload.as_slice()).unwrap();
    let gateway = credmesh_cache::Cache::connect(
        &app.cache.0,
        credmesh_cache::CacheOptions {
            key_prefix: app.cache.1.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let hex: String = cred.nonce.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("nonce/{}/{hex}", cred.issuer);
    assert!(
        gateway
            .set_if_absent(&key, b"1", std::time::Duration::from_secs(600))
            .await
            .unwrap()
    );
    let v = app.verify(&bank, &signed.qr_text).await.unwrap();
    assert_eq!(v.outcome, PresentationOutcome::AlreadyUsed as i32, "{v:?}");
}
