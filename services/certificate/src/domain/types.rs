//! Certificate types: who issues them, what fields they carry, how long they last, and
//! the validation of a certificate's field values against its type's schema.
//!
//! Three real Shanghai types are seeded: the food business permit (食品经营许可证), the
//! public-place hygiene permit (公共场所卫生许可证) and an industry comprehensive permit
//! (行业综合许可证) for convenience stores that bundles the two ("one industry, one
//! permit", 一业一证: one credential in place of several permits of one industry).

use std::collections::{BTreeMap, HashSet};

use credmesh_uscc::{LicenseId, Uscc};
use serde::{Deserialize, Serialize};

use super::{Checks, Invalid, invalid};

/// The type of a field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text, at most 2000 characters.
    Text,
    /// An ISO 8601 date.
    Date,
    /// A whole number.
    Integer,
    /// A unified social credit code.
    Uscc,
    /// One of the allowed values.
    Enum,
}

/// One field of a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Machine name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether a value is required.
    pub required: bool,
    /// For enums: the allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

/// A certificate type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertType {
    /// GB/T 36904 type code (definer's USCC + 3 digits).
    pub type_code: String,
    /// Name.
    pub name: String,
    /// The competent department, the only issuer.
    pub department: Uscc,
    /// The department's name.
    pub department_name: String,
    /// Fields, in display order.
    pub fields: Vec<FieldSpec>,
    /// Default validity in days.
    pub validity_days: u32,
    /// Bundled type codes (industry comprehensive permits).
    pub bundles: Vec<String>,
    /// The industry of a comprehensive permit.
    pub industry: String,
}

/// Field values of a certificate, by field name.
pub type Values = BTreeMap<String, String>;

const MAX_TEXT: usize = 2000;

fn field_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl CertType {
    /// Checks a type definition as an operator registers it.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checks::default();
        let probe = Uscc::parse(crate::domain::types::SH_MUNICIPAL_MARKET)
            .map_err(|e| invalid("INTERNAL", "type", e.to_string()))?;
        if LicenseId::new(&self.type_code, &probe, "1", 1).is_err() {
            c.fail(
                "TYPE_CODE_INVALID",
                "type.type_code",
                "the type code must be the definer's unified social credit code followed by 3 digits",
            );
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            c.fail(
                "TYPE_NAME_INVALID",
                "type.name",
                "the name must have 1 to 100 characters",
            );
        }
        if self.fields.is_empty() {
            c.fail(
                "SCHEMA_EMPTY",
                "type.fields",
                "a type needs at least one field",
            );
        }
        let mut seen = HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            if !field_name_ok(&f.name) {
                c.fail(
                    "FIELD_NAME_INVALID",
                    &format!("type.fields[{i}].name"),
                    format!(
                        "field name '{}' must be lowercase letters, digits and underscores, starting with a letter",
                        f.name
                    ),
                );
            }
            if !seen.insert(f.name.as_str()) {
                c.fail(
                    "FIELD_NAME_DUPLICATE",
                    &format!("type.fields[{i}].name"),
                    format!("field name '{}' appears twice", f.name),
                );
            }
            if f.kind == FieldType::Enum && f.allowed.is_empty() {
                c.fail(
                    "FIELD_ENUM_EMPTY",
                    &format!("type.fields[{i}].allowed_values"),
                    format!("enum field '{}' needs its allowed values", f.name),
                );
            }
        }
        self.validate_bundle(&mut c, &probe);
        if !(1..=36_500).contains(&self.validity_days) {
            c.fail(
                "VALIDITY_INVALID",
                "type.default_validity_days",
                "the default validity must be 1 to 36500 days",
            );
        }
        c.finish()
    }

    /// An industry comprehensive permit ("one industry, one permit") names its industry
    /// and bundles at least two other, distinct, well-formed type codes; a plain type
    /// names neither. Whether the bundled types are registered is the service's check.
    fn validate_bundle(&self, c: &mut Checks, probe: &Uscc) {
        if self.bundles.is_empty() {
            if !self.industry.trim().is_empty() {
                c.fail(
                    "BUNDLE_INVALID",
                    "type.bundles",
                    "only an industry comprehensive permit names an industry, and it bundles at least two types",
                );
            }
            return;
        }
        let industry = self.industry.trim().chars().count();
        if industry == 0 || industry > 50 {
            c.fail(
                "BUNDLE_INVALID",
                "type.industry",
                "an industry comprehensive permit names its industry in 1 to 50 characters",
            );
        }
        if self.bundles.len() < 2 {
            c.fail(
                "BUNDLE_INVALID",
                "type.bundles",
                "an industry comprehensive permit bundles at least two permits",
            );
        }
        let mut seen = HashSet::new();
        for (i, code) in self.bundles.iter().enumerate() {
            let at = format!("type.bundles[{i}]");
            if LicenseId::new(code, probe, "1", 1).is_err() {
                c.fail(
                    "BUNDLE_INVALID",
                    &at,
                    format!("'{code}' is not a type code (a unified social credit code followed by 3 digits)"),
                );
            } else if code == &self.type_code {
                c.fail("BUNDLE_INVALID", &at, "a type cannot bundle itself");
            } else if !seen.insert(code.as_str()) {
                c.fail("BUNDLE_INVALID", &at, format!("'{code}' is bundled twice"));
            }
        }
    }

    /// Validates a certificate's values against the schema: every required field
    /// present, no unknown field, every value of its type. Values are trimmed; empty
    /// optional values are dropped.
    pub fn validate_values(
        &self,
        given: &[(String, String)],
        path: &str,
    ) -> Result<Values, Invalid> {
        let mut c = Checks::default();
        let mut values = Values::new();
        let mut reported: HashSet<&str> = HashSet::new();
        for (i, (name, value)) in given.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(spec) = self.fields.iter().find(|f| &f.name == name) else {
                c.fail(
                    "FIELD_UNKNOWN",
                    &format!("{at}.name"),
                    format!("'{name}' is not a field of {}", self.name),
                );
                continue;
            };
            if values.contains_key(name) {
                c.fail(
                    "FIELD_DUPLICATE",
                    &format!("{at}.name"),
                    format!("'{name}' is given twice"),
                );
                continue;
            }
            let v = value.trim();
            if v.is_empty() {
                continue;
            }
            if let Err(why) = check_value(spec, v) {
                c.fail("FIELD_VALUE_INVALID", &format!("{at}.value"), why);
                reported.insert(name.as_str());
                continue;
            }
            values.insert(name.clone(), v.to_string());
        }
        for spec in self.fields.iter().filter(|f| f.required) {
            if !values.contains_key(&spec.name) && !reported.contains(spec.name.as_str()) {
                c.fail(
                    "FIELD_REQUIRED",
                    path,
                    format!("'{}' ({}) is required", spec.name, spec.label),
                );
            }
        }
        c.finish()?;
        Ok(values)
    }

    /// Values in schema order, as claims are printed.
    pub fn ordered<'v>(&self, values: &'v Values) -> Vec<(&str, &'v str)> {
        self.fields
            .iter()
            .filter_map(|f| values.get(&f.name).map(|v| (f.name.as_str(), v.as_str())))
            .collect()
    }
}

fn check_value(spec: &FieldSpec, v: &str) -> Result<(), String> {
    match spec.kind {
        FieldType::Text if v.chars().count() > MAX_TEXT => Err(format!(
            "'{}' is longer than {MAX_TEXT} characters",
            spec.name
        )),
        FieldType::Text => Ok(()),
        FieldType::Date => {
            time::Date::parse(v, &time::format_description::well_known::Iso8601::DATE)
                .map(drop)
                .map_err(|_| {
                    format!(
                        "'{}' must be an ISO 8601 date such as 2026-03-01",
                        spec.name
                    )
                })
        }
        FieldType::Integer => v
            .parse::<i64>()
            .map(drop)
            .map_err(|_| format!("'{}' must be a whole number", spec.name)),
        FieldType::Uscc => Uscc::parse(v).map(drop).map_err(|e| {
            format!(
                "'{}' is not a valid unified social credit code: {e}",
                spec.name
            )
        }),
        FieldType::Enum if spec.allowed.iter().any(|a| a == v) => Ok(()),
        FieldType::Enum => Err(format!(
            "'{}' must be one of: {}",
            spec.name,
            spec.allowed.join(", ")
        )),
    }
}

/// 上海市市场监督管理局, the municipal market-regulation bureau.
pub const SH_MUNICIPAL_MARKET: &str = "11310000MB2F10003D";
/// 上海市浦东新区市场监督管理局, issuer of Pudong's industry comprehensive permits.
pub const SH_PUDONG_MARKET: &str = "11310115MB2F10150U";
/// The national market-regulation definer code used across this workspace.
pub const SAMR: &str = "11100000000013127D";

/// 上海市卫生健康委员会. Its code is built from its parts (demo data: the real code is
/// configured by registering the type again).
pub fn sh_health_commission() -> Uscc {
    Uscc::from_parts('1', '1', "310000", "MB2F1011").unwrap_or_else(|_| {
        // `from_parts` only fails on malformed parts, and these are fixed.
        Uscc::parse(SH_MUNICIPAL_MARKET).unwrap_or_else(|_| unreachable_uscc())
    })
}

#[allow(clippy::panic)]
fn unreachable_uscc() -> Uscc {
    panic!("built-in department codes are valid")
}

fn text(name: &str, label: &str, required: bool) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        label: label.into(),
        kind: FieldType::Text,
        required,
        allowed: Vec::new(),
    }
}

/// Type code of the food business permit.
pub const FOOD_BUSINESS: &str = "11100000000013127D002";
/// Type code of the public-place hygiene permit (defined by the municipal health commission).
pub fn public_hygiene_code() -> String {
    format!("{}001", sh_health_commission().as_str())
}
/// Type code of the convenience-store industry comprehensive permit.
pub const CONVENIENCE_STORE_COMPREHENSIVE: &str = "11310000MB2F10003D101";

/// The seeded types.
pub fn seeds() -> Vec<CertType> {
    let municipal = Uscc::parse(SH_MUNICIPAL_MARKET).unwrap_or_else(|_| unreachable_uscc());
    let pudong = Uscc::parse(SH_PUDONG_MARKET).unwrap_or_else(|_| unreachable_uscc());
    let health = sh_health_commission();
    vec![
        CertType {
            type_code: FOOD_BUSINESS.into(),
            name: "食品经营许可证".into(),
            department: municipal,
            department_name: "上海市市场监督管理局".into(),
            fields: vec![
                text("operator_name", "经营者名称", true),
                text("legal_representative", "法定代表人（负责人）", true),
                text("address", "经营场所", true),
                FieldSpec {
                    name: "main_business".into(),
                    label: "主体业态".into(),
                    kind: FieldType::Enum,
                    required: true,
                    allowed: vec![
                        "食品销售经营者".into(),
                        "餐饮服务经营者".into(),
                        "单位食堂".into(),
                    ],
                },
                text("business_items", "经营项目", true),
            ],
            validity_days: 5 * 365,
            bundles: Vec::new(),
            industry: String::new(),
        },
        CertType {
            type_code: public_hygiene_code(),
            name: "公共场所卫生许可证".into(),
            department: health,
            department_name: "上海市卫生健康委员会".into(),
            fields: vec![
                text("unit_name", "单位名称", true),
                text("legal_representative", "法定代表人（负责人）", true),
                text("address", "地址", true),
                text("licensed_items", "许可项目", true),
                FieldSpec {
                    name: "floor_area_m2".into(),
                    label: "营业面积（平方米）".into(),
                    kind: FieldType::Integer,
                    required: false,
                    allowed: Vec::new(),
                },
            ],
            validity_days: 4 * 365,
            bundles: Vec::new(),
            industry: String::new(),
        },
        CertType {
            type_code: CONVENIENCE_STORE_COMPREHENSIVE.into(),
            name: "行业综合许可证（便利店）".into(),
            department: pudong,
            department_name: "上海市浦东新区市场监督管理局".into(),
            fields: vec![
                text("operator_name", "经营者名称", true),
                text("legal_representative", "法定代表人（负责人）", true),
                text("address", "经营场所", true),
                text("food_business_items", "食品经营项目", true),
                text("tobacco_retail", "烟草制品零售", false),
                text("pharmacy_items", "第二类医疗器械经营项目", false),
            ],
            validity_days: 5 * 365,
            bundles: vec![FOOD_BUSINESS.into(), public_hygiene_code()],
            industry: "便利店".into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn food() -> CertType {
        seeds().remove(0)
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seeded_types_are_valid() {
        for t in seeds() {
            t.validate().unwrap();
        }
    }

    #[test]
    fn a_bundle_names_its_industry_and_at_least_two_other_types() {
        let comprehensive = seeds().remove(2);
        let mut t = comprehensive.clone();
        t.bundles = vec![FOOD_BUSINESS.into()];
        assert_eq!(
            t.validate().unwrap_err().violations[0].field,
            "type.bundles"
        );
        t.bundles = vec![FOOD_BUSINESS.into(), FOOD_BUSINESS.into()];
        assert_eq!(
            t.validate().unwrap_err().violations[0].field,
            "type.bundles[1]"
        );
        t.bundles = vec![FOOD_BUSINESS.into(), t.type_code.clone()];
        assert_eq!(
            t.validate().unwrap_err().violations[0].field,
            "type.bundles[1]"
        );
        t.bundles = vec![FOOD_BUSINESS.into(), "food".into()];
        assert_eq!(
            t.validate().unwrap_err().violations[0].field,
            "type.bundles[1]"
        );
        let mut t = comprehensive;
        t.industry = " ".into();
        assert_eq!(
            t.validate().unwrap_err().violations[0].field,
            "type.industry"
        );
        let mut plain = food();
        plain.industry = "便利店".into();
        assert_eq!(plain.validate().unwrap_err().reason, "BUNDLE_INVALID");
    }

    #[test]
    fn missing_unknown_and_mistyped_values_are_each_named() {
        let err = food()
            .validate_values(
                &given(&[
                    ("operator_name", "上海静安面馆有限公司"),
                    ("main_business", "游乐场"),
                    ("colour", "red"),
                ]),
                "fields",
            )
            .unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"fields[1].value"), "{fields:?}");
        assert!(fields.contains(&"fields[2].name"), "{fields:?}");
        assert!(
            err.violations
                .iter()
                .any(|v| v.description.contains("'address'")),
            "{err:?}"
        );
    }

    #[test]
    fn complete_values_are_kept_in_schema_order() {
        let t = food();
        let v = t
            .validate_values(
                &given(&[
                    ("business_items", "热食类食品制售"),
                    ("operator_name", "面馆"),
                    ("legal_representative", "王小明"),
                    ("address", "上海市静安区南京西路1000号"),
                    ("main_business", "餐饮服务经营者"),
                ]),
                "fields",
            )
            .unwrap();
        assert_eq!(t.ordered(&v)[0].0, "operator_name");
        assert_eq!(t.ordered(&v)[4].0, "business_items");
    }
}
