//! The names of credmesh's domain metrics, as exposed on `/metrics`: the contract between
//! the services that export them and the alert rules and dashboard the Helm chart ships
//! (helm/credmesh/templates/observability.yaml, helm/credmesh/files/credmesh-dashboard.json),
//! catalogued with their labels in docs/OBSERVABILITY.md. Register them under exactly these
//! names with [`crate::metrics::Metrics::register`], which writes a counter's `_total` once:
//!
//! ```ignore
//! let issued = Family::<KindLabel, Counter>::default();
//! metrics.register(names::CREDENTIALS_ISSUED_TOTAL, "credentials signed, by kind", issued.clone());
//! ```
//!
//! A unit test keeps this list and the catalogue in step.

/// Gauge `{region}`: seconds since verify last fetched and checked `region`'s trust list.
pub const VERIFY_TRUST_LIST_AGE_SECONDS: &str = "credmesh_verify_trust_list_age_seconds";
/// Gauge `{region}`: age of the oldest status list verify holds for issuers of `region`.
pub const VERIFY_STATUS_LIST_AGE_SECONDS: &str = "credmesh_verify_status_list_age_seconds";
/// Counter `{service, client}`: calls any service refused with RESOURCE_EXHAUSTED (HTTP 429)
/// by the per-client rate limit (`client` is the client id or `anonymous`).
pub const RATE_LIMITED_TOTAL: &str = "credmesh_rate_limited_total";
/// Counter `{kind, region, outcome}`: verify answers.
pub const VERIFY_OUTCOMES_TOTAL: &str = "credmesh_verify_outcomes_total";
/// Counter `{cache, result}`: verify's trust and status cache lookups, `hit` or `miss`.
pub const VERIFY_CACHE_REQUESTS_TOTAL: &str = "credmesh_verify_cache_requests_total";
/// Counter `{kind}`: credentials signed.
pub const CREDENTIALS_ISSUED_TOTAL: &str = "credmesh_credentials_issued_total";
/// Counter `{kind}`: credentials revoked or suspended.
pub const CREDENTIALS_REVOKED_TOTAL: &str = "credmesh_credentials_revoked_total";
/// Gauge: data disputes not yet resolved.
pub const CERTIFICATE_DISPUTES_OPEN: &str = "credmesh_certificate_disputes_open";
/// Gauge: open disputes past their answer deadline.
pub const CERTIFICATE_DISPUTES_OVERDUE: &str = "credmesh_certificate_disputes_overdue";
/// Counter `{rule, decision}`: inspection plan decisions by rule.
pub const INSPECTION_DECISIONS_TOTAL: &str = "credmesh_inspection_decisions_total";

/// Every name above, for tests and tools.
pub const ALL: [&str; 10] = [
    VERIFY_TRUST_LIST_AGE_SECONDS,
    VERIFY_STATUS_LIST_AGE_SECONDS,
    RATE_LIMITED_TOTAL,
    VERIFY_OUTCOMES_TOTAL,
    VERIFY_CACHE_REQUESTS_TOTAL,
    CREDENTIALS_ISSUED_TOTAL,
    CREDENTIALS_REVOKED_TOTAL,
    CERTIFICATE_DISPUTES_OPEN,
    CERTIFICATE_DISPUTES_OVERDUE,
    INSPECTION_DECISIONS_TOTAL,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    const CATALOGUE: &str = include_str!("../../../docs/OBSERVABILITY.md");

    #[test]
    fn every_domain_metric_name_is_in_the_operators_catalogue() {
        for name in ALL {
            assert!(
                CATALOGUE.contains(&format!("| `{name}` |")),
                "{name} is not a row of docs/OBSERVABILITY.md's metric catalogue"
            );
        }
    }

    #[test]
    fn every_domain_metric_in_the_catalogue_has_a_name_here() {
        let documented: Vec<&str> = CATALOGUE
            .lines()
            .filter_map(|line| line.strip_prefix("| `credmesh_"))
            .filter_map(|rest| rest.split('`').next())
            // The runtime's RED metrics, gRPC and HTTP, are not domain metrics.
            .filter(|name| !name.starts_with("grpc_server_") && !name.starts_with("http_server_"))
            .collect();
        for name in documented {
            let name = format!("credmesh_{name}");
            assert!(
                ALL.contains(&name.as_str()),
                "{name} is documented but not named in names.rs"
            );
        }
    }

    #[test]
    fn the_names_are_valid_prometheus_names_with_counter_and_unit_suffixes() {
        for name in ALL {
            assert!(name.starts_with("credmesh_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }
}
