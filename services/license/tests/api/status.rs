use base64::Engine as _;
use credmesh_credential::{
    Bitstring, Outcome, Policy, Presented, decode_envelope, parse_vc_jwt, verify,
};
use credmesh_proto::{
    credential::v1::{StatusList, StatusPurpose},
    license::v1 as pb,
    prost::Message as _,
};
use tonic::Code;

use crate::helpers::*;

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn status_lists_are_published_signed_at_the_url_the_credential_names() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 41);
        let v = app
            .establish(&dept, restaurant(&uscc))
            .await
            .unwrap()
            .license
            .unwrap();
        let index = v.status_reference.as_ref().unwrap().index;
        let jwt = &v.credential.as_ref().unwrap().vc_jwt;
        let status = payload(jwt)["credentialStatus"].clone();
        let url = status[0]["statusListCredential"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            url,
            format!("http://{}/v1/status/SH/license/0/revocation", app.addr)
        );
        let path = url
            .trim_start_matches(&format!("http://{}", app.addr))
            .to_string();

        let (trust, _) = app.verifier().await;
        let fetch = |accept: &'static str| {
            let path = path.clone();
            let app = &app;
            async move { app.http_get(&path, accept).await }
        };
        let (code, content_type, body) = fetch("*/*").await;
        assert_eq!(code, 200, "{backend:?}");
        assert_eq!(content_type, "application/vc+jwt");
        let first = String::from_utf8(body).unwrap();
        let parsed = parse_vc_jwt(&first).unwrap();
        let key = trust.get(parsed.kid()).expect("signed by a trusted key");
        assert_eq!(key.issuer, "SH/license");
        parsed.check_signature(&key.key).unwrap();
        let doc = payload(&first);
        assert_eq!(doc["type"][1], "BitstringStatusListCredential");
        assert_eq!(doc["id"], url);
        assert_eq!(doc["credentialSubject"]["statusPurpose"], "revocation");
        let bits = Bitstring::decode(
            doc["credentialSubject"]["encodedList"].as_str().unwrap(),
            1 << 20,
        )
        .unwrap();
        assert_eq!(bits.len(), 131_072);
        assert_eq!(bits.get(index), Some(false));

        // Unchanged: the same signed document (no re-signing per request).
        assert_eq!(String::from_utf8(fetch("*/*").await.2).unwrap(), first);

        // Revoked: the next fetch carries the bit, with a higher sequence.
        let before = StatusList::decode(
            app.status_list("SH/license/0", StatusPurpose::Revocation)
                .await
                .payload
                .as_slice(),
        )
        .unwrap();
        app.license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: uscc.clone(),
                    reason: "吊销".into(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap();
        let second = String::from_utf8(fetch("*/*").await.2).unwrap();
        assert_ne!(second, first);
        let bits = Bitstring::decode(
            payload(&second)["credentialSubject"]["encodedList"]
                .as_str()
                .unwrap(),
            1 << 20,
        )
        .unwrap();
        assert_eq!(bits.get(index), Some(true));
        let after = StatusList::decode(
            app.status_list("SH/license/0", StatusPurpose::Revocation)
                .await
                .payload
                .as_slice(),
        )
        .unwrap();
        assert!(after.sequence > before.sequence);
        assert_eq!(after.sequence >> 32, 1, "one bit set");

        // The native form over HTTP, for verify gateways; it verifies the credential.
        let (code, content_type, body) = fetch("application/x-protobuf").await;
        assert_eq!(code, 200);
        assert!(content_type.starts_with("application/x-protobuf"));
        let env = decode_envelope(&body).unwrap();
        let mut cache = credmesh_credential::StatusCache::new();
        cache.insert_signed(&env, &trust, 1 << 20).unwrap();
        for purpose in [StatusPurpose::Suspension, StatusPurpose::Superseded] {
            let list = app.status_list("SH/license/0", purpose).await;
            cache.insert_signed(&list, &trust, 1 << 20).unwrap();
        }
        let checked = verify(
            Presented::VcJwt(jwt),
            &trust,
            &cache,
            &Policy::default(),
            app.now(),
        );
        assert_eq!(checked.outcome, Outcome::Revoked { superseded: false });

        // Lists that do not exist.
        assert_eq!(
            app.http_get("/v1/status/SH/license/7/revocation", "*/*")
                .await
                .0,
            404
        );
        assert_eq!(
            app.http_get("/v1/status/SH/license/0/refresh", "*/*")
                .await
                .0,
            404
        );
        let foreign = app
            .license
            .clone()
            .get_status_list(pb::GetStatusListRequest {
                list_id: "JS/license/0".into(),
                purpose: StatusPurpose::Revocation as i32,
            })
            .await;
        assert_status(foreign, Code::NotFound, "STATUS_LIST_NOT_FOUND");
        let unspecified = app
            .license
            .clone()
            .get_status_list(pb::GetStatusListRequest {
                list_id: "SH/license/0".into(),
                purpose: 0,
            })
            .await;
        assert_status(unspecified, Code::InvalidArgument, "STATUS_PURPOSE_INVALID");
    }
}

#[tokio::test]
async fn an_unchanged_list_is_re_signed_once_its_refresh_interval_passed() {
    let app = spawn_app(Backend::Sqlite).await;
    let a = app
        .status_list("SH/license/0", StatusPurpose::Revocation)
        .await;
    app.env.clock.advance(30);
    let b = app
        .status_list("SH/license/0", StatusPurpose::Revocation)
        .await;
    assert_eq!(
        a, b,
        "within the refresh interval the cached list is served"
    );
    app.env.clock.advance(31);
    let c = app
        .status_list("SH/license/0", StatusPurpose::Revocation)
        .await;
    let (a, c) = (
        StatusList::decode(a.payload.as_slice()).unwrap(),
        StatusList::decode(c.payload.as_slice()).unwrap(),
    );
    assert_eq!(c.updated_at, a.updated_at + 61);
    assert!(
        c.sequence > a.sequence,
        "a refreshed list replaces cached copies"
    );
}
