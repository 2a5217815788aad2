//! Identity service configuration, read from an injected map (the environment in
//! `main`, a `HashMap` in tests). Every key has a default or is named in the error.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use credmesh_uscc::Region;

/// The identity service's settings.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// `CREDMESH_REGION` (default `SH`): this deployment's region.
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/identity.db`).
    pub database_url: String,
    /// `CREDMESH_ANCHOR_KEY_FILE`: PKCS#8 PEM of the region's anchor key, which signs the
    /// trust list. Required; `credmesh dev` generates one.
    pub anchor_key_file: PathBuf,
    /// `CREDMESH_TOKEN_KEY_FILE`: PKCS#8 PEM of the access-token signing key. Required;
    /// `credmesh dev` generates one.
    pub token_key_file: PathBuf,
    /// `CREDMESH_PREVIOUS_TOKEN_KEY_FILE` (optional): the previous token key, still
    /// published in the JWKS during a rotation so tokens it signed keep validating.
    pub previous_token_key_file: Option<PathBuf>,
    /// `CREDMESH_TOKEN_TTL_SECONDS` (default 900): access token lifetime.
    pub token_ttl: Duration,
    /// `CREDMESH_ALLOW_CLIENT_SECRETS` (default `false`; `credmesh dev` sets `true`).
    pub allow_client_secrets: bool,
    /// `CREDMESH_PUBLIC_URL` (default empty): the region's public HTTP base URL, put in
    /// the trust list so partners find status lists.
    pub public_url: String,
    /// `CREDMESH_BOOTSTRAP_OPERATOR_KEY` (optional): base64url raw Ed25519 public key of
    /// the first operator; at start, client `operator` is registered with it if missing.
    pub bootstrap_operator_key: Option<String>,
    /// `CREDMESH_PARTNERS_FILE` (optional): the partner regions whose anchors are pinned
    /// at start (the Helm chart's `partners.json`, see `credmesh_runtime::partners`).
    pub partners: Vec<credmesh_runtime::partners::PartnerEntry>,
    /// The other services served by the same process and port (not from the
    /// environment; `credmesh dev` names them all): identity's token validator, which
    /// that process's server checks every call with, accepts tokens for their audiences
    /// too, as each of them would in a process of its own.
    pub co_served: Vec<String>,
}

impl IdentityConfig {
    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<IdentityConfig> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let region = match get("CREDMESH_REGION") {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let token_ttl = match get("CREDMESH_TOKEN_TTL_SECONDS") {
            None => Duration::from_secs(900),
            Some(v) => {
                let secs: u64 = v.parse().with_context(|| {
                    format!("CREDMESH_TOKEN_TTL_SECONDS must be a number of seconds, not '{v}'")
                })?;
                if !(60..=86_400).contains(&secs) {
                    bail!("CREDMESH_TOKEN_TTL_SECONDS must be between 60 and 86400");
                }
                Duration::from_secs(secs)
            }
        };
        let allow_client_secrets = match get("CREDMESH_ALLOW_CLIENT_SECRETS") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => bail!("CREDMESH_ALLOW_CLIENT_SECRETS must be true or false, not '{v}'"),
        };
        Ok(IdentityConfig {
            region,
            database_url: get("DATABASE_URL")
                .unwrap_or("sqlite://data/identity.db")
                .to_string(),
            anchor_key_file: get("CREDMESH_ANCHOR_KEY_FILE")
                .context("CREDMESH_ANCHOR_KEY_FILE is required: the PKCS#8 PEM file of the region's anchor key")?
                .into(),
            token_key_file: get("CREDMESH_TOKEN_KEY_FILE")
                .context("CREDMESH_TOKEN_KEY_FILE is required: the PKCS#8 PEM file of the token signing key")?
                .into(),
            previous_token_key_file: get("CREDMESH_PREVIOUS_TOKEN_KEY_FILE").map(PathBuf::from),
            token_ttl,
            allow_client_secrets,
            public_url: get("CREDMESH_PUBLIC_URL").unwrap_or_default().to_string(),
            bootstrap_operator_key: get("CREDMESH_BOOTSTRAP_OPERATOR_KEY").map(str::to_string),
            partners: match get("CREDMESH_PARTNERS_FILE") {
                None => Vec::new(),
                Some(file) => credmesh_runtime::partners::read(file.as_ref(), region.code())
                    .context("CREDMESH_PARTNERS_FILE")?,
            },
            co_served: Vec::new(),
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
    fn defaults_apply_when_only_key_files_are_given() {
        let c = IdentityConfig::from_env(&env(&[
            ("CREDMESH_ANCHOR_KEY_FILE", "a.pem"),
            ("CREDMESH_TOKEN_KEY_FILE", "t.pem"),
        ]))
        .unwrap();
        assert_eq!(c.region, Region::Shanghai);
        assert_eq!(c.token_ttl, Duration::from_secs(900));
        assert!(!c.allow_client_secrets);
    }

    #[test]
    fn a_bad_region_is_named_in_the_error() {
        let err = IdentityConfig::from_env(&env(&[
            ("CREDMESH_REGION", "XX"),
            ("CREDMESH_ANCHOR_KEY_FILE", "a.pem"),
            ("CREDMESH_TOKEN_KEY_FILE", "t.pem"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("'XX'"), "{err}");
    }

    #[test]
    fn missing_key_files_are_explained() {
        let err = IdentityConfig::from_env(&env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("CREDMESH_ANCHOR_KEY_FILE"),
            "{err}"
        );
    }
}
