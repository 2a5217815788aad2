//! Scenarios: named sets of license fields an enterprise discloses for one purpose.
//!
//! Field names are the claim names of the business license credential
//! (`credmesh_license::domain::credential::claims`): `name`, `uscc`, `entity_type`,
//! `legal_representative`, `registered_capital`, `establishment_date`,
//! `business_term`, `domicile`, `business_scope`, `registration_authority`,
//! `registration_authority_uscc`, `issue_date`.
//!
//! Deliberate simplification: the four scenarios are built in (version 1); scenarios
//! defined by operators, and fields from permits and credit grades, come with the
//! services that hold those data.

use credmesh_proto::credential::v1::Claim;

/// A scenario: its name, what it is for, and the fields it discloses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// `basic`, `bank-loan`, …
    pub name: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// License claim names, in display order.
    pub fields: &'static [&'static str],
    /// From 1.
    pub version: u32,
}

/// The built-in scenarios, ordered by name.
pub const BUILT_IN: &[Scenario] = &[
    Scenario {
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
        version: 1,
    },
    Scenario {
        name: "basic",
        description: "Who the enterprise is: name, code, form and address",
        fields: &["name", "uscc", "entity_type", "domicile"],
        version: 1,
    },
    Scenario {
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
        version: 1,
    },
    Scenario {
        name: "inspection",
        description: "An inspector's check on site: identity, address, scope and representative",
        fields: &[
            "name",
            "uscc",
            "domicile",
            "business_scope",
            "legal_representative",
        ],
        version: 1,
    },
];

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    BUILT_IN.iter().find(|s| s.name == name)
}

impl Scenario {
    /// The license claims this scenario discloses, in the scenario's order: every other
    /// claim is left out. A field the license lacks is left out too, never invented.
    pub fn disclose(&self, license: &[Claim]) -> Vec<Claim> {
        self.fields
            .iter()
            .filter_map(|f| license.iter().find(|c| c.name == *f).cloned())
            .collect()
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

    #[test]
    fn each_scenario_discloses_only_its_fields_in_its_order() {
        let license: Vec<Claim> = [
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
        ]
        .iter()
        .map(|n| claim(n))
        .collect();
        for s in BUILT_IN {
            let out = s.disclose(&license);
            let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, s.fields, "{}", s.name);
        }
    }

    #[test]
    fn the_four_built_in_scenarios_exist_and_unknown_names_do_not() {
        for n in ["basic", "bank-loan", "bidding", "inspection"] {
            assert!(find(n).is_some(), "{n}");
        }
        assert!(find("everything").is_none());
    }
}
