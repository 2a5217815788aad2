//! Certificate service configuration, read from an injected map (the environment in
//! `main`, a `HashMap` in tests). Every key has a default or is named in the error.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use credmesh_uscc::Region;
use time::Date;

use crate::{credit::ConfigCreditGrades, domain::calendar::WorkingCalendar};

/// The certificate service's settings.
#[derive(Clone, Debug)]
pub struct CertificateConfig {
    /// `CREDMESH_REGION` (default `SH`): this deployment's region.
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/certificate.db`).
    pub database_url: String,
    /// `CREDMESH_SIGNING_KEY_FILE`: PKCS#8 PEM of the credential signing key. Required.
    pub signing_key_file: PathBuf,
    /// `CREDMESH_CLIENT_ID` (default `certificate`): the service's client id at identity.
    pub client_id: String,
    /// `CREDMESH_CLIENT_KEY_FILE`: PKCS#8 PEM of the client key proving that id.
    /// Required by `credmesh serve certificate` (key registration and license reads).
    pub client_key_file: Option<PathBuf>,
    /// `CREDMESH_IDENTITY_URL` (default `http://127.0.0.1:50051`): the identity service.
    pub identity_url: String,
    /// `CREDMESH_LICENSE_URL` (default `http://127.0.0.1:50051`): the license service.
    pub license_url: String,
    /// `CREDMESH_PUBLIC_URL` (default empty): the region's public HTTP base URL.
    pub public_url: String,
    /// `CREDMESH_CREDIT_GRADE_SOURCE` (default `static:*=B`): credit grades when no
    /// inspection service is configured; see [`ConfigCreditGrades::parse`].
    pub credit_grades: ConfigCreditGrades,
    /// `CREDMESH_INSPECTION_URL` (default unset): the inspection service, which answers
    /// credit grades (the client needs scope `inspection.credit`); when set, it is the
    /// only source of grades.
    pub inspection_url: Option<String>,
    /// `CREDMESH_HOLIDAYS` (default none) and `CREDMESH_MAKEUP_WORKDAYS` (default none):
    /// comma-separated ISO dates of public holidays and make-up working days.
    pub calendar: WorkingCalendar,
    /// `CREDMESH_SEED_TYPES` (default `true`): register the built-in types at start.
    pub seed_types: bool,
    /// `CREDMESH_STATUS_LIST_REFRESH_SECONDS` (default 60, 1–300): an unchanged status
    /// list is signed again at most this often.
    pub status_refresh_secs: i64,
}

fn dates(key: &str, value: Option<&str>) -> anyhow::Result<Vec<Date>> {
    let fmt = time::format_description::well_known::Iso8601::DATE;
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| Date::parse(d, &fmt).with_context(|| format!("{key}: '{d}' is not an ISO date")))
        .collect()
}

impl CertificateConfig {
    /// The service as identity knows it: for registering its signing key, tokens to
    /// call other services, and checking its callers' tokens.
    pub fn client(&self) -> credmesh_runtime::issuer_key::ServiceClient<'_> {
        credmesh_runtime::issuer_key::ServiceClient {
            service: "certificate",
            region: self.region.code(),
            client_id: &self.client_id,
            key_file: self.client_key_file.as_deref(),
        }
    }

    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<CertificateConfig> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let region = match get("CREDMESH_REGION") {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let credit_grades =
            ConfigCreditGrades::parse(get("CREDMESH_CREDIT_GRADE_SOURCE").unwrap_or("static:*=B"))
                .map_err(|e| anyhow::anyhow!("CREDMESH_CREDIT_GRADE_SOURCE: {e}"))?;
        let calendar = WorkingCalendar::new(
            dates("CREDMESH_HOLIDAYS", get("CREDMESH_HOLIDAYS"))?,
            dates("CREDMESH_MAKEUP_WORKDAYS", get("CREDMESH_MAKEUP_WORKDAYS"))?,
        );
        let seed_types = match get("CREDMESH_SEED_TYPES") {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(v) => bail!("CREDMESH_SEED_TYPES must be true or false, not '{v}'"),
        };
        Ok(CertificateConfig {
            region,
            database_url: get("DATABASE_URL")
                .unwrap_or("sqlite://data/certificate.db")
                .to_string(),
            signing_key_file: get("CREDMESH_SIGNING_KEY_FILE")
                .context("CREDMESH_SIGNING_KEY_FILE is required: the PKCS#8 PEM file of the certificate signing key")?
                .into(),
            client_id: get("CREDMESH_CLIENT_ID").unwrap_or("certificate").to_string(),
            client_key_file: get("CREDMESH_CLIENT_KEY_FILE").map(PathBuf::from),
            identity_url: get("CREDMESH_IDENTITY_URL")
                .unwrap_or("http://127.0.0.1:50051")
                .to_string(),
            license_url: get("CREDMESH_LICENSE_URL")
                .unwrap_or("http://127.0.0.1:50051")
                .to_string(),
            public_url: get("CREDMESH_PUBLIC_URL").unwrap_or_default().to_string(),
            credit_grades,
            inspection_url: get("CREDMESH_INSPECTION_URL").map(str::to_string),
            calendar,
            seed_types,
            status_refresh_secs: credmesh_runtime::status_lists::refresh_secs(get(
                "CREDMESH_STATUS_LIST_REFRESH_SECONDS",
            ))?,
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
        let c =
            CertificateConfig::from_env(&env(&[("CREDMESH_SIGNING_KEY_FILE", "k.pem")])).unwrap();
        assert_eq!(c.region, Region::Shanghai);
        assert_eq!(c.client_id, "certificate");
        assert!(c.seed_types);
    }

    #[test]
    fn bad_dates_and_grade_sources_are_explained() {
        let err = CertificateConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_HOLIDAYS", "2026-10-01,tomorrow"),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("CREDMESH_HOLIDAYS"), "{err:#}");
        let err = CertificateConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_CREDIT_GRADE_SOURCE", "static:x=Q"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("CREDMESH_CREDIT_GRADE_SOURCE"),
            "{err}"
        );
    }
}
