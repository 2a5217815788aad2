//! The stable enterprise code.

use credmesh_auth::PrincipalKind;
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind},
    license::v1 as pb,
    prost::Message as _,
};
use tonic::Code;

use crate::helpers::{BOTH, sh_uscc, spawn_app, with_token};

#[tokio::test]
async fn the_code_exists_from_the_first_license_and_survives_amendments_unchanged() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(1);
        let me = app.enterprise(&uscc).await;

        // No license, no code.
        let err = app.code(&me, &uscc).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");

        // The first license: the code is there, nobody applied for it.
        app.establish(&dept, &uscc).await;
        let first = app.code(&me, &uscc).await.unwrap();
        let code = first.code.clone().unwrap();
        assert_eq!(code.id, format!("urn:credmesh:entcode:{uscc}"));
        assert!(code.qr_text.starts_with("CM1:"));
        assert!(code.qr_svg.starts_with("<?xml") || code.qr_svg.contains("<svg"));
        assert_eq!(&code.qr_png[..8], b"\x89PNG\r\n\x1a\n");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("entcode-code-qr.png"), &code.qr_png).unwrap();
        std::fs::write(dir.join("entcode-code-qr.svg"), &code.qr_svg).unwrap();
        assert_eq!(first.name, "上海静安面馆有限公司");
        let cred = Credential::decode(code.envelope.as_ref().unwrap().payload.as_slice()).unwrap();
        assert_eq!(cred.kind, CredentialKind::EnterpriseCode as i32);
        assert_eq!(cred.issuer, "SH/entcode");
        assert_eq!(cred.subject, uscc);

        // An amendment changes the license, not the code: same bytes, same QR.
        app.clock.advance(120);
        app.license
            .clone()
            .amend_license(with_token(
                pb::AmendLicenseRequest {
                    uscc: uscc.clone(),
                    name: Some("上海静安牛肉面馆有限公司".into()),
                    reason: "名称变更".into(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap();
        let after = app.code(&me, &uscc).await.unwrap();
        assert_eq!(after.code.clone().unwrap().qr_text, code.qr_text);
        assert_eq!(after.code.unwrap().envelope, code.envelope);
        assert_eq!(after.name, "上海静安牛肉面馆有限公司");

        // A department reads any code; another enterprise may not.
        let reader = app
            .client(
                "reader",
                PrincipalKind::Department,
                &["entcode.read"],
                crate::helpers::JINGAN,
            )
            .await;
        assert!(app.code(&reader, &uscc).await.is_ok());
        let other = app.enterprise(&sh_uscc(2)).await;
        let err = app.code(&other, &uscc).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

        // Revocation withdraws it.
        app.revoke(&dept, &uscc).await;
        let err = app.code(&me, &uscc).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert_eq!(
            credmesh_proto::status::reason(&err).as_deref(),
            Some("ENTERPRISE_NOT_ACTIVE")
        );
    }
}

#[tokio::test]
async fn the_scan_page_shows_a_valid_code_and_a_withdrawn_one() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department().await;
        let uscc = sh_uscc(3);
        let me = app.enterprise(&uscc).await;
        app.establish(&dept, &uscc).await;
        let path = app.code(&me, &uscc).await.unwrap().scan_path;

        let (status, html) = app.http_get(&path).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("data-outcome=\"VALID\""), "{html}");
        assert!(html.contains("有效") && html.contains("Valid"));
        assert!(html.contains("上海静安面馆有限公司"));
        assert!(html.contains(&uscc));

        app.revoke(&dept, &uscc).await;
        let (status, html) = app.http_get(&path).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("data-outcome=\"LICENSE_NOT_ACTIVE\""),
            "{html}"
        );
        assert!(html.contains("revoked"));
        // A withdrawn code shows no license fields.
        assert!(!html.contains("南京西路"));

        let (status, html) = app.http_get("/v/CM1:%3Cscript%3E").await;
        assert_eq!(status, 200);
        assert!(html.contains("MALFORMED"));
        assert!(!html.contains("<script>"));
    }
}
