//! The SD-JWT form of a presentation (RFC 9901, Selective Disclosure for JWTs), so a
//! relying party can check it with an off-the-shelf SD-JWT library against the
//! service's public key (the region's JWKS / trust list).
//!
//! The issuer-signed JWT (`alg: EdDSA`, `typ: dc+sd-jwt`) carries the presentation's
//! identity and window (`iss`, `sub`, `jti`, `iat`, `nbf`, `exp`, `vct`, `scenario`, `scenario_version`)
//! in the clear and one `_sd` digest (SHA-256) per disclosed field; each disclosure is
//! `[salt, name, value]` with a 128-bit random salt. Only the scenario's fields are
//! made disclosable at all — the others are not even present as digests — and every
//! disclosure is attached: `<JWT>~<disclosure>~…~` (no key binding JWT, as the code is
//! shown, not held by a wallet key). The nonce is the `jti`'s last part, so single use
//! applies to this form when it is checked through `VerifyPresentation`'s QR text only;
//! a relying party verifying the SD-JWT offline checks signature and window alone.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use credmesh_credential::keys::IssuerKey;
use credmesh_proto::credential::v1::Credential;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

use super::code::scenario_of;

/// The `vct` (credential type) of presentations.
pub const VCT: &str = "urn:credmesh:entcode:presentation";

/// One disclosure, encoded, and its digest.
fn disclosure(salt: &[u8; 16], name: &str, value: &str) -> (String, String) {
    let json = serde_json::json!([URL_SAFE_NO_PAD.encode(salt), name, value]).to_string();
    let encoded = URL_SAFE_NO_PAD.encode(json.as_bytes());
    let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(encoded.as_bytes()));
    (encoded, digest)
}

/// The SD-JWT of `presentation`, signed with `key`, salts drawn from `salt`.
pub fn issue(
    presentation: &Credential,
    key: &IssuerKey,
    mut salt: impl FnMut() -> [u8; 16],
) -> String {
    let mut disclosures = Vec::new();
    let mut digests = Vec::new();
    for claim in &presentation.claims {
        let (d, h) = disclosure(&salt(), &claim.name, &claim.value);
        disclosures.push(d);
        digests.push(h);
    }
    // Sorted, so the digests' order says nothing about the fields' order.
    digests.sort();
    let header = serde_json::json!({"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": key.kid()});
    let payload = serde_json::json!({
        "iss": presentation.issuer,
        "sub": presentation.subject,
        "jti": presentation.id,
        "iat": presentation.issued_at,
        "nbf": presentation.not_before,
        "exp": presentation.not_after,
        "vct": VCT,
        "scenario": scenario_of(&presentation.id).unwrap_or_default(),
        "scenario_version": presentation.version,
        "_sd_alg": "sha-256",
        "_sd": digests,
    });
    let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string().as_bytes());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes()));
    let signature = key.signing_key().sign(jwt.as_bytes());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    let mut out = jwt;
    out.push('~');
    for d in disclosures {
        out.push_str(&d);
        out.push('~');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use credmesh_proto::credential::v1::Claim;
    use credmesh_uscc::Region;

    #[test]
    fn every_disclosure_has_its_digest_in_the_signed_part_and_nothing_else_is_there() {
        let key = IssuerKey::generate("SH-entcode-t").unwrap();
        let claims = vec![
            Claim {
                name: "name".into(),
                value: "上海静安面馆有限公司".into(),
            },
            Claim {
                name: "uscc".into(),
                value: "91310106MA1000308T".into(),
            },
        ];
        let p = super::super::code::presentation(
            Region::Shanghai,
            "91310106MA1000308T",
            ("basic", 1),
            claims,
            [1; 16],
            100,
            300,
        );
        let mut n = 0u8;
        let sd = issue(&p, &key, || {
            n += 1;
            [n; 16]
        });
        let parts: Vec<&str> = sd.split('~').collect();
        assert_eq!(parts.len(), 4, "jwt, two disclosures, trailing empty");
        assert_eq!(parts[3], "");
        let payload: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(parts[0].split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let sd_list = payload["_sd"].as_array().unwrap();
        assert_eq!(sd_list.len(), 2);
        for d in &parts[1..3] {
            let h = URL_SAFE_NO_PAD.encode(Sha256::digest(d.as_bytes()));
            assert!(
                sd_list
                    .iter()
                    .any(|x| x == &serde_json::Value::String(h.clone()))
            );
        }
        assert!(
            payload.get("name").is_none(),
            "disclosed fields are not in the clear"
        );
        assert_eq!(payload["exp"], 400);
    }
}
