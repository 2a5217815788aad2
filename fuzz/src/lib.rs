//! The fuzz targets' bodies, one function per decoder that takes input from outside.
//!
//! Each `fuzz_targets/<name>.rs` only hands libFuzzer's input to the function of the
//! same name here, so the unit test at the bottom can replay the committed seed corpus
//! (`corpus/<name>/`) and every crash ever found (`regressions/<name>/`) on the stable
//! compiler as part of `make test`. A function panics only on a real defect: a decoder
//! that panics, or a property (decode ∘ encode = identity, size bounds) that fails.

use base64::Engine as _;
use credmesh_credential::{
    Bitstring, IssuerKey, Policy, Presented, StatusCache, TrustSnapshot, Verification,
    decode_envelope, encode_envelope, from_qr, parse_vc_jwt, sd_jwt as sd, to_qr,
};
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind, StatusList},
    prost::Message as _,
};
use credmesh_uscc::{LicenseId, Uscc};
use credmesh_verify::{
    api::http::{parse_batch_body, parse_verify_body},
    service::{Input, MAX_BATCH},
};

/// 2025-01-01T00:00:00Z, the fixed "now" of every target (deterministic runs).
pub const NOW: i64 = 1_735_689_600;

/// The largest status list the targets decode; the decoder's bound is under test.
const MAX_BITS: usize = 1 << 20;

/// Every target, by name (the names of `fuzz_targets/*.rs` and the corpus folders).
pub const TARGETS: [(&str, fn(&[u8])); 8] = [
    ("envelope", envelope),
    ("qr", qr),
    ("vc_jwt", vc_jwt),
    ("sd_jwt", sd_jwt),
    ("http_json", http_json),
    ("status_list", status_list),
    ("uscc", uscc),
    ("license_id", license_id),
];

/// The fuzzing issuer key (a fixed secret: the seed corpus is signed with it).
pub fn issuer_key() -> IssuerKey {
    IssuerKey::from_bytes("SH-license-fuzz", &[7u8; 32])
}

/// Verifies `input` against a snapshot trusting [`issuer_key`] for every kind, with an
/// empty status cache, so inputs reach the signature, validity and status checks.
pub fn verify(input: Presented<'_>) -> Verification {
    thread_local! {
        static TRUST: TrustSnapshot = {
            let kinds = [
                CredentialKind::BusinessLicense,
                CredentialKind::EnterpriseCode,
                CredentialKind::Presentation,
                CredentialKind::Certificate,
                CredentialKind::InspectionCode,
            ];
            let trusted = issuer_key().to_trusted_key("SH/license", "SH", &kinds, 0);
            let mut snapshot = TrustSnapshot::new();
            snapshot.insert(&trusted, NOW).expect("the fuzzing key is a valid trusted key");
            snapshot
        };
    }
    let status = StatusCache::new();
    TRUST.with(|trust| credmesh_credential::verify(input, trust, &status, &Policy::default(), NOW))
}

/// The native form: bytes as an encoded envelope (gRPC `bytes`, files).
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = decode_envelope(data) {
        let again =
            decode_envelope(&encode_envelope(&envelope)).expect("re-encoded envelope decodes");
        assert_eq!(again, envelope);
        let _ = Credential::decode(envelope.payload.as_slice());
    }
    let _ = verify(Presented::Native(data));
}

/// The QR form: scanned text (`CM1:` + base45 of the compressed envelope).
pub fn qr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(envelope) = from_qr(text) {
        assert_eq!(
            from_qr(&to_qr(&envelope)).expect("re-rendered QR decodes"),
            envelope
        );
    }
    let _ = verify(Presented::detect(text));
    let _ = verify(Presented::Qr(text));
}

/// The interop form: compact VC-JWT text.
pub fn vc_jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = parse_vc_jwt(text) {
        let _ = parsed.kid();
        let _ = parsed.credential();
    }
    let _ = verify(Presented::detect(text));
    let _ = verify(Presented::VcJwt(text));
}

/// The selective-disclosure form: SD-JWT text (`<jwt>~<disclosure>~…~[<kb-jwt>]`).
///
/// Properties: parse → re-encode gives back the text; a verified SD-JWT returns no more
/// claims than it had disclosures; a credential rebuilt from one, issued again, verifies
/// to the very same credential.
pub fn sd_jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = sd::parse(text) {
        assert_eq!(parsed.to_compact(), text.trim(), "parts give back the text");
        for d in parsed.disclosures() {
            let _ = (d.digest(), d.name(), d.salt());
        }
        let key = issuer_key();
        if let Ok(disclosed) = parsed.verify(&key.verifying_key()) {
            assert!(disclosed.claims.len() <= parsed.disclosures().len());
            if let Ok(credential) = disclosed.credential()
                && let Ok(again) = sd::issue(&credential, &key, &[], || [9; 16])
            {
                let back = sd::parse(&again)
                    .and_then(|p| p.verify(&key.verifying_key()))
                    .and_then(|d| d.credential())
                    .expect("a re-issued SD-JWT verifies");
                assert_eq!(back, credential);
            }
        }
    }
    let _ = verify(Presented::detect(text));
    let _ = verify(Presented::SdJwt(text));
}

/// The verify gateway's HTTP JSON bodies (`POST /v1/verify`, `POST /v1/verify/batch`),
/// parsed as the routes parse them, then verified as the gateway would.
///
/// Properties: a parsed body, written again as JSON, parses to the same input; a batch
/// holds 1 to `MAX_BATCH` credentials; a refusal has a reason and a gRPC status.
pub fn http_json(data: &[u8]) {
    match parse_verify_body(data) {
        Ok(input) => {
            let again = parse_verify_body(&body_of(&input)).expect("a re-written body parses");
            assert_eq!(again, input);
            let _ = verify(presented(&input));
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            let _ = e.to_status();
        }
    }
    match parse_batch_body(data) {
        Ok(inputs) => {
            assert!((1..=MAX_BATCH).contains(&inputs.len()));
            let parts: Vec<String> = inputs
                .iter()
                .map(|i| String::from_utf8(body_of(i)).expect("JSON is UTF-8"))
                .collect();
            let body = format!("{{\"credentials\":[{}]}}", parts.join(","));
            assert_eq!(
                parse_batch_body(body.as_bytes()).expect("a re-written batch parses"),
                inputs
            );
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            let _ = e.to_status();
        }
    }
}

/// The JSON body a client would send for `input`.
fn body_of(input: &Input) -> Vec<u8> {
    let value = match input {
        Input::Text(text) => serde_json::json!({ "credential": text }),
        Input::Envelope(bytes) => serde_json::json!({
            "envelope": base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        }),
    };
    value.to_string().into_bytes()
}

/// How the gateway presents an input to the verifier.
fn presented(input: &Input) -> Presented<'_> {
    match input {
        Input::Envelope(bytes) => Presented::Native(bytes),
        Input::Text(text) => Presented::detect(text),
    }
}

/// Status lists as fetched from another region: the encoded bitstring, the protobuf
/// document, and the signed envelope around it.
pub fn status_list(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bits) = Bitstring::decode(text, MAX_BITS) {
            assert!(bits.len() <= MAX_BITS, "decoded beyond the ceiling");
            let again =
                Bitstring::decode(&bits.encode(), MAX_BITS).expect("re-encoded list decodes");
            assert_eq!(again.as_bytes(), bits.as_bytes());
        }
    }
    if let Ok(list) = StatusList::decode(data) {
        let _ = Bitstring::from_status_list(&list, MAX_BITS);
    }
    if let Ok(envelope) = decode_envelope(data) {
        if let Ok(list) = StatusList::decode(envelope.payload.as_slice()) {
            let _ = Bitstring::from_status_list(&list, MAX_BITS);
        }
    }
}

/// Unified social credit codes (GB 32100-2015) as typed into any form.
pub fn uscc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(code) = Uscc::parse(text) {
        assert_eq!(code.as_str().len(), 18);
        assert_eq!(
            Uscc::parse(code.as_str()).expect("a parsed code re-parses"),
            code
        );
    }
    let _ = Uscc::parse_pilot_override(text);
}

/// GB/T 36904 e-license identifiers.
pub fn license_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = LicenseId::parse(text) {
        let _ = (id.type_code(), id.issuer());
        assert_eq!(
            LicenseId::parse(id.as_str()).expect("a parsed id re-parses"),
            id
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::TARGETS;

    /// Replays the seed corpus and every crash ever found through each target.
    #[test]
    fn committed_inputs_replay_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut replayed = 0;
        for (name, target) in TARGETS {
            for folder in ["corpus", "regressions"] {
                let Ok(entries) = fs::read_dir(root.join(folder).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    target(&fs::read(&path).unwrap());
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= 12, "only {replayed} committed inputs found");
    }
}
