//! Verify gateway configuration, read from an injected map (the environment in `main`,
//! a `HashMap` in tests). Every key has a documented default.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use credmesh_uscc::Region;

/// A partner region whose trust list this gateway fetches itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    /// The partner's region code.
    pub region: String,
    /// Where the partner's trust list is fetched (`GET <endpoint>/v1/trust/list`): the
    /// partner region's public URL or its identity's address (`http://…` or
    /// `https://…`), or `identity` for the trust list this region's identity imported
    /// (`GetPartnerTrustList`).
    pub endpoint: String,
    /// The partner's pinned raw Ed25519 anchor public key.
    pub anchor: [u8; 32],
}

/// The verify gateway's settings.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// `CREDMESH_REGION` (default `SH`): this deployment's region.
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/verify.db`): the partner audit.
    pub database_url: String,
    /// `CREDMESH_IDENTITY_URL` (default `http://127.0.0.1:50051`): this region's identity
    /// service (trust list, token keys).
    pub identity_url: String,
    /// `CREDMESH_ANCHOR_PUBLIC_KEY` (optional, base64url raw Ed25519): this region's
    /// anchor key. When unset, the key identity names at the first successful fetch is
    /// pinned for the life of the process (trust on first use, logged).
    pub anchor_public_key: Option<[u8; 32]>,
    /// `CREDMESH_PARTNERS` (default empty): partner regions and their pinned anchors,
    /// `JS=https://verify.js.example.gov.cn@<base64url anchor key>,ZJ=identity@<key>,…`; the
    /// endpoint `identity` reads the list this region's identity imported. Partners of
    /// `CREDMESH_PARTNERS_FILE` (the Helm chart's `partners.json`, see
    /// `credmesh_runtime::partners`) are added; a region named in both is refused.
    pub partners: Vec<Partner>,
    /// `CREDMESH_PARTNER_CA_FILE` (optional): a PEM bundle of CA certificates trusted,
    /// besides the system's roots, for `https://` partner endpoints (their identity
    /// services and their status base URLs) and this region's own `https://` identity.
    pub partner_ca_file: Option<PathBuf>,
    /// `REDIS_URL` (default `memory://`): `redis://…`, `redis-cluster://…` or the
    /// in-process cache.
    pub cache_url: String,
    /// `CREDMESH_CACHE_PREFIX` (default `credmesh:verify:`): key and channel prefix in
    /// the shared cache; every replica of one deployment uses the same.
    pub cache_prefix: String,
    /// `CREDMESH_MAX_STALENESS_SECONDS` (default 600): status and trust data older than
    /// this never yields VALID; the answer is STATUS_UNKNOWN.
    pub max_staleness: Duration,
    /// `CREDMESH_FRESH_SECONDS` (default 120): data older than this (but within the
    /// maximum staleness) is reported as stale.
    pub fresh: Duration,
    /// `CREDMESH_TRUST_REFRESH_SECONDS` (default 60): how often trust lists are fetched.
    pub trust_refresh: Duration,
    /// `CREDMESH_STATUS_REFRESH_SECONDS` (default 30): how often held status lists are
    /// fetched again.
    pub status_refresh: Duration,
    /// `CREDMESH_OWN_STATUS_REFRESH_MS` (default 1000, at least 100): how often this
    /// region's own held status lists are fetched again, so a revocation in the region
    /// reaches every replica within about a second even without Redis pub/sub.
    pub own_status_refresh: Duration,
    /// `CREDMESH_RESULT_CACHE_SECONDS` (default 5; 0 turns it off): how long a
    /// verification answer is cached, keyed by a SHA-256 digest of the credential.
    pub result_ttl: Duration,
    // The per-partner rate limit (`CREDMESH_RATE_LIMIT_*`) is the serving stack's
    // per-client limit, read into `credmesh_runtime::ServerConfig`.
}

fn secs(get: &dyn Fn(&str) -> Option<String>, key: &str, default: u64) -> anyhow::Result<Duration> {
    match get(key) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .with_context(|| format!("{key} must be a number of seconds, not '{v}'")),
    }
}

/// Parses a base64url (padding optional) raw 32-byte Ed25519 public key.
pub fn parse_public_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .context("an anchor key must be base64url")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("an anchor key must be 32 bytes"))
}

fn parse_partners(text: &str) -> anyhow::Result<Vec<Partner>> {
    let mut partners = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (region, rest) = item
            .split_once('=')
            .with_context(|| format!("CREDMESH_PARTNERS entry '{item}' must be REGION=URL@KEY"))?;
        let (endpoint, key) = rest
            .rsplit_once('@')
            .with_context(|| format!("CREDMESH_PARTNERS entry '{item}' must be REGION=URL@KEY"))?;
        let region = match Region::from_code(region) {
            Some(r) if r != Region::Other => r.code().to_string(),
            _ => bail!("CREDMESH_PARTNERS: '{region}' is not SH, JS, ZJ or AH"),
        };
        let scheme_ok = endpoint == "identity"
            || ["http://", "https://"].iter().any(|p| {
                endpoint
                    .get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
            });
        if !scheme_ok {
            bail!(
                "CREDMESH_PARTNERS: the endpoint of {region} must be http://…, https://… or identity, not '{endpoint}'"
            );
        }
        partners.push(Partner {
            region,
            endpoint: endpoint.to_string(),
            anchor: parse_public_key(key)
                .with_context(|| format!("CREDMESH_PARTNERS entry for {item}"))?,
        });
    }
    Ok(partners)
}

impl VerifyConfig {
    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<VerifyConfig> {
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let region = match get("CREDMESH_REGION") {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(&code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let anchor_public_key = get("CREDMESH_ANCHOR_PUBLIC_KEY")
            .map(|k| parse_public_key(&k).context("CREDMESH_ANCHOR_PUBLIC_KEY"))
            .transpose()?;
        let mut partners = parse_partners(&get("CREDMESH_PARTNERS").unwrap_or_default())?;
        if let Some(file) = get("CREDMESH_PARTNERS_FILE") {
            let listed = credmesh_runtime::partners::read(Path::new(&file), region.code())
                .context("CREDMESH_PARTNERS_FILE")?;
            for p in listed {
                if partners.iter().any(|q| q.region == p.region) {
                    bail!(
                        "partner region {} is in both CREDMESH_PARTNERS and CREDMESH_PARTNERS_FILE",
                        p.region
                    );
                }
                partners.push(Partner {
                    region: p.region,
                    endpoint: p.url,
                    anchor: p.anchor_public_key,
                });
            }
        }
        if partners.iter().any(|p| p.region == region.code()) {
            bail!("CREDMESH_PARTNERS must not name this deployment's own region");
        }
        let max_staleness = secs(&get, "CREDMESH_MAX_STALENESS_SECONDS", 600)?;
        if max_staleness.is_zero() {
            bail!("CREDMESH_MAX_STALENESS_SECONDS must be at least 1");
        }
        let fresh = secs(&get, "CREDMESH_FRESH_SECONDS", 120)?.min(max_staleness);
        Ok(VerifyConfig {
            region,
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/verify.db".into()),
            identity_url: get("CREDMESH_IDENTITY_URL")
                .unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            anchor_public_key,
            partners,
            partner_ca_file: get("CREDMESH_PARTNER_CA_FILE").map(PathBuf::from),
            cache_url: get("REDIS_URL").unwrap_or_else(|| "memory://".into()),
            cache_prefix: get("CREDMESH_CACHE_PREFIX").unwrap_or_else(|| "credmesh:verify:".into()),
            max_staleness,
            fresh,
            trust_refresh: secs(&get, "CREDMESH_TRUST_REFRESH_SECONDS", 60)?
                .max(Duration::from_secs(1)),
            status_refresh: secs(&get, "CREDMESH_STATUS_REFRESH_SECONDS", 30)?
                .max(Duration::from_secs(1)),
            result_ttl: secs(&get, "CREDMESH_RESULT_CACHE_SECONDS", 5)?,
            own_status_refresh: match get("CREDMESH_OWN_STATUS_REFRESH_MS") {
                None => Duration::from_millis(1000),
                Some(v) => Duration::from_millis(v.parse::<u64>().with_context(|| {
                    format!("CREDMESH_OWN_STATUS_REFRESH_MS must be milliseconds, not '{v}'")
                })?)
                .max(Duration::from_millis(100)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_to_an_empty_environment() {
        let c = VerifyConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.region, Region::Shanghai);
        assert_eq!(c.max_staleness, Duration::from_secs(600));
        assert_eq!(c.cache_url, "memory://");
        assert!(c.partners.is_empty());
    }

    #[test]
    fn partners_are_parsed_with_their_pinned_anchors() {
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let c = VerifyConfig::from_env(&env(&[(
            "CREDMESH_PARTNERS",
            &format!("js=http://127.0.0.1:7000@{key}, ZJ=http://zj:50051@{key}"),
        )]))
        .unwrap();
        assert_eq!(c.partners.len(), 2);
        assert_eq!(c.partners[0].region, "JS");
        assert_eq!(c.partners[0].endpoint, "http://127.0.0.1:7000");
        assert_eq!(c.partners[1].anchor, [7u8; 32]);
    }

    #[test]
    fn a_partner_without_an_anchor_is_refused_by_name() {
        let err =
            VerifyConfig::from_env(&env(&[("CREDMESH_PARTNERS", "JS=http://x:1")])).unwrap_err();
        assert!(format!("{err:#}").contains("REGION=URL@KEY"), "{err:#}");
    }

    #[test]
    fn https_partners_and_a_ca_bundle_are_accepted_other_schemes_are_not() {
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let c = VerifyConfig::from_env(&env(&[
            (
                "CREDMESH_PARTNERS",
                &format!("JS=https://js.example:443@{key}"),
            ),
            (
                "CREDMESH_PARTNER_CA_FILE",
                "/etc/credmesh/partner-ca/ca.pem",
            ),
        ]))
        .unwrap();
        assert_eq!(c.partners[0].endpoint, "https://js.example:443");
        assert_eq!(
            c.partner_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/credmesh/partner-ca/ca.pem"))
        );
        let err = VerifyConfig::from_env(&env(&[(
            "CREDMESH_PARTNERS",
            &format!("JS=ftp://js.example@{key}"),
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn the_own_region_cannot_be_a_partner() {
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let err = VerifyConfig::from_env(&env(&[(
            "CREDMESH_PARTNERS",
            &format!("SH=http://x:1@{key}"),
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("own region"), "{err}");
    }

    #[test]
    fn partners_come_from_the_charts_file_too() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let key = credmesh_credential::keys::IssuerKey::generate("js-anchor-1").unwrap();
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key_bytes());
        let file = dir.path().join("partners.json");
        std::fs::write(
            &file,
            format!(
                r#"{{"region": "SH", "partners": [{{"region": "JS", "url": "https://js-identity:50051", "anchor_kid": "js-anchor-1", "anchor_public_key": "{text}"}}]}}"#
            ),
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = VerifyConfig::from_env(&env(&[("CREDMESH_PARTNERS_FILE", path)])).unwrap();
        assert_eq!(c.partners.len(), 1);
        assert_eq!(c.partners[0].region, "JS");
        assert_eq!(c.partners[0].endpoint, "https://js-identity:50051");
        assert_eq!(c.partners[0].anchor, key.public_key_bytes());

        let both = format!("JS=identity@{text}");
        let err = VerifyConfig::from_env(&env(&[
            ("CREDMESH_PARTNERS_FILE", path),
            ("CREDMESH_PARTNERS", both.as_str()),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("in both"), "{err:#}");
        let err = VerifyConfig::from_env(&env(&[
            ("CREDMESH_PARTNERS_FILE", path),
            ("CREDMESH_REGION", "JS"),
        ]))
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("written for region SH"),
            "{err:#}"
        );
        let err =
            VerifyConfig::from_env(&env(&[("CREDMESH_PARTNERS_FILE", "/nonexistent/p.json")]))
                .unwrap_err();
        assert!(
            format!("{err:#}").contains("CREDMESH_PARTNERS_FILE"),
            "{err:#}"
        );
    }
}
