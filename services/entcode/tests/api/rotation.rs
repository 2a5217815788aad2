//! A printed enterprise code outlives a rotation of the service's signing key.

use credmesh_credential::{envelope::sign_credential, keys::IssuerKey, kid_for, qr::to_qr};
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind},
    identity::v1 as ipb,
    prost::Message as _,
};

use crate::helpers::{Backend, sh_uscc, spawn_app, with_token};

#[tokio::test]
async fn a_code_signed_by_an_earlier_key_still_resolves_once_identity_trusts_that_key() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(50);
    let me = app.enterprise(&uscc).await;
    app.establish(&dept, &uscc).await;
    let code = app.code(&me, &uscc).await.unwrap().code.unwrap();
    let credential = Credential::decode(code.envelope.unwrap().payload.as_slice()).unwrap();
    assert_eq!(credential.kind, CredentialKind::EnterpriseCode as i32);

    // The same code signed by another entcode key, unknown to identity: refused.
    let probe = IssuerKey::generate("probe").unwrap();
    let kid = kid_for("SH", "entcode", &probe.public_key_bytes());
    let other = IssuerKey::from_pkcs8_der(&kid, &probe.to_pkcs8_der()).unwrap();
    let qr = to_qr(&sign_credential(&credential, &other));
    let path = credmesh_entcode::api::http::scan_path(&qr);
    let (_, html) = app.http_get(&path).await;
    assert!(html.contains("data-outcome=\"UNKNOWN_ISSUER\""), "{html}");

    // Registered with identity (as a rotation would), it resolves.
    let token = app.token_for("entcode", &app.entcode_client).await;
    app.identity
        .clone()
        .register_issuer_key(with_token(
            ipb::RegisterIssuerKeyRequest {
                issuer: "SH/entcode".into(),
                kid: kid.clone(),
                public_key: other.public_key_bytes().to_vec(),
                kinds: vec![
                    CredentialKind::EnterpriseCode as i32,
                    CredentialKind::Presentation as i32,
                ],
                not_after: 0,
            },
            &token,
        ))
        .await
        .unwrap();
    app.clock.advance(credmesh_entcode::trust::REFRESH_SECS + 1);
    let (_, html) = app.http_get(&path).await;
    assert!(html.contains("data-outcome=\"VALID\""), "{html}");
    assert!(html.contains("上海静安面馆有限公司"));
}
