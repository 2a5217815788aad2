//! The SD-JWT form checked by the IETF reference implementation (Python `sd-jwt`, from
//! the project's venv: `scripts/install-deps.sh test`), with the issuer key taken from
//! identity's public trust list, as a relying party would.

use std::{path::PathBuf, process::Command};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use credmesh_credential::sd_jwt;
use credmesh_proto::{
    credential::v1::TrustList, entcode::v1 as epb, identity::v1 as ipb, prost::Message as _,
};
use credmesh_runtime::Clock as _;

use crate::helpers::{Backend, sh_uscc, spawn_app};

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python")
}

fn check(token: &str, key: &str, now: i64) -> Result<serde_json::Value, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_sd_jwt.py");
    let out = Command::new(python())
        .arg(script)
        .arg(token)
        .arg(key)
        .arg(now.to_string())
        .output()
        .expect("the venv's python runs (scripts/install-deps.sh test)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[tokio::test]
async fn a_third_party_sd_jwt_library_verifies_exactly_the_scenarios_fields() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(40);
    let me = app.enterprise(&uscc).await;
    app.establish(&dept, &uscc).await;
    let p = app.present(&me, &uscc, "bank-loan").await.unwrap();
    let kid = p.presentation.clone().unwrap().envelope.unwrap().kid;

    // The issuer key, from identity's trust list.
    let trust = app
        .identity
        .clone()
        .get_trust_list(ipb::GetTrustListRequest::default())
        .await
        .unwrap()
        .into_inner();
    let list = TrustList::decode(trust.trust_list.unwrap().payload.as_slice()).unwrap();
    let key = list
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .expect("the entcode key is in the trust list");
    assert_eq!(key.issuer, "SH/entcode");
    let x = URL_SAFE_NO_PAD.encode(&key.public_key);

    let payload = check(&p.sd_jwt, &x, app.clock.now()).unwrap();

    // The Rust verifier (credmesh_credential::sd_jwt) agrees with the reference
    // implementation on the same SD-JWT: the very same resolved payload.
    let public = credmesh_credential::VerifyingKey::from_bytes(
        key.public_key.as_slice().try_into().unwrap(),
    )
    .unwrap();
    let ours = sd_jwt::parse(&p.sd_jwt).unwrap().verify(&public).unwrap();
    assert_eq!(serde_json::Value::Object(ours.payload.clone()), payload);
    let credential = ours.credential().unwrap();
    let native = credmesh_proto::credential::v1::Credential::decode(
        p.presentation
            .as_ref()
            .unwrap()
            .envelope
            .as_ref()
            .unwrap()
            .payload
            .as_slice(),
    )
    .unwrap();
    assert_eq!(
        credential, native,
        "the SD-JWT carries the native form's credential"
    );
    let mut disclosed: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| {
            ![
                "iss", "sub", "jti", "iat", "nbf", "exp", "vct", "scenario", "_sd_alg", "cm",
            ]
            .contains(k)
        })
        .collect();
    disclosed.sort();
    let mut expected: Vec<&str> = p.disclosed.iter().map(|d| d.name.as_str()).collect();
    expected.sort();
    assert_eq!(disclosed, expected);
    assert_eq!(payload["scenario"], "bank-loan");
    // The scenario's version travels in `cm.version`, beside kind, region and nonce.
    assert_eq!(payload["cm"]["version"], 1);
    assert_eq!(payload["iss"], "SH/entcode");
    assert_eq!(payload["name"], "上海静安面馆有限公司");

    // A forged disclosure matches no signed digest: this library drops it (rather than
    // refusing the whole SD-JWT), so the forged claim never reaches the relying party.
    // Ours refuses the whole SD-JWT: both keep the forged claim away from the relying
    // party; ours also tells it that something was tampered with.
    let mut parts: Vec<String> = p.sd_jwt.split('~').map(String::from).collect();
    let replaced = parts[1].clone();
    parts[1] = URL_SAFE_NO_PAD.encode(r#"["c2FsdA","domicile","forged"]"#);
    let forged = check(&parts.join("~"), &x, app.clock.now()).unwrap();
    assert!(forged.get("domicile").is_none(), "{forged}");
    assert_eq!(
        sd_jwt::parse(&parts.join("~"))
            .unwrap()
            .verify(&public)
            .unwrap_err()
            .reason(),
        "SD_JWT_UNREFERENCED_DISCLOSURE"
    );
    // A dropped disclosure: both answer the rest, without that claim.
    let dropped: Vec<&str> = p
        .sd_jwt
        .split('~')
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, s)| s)
        .collect();
    let theirs = check(&dropped.join("~"), &x, app.clock.now()).unwrap();
    let ours = sd_jwt::parse(&dropped.join("~"))
        .unwrap()
        .verify(&public)
        .unwrap();
    assert_eq!(serde_json::Value::Object(ours.payload), theirs);
    assert_eq!(ours.claims.len(), p.disclosed.len() - 1);
    let replaced: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(replaced).unwrap()).unwrap();
    assert!(forged.get(replaced[1].as_str().unwrap()).is_none());
    // A changed signed part is refused.
    let mut jwt: Vec<String> = parts[0].split('.').map(String::from).collect();
    jwt[1] = URL_SAFE_NO_PAD.encode(r#"{"iss":"SH/entcode","_sd":[],"nbf":0,"exp":9999999999}"#);
    parts[0] = jwt.join(".");
    assert!(check(&parts.join("~"), &x, app.clock.now()).is_err());
    assert_eq!(
        sd_jwt::parse(&parts.join("~"))
            .unwrap()
            .verify(&public)
            .unwrap_err()
            .reason(),
        "SIGNATURE_MISMATCH"
    );
    // So is a wrong key, and an expired presentation.
    let other = URL_SAFE_NO_PAD.encode([9u8; 32]);
    assert!(check(&p.sd_jwt, &other, app.clock.now()).is_err());
    let other_key = credmesh_credential::IssuerKey::from_bytes("SH-entcode-x", &[9; 32]);
    assert!(
        sd_jwt::parse(&p.sd_jwt)
            .unwrap()
            .verify(&other_key.verifying_key())
            .is_err()
    );
    assert!(check(&p.sd_jwt, &x, app.clock.now() + 600).is_err());
}

#[tokio::test]
async fn verify_presentation_and_the_scan_page_accept_the_sd_jwt_form_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let uscc = sh_uscc(41);
    let me = app.enterprise(&uscc).await;
    app.establish(&dept, &uscc).await;
    let verifier = app.enterprise(&sh_uscc(42)).await;

    let p = app.present(&me, &uscc, "bidding").await.unwrap();
    let first = app.verify(&verifier, &p.sd_jwt).await.unwrap();
    assert_eq!(first.reason, "VALID", "{}", first.detail);
    assert_eq!(first.outcome, epb::PresentationOutcome::Valid as i32);
    let mut names: Vec<&str> = first.disclosed.iter().map(|d| d.name.as_str()).collect();
    let mut expected: Vec<&str> = p.disclosed.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
    // One nonce for both forms: the QR text of the same presentation is now used up.
    let qr = p.presentation.as_ref().unwrap().qr_text.clone();
    let second = app.verify(&verifier, &qr).await.unwrap();
    assert_eq!(second.reason, "ALREADY_USED");

    // A forged disclosure is a bad signature; the nonce is not burnt by it.
    let p = app.present(&me, &uscc, "basic").await.unwrap();
    let mut parts: Vec<String> = p.sd_jwt.split('~').map(String::from).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(r#"["c2FsdA","name","forged"]"#);
    let forged = app.verify(&verifier, &parts.join("~")).await.unwrap();
    assert_eq!(forged.reason, "BAD_SIGNATURE", "{}", forged.detail);
    assert!(
        forged.detail.contains("not one the issuer signed"),
        "{}",
        forged.detail
    );

    // The scan page takes the SD-JWT in its path as it takes QR text. Opening the link
    // only asks (a link preview uses nothing up); the button's POST checks it, once.
    let path = entcode_scan_path(&p.sd_jwt);
    let (status, asked) = app.http_get(&path).await;
    assert_eq!(status, 200);
    assert!(asked.contains("data-outcome=\"UNCHECKED\""), "{asked}");
    let (status, html) = app.http_post(&path).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-outcome=\"VALID\""), "{html}");
    let (_, again) = app.http_post(&path).await;
    assert!(again.contains("ALREADY_USED"), "{again}");
}

fn entcode_scan_path(text: &str) -> String {
    credmesh_entcode::api::http::scan_path(text)
}
