//! Registration authorities (登记机关): the market-regulation bureaus that may register
//! enterprises in this deployment, by unified social credit code.
//!
//! The table is configuration (`CREDMESH_LICENSE_AUTHORITIES_FILE`, TOML); Shanghai
//! deployments get a built-in default of the municipal bureau and the sixteen district
//! bureaus. The default codes are **generated** (valid check characters, division of the
//! bureau, organisation-code body `MB2F10xx`), not the bureaus' published codes: a
//! production deployment loads the real table from its file.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use credmesh_uscc::{Region, Uscc};
use serde::Deserialize;

/// One registration authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// Its unified social credit code: the issuer field of its licenses' identifiers.
    pub uscc: Uscc,
    /// Its name, as printed on licenses.
    pub name: String,
    /// A municipal (provincial-level) bureau may act for every authority of its region.
    pub municipal: bool,
}

/// The authorities of a deployment.
#[derive(Clone, Debug, Default)]
pub struct Authorities {
    by_code: BTreeMap<String, Authority>,
}

#[derive(Deserialize)]
struct FileEntry {
    uscc: String,
    name: String,
    #[serde(default)]
    municipal: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    authority: Vec<FileEntry>,
}

/// The built-in Shanghai table: (code, name). Codes are generated, see the module docs.
const SHANGHAI: &[(&str, &str)] = &[
    ("11310000MB2F10003D", "上海市市场监督管理局"),
    ("11310101MB2F10011U", "上海市黄浦区市场监督管理局"),
    ("11310104MB2F10046R", "上海市徐汇区市场监督管理局"),
    ("11310105MB2F100543", "上海市长宁区市场监督管理局"),
    ("11310106MB2F10062C", "上海市静安区市场监督管理局"),
    ("11310107MB2F10070M", "上海市普陀区市场监督管理局"),
    ("11310109MB2F10097A", "上海市虹口区市场监督管理局"),
    ("11310110MB2F1010X8", "上海市杨浦区市场监督管理局"),
    ("11310112MB2F101260", "上海市闵行区市场监督管理局"),
    ("11310113MB2F101349", "上海市宝山区市场监督管理局"),
    ("11310114MB2F10142J", "上海市嘉定区市场监督管理局"),
    ("11310115MB2F10150U", "上海市浦东新区市场监督管理局"),
    ("11310116MB2F101697", "上海市金山区市场监督管理局"),
    ("11310117MB2F10177G", "上海市松江区市场监督管理局"),
    ("11310118MB2F10185R", "上海市青浦区市场监督管理局"),
    ("11310120MB2F102066", "上海市奉贤区市场监督管理局"),
    ("11310151MB2F10513U", "上海市崇明区市场监督管理局"),
];

/// The municipal bureau of the built-in Shanghai table.
pub const SHANGHAI_MUNICIPAL: &str = "11310000MB2F10003D";
/// The Jing'an district bureau of the built-in Shanghai table.
pub const SHANGHAI_JINGAN: &str = "11310106MB2F10062C";
/// The Pudong New Area bureau of the built-in Shanghai table.
pub const SHANGHAI_PUDONG: &str = "11310115MB2F10150U";

impl Authorities {
    /// The built-in table of Shanghai's market-regulation bureaus.
    pub fn shanghai() -> Authorities {
        let mut t = Authorities::default();
        for (code, name) in SHANGHAI {
            // The table is checked by a unit test; a bad entry is skipped, never served.
            if let Ok(uscc) = Uscc::parse(code) {
                t.insert(Authority {
                    municipal: division_is_provincial(&uscc),
                    uscc,
                    name: (*name).to_string(),
                });
            }
        }
        t
    }

    /// Parses a TOML table (`[[authority]]` entries with `uscc`, `name` and optionally
    /// `municipal = true`); every authority must belong to `region`.
    pub fn from_toml(text: &str, region: Region) -> anyhow::Result<Authorities> {
        let file: File = toml::from_str(text).context("parsing the authorities table")?;
        let mut t = Authorities::default();
        for (i, e) in file.authority.into_iter().enumerate() {
            let uscc = Uscc::parse(&e.uscc)
                .with_context(|| format!("authority {} ({}) has an invalid code", i + 1, e.name))?;
            if uscc.region() != region {
                bail!(
                    "authority {} ({}) is registered in {}, not in this deployment's region {}",
                    uscc,
                    e.name,
                    uscc.region().code(),
                    region.code()
                );
            }
            let name = e.name.trim().to_string();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("authority {uscc} needs a name of 1 to 100 characters");
            }
            t.insert(Authority {
                uscc,
                name,
                municipal: e.municipal,
            });
        }
        if t.by_code.is_empty() {
            bail!("the authorities table is empty");
        }
        Ok(t)
    }

    fn insert(&mut self, a: Authority) {
        self.by_code.insert(a.uscc.as_str().to_string(), a);
    }

    /// The authority with this code.
    pub fn get(&self, code: &str) -> Option<&Authority> {
        self.by_code.get(code)
    }

    /// Every authority, in code order.
    pub fn iter(&self) -> impl Iterator<Item = &Authority> {
        self.by_code.values()
    }

    /// Number of authorities.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// A division ending in `0000` is a province-level one (310000).
fn division_is_provincial(uscc: &Uscc) -> bool {
    uscc.division().ends_with("0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_shanghai_authority_has_a_valid_shanghai_code() {
        for (code, name) in SHANGHAI {
            let uscc = Uscc::parse(code).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(uscc.region(), Region::Shanghai, "{name}");
            assert_eq!(uscc.category(), "11", "{name} is a state organ");
        }
        let t = Authorities::shanghai();
        assert_eq!(t.len(), SHANGHAI.len());
        assert!(t.get(SHANGHAI_MUNICIPAL).unwrap().municipal);
        assert!(!t.get(SHANGHAI_JINGAN).unwrap().municipal);
        assert_eq!(
            t.get(SHANGHAI_PUDONG).unwrap().name,
            "上海市浦东新区市场监督管理局"
        );
    }

    #[test]
    fn a_table_file_is_checked_for_codes_and_region() {
        let ok = format!(
            "[[authority]]\nuscc = \"{SHANGHAI_JINGAN}\"\nname = \"静安\"\n\n[[authority]]\nuscc = \"{SHANGHAI_MUNICIPAL}\"\nname = \"市局\"\nmunicipal = true\n"
        );
        let t = Authorities::from_toml(&ok, Region::Shanghai).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.get(SHANGHAI_MUNICIPAL).unwrap().municipal);
        let err = Authorities::from_toml(&ok, Region::Jiangsu).unwrap_err();
        assert!(
            err.to_string().contains("not in this deployment's region"),
            "{err}"
        );
        let bad = "[[authority]]\nuscc = \"11310106MB2F10062D\"\nname = \"x\"\n";
        assert!(Authorities::from_toml(bad, Region::Shanghai).is_err());
    }
}
