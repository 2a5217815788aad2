//! The national e-license identifier (电子证照标识, GB/T 36904, as deployed).
//!
//! ```text
//! 1.2.156.3005.2.<type code>.<issuer>.<serial>.<version>.<check>
//!                 │           │        │        │         └ ISO/IEC 7064 MOD 37,36
//!                 │           │        │        └ 3 digits, 001-999
//!                 │           │        └ 1-32 characters of 0-9A-Z, chosen by the issuer
//!                 │           └ issuing department's USCC
//!                 └ license type: the defining department's USCC + 3 digits
//! ```
//!
//! Every credential id in credmesh has this shape, so ids of Shanghai credentials and of the
//! national platform's look alike and validate the same way.

use std::fmt;
use std::str::FromStr;

use crate::iso7064::mod37_36_check;
use crate::uscc::{Uscc, UsccError};

/// Longest serial accepted.
const MAX_SERIAL_LEN: usize = 32;

/// A validated e-license identifier.
///
/// The check character is computed over the type code, issuer, serial and version
/// concatenated without dots, **without** the fixed `1.2.156.3005.2` prefix. That is what the
/// deployed national platform does: identifiers published by issuers in Hunan, Zhejiang and
/// Shandong and the format example quoted from the standard's annex all validate this way
/// and none validates with the prefix included (see the tests). Including the constant
/// prefix would add no error detection, only incompatibility.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LicenseId {
    id: String,
    type_code: String,
    issuer: String,
    serial: String,
    version: u16,
    check: char,
}

impl LicenseId {
    /// The fixed object-identifier arc of Chinese e-licenses.
    pub const PREFIX: &'static str = "1.2.156.3005.2";

    /// Builds an identifier, computing its check character.
    ///
    /// `type_code` and `serial` are uppercased. The issuer is re-validated, so a code admitted
    /// under the pilot override cannot end up in an identifier that would not parse.
    pub fn new(
        type_code: &str,
        issuer: &Uscc,
        serial: &str,
        version: u16,
    ) -> Result<LicenseId, LicenseIdError> {
        let type_code = type_code.trim().to_ascii_uppercase();
        check_type_code(&type_code)?;
        let issuer = check_issuer(issuer.as_str())?;
        let serial = serial.trim().to_ascii_uppercase();
        check_serial(&serial)?;
        if !(1..=999).contains(&version) {
            return Err(LicenseIdError::Version {
                found: version.to_string(),
            });
        }
        Ok(LicenseId::assemble(type_code, issuer, serial, version))
    }

    /// Parses and validates every field and the check character.
    ///
    /// Surrounding whitespace is trimmed and ASCII letters are uppercased; fields are checked
    /// in order and the first failure is reported.
    pub fn parse(input: &str) -> Result<LicenseId, LicenseIdError> {
        let normalised = input.trim().to_ascii_uppercase();
        let fields = normalised
            .strip_prefix(LicenseId::PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| LicenseIdError::Prefix {
                found: input.trim().to_owned(),
            })?;
        let fields: Vec<&str> = fields.split('.').collect();
        let [type_code, issuer, serial, version, check] = fields[..] else {
            return Err(LicenseIdError::Fields {
                found: fields.len(),
            });
        };

        check_type_code(type_code)?;
        let issuer = check_issuer(issuer)?;
        check_serial(serial)?;
        let version = parse_version(version)?;

        let id = LicenseId::assemble(type_code.to_owned(), issuer, serial.to_owned(), version);
        if check.len() == 1 && check.starts_with(id.check) {
            Ok(id)
        } else {
            Err(LicenseIdError::Check {
                expected: id.check,
                found: check.to_owned(),
            })
        }
    }

    /// The license type: the defining department's USCC followed by 3 digits.
    pub fn type_code(&self) -> &str {
        &self.type_code
    }

    /// The issuing department's USCC.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer-chosen serial.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The version, 1–999; an amendment is a new version of the same license.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The MOD 37,36 check character.
    pub fn check(&self) -> char {
        self.check
    }

    /// The canonical dotted form.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The same license at another version, with its check recomputed.
    ///
    /// # Panics
    ///
    /// If `version` is 0 or above 999; use [`LicenseId::try_with_version`] when the version
    /// comes from outside.
    pub fn with_version(&self, version: u16) -> LicenseId {
        match self.try_with_version(version) {
            Ok(id) => id,
            Err(err) => panic!("{err}"),
        }
    }

    /// The same license at another version, or [`LicenseIdError::Version`] if `version` is
    /// not 1–999.
    pub fn try_with_version(&self, version: u16) -> Result<LicenseId, LicenseIdError> {
        if !(1..=999).contains(&version) {
            return Err(LicenseIdError::Version {
                found: version.to_string(),
            });
        }
        Ok(LicenseId::assemble(
            self.type_code.clone(),
            self.issuer.clone(),
            self.serial.clone(),
            version,
        ))
    }

    /// Builds the id from validated fields.
    fn assemble(type_code: String, issuer: String, serial: String, version: u16) -> LicenseId {
        let version_field = format!("{version:03}");
        let check = mod37_36_check(&format!("{type_code}{issuer}{serial}{version_field}"))
            .expect("every field was validated to 0-9A-Z");
        let id = format!(
            "{}.{type_code}.{issuer}.{serial}.{version_field}.{check}",
            LicenseId::PREFIX
        );
        LicenseId {
            id,
            type_code,
            issuer,
            serial,
            version,
            check,
        }
    }
}

fn check_type_code(type_code: &str) -> Result<(), LicenseIdError> {
    let shaped = type_code.len() == 21
        && type_code.bytes().all(|b| b.is_ascii_alphanumeric())
        && type_code.bytes().skip(18).all(|b| b.is_ascii_digit());
    if !shaped {
        return Err(LicenseIdError::TypeCodeShape {
            found: type_code.to_owned(),
        });
    }
    Uscc::parse_normalised(type_code[..18].to_owned())
        .map(drop)
        .map_err(|source| LicenseIdError::TypeCodeDefiner {
            found: type_code.to_owned(),
            source,
        })
}

fn check_issuer(issuer: &str) -> Result<String, LicenseIdError> {
    Uscc::parse_normalised(issuer.to_owned())
        .map(String::from)
        .map_err(|source| LicenseIdError::Issuer {
            found: issuer.to_owned(),
            source,
        })
}

fn check_serial(serial: &str) -> Result<(), LicenseIdError> {
    let valid = (1..=MAX_SERIAL_LEN).contains(&serial.len())
        && serial
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if valid {
        Ok(())
    } else {
        Err(LicenseIdError::Serial {
            found: serial.to_owned(),
        })
    }
}

fn parse_version(version: &str) -> Result<u16, LicenseIdError> {
    let invalid = || LicenseIdError::Version {
        found: version.to_owned(),
    };
    if version.len() != 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match version.parse::<u16>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(invalid()),
    }
}

impl fmt::Display for LicenseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for LicenseId {
    type Err = LicenseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LicenseId::parse(s)
    }
}

impl TryFrom<&str> for LicenseId {
    type Error = LicenseIdError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        LicenseId::parse(value)
    }
}

impl AsRef<str> for LicenseId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

/// Why a string is not an e-license identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseIdError {
    /// Does not start with `1.2.156.3005.2.`.
    #[error("e-license identifier {found:?} does not start with 1.2.156.3005.2 (GB/T 36904)")]
    Prefix {
        /// The input, trimmed.
        found: String,
    },
    /// Not exactly five dot-separated fields after the prefix.
    #[error(
        "e-license identifier has {found} fields after the prefix but must have 5: type code, \
         issuer, serial, version and check character"
    )]
    Fields {
        /// Fields found after the prefix.
        found: usize,
    },
    /// The type code is not 18 code characters followed by 3 digits.
    #[error(
        "license type code {found:?} must be the defining department's 18-character unified \
         social credit code followed by 3 digits"
    )]
    TypeCodeShape {
        /// The type code field.
        found: String,
    },
    /// The type code's first 18 characters are not a valid USCC.
    #[error("license type code {found:?} does not start with a valid definer code: {source}")]
    TypeCodeDefiner {
        /// The type code field.
        found: String,
        /// Why the definer's code is invalid.
        source: UsccError,
    },
    /// The issuer field is not a valid USCC.
    #[error("license issuer {found:?} is not a valid unified social credit code: {source}")]
    Issuer {
        /// The issuer field.
        found: String,
        /// Why the issuer's code is invalid.
        source: UsccError,
    },
    /// The serial is empty, too long or has characters outside `0-9A-Z`.
    #[error("license serial {found:?} must be 1 to 32 characters from 0-9 and A-Z")]
    Serial {
        /// The serial field.
        found: String,
    },
    /// The version is not 3 digits from 001 to 999.
    #[error("license version {found:?} must be 3 digits from 001 to 999")]
    Version {
        /// The version field, or the number given to a constructor.
        found: String,
    },
    /// The last field is not the MOD 37,36 check character of the others.
    #[error(
        "e-license identifier check character is {expected:?} but the identifier ends in \
         {found:?} (ISO/IEC 7064 MOD 37,36)"
    )]
    Check {
        /// The check character computed over the other fields.
        expected: char,
        /// The last field as found.
        found: String,
    },
}

impl LicenseIdError {
    /// A stable machine-readable reason, for API error details and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            LicenseIdError::Prefix { .. } => "LICENSE_ID_PREFIX",
            LicenseIdError::Fields { .. } => "LICENSE_ID_FIELDS",
            LicenseIdError::TypeCodeShape { .. } | LicenseIdError::TypeCodeDefiner { .. } => {
                "LICENSE_ID_TYPE_CODE"
            }
            LicenseIdError::Issuer { .. } => "LICENSE_ID_ISSUER",
            LicenseIdError::Serial { .. } => "LICENSE_ID_SERIAL",
            LicenseIdError::Version { .. } => "LICENSE_ID_VERSION",
            LicenseIdError::Check { .. } => "LICENSE_ID_CHECK",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identifiers issued on the national platform, quoted in public code (see the report):
    /// a construction-safety certificate issued in Hunan (format example citing the standard's
    /// annex A.2, versions 2 and 1), a Zhejiang investment-project file, a Shandong filing.
    const DEPLOYED: [&str; 4] = [
        "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.002.S",
        "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
        "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
        "1.2.156.3005.2.11100000000013338W087.11370800MB28559184.37080001202411010001.001.3",
    ];

    /// SAIC Motor's code, standing in for a Shanghai issuing department.
    const ISSUER: &str = "91310000132260250X";
    /// 国务院办公厅 (General Office of the State Council) + type 011, as in the deployed ids.
    const TYPE_CODE: &str = "11100000000013338W011";

    fn sample() -> LicenseId {
        let issuer = Uscc::parse(ISSUER).unwrap();
        LicenseId::new(TYPE_CODE, &issuer, "SH2025000001", 1).unwrap()
    }

    fn reason_of(input: &str) -> &'static str {
        LicenseId::parse(input).unwrap_err().reason()
    }

    #[test]
    fn deployed_identifiers_validate_with_the_check_over_fields_without_prefix() {
        for id in DEPLOYED {
            let parsed = LicenseId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.as_str(), id);
            // And none of them would validate if the prefix were part of the check.
            let (body, check) = id.rsplit_once('.').unwrap();
            let with_prefix = mod37_36_check(&body.replace('.', "")).unwrap();
            assert_ne!(with_prefix.to_string(), check, "{id}");
        }
    }

    #[test]
    fn a_placeholder_id_from_api_docs_fails_its_check() {
        let err = LicenseId::parse(
            "1.2.156.3005.2.11100000000013661B006.113700000045046442.\
             209FA4E88F9E4C878F3E9BED2CE7EA49.001.M",
        )
        .unwrap_err();
        assert_eq!(
            err,
            LicenseIdError::Check {
                expected: 'D',
                found: "M".into()
            }
        );
    }

    #[test]
    fn built_identifier_parses_back_to_the_same_fields() {
        let id = sample();
        let parsed = LicenseId::parse(id.as_str()).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(parsed.type_code(), TYPE_CODE);
        assert_eq!(parsed.issuer(), ISSUER);
        assert_eq!(parsed.serial(), "SH2025000001");
        assert_eq!(parsed.version(), 1);
        assert!(
            id.as_str()
                .starts_with("1.2.156.3005.2.11100000000013338W011.")
        );
        assert!(id.as_str().ends_with(&format!(".001.{}", id.check())));
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(id.as_str().parse::<LicenseId>().unwrap(), id);
    }

    #[test]
    fn with_version_recomputes_the_check() {
        let second = LicenseId::parse(DEPLOYED[0]).unwrap();
        let first = second.with_version(1);
        assert_eq!(first.as_str(), DEPLOYED[1]);
        assert_eq!(first.with_version(2), second);
        assert_eq!(
            second.try_with_version(0).unwrap_err().reason(),
            "LICENSE_ID_VERSION"
        );
        assert_eq!(
            second.try_with_version(1000).unwrap_err().reason(),
            "LICENSE_ID_VERSION"
        );
    }

    #[test]
    fn lowercase_and_whitespace_are_normalised() {
        let id = sample();
        let messy = format!("  {}\n", id.as_str().to_lowercase());
        assert_eq!(LicenseId::parse(&messy).unwrap(), id);
    }

    #[test]
    fn any_tampered_character_fails() {
        let id = sample();
        let text = id.as_str();
        let start = LicenseId::PREFIX.len() + 1;
        for (i, original) in text.char_indices().skip(start) {
            if original == '.' {
                continue;
            }
            for replacement in ['0', '7', 'A', 'K', 'X'] {
                if replacement == original {
                    continue;
                }
                let mut tampered = text.to_owned();
                tampered.replace_range(i..i + 1, &replacement.to_string());
                assert!(LicenseId::parse(&tampered).is_err(), "{tampered} accepted");
            }
        }
    }

    #[test]
    fn wrong_check_character_is_rejected_with_the_expected_one() {
        let id = sample();
        let wrong = if id.check() == 'A' { 'B' } else { 'A' };
        let text = format!("{}{wrong}", &id.as_str()[..id.as_str().len() - 1]);
        let err = LicenseId::parse(&text).unwrap_err();
        assert_eq!(
            err,
            LicenseIdError::Check {
                expected: id.check(),
                found: wrong.to_string()
            }
        );
        assert_eq!(err.reason(), "LICENSE_ID_CHECK");
        assert_eq!(
            reason_of(&format!("{}X0", &id.as_str()[..id.as_str().len() - 1])),
            "LICENSE_ID_CHECK"
        );
    }

    #[test]
    fn every_field_rule_has_its_reason() {
        let issuer = ISSUER;
        let cases = [
            ("2.16.840.1.113883".to_owned(), "LICENSE_ID_PREFIX"),
            ("1.2.156.3005.21.X".to_owned(), "LICENSE_ID_PREFIX"),
            ("1.2.156.3005.2".to_owned(), "LICENSE_ID_PREFIX"),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.1.001"),
                "LICENSE_ID_FIELDS",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.1.001.0.0"),
                "LICENSE_ID_FIELDS",
            ),
            (
                format!("1.2.156.3005.2.11100000000013338W01.{issuer}.1.001.0"),
                "LICENSE_ID_TYPE_CODE",
            ),
            (
                format!("1.2.156.3005.2.11100000000013338W01A.{issuer}.1.001.0"),
                "LICENSE_ID_TYPE_CODE",
            ),
            (
                format!("1.2.156.3005.2.11100000000013338K011.{issuer}.1.001.0"),
                "LICENSE_ID_TYPE_CODE",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.91310000132260250K.1.001.0"),
                "LICENSE_ID_ISSUER",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}..001.0"),
                "LICENSE_ID_SERIAL",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.AB-1.001.0"),
                "LICENSE_ID_SERIAL",
            ),
            (
                format!(
                    "1.2.156.3005.2.{TYPE_CODE}.{issuer}.{}.001.0",
                    "1".repeat(33)
                ),
                "LICENSE_ID_SERIAL",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.1.000.0"),
                "LICENSE_ID_VERSION",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.1.01.0"),
                "LICENSE_ID_VERSION",
            ),
            (
                format!("1.2.156.3005.2.{TYPE_CODE}.{issuer}.1.1000.0"),
                "LICENSE_ID_VERSION",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(reason_of(&input), reason, "{input}");
        }
    }

    #[test]
    fn field_errors_name_the_underlying_rule() {
        let err =
            LicenseId::parse("1.2.156.3005.2.11100000000013338W011.91310000132260250K.1.001.0")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "license issuer \"91310000132260250K\" is not a valid unified social credit code: \
             unified social credit code check character is 'X' but the code ends in 'K' \
             (GB 32100-2015 position 18)"
        );
        let LicenseIdError::Issuer { source, .. } = err else {
            panic!("expected an issuer error");
        };
        assert_eq!(source.reason(), "USCC_CHECK_DIGIT");
    }

    #[test]
    fn constructor_rejects_bad_fields() {
        let issuer = Uscc::parse(ISSUER).unwrap();
        let reason = |type_code, serial, version| {
            LicenseId::new(type_code, &issuer, serial, version)
                .unwrap_err()
                .reason()
        };
        assert_eq!(reason("11100000000013338W", "1", 1), "LICENSE_ID_TYPE_CODE");
        assert_eq!(reason(TYPE_CODE, "", 1), "LICENSE_ID_SERIAL");
        assert_eq!(reason(TYPE_CODE, "A.B", 1), "LICENSE_ID_SERIAL");
        assert_eq!(reason(TYPE_CODE, "1", 0), "LICENSE_ID_VERSION");
        assert_eq!(reason(TYPE_CODE, "1", 1000), "LICENSE_ID_VERSION");

        let (pilot, warnings) = Uscc::parse_pilot_override("91310000132260257X").unwrap();
        assert!(!warnings.is_empty());
        assert_eq!(
            LicenseId::new(TYPE_CODE, &pilot, "1", 1)
                .unwrap_err()
                .reason(),
            "LICENSE_ID_ISSUER"
        );
    }

    #[test]
    #[should_panic(expected = "license version")]
    fn with_version_panics_on_version_zero() {
        let _ = sample().with_version(0);
    }
}
