//! Writes the committed seed corpus (`fuzz/corpus/<target>/`): real credentials in each
//! form, signed with the fuzzing key, so the fuzzer starts from inputs that reach the
//! signature, validity and status checks. Run: `cargo run --manifest-path fuzz/Cargo.toml
//! --example seeds` (scripts/fuzz.sh does when the corpus is missing).

use std::{fs, path::Path};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ed25519_dalek::Signer as _;
use serde_json::json;

use credmesh_credential::{
    Bitstring, Presented, VcOptions, encode_envelope, sd_jwt, sign_credential, sign_status_list,
    to_qr, to_vc_jwt,
};
use credmesh_fuzz::{NOW, issuer_key};
use credmesh_proto::{
    credential::v1::{
        Claim, Credential, CredentialKind, StatusList, StatusPurpose, StatusReference,
    },
    prost::Message as _,
};

fn claim(name: &str, value: &str) -> Claim {
    Claim {
        name: name.into(),
        value: value.into(),
    }
}

fn license() -> Credential {
    Credential {
        id: "1.2.156.3005.2.11100000000013127D001.11310000002420813X.00000001.001.7".into(),
        kind: CredentialKind::BusinessLicense as i32,
        issuer: "SH/license".into(),
        region: "SH".into(),
        subject: "91310000MA1FL8TQ2X".into(),
        issued_at: NOW - 60,
        not_before: NOW - 60,
        not_after: 0,
        status: Some(StatusReference {
            list_id: "SH/license/0".into(),
            index: 42,
        }),
        claims: vec![
            claim("name", "上海示例科技有限公司"),
            claim("uscc", "91310000MA1FL8TQ2X"),
            claim("legal_representative", "张三"),
            claim("registered_capital", "人民币100.0000万元"),
            claim("established", "2020-05-18"),
        ],
        version: 1,
        nonce: Vec::new(),
    }
}

fn presentation() -> Credential {
    Credential {
        id: "urn:credmesh:presentation:0b8f2c1e".into(),
        kind: CredentialKind::Presentation as i32,
        issuer: "SH/license".into(),
        region: "SH".into(),
        subject: "91310000MA1FL8TQ2X".into(),
        issued_at: NOW - 10,
        not_before: NOW - 10,
        not_after: NOW + 290,
        status: None,
        claims: vec![
            claim("scenario", "bank-loan"),
            claim("name", "上海示例科技有限公司"),
        ],
        version: 0,
        nonce: vec![1, 2, 3, 250, 251, 252],
    }
}

/// An SD-JWT signed with the fuzzing key whose disclosures nest: an object claim with
/// its own `_sd`, an array with an element disclosure and a decoy element, a decoy digest.
fn nested_sd_jwt() -> String {
    let disclosure = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let digest = |d: &str| {
        use sha2::Digest as _;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(d.as_bytes()))
    };
    let street = disclosure(json!(["c2FsdDE", "street", "示例路1号"]));
    let address =
        disclosure(json!(["c2FsdDI", "address", {"city": "上海", "_sd": [digest(&street)]}]));
    let element = disclosure(json!(["c2FsdDM", "食品经营"]));
    let name = disclosure(json!(["c2FsdDQ", "name", "上海示例科技有限公司"]));
    let payload = json!({
        "iss": "SH/license",
        "sub": "91310000MA1FL8TQ2X",
        "jti": "urn:credmesh:presentation:nested",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 290,
        "vct": sd_jwt::PRESENTATION_VCT,
        "cm": {"kind": CredentialKind::Presentation as i32, "version": 1, "region": "SH", "nonce": "AQID"},
        "_sd_alg": "sha-256",
        "_sd": [digest(&address), digest(&name), "ZGVjb3k"],
        "permits": [{"...": digest(&element)}, "clear", {"...": "ZGVjb3ktZWxlbWVudA"}],
    });
    let key = issuer_key();
    let header = json!({"alg": "EdDSA", "typ": sd_jwt::TYP, "kid": key.kid()});
    let mut out = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = key.signing_key().sign(out.as_bytes());
    out = format!(
        "{out}.{}~{street}~{address}~{element}~{name}~",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    );
    let parsed = sd_jwt::parse(&out).expect("the nested seed parses");
    let disclosed = parsed
        .verify(&key.verifying_key())
        .expect("the nested seed verifies");
    assert_eq!(disclosed.payload["permits"], json!(["食品经营", "clear"]));
    out
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let key = issuer_key();
    let options = VcOptions {
        status_base_url: "https://verify.sh.example".into(),
    };
    for (name, credential) in [("license", license()), ("presentation", presentation())] {
        let envelope = sign_credential(&credential, &key);
        let native = encode_envelope(&envelope);
        let qr = to_qr(&envelope);
        let jwt = to_vc_jwt(&credential, &key, &options);
        // The seeds must verify, or the fuzzer starts outside the interesting paths.
        for presented in [
            Presented::Native(&native),
            Presented::Qr(&qr),
            Presented::VcJwt(&jwt),
        ] {
            let v = credmesh_fuzz::verify(presented);
            assert!(
                matches!(v.outcome.as_str(), "valid" | "status_unknown"),
                "seed {name} verifies as {:?}",
                v.outcome
            );
        }
        write(&out, "envelope", name, &native);
        write(&out, "qr", name, qr.as_bytes());
        write(&out, "vc_jwt", name, jwt.as_bytes());
    }

    // SD-JWT: a presentation as issued, with a disclosure left out, with a key binding
    // JWT attached (refused), and a hand-made one with nested, array-element and decoy
    // digests (the branches credmesh's own issuer never produces).
    let full = sd_jwt::issue(&presentation(), &key, &[], || [3; 16]).expect("issuable");
    let v = credmesh_fuzz::verify(Presented::SdJwt(&full));
    assert_eq!(v.outcome.as_str(), "valid", "sd-jwt seed: {}", v.detail);
    write(&out, "sd_jwt", "presentation", full.as_bytes());
    let parts: Vec<&str> = full.split('~').collect();
    let dropped = format!("{}~{}~", parts[0], parts[2]);
    write(&out, "sd_jwt", "dropped", dropped.as_bytes());
    let kb = format!("{full}eyJhbGciOiJFZERTQSIsInR5cCI6ImtiK2p3dCJ9.e30.c2ln");
    write(&out, "sd_jwt", "key-binding", kb.as_bytes());
    write(&out, "sd_jwt", "nested", nested_sd_jwt().as_bytes());

    // HTTP JSON bodies of the verify gateway.
    let license_env = sign_credential(&license(), &key);
    let bodies = [
        ("verify-qr", json!({"credential": to_qr(&license_env)})),
        (
            "verify-envelope",
            json!({"envelope": STANDARD.encode(encode_envelope(&license_env))}),
        ),
        ("verify-sd-jwt", json!({"credential": full})),
        (
            "batch",
            json!({"credentials": [
                {"credential": to_vc_jwt(&license(), &key, &options)},
                {"credential": dropped},
                {"envelope": URL_SAFE_NO_PAD.encode(encode_envelope(&license_env))},
            ]}),
        ),
        (
            "refused",
            json!({"credential": "CM1:X", "envelope": "AQID"}),
        ),
    ];
    for (name, body) in bodies {
        write(&out, "http_json", name, body.to_string().as_bytes());
    }

    let mut bits = Bitstring::new(Bitstring::MIN_SIZE);
    for i in [0, 42, 4242, 131_071] {
        bits.set(i, true).expect("index inside the list");
    }
    let list = StatusList {
        list_id: "SH/license/0".into(),
        issuer: "SH/license".into(),
        purpose: StatusPurpose::Revocation as i32,
        encoded_list: bits.encode(),
        size: Bitstring::MIN_SIZE as u64,
        updated_at: NOW,
        sequence: 7,
    };
    write(&out, "status_list", "encoded", list.encoded_list.as_bytes());
    write(&out, "status_list", "list", &list.encode_to_vec());
    write(
        &out,
        "status_list",
        "signed",
        &encode_envelope(&sign_status_list(&list, &key)),
    );

    for (i, code) in [
        "91310000MA1FL8TQ2X",
        "91310115MA1H7GQ25B",
        "12100000400000624D",
    ]
    .iter()
    .enumerate()
    {
        write(&out, "uscc", &format!("valid-{i}"), code.as_bytes());
    }
    write(&out, "uscc", "bad-check", b"91310000MA1FL8TQ2Y");
    write(&out, "license_id", "license", license().id.as_bytes());
    println!("seed corpus written to {}", out.display());
}
