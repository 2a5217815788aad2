//! Enterprise-code service configuration, read from an injected map (the environment in
//! `main`, a `HashMap` in tests). Every key has a default or is named in the error.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use credmesh_uscc::Region;

/// The enterprise-code service's settings.
#[derive(Clone, Debug)]
pub struct EntcodeConfig {
    /// `CREDMESH_REGION` (default `SH`): this deployment's region.
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/entcode.db`): where scenarios and their
    /// versions are kept.
    pub database_url: String,
    /// `CREDMESH_SIGNING_KEY_FILE`: PKCS#8 PEM of the signing key of codes and
    /// presentations. Required; `credmesh dev` generates one.
    pub signing_key_file: PathBuf,
    /// `CREDMESH_CLIENT_ID` (default `entcode`): the service's client id at identity. It
    /// needs the scopes `identity.keys` and `license.read` (and those the optional
    /// services below name).
    pub client_id: String,
    /// `CREDMESH_CLIENT_KEY_FILE`: PKCS#8 PEM of the client key proving that id to
    /// identity. Required by `credmesh serve entcode`.
    pub client_key_file: Option<PathBuf>,
    /// `CREDMESH_IDENTITY_URL` (default `http://127.0.0.1:50051`): the identity service.
    pub identity_url: String,
    /// `CREDMESH_LICENSE_URL` (default `http://127.0.0.1:50051`): the license service.
    pub license_url: String,
    /// `CREDMESH_VERIFY_URL` (default unset): the verify gateway. When set, the scan
    /// page shows other issuers' credentials (inspection codes, certificates) as the
    /// gateway answers about them; the client then needs scope `verify`.
    pub verify_url: Option<String>,
    /// `CREDMESH_CERTIFICATE_URL` (default unset): the certificate service. When set, the
    /// scan page and `GetEnterpriseCode` show the enterprise's permits and scenarios may
    /// disclose `permits`; the client then needs scope `certificate.read`. Unset: no
    /// permits are shown and a presentation disclosing them is refused.
    pub certificate_url: Option<String>,
    /// `CREDMESH_INSPECTION_URL` (default unset): the inspection service. When set,
    /// scenarios may disclose `credit_grade`; the client then needs scope
    /// `inspection.credit`. Unset: a presentation disclosing the grade is refused.
    pub inspection_url: Option<String>,
    /// `REDIS_URL` (default `memory://`): where used presentation nonces are recorded.
    /// With several replicas this must be a shared Redis, or a presentation could be used
    /// once per replica.
    pub cache_url: String,
    /// `CREDMESH_CACHE_PREFIX` (default `credmesh:entcode:`): the Redis key namespace.
    /// Used nonces are kept as `<prefix>nonce/<issuer>/<hex>`, the verify gateway's key
    /// too: give both the same Redis and prefix to share one record of used presentations.
    pub cache_prefix: String,
    /// `CREDMESH_PRESENTATION_TTL_SECONDS` (default 300, 30–3600): how long a
    /// presentation is valid.
    pub presentation_ttl_secs: i64,
    /// `CREDMESH_PUBLIC_URL` (default unset): the region's public HTTP base URL, where
    /// phones reach the scan page (`https://verify.sh.example.gov.cn`). When set, the QR
    /// images of codes and presentations encode the scan page's URL under it, so that a
    /// phone camera opens the page; unset, they encode the bare QR text, which only a
    /// credmesh-aware scanner reads.
    pub public_url: Option<String>,
}

impl EntcodeConfig {
    /// The service as identity knows it: for registering its signing key, tokens to
    /// call other services, and checking its callers' tokens.
    pub fn client(&self) -> credmesh_runtime::issuer_key::ServiceClient<'_> {
        credmesh_runtime::issuer_key::ServiceClient {
            service: "entcode",
            region: self.region.code(),
            client_id: &self.client_id,
            key_file: self.client_key_file.as_deref(),
        }
    }

    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<EntcodeConfig> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let region = match get("CREDMESH_REGION") {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let presentation_ttl_secs = match get("CREDMESH_PRESENTATION_TTL_SECONDS") {
            None => 300,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (30..=3600).contains(&n) => n,
                _ => bail!("CREDMESH_PRESENTATION_TTL_SECONDS must be 30 to 3600, not '{v}'"),
            },
        };
        let public_url = match get("CREDMESH_PUBLIC_URL") {
            None => None,
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                let host = ["https://", "http://"]
                    .iter()
                    .find_map(|scheme| lower.strip_prefix(scheme));
                match host {
                    Some(rest)
                        if !rest.is_empty()
                            && !rest.starts_with('/')
                            && !url.contains(['?', '#', ' ']) =>
                    {
                        Some(url.trim_end_matches('/').to_string())
                    }
                    _ => bail!(
                        "CREDMESH_PUBLIC_URL must be an http:// or https:// URL with a host and no query, \
                         such as https://verify.sh.example.gov.cn, not '{url}'"
                    ),
                }
            }
        };
        Ok(EntcodeConfig {
            region,
            database_url: get("DATABASE_URL")
                .unwrap_or("sqlite://data/entcode.db")
                .to_string(),
            signing_key_file: get("CREDMESH_SIGNING_KEY_FILE")
                .context("CREDMESH_SIGNING_KEY_FILE is required: the PKCS#8 PEM file of the enterprise-code signing key")?
                .into(),
            client_id: get("CREDMESH_CLIENT_ID").unwrap_or("entcode").to_string(),
            client_key_file: get("CREDMESH_CLIENT_KEY_FILE").map(PathBuf::from),
            identity_url: get("CREDMESH_IDENTITY_URL")
                .unwrap_or("http://127.0.0.1:50051")
                .to_string(),
            license_url: get("CREDMESH_LICENSE_URL")
                .unwrap_or("http://127.0.0.1:50051")
                .to_string(),
            verify_url: get("CREDMESH_VERIFY_URL").map(str::to_string),
            certificate_url: get("CREDMESH_CERTIFICATE_URL").map(str::to_string),
            inspection_url: get("CREDMESH_INSPECTION_URL").map(str::to_string),
            cache_url: get("REDIS_URL").unwrap_or("memory://").to_string(),
            cache_prefix: get("CREDMESH_CACHE_PREFIX")
                .unwrap_or("credmesh:entcode:")
                .to_string(),
            presentation_ttl_secs,
            public_url,
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
    fn defaults_apply_when_only_the_key_file_is_given() {
        let c = EntcodeConfig::from_env(&env(&[("CREDMESH_SIGNING_KEY_FILE", "k.pem")])).unwrap();
        assert_eq!(c.region, Region::Shanghai);
        assert_eq!(c.client_id, "entcode");
        assert_eq!(c.presentation_ttl_secs, 300);
        assert_eq!(c.cache_url, "memory://");
        assert_eq!(c.database_url, "sqlite://data/entcode.db");
        assert_eq!(c.public_url, None);
    }

    #[test]
    fn the_public_url_is_checked_and_kept_without_a_trailing_slash() {
        let with = |url: &str| {
            EntcodeConfig::from_env(&env(&[
                ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
                ("CREDMESH_PUBLIC_URL", url),
            ]))
        };
        for (given, kept) in [
            (
                "https://verify.sh.example.gov.cn/",
                "https://verify.sh.example.gov.cn",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "HTTPS://gov.example/credmesh/sh",
                "HTTPS://gov.example/credmesh/sh",
            ),
        ] {
            assert_eq!(with(given).unwrap().public_url.as_deref(), Some(kept));
        }
        for bad in [
            "verify.sh.example.gov.cn",
            "ftp://host",
            "https://",
            "https:///x",
            "https://h/?q=1",
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.contains("CREDMESH_PUBLIC_URL") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn a_missing_key_file_or_bad_lifetime_is_explained() {
        let err = EntcodeConfig::from_env(&env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("CREDMESH_SIGNING_KEY_FILE"),
            "{err}"
        );
        let err = EntcodeConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_PRESENTATION_TTL_SECONDS", "5"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("PRESENTATION_TTL"), "{err}");
    }
}
