//! Writes the committed seed corpus (`fuzz/corpus/<target>/`): real credentials in each
//! form, signed with the fuzzing key, so the fuzzer starts from inputs that reach the
//! signature, validity and status checks. Run: `cargo run --manifest-path fuzz/Cargo.toml
//! --example seeds` (scripts/fuzz.sh does when the corpus is missing).

use std::{fs, path::Path};

use credmesh_credential::{
    Bitstring, Presented, VcOptions, encode_envelope, sign_credential, sign_status_list, to_qr,
    to_vc_jwt,
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
