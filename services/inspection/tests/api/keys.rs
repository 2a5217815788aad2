//! Codes outlive key rotations: a code signed by another key identity lists for the
//! inspection issuer scans; one signed by a key identity does not know is refused.

use credmesh_credential::{from_qr, keys::IssuerKey, sign_credential, to_qr};
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind},
    identity::v1 as ipb,
    inspection::v1::{self as pb, plan_inspection_response::Decision},
    prost::Message as _,
};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_code_signed_by_a_key_identity_lists_for_inspection_scans_and_others_do_not() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let uscc = sh_uscc(31);
        app.establish(&market, &uscc).await;
        app.enterprise(&uscc).await;
        let start = app.now() + 3600;
        let issued = match app
            .plan(&market, routine(&uscc, start, "insp-i1", "c1"))
            .await
            .unwrap()
        {
            Decision::Issued(i) => i,
            other => panic!("issued expected, got {other:?}"),
        };
        let envelope = from_qr(&issued.code.unwrap().qr_text).unwrap();
        let credential = Credential::decode(envelope.payload.as_slice()).unwrap();
        let resigned = |key: &IssuerKey| to_qr(&sign_credential(&credential, key));

        // A key identity lists for SH/inspection (registered by an operator, as a
        // rotation would), but not the service's current one.
        let rotated =
            IssuerKey::generate(credmesh_credential::kid_for("SH", "inspection", &[5; 32]))
                .unwrap();
        app.identity
            .clone()
            .register_issuer_key(with_token(
                ipb::RegisterIssuerKeyRequest {
                    issuer: "SH/inspection".into(),
                    kid: rotated.kid().into(),
                    public_key: rotated.public_key_bytes().to_vec(),
                    kinds: vec![CredentialKind::InspectionCode as i32],
                    not_after: 0,
                },
                &app.operator_token().await,
            ))
            .await
            .unwrap();
        let stranger = IssuerKey::generate("SH-inspection-unknown0000").unwrap();

        app.clock.set(start + 60);
        let owner = app
            .token(&format!("ent-{}", uscc.to_ascii_lowercase()))
            .await;
        let scan = |code: String| {
            let mut c = app.inspection.clone();
            let owner = owner.clone();
            async move {
                c.scan_code(with_token(pb::ScanCodeRequest { code }, &owner))
                    .await
            }
        };
        let unknown = scan(resigned(&stranger)).await.unwrap_err();
        assert_eq!(unknown.code(), Code::FailedPrecondition, "{unknown:?}");
        let shown = scan(resigned(&rotated)).await.unwrap().into_inner();
        assert!(shown.inspection.is_some(), "{backend:?}");
    }
}
