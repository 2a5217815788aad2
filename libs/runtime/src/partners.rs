//! The federation's partner file, as the Helm chart mounts it
//! (`CREDMESH_PARTNERS_FILE`, `/etc/credmesh/partners/partners.json`):
//!
//! ```json
//! {"region": "SH", "partners": [{"region": "JS", "url": "https://verify.js.example.gov.cn",
//!   "anchor_kid": "js-anchor-1", "anchor_public_key": "<base64url raw Ed25519 key>"}]}
//! ```
//!
//! identity pins each partner's anchor from it at start; verify fetches each partner's
//! trust and status lists from `url`. One parser for both, so they read the same file
//! the same way and refuse the same mistakes with the same sentence.

use std::path::Path;

use anyhow::{Context as _, bail};

/// One partner region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerEntry {
    /// SH, JS, ZJ or AH.
    pub region: String,
    /// Where its trust list is fetched: the partner region's public URL or its
    /// identity's address (`http://…`/`https://…`; verify GETs `<url>/v1/trust/list`),
    /// or `identity` for the list this region imported.
    pub url: String,
    /// The anchor key's id (may be empty).
    pub anchor_kid: String,
    /// The pinned raw Ed25519 anchor public key.
    pub anchor_public_key: [u8; 32],
}

/// The regions of the federation.
const REGIONS: [&str; 4] = ["SH", "JS", "ZJ", "AH"];

/// Reads and checks the file at `path` for a deployment of region `own`.
pub fn read(path: &Path, own: &str) -> anyhow::Result<Vec<PartnerEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the partner file {}", path.display()))?;
    parse(&text, own).with_context(|| format!("the partner file {}", path.display()))
}

/// Parses the file's text for a deployment of region `own`.
pub fn parse(text: &str, own: &str) -> anyhow::Result<Vec<PartnerEntry>> {
    let doc: serde_json::Value = serde_json::from_str(text).context("it is not JSON")?;
    if let Some(region) = doc.get("region").and_then(|r| r.as_str())
        && !region.is_empty()
        && region != own
    {
        bail!("it is written for region {region}, and this deployment is region {own}");
    }
    let Some(list) = doc.get("partners").and_then(|p| p.as_array()) else {
        bail!("it has no \"partners\" list");
    };
    let mut partners: Vec<PartnerEntry> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let field = |name: &str| p.get(name).and_then(|v| v.as_str()).unwrap_or_default();
        let region = field("region");
        if !REGIONS.contains(&region) {
            bail!("partners[{i}].region must be SH, JS, ZJ or AH, not {region:?}");
        }
        if region == own {
            bail!("partners[{i}] names this deployment's own region {own}");
        }
        if partners.iter().any(|q| q.region == region) {
            bail!("partners[{i}] names region {region} a second time");
        }
        let url = field("url");
        let scheme_ok = url == "identity"
            || ["http://", "https://"].iter().any(|s| {
                url.get(..s.len())
                    .is_some_and(|u| u.eq_ignore_ascii_case(s))
            });
        if !scheme_ok {
            bail!("partners[{i}].url must be http://…, https://… or identity, not {url:?}");
        }
        let key = decode_key(field("anchor_public_key"))
            .with_context(|| format!("partners[{i}].anchor_public_key"))?;
        partners.push(PartnerEntry {
            region: region.to_string(),
            url: url.to_string(),
            anchor_kid: field("anchor_kid").to_string(),
            anchor_public_key: key,
        });
    }
    Ok(partners)
}

/// A base64url (padding optional) raw 32-byte Ed25519 public key.
fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .context("an anchor key must be base64url")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("an anchor key must be 32 bytes"))?;
    credmesh_credential::VerifyingKey::from_bytes(&key)
        .map_err(|_| anyhow::anyhow!("the anchor key is not an Ed25519 public key"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_text() -> (String, [u8; 32]) {
        use base64::Engine as _;
        let key = credmesh_credential::keys::IssuerKey::generate("js-anchor-1").unwrap();
        let raw = key.public_key_bytes();
        (
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            raw,
        )
    }

    #[test]
    fn the_charts_file_reads_back_its_partners() {
        let (text, raw) = key_text();
        let file = format!(
            r#"{{"region": "SH", "partners": [
                {{"region": "JS", "url": "https://identity.js.example.gov.cn", "anchor_kid": "js-anchor-1", "anchor_public_key": "{text}"}},
                {{"region": "AH", "url": "identity", "anchor_kid": "", "anchor_public_key": "{text}="}}
            ]}}"#
        );
        let partners = parse(&file, "SH").unwrap();
        assert_eq!(partners.len(), 2);
        assert_eq!(partners[0].region, "JS");
        assert_eq!(partners[0].url, "https://identity.js.example.gov.cn");
        assert_eq!(partners[0].anchor_kid, "js-anchor-1");
        assert_eq!(partners[0].anchor_public_key, raw);
        assert_eq!(partners[1].anchor_public_key, raw);
        assert!(
            parse(r#"{"region": "SH", "partners": []}"#, "SH")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_entry_named() {
        let (text, _) = key_text();
        let entry = |region: &str, url: &str, key: &str| {
            format!(
                r#"{{"region": "SH", "partners": [{{"region": "{region}", "url": "{url}", "anchor_public_key": "{key}"}}]}}"#
            )
        };
        for (file, own, says) in [
            ("not json".to_string(), "SH", "not JSON"),
            (r#"{"region": "SH"}"#.to_string(), "SH", "no \"partners\""),
            (
                entry("JS", "http://x", &text),
                "JS",
                "written for region SH",
            ),
            (entry("XX", "http://x", &text), "SH", "partners[0].region"),
            (entry("SH", "http://x", &text), "SH", "own region"),
            (entry("JS", "ftp://x", &text), "SH", "partners[0].url"),
            (entry("JS", "http://x", "AAAA"), "SH", "32 bytes"),
            (entry("JS", "http://x", "!!!"), "SH", "base64url"),
        ] {
            let err = format!("{:#}", parse(&file, own).unwrap_err());
            assert!(err.contains(says), "{file}: {err}");
        }
        let twice = format!(
            r#"{{"partners": [{{"region": "JS", "url": "identity", "anchor_public_key": "{text}"}}, {{"region": "JS", "url": "identity", "anchor_public_key": "{text}"}}]}}"#
        );
        assert!(format!("{:#}", parse(&twice, "SH").unwrap_err()).contains("second time"));
    }
}
