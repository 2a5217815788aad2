//! License service configuration, read from an injected map (the environment in `main`,
//! a `HashMap` in tests). Every key has a default or is named in the error.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use credmesh_runtime::status_lists;
use credmesh_uscc::{LicenseId, Region, Uscc};

use crate::domain::authority::{Authorities, SHANGHAI_MUNICIPAL};

/// The default license type code: the national market-regulation definer's code
/// (`11100000000013127D`, the code used for it across this workspace) followed by type
/// `001`, the business license. Set `CREDMESH_LICENSE_TYPE_CODE` to the code of the
/// deployed national catalogue.
pub const DEFAULT_TYPE_CODE: &str = "11100000000013127D001";

/// The license service's settings.
#[derive(Clone, Debug)]
pub struct LicenseConfig {
    /// `CREDMESH_REGION` (default `SH`): this deployment's region.
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/license.db`).
    pub database_url: String,
    /// `CREDMESH_SIGNING_KEY_FILE`: PKCS#8 PEM of the credential signing key. Required;
    /// `credmesh dev` generates one. A new file rotates the key.
    pub signing_key_file: PathBuf,
    /// `CREDMESH_CLIENT_ID` (default `license`): the service's client id at identity.
    pub client_id: String,
    /// `CREDMESH_CLIENT_KEY_FILE`: PKCS#8 PEM of the client key proving that id to
    /// identity. Required by `credmesh serve license`.
    pub client_key_file: Option<PathBuf>,
    /// `CREDMESH_IDENTITY_URL` (default `http://127.0.0.1:50051`): the identity service.
    pub identity_url: String,
    /// `CREDMESH_PUBLIC_URL` (default empty): the region's public HTTP base URL, from
    /// which credentials' status list URLs are formed.
    pub public_url: String,
    /// `CREDMESH_LICENSE_TYPE_CODE` (default [`DEFAULT_TYPE_CODE`]): the GB/T 36904
    /// license type, the definer's USCC and 3 digits.
    pub type_code: String,
    /// `CREDMESH_LICENSE_AUTHORITIES_FILE` (optional in Shanghai, whose bureaus are
    /// built in; required elsewhere): a TOML table of registration authorities.
    pub authorities: Authorities,
    /// `CREDMESH_STATUS_LIST_REFRESH_SECONDS` (default 60, 1–300): an unchanged status
    /// list is re-signed at most this often, so its `updated_at` stays fresh.
    pub status_refresh_secs: i64,
}

impl LicenseConfig {
    /// The service as identity knows it: for registering its signing key, tokens to
    /// call other services, and checking its callers' tokens.
    pub fn client(&self) -> credmesh_runtime::issuer_key::ServiceClient<'_> {
        credmesh_runtime::issuer_key::ServiceClient {
            service: "license",
            region: self.region.code(),
            client_id: &self.client_id,
            key_file: self.client_key_file.as_deref(),
        }
    }

    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<LicenseConfig> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let region = match get("CREDMESH_REGION") {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let type_code = get("CREDMESH_LICENSE_TYPE_CODE")
            .unwrap_or(DEFAULT_TYPE_CODE)
            .trim()
            .to_ascii_uppercase();
        let probe = Uscc::parse(SHANGHAI_MUNICIPAL).context("built-in authority code")?;
        LicenseId::new(&type_code, &probe, "1", 1).map_err(|e| {
            anyhow::anyhow!(
                "CREDMESH_LICENSE_TYPE_CODE must be the definer's unified social credit code and 3 digits: {e}"
            )
        })?;
        let authorities = match get("CREDMESH_LICENSE_AUTHORITIES_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading CREDMESH_LICENSE_AUTHORITIES_FILE {path}"))?;
                Authorities::from_toml(&text, region)
                    .with_context(|| format!("in CREDMESH_LICENSE_AUTHORITIES_FILE {path}"))?
            }
            None if region == Region::Shanghai => Authorities::shanghai(),
            None => bail!(
                "CREDMESH_LICENSE_AUTHORITIES_FILE is required in region {}: the built-in table holds Shanghai's bureaus only",
                region.code()
            ),
        };
        let status_refresh_secs =
            status_lists::refresh_secs(get("CREDMESH_STATUS_LIST_REFRESH_SECONDS"))?;
        Ok(LicenseConfig {
            region,
            database_url: get("DATABASE_URL")
                .unwrap_or("sqlite://data/license.db")
                .to_string(),
            signing_key_file: get("CREDMESH_SIGNING_KEY_FILE")
                .context("CREDMESH_SIGNING_KEY_FILE is required: the PKCS#8 PEM file of the license signing key")?
                .into(),
            client_id: get("CREDMESH_CLIENT_ID").unwrap_or("license").to_string(),
            client_key_file: get("CREDMESH_CLIENT_KEY_FILE").map(PathBuf::from),
            identity_url: get("CREDMESH_IDENTITY_URL")
                .unwrap_or("http://127.0.0.1:50051")
                .to_string(),
            public_url: get("CREDMESH_PUBLIC_URL").unwrap_or_default().to_string(),
            type_code,
            authorities,
            status_refresh_secs,
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
        let c = LicenseConfig::from_env(&env(&[("CREDMESH_SIGNING_KEY_FILE", "k.pem")])).unwrap();
        assert_eq!(c.region, Region::Shanghai);
        assert_eq!(c.client_id, "license");
        assert_eq!(c.type_code, DEFAULT_TYPE_CODE);
        assert_eq!(c.authorities.len(), 17);
        assert_eq!(c.status_refresh_secs, 60);
        assert!(c.client_key_file.is_none());
    }

    #[test]
    fn a_bad_type_code_or_missing_key_file_is_explained() {
        let err = LicenseConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_LICENSE_TYPE_CODE", "11100000000013127D01"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("CREDMESH_LICENSE_TYPE_CODE"),
            "{err}"
        );
        let err = LicenseConfig::from_env(&env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("CREDMESH_SIGNING_KEY_FILE"),
            "{err}"
        );
    }

    #[test]
    fn other_regions_need_their_own_authorities() {
        let err = LicenseConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_REGION", "JS"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("CREDMESH_LICENSE_AUTHORITIES_FILE"),
            "{err}"
        );
    }
}
