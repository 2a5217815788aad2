//! Scenarios: named, versioned sets of license fields an enterprise discloses for one
//! purpose.
//!
//! Field names are the claim names of the business license credential
//! (`credmesh_license::domain::credential::claims`), and two fields from other services:
//! [`FIELD_PERMITS`] (the enterprise's valid permits, from the certificate service) and
//! [`FIELD_CREDIT_GRADE`] (from the inspection service). [`DISCLOSABLE`] lists them all:
//! the only fields a scenario may name. The built-in scenarios disclose license fields
//! only, so they work without the optional services.
//!
//! The four built-in scenarios ([`BUILT_IN`]) are seeded as version 1 of stored
//! scenarios; operators change them and add their own through `PutScenario`, each change
//! a new version. A version is immutable: a presentation records the scenario's name and
//! version, and discloses exactly that version's fields.

use credmesh_proto::credential::v1::Claim;

use crate::error::EntcodeError;

/// The enterprise's valid permits, `<type name> <serial> 至<last day>; …`.
pub const FIELD_PERMITS: &str = "permits";
/// The enterprise's credit grade, `A` to `D`.
pub const FIELD_CREDIT_GRADE: &str = "credit_grade";

/// Every field a scenario may disclose: the license credential's claims, the permits and
/// the credit grade.
pub const DISCLOSABLE: &[&str] = &[
    "name",
    "uscc",
    "entity_type",
    "legal_representative",
    "registered_capital",
    "establishment_date",
    "business_term",
    "domicile",
    "business_scope",
    "registration_authority",
    "registration_authority_uscc",
    "issue_date",
    FIELD_PERMITS,
    FIELD_CREDIT_GRADE,
];

/// Longest scenario name.
pub const MAX_NAME_LEN: usize = 40;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// One version of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// `basic`, `bank-loan`, …
    pub name: String,
    /// One line for people.
    pub description: String,
    /// License claim names, in display order.
    pub fields: Vec<String>,
    /// From 1.
    pub version: u32,
    /// Retired: no new presentations.
    pub retired: bool,
}

/// A built-in scenario, as seeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltIn {
    /// Its name.
    pub name: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// License claim names, in display order.
    pub fields: &'static [&'static str],
}

impl BuiltIn {
    /// Version 1 of the scenario.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            name: self.name.to_string(),
            description: self.description.to_string(),
            fields: self.fields.iter().map(|f| f.to_string()).collect(),
            version: 1,
            retired: false,
        }
    }
}

/// The built-in scenarios, ordered by name; seeded as version 1.
pub const BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        name: "bank-loan",
        description: "A bank's credit check: identity, form, representative, capital, age and term",
        fields: &[
            "name",
            "uscc",
            "entity_type",
            "legal_representative",
            "registered_capital",
            "establishment_date",
            "business_term",
        ],
    },
    BuiltIn {
        name: "basic",
        description: "Who the enterprise is: name, code, form and address",
        fields: &["name", "uscc", "entity_type", "domicile"],
    },
    BuiltIn {
        name: "bidding",
        description: "A tender's qualification check: identity, capital, scope, term and authority",
        fields: &[
            "name",
            "uscc",
            "entity_type",
            "registered_capital",
            "business_scope",
            "business_term",
            "registration_authority",
        ],
    },
    BuiltIn {
        name: "inspection",
        description: "An inspector's check on site: identity, address, scope and representative",
        fields: &[
            "name",
            "uscc",
            "domicile",
            "business_scope",
            "legal_representative",
        ],
    },
];

/// The built-in scenario named `name`.
pub fn built_in(name: &str) -> Option<&'static BuiltIn> {
    BUILT_IN.iter().find(|s| s.name == name)
}

impl Scenario {
    /// The claims this scenario discloses (from the license's and the extra fields'
    /// claims), in the scenario's order: every other claim is left out. A field the license lacks is left out too, never invented.
    pub fn disclose(&self, license: &[Claim]) -> Vec<Claim> {
        self.fields
            .iter()
            .filter_map(|f| license.iter().find(|c| &c.name == f).cloned())
            .collect()
    }
}

fn invalid(reason: &'static str, field: &'static str, message: String) -> EntcodeError {
    EntcodeError::Invalid {
        reason,
        message,
        field,
    }
}

/// A scenario name, checked: lowercase letters, digits and hyphens, starting with a
/// letter, at most [`MAX_NAME_LEN`]. Presentation ids carry the name after a colon, so
/// the alphabet also keeps them parseable.
pub fn parse_name(name: &str) -> Result<String, EntcodeError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid(
            "SCENARIO_REQUIRED",
            "name",
            "a scenario name is required".into(),
        ));
    }
    let ok = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(invalid(
            "SCENARIO_NAME_INVALID",
            "name",
            format!(
                "a scenario name is lowercase letters, digits and hyphens, starting with a letter, at most {MAX_NAME_LEN} characters; '{}' is not",
                name.chars().take(60).collect::<String>()
            ),
        ));
    }
    Ok(name.to_string())
}

/// A reason for the history, checked: required, at most [`MAX_REASON_CHARS`].
pub fn parse_reason(reason: &str) -> Result<String, EntcodeError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid(
            "REASON_REQUIRED",
            "reason",
            "a reason for the change is required: it is kept in the scenario's history".into(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(
            "REASON_TOO_LONG",
            "reason",
            format!("the reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_string())
}

/// What an operator asks a scenario to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The fields, in display order.
    pub fields: Vec<String>,
}

impl Draft {
    /// Checks a requested scenario: a valid name, a description, at least one field,
    /// every field disclosable (an unknown one is named) and none twice.
    pub fn parse(name: &str, description: &str, fields: &[String]) -> Result<Draft, EntcodeError> {
        let name = parse_name(name)?;
        let description = description.trim();
        if description.is_empty() {
            return Err(invalid(
                "DESCRIPTION_REQUIRED",
                "description",
                "a scenario needs a one-line description".into(),
            ));
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS || description.contains('\n') {
            return Err(invalid(
                "DESCRIPTION_INVALID",
                "description",
                format!(
                    "the description is one line of at most {MAX_DESCRIPTION_CHARS} characters"
                ),
            ));
        }
        if fields.is_empty() {
            return Err(invalid(
                "SCENARIO_FIELDS_REQUIRED",
                "fields",
                "a scenario discloses at least one field".into(),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(fields.len());
        for f in fields {
            let f = f.trim();
            if !DISCLOSABLE.contains(&f) {
                return Err(EntcodeError::UnknownField(
                    f.chars().take(60).collect::<String>(),
                ));
            }
            if out.iter().any(|o| o == f) {
                return Err(invalid(
                    "SCENARIO_FIELD_REPEATED",
                    "fields",
                    format!("the field '{f}' is named twice"),
                ));
            }
            out.push(f.to_string());
        }
        Ok(Draft {
            name,
            description: description.to_string(),
            fields: out,
        })
    }
}

/// What one version changed from the one before (`None` before version 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// Fields added.
    pub added: Vec<String>,
    /// Fields removed.
    pub removed: Vec<String>,
    /// The description changed.
    pub description: bool,
    /// The kept fields are in another order.
    pub order: bool,
    /// The retired mark changed.
    pub retired: bool,
}

impl Diff {
    /// From `before` (absent for a new scenario) to `after`.
    pub fn between(before: Option<&Scenario>, after: &Scenario) -> Diff {
        let Some(before) = before else {
            return Diff {
                added: after.fields.clone(),
                ..Diff::default()
            };
        };
        let kept_before: Vec<&String> = before
            .fields
            .iter()
            .filter(|f| after.fields.contains(f))
            .collect();
        let kept_after: Vec<&String> = after
            .fields
            .iter()
            .filter(|f| before.fields.contains(f))
            .collect();
        Diff {
            added: after
                .fields
                .iter()
                .filter(|f| !before.fields.contains(f))
                .cloned()
                .collect(),
            removed: before
                .fields
                .iter()
                .filter(|f| !after.fields.contains(f))
                .cloned()
                .collect(),
            description: before.description != after.description,
            order: kept_before != kept_after,
            retired: before.retired != after.retired,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self == &Diff::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str) -> Claim {
        Claim {
            name: name.into(),
            value: format!("v-{name}"),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_scenario_discloses_only_its_fields_in_its_order() {
        let license: Vec<Claim> = DISCLOSABLE.iter().map(|n| claim(n)).collect();
        for s in BUILT_IN {
            let out = s.scenario().disclose(&license);
            let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, s.fields, "{}", s.name);
        }
    }

    #[test]
    fn the_four_built_in_scenarios_exist_and_unknown_names_do_not() {
        for n in ["basic", "bank-loan", "bidding", "inspection"] {
            assert!(built_in(n).is_some(), "{n}");
        }
        assert!(built_in("everything").is_none());
    }

    #[test]
    fn built_in_scenarios_pass_the_rules_operators_scenarios_must_pass() {
        for s in BUILT_IN {
            let d = Draft::parse(s.name, s.description, &strings(s.fields)).unwrap();
            assert_eq!(d.fields, strings(s.fields));
        }
    }

    #[test]
    fn an_unknown_field_is_refused_by_its_name() {
        let err = Draft::parse("x", "d", &strings(&["name", "id_number"])).unwrap_err();
        assert!(matches!(err, EntcodeError::UnknownField(ref f) if f == "id_number"));
        assert!(err.to_string().contains("id_number"), "{err}");
    }

    #[test]
    fn names_descriptions_and_repeated_fields_are_checked() {
        for bad in ["", "Basic", "1abc", "a:b", "a b", &"a".repeat(41)] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_name("loan-2026").is_ok());
        assert!(Draft::parse("x", " ", &strings(&["name"])).is_err());
        assert!(Draft::parse("x", "d", &[]).is_err());
        assert!(Draft::parse("x", "d", &strings(&["name", "name"])).is_err());
        assert!(parse_reason("  ").is_err());
    }

    #[test]
    fn the_diff_names_what_changed() {
        let v1 = built_in("basic").unwrap().scenario();
        let mut v2 = v1.clone();
        v2.fields = strings(&["uscc", "name", "business_scope"]);
        let d = Diff::between(Some(&v1), &v2);
        assert_eq!(d.added, strings(&["business_scope"]));
        assert_eq!(d.removed, strings(&["entity_type", "domicile"]));
        assert!(d.order);
        assert!(!d.description && !d.retired);
        assert!(Diff::between(Some(&v1), &v1).is_empty());
        assert_eq!(Diff::between(None, &v1).added, v1.fields);
    }
}
