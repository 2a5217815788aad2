//! The SD-JWT form of a presentation (RFC 9901, Selective Disclosure for JWTs), so a
//! relying party can check it with an off-the-shelf SD-JWT library against the
//! service's public key (the region's JWKS / trust list).
//!
//! The issuer-signed JWT (`alg: EdDSA`, `typ: dc+sd-jwt`) carries the presentation's
//! identity and window (`iss`, `sub`, `jti`, `iat`, `nbf`, `exp`, `vct`, `scenario`,
//! and `cm` with kind, version — the scenario's version — region and nonce) in the clear and one `_sd` digest
//! (SHA-256) per disclosed field; each disclosure is `[salt, name, value]` with a
//! 128-bit random salt. Only the scenario's fields are made disclosable at all — the
//! others are not even present as digests — and every disclosure is attached:
//! `<JWT>~<disclosure>~…~` (no key binding JWT, as the code is shown, not held by a
//! wallet key). The format itself lives in [`credmesh_credential::sd_jwt`], which also
//! verifies it: `VerifyPresentation`, the scan page and the verify gateway accept this
//! form and count a use of it against the same nonce as the QR form, so a presentation
//! is single-use whichever form is shown. A relying party verifying the SD-JWT offline
//! checks signature and window alone.

use credmesh_credential::{keys::IssuerKey, sd_jwt::SdJwtError};
use credmesh_proto::credential::v1::Credential;

use super::code::scenario_of;

/// The `vct` (credential type) of presentations.
pub const VCT: &str = credmesh_credential::sd_jwt::PRESENTATION_VCT;

/// The SD-JWT of `presentation`, signed with `key`, salts drawn from `salt`. Fails only
/// for claims an SD-JWT cannot carry (a repeated or reserved name), which no scenario
/// discloses.
pub fn issue(
    presentation: &Credential,
    key: &IssuerKey,
    salt: impl FnMut() -> [u8; 16],
) -> Result<String, SdJwtError> {
    let scenario = scenario_of(&presentation.id).unwrap_or_default();
    credmesh_credential::sd_jwt::issue(presentation, key, &[("scenario", scenario)], salt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use credmesh_proto::credential::v1::Claim;
    use credmesh_uscc::Region;
    use sha2::{Digest as _, Sha256};

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
        })
        .unwrap();
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
        assert_eq!(payload["vct"], VCT);
        assert_eq!(payload["scenario"], "basic");

        // The Rust verifier gives back exactly the presentation that was signed.
        let disclosed = credmesh_credential::sd_jwt::parse(&sd)
            .unwrap()
            .verify(&key.verifying_key())
            .unwrap();
        assert_eq!(disclosed.credential().unwrap(), p);
    }
}
