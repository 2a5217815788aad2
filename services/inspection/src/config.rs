//! Inspection service configuration, read from an injected map (the environment in
//! `main`, a `HashMap` in tests). Every key has a default or is named in the error; the
//! rule settings default to DOMAIN.md's numbers.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use credmesh_uscc::Region;

use crate::domain::rules::{Grade, Policy};

/// The inspection service's settings.
#[derive(Clone, Debug)]
pub struct InspectionConfig {
    /// `CREDMESH_REGION` (default `SH`).
    pub region: Region,
    /// `DATABASE_URL` (default `sqlite://data/inspection.db`).
    pub database_url: String,
    /// `CREDMESH_SIGNING_KEY_FILE`: PKCS#8 PEM of the code signing key. Required.
    pub signing_key_file: PathBuf,
    /// `CREDMESH_CLIENT_ID` (default `inspection`): the service's client id at identity.
    pub client_id: String,
    /// `CREDMESH_CLIENT_KEY_FILE`: PKCS#8 PEM of the client key. Required by
    /// `credmesh serve inspection`.
    pub client_key_file: Option<PathBuf>,
    /// `CREDMESH_IDENTITY_URL` (default `http://127.0.0.1:50051`).
    pub identity_url: String,
    /// `CREDMESH_LICENSE_URL` (default `http://127.0.0.1:50051`): the license service,
    /// asked whether an enterprise's license is in force.
    pub license_url: String,
    /// `CREDMESH_PUBLIC_URL` (default empty): the region's public HTTP base URL.
    pub public_url: String,
    /// `CREDMESH_STATUS_LIST_REFRESH_SECONDS` (default 60, 1–300).
    pub status_refresh_secs: i64,
    /// The rules (`CREDMESH_INSPECTION_*`):
    /// - `REQUIRE_BASIS` (true): rule 1;
    /// - `TWO_NO_LISTS` (true): rule 2;
    /// - `CAPS` (`A=1,B=2,C=4,D=none`), `CAP_WINDOW_DAYS` (365), `DEFAULT_GRADE` (B):
    ///   rule 3 caps;
    /// - `ALERT_LIMITS` (`1,2,3`: day, week, month): rule 3 alerts;
    /// - `BLOCK_AFTER` (3, 0 disables), `BLOCK_WINDOW_DAYS` (365): rule 3 block;
    /// - `CONFLICT_DAYS` (30): rule 4;
    /// - `NON_SITE_DAYS` (90, 0 disables): rule 5;
    /// - `EVALUATION_DAYS` (15): rule 7;
    /// - `MAX_WINDOW_DAYS` (30): the longest code window;
    /// - `MIN_EVALUATIONS` (3): fewer evaluations are shown to a department only as a
    ///   count (rule 7: never who rated what).
    pub policy: Policy,
}

fn number(
    get: &dyn Fn(&str) -> Option<String>,
    key: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> anyhow::Result<i64> {
    match get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => bail!(
                "{key} must be a number from {} to {}, not '{v}'",
                range.start(),
                range.end()
            ),
        },
    }
}

fn flag(get: &dyn Fn(&str) -> Option<String>, key: &str) -> anyhow::Result<bool> {
    match get(key).as_deref() {
        None => Ok(true),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(v) => bail!("{key} must be true or false, not '{v}'"),
    }
}

/// Parses `A=1,B=2,C=4,D=none`; grades not named keep their default.
pub fn parse_caps(text: &str, mut caps: [Option<u32>; 4]) -> anyhow::Result<[Option<u32>; 4]> {
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (grade, cap) = part
            .split_once('=')
            .with_context(|| format!("'{part}' is not GRADE=CAP"))?;
        let grade = Grade::parse(grade).with_context(|| format!("'{grade}' is not a grade A-D"))?;
        caps[grade as usize] = match cap.trim() {
            "none" | "" => None,
            n => Some(n.parse().with_context(|| format!("'{n}' is not a cap"))?),
        };
    }
    Ok(caps)
}

impl InspectionConfig {
    /// The service as identity knows it: for registering its signing key, tokens to
    /// call other services, and checking its callers' tokens.
    pub fn client(&self) -> credmesh_runtime::issuer_key::ServiceClient<'_> {
        credmesh_runtime::issuer_key::ServiceClient {
            service: "inspection",
            region: self.region.code(),
            client_id: &self.client_id,
            key_file: self.client_key_file.as_deref(),
        }
    }

    /// Reads the settings from `env`.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<InspectionConfig> {
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let region = match get("CREDMESH_REGION").as_deref() {
            None => Region::Shanghai,
            Some(code) => match Region::from_code(code) {
                Some(r) if r != Region::Other => r,
                _ => bail!("CREDMESH_REGION must be SH, JS, ZJ or AH, not '{code}'"),
            },
        };
        let d = Policy::default();
        let p = "CREDMESH_INSPECTION_";
        let key = |k: &str| format!("{p}{k}");
        let caps = match get(&key("CAPS")) {
            None => d.caps,
            Some(t) => parse_caps(&t, d.caps).with_context(|| format!("{p}CAPS"))?,
        };
        let default_grade = match get(&key("DEFAULT_GRADE")) {
            None => d.default_grade,
            Some(g) => Grade::parse(&g)
                .with_context(|| format!("{p}DEFAULT_GRADE must be A, B, C or D, not '{g}'"))?,
        };
        let alert_limits = match get(&key("ALERT_LIMITS")) {
            None => d.alert_limits,
            Some(t) => {
                let n: Vec<u32> = t
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .with_context(|| {
                        format!("{p}ALERT_LIMITS must be three numbers: day,week,month")
                    })?;
                <[u32; 3]>::try_from(n).map_err(|_| {
                    anyhow::anyhow!("{p}ALERT_LIMITS must be three numbers: day,week,month")
                })?
            }
        };
        let get_ref = &get;
        let policy = Policy {
            require_basis: flag(get_ref, &key("REQUIRE_BASIS"))?,
            two_no_lists: flag(get_ref, &key("TWO_NO_LISTS"))?,
            caps,
            cap_window_days: number(
                get_ref,
                &key("CAP_WINDOW_DAYS"),
                d.cap_window_days,
                1..=3650,
            )?,
            default_grade,
            alert_limits,
            block_after: number(
                get_ref,
                &key("BLOCK_AFTER"),
                i64::from(d.block_after),
                0..=100,
            )? as u32,
            block_window_days: number(
                get_ref,
                &key("BLOCK_WINDOW_DAYS"),
                d.block_window_days,
                1..=3650,
            )?,
            conflict_days: number(get_ref, &key("CONFLICT_DAYS"), d.conflict_days, 0..=365)?,
            non_site_days: number(get_ref, &key("NON_SITE_DAYS"), d.non_site_days, 0..=3650)?,
            evaluation_days: number(get_ref, &key("EVALUATION_DAYS"), d.evaluation_days, 1..=365)?,
            max_window_days: number(get_ref, &key("MAX_WINDOW_DAYS"), d.max_window_days, 1..=365)?,
            min_evaluations: number(
                get_ref,
                &key("MIN_EVALUATIONS"),
                i64::from(d.min_evaluations),
                1..=100,
            )? as u32,
        };
        Ok(InspectionConfig {
            region,
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/inspection.db".into()),
            signing_key_file: get("CREDMESH_SIGNING_KEY_FILE")
                .context("CREDMESH_SIGNING_KEY_FILE is required: the PKCS#8 PEM file of the inspection code signing key")?
                .into(),
            client_id: get("CREDMESH_CLIENT_ID").unwrap_or_else(|| "inspection".into()),
            client_key_file: get("CREDMESH_CLIENT_KEY_FILE").map(PathBuf::from),
            identity_url: get("CREDMESH_IDENTITY_URL").unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            license_url: get("CREDMESH_LICENSE_URL").unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            public_url: get("CREDMESH_PUBLIC_URL").unwrap_or_default(),
            status_refresh_secs: credmesh_runtime::status_lists::refresh_secs(
                get_ref("CREDMESH_STATUS_LIST_REFRESH_SECONDS").as_deref(),
            )?,
            policy,
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
    fn defaults_are_domain_md_numbers() {
        let c =
            InspectionConfig::from_env(&env(&[("CREDMESH_SIGNING_KEY_FILE", "k.pem")])).unwrap();
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.policy.caps, [Some(1), Some(2), Some(4), None]);
        assert_eq!(c.client_id, "inspection");
    }

    #[test]
    fn every_rule_is_configurable() {
        let c = InspectionConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_INSPECTION_CAPS", "A=2,D=8"),
            ("CREDMESH_INSPECTION_DEFAULT_GRADE", "c"),
            ("CREDMESH_INSPECTION_ALERT_LIMITS", "2,3,4"),
            ("CREDMESH_INSPECTION_BLOCK_AFTER", "0"),
            ("CREDMESH_INSPECTION_CONFLICT_DAYS", "10"),
            ("CREDMESH_INSPECTION_NON_SITE_DAYS", "0"),
            ("CREDMESH_INSPECTION_TWO_NO_LISTS", "false"),
            ("CREDMESH_INSPECTION_REQUIRE_BASIS", "false"),
            ("CREDMESH_INSPECTION_EVALUATION_DAYS", "30"),
        ]))
        .unwrap();
        let p = c.policy;
        assert_eq!(p.caps, [Some(2), Some(2), Some(4), Some(8)]);
        assert_eq!(p.default_grade, Grade::C);
        assert_eq!(p.alert_limits, [2, 3, 4]);
        assert_eq!(
            (
                p.block_after,
                p.conflict_days,
                p.non_site_days,
                p.evaluation_days
            ),
            (0, 10, 0, 30)
        );
        assert!(!p.two_no_lists && !p.require_basis);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = InspectionConfig::from_env(&env(&[
            ("CREDMESH_SIGNING_KEY_FILE", "k.pem"),
            ("CREDMESH_INSPECTION_CAPS", "E=1"),
        ]))
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("CREDMESH_INSPECTION_CAPS"),
            "{err:#}"
        );
        let err = InspectionConfig::from_env(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("CREDMESH_SIGNING_KEY_FILE"));
    }
}
