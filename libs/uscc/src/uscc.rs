//! The Unified Social Credit Code (统一社会信用代码, GB 32100-2015).
//!
//! Layout of the 18 characters, 1-based as in the standard:
//!
//! | positions | meaning | rule |
//! |---|---|---|
//! | 1 | registering department | see [`Uscc::registration_department`] |
//! | 2 | category within that department | see the table on [`Uscc::category`] |
//! | 3–8 | administrative division of the registering authority | GB/T 2260 |
//! | 9–17 | organisation code, its check character last | GB 11714 |
//! | 18 | check character over positions 1–17 | GB 32100-2015 |
//!
//! Validation runs in that order and stops at the first failing rule, so the error names the
//! rule a person should look at first: empty, length, character set, department, category,
//! division, organisation-code check, code check.

use std::fmt;
use std::str::FromStr;

use crate::region::Region;

/// The 31 code symbols, in value order (0–30): digits and capitals without I, O, S, V, Z.
const SYMBOLS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1–17 for the position-18 check: 3^(i−1) mod 31.
const CODE_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Weights of the 8 organisation-code body characters (GB 11714).
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// First two digits of the GB/T 2260 province-level divisions.
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", // 华北
    "21", "22", "23", // 东北
    "31", "32", "33", "34", "35", "36", "37", // 华东
    "41", "42", "43", "44", "45", "46", // 中南
    "50", "51", "52", "53", "54", // 西南
    "61", "62", "63", "64", "65", // 西北
    "71", "81", "82", // 台湾, 香港, 澳门
];

/// Division used by authorities registering at national level (e.g. ministries' institutions).
const NATIONAL_DIVISION: &str = "100000";

/// A validated Unified Social Credit Code, held in its normalised 18-character form.
///
/// The only ways to get one are [`Uscc::parse`] (all rules), [`Uscc::from_parts`] (builds the
/// check characters) and [`Uscc::parse_pilot_override`] (the audited exception for early
/// pilot codes), so holding a `Uscc` means the rules were applied once, at the boundary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

impl Uscc {
    /// Parses and validates a code.
    ///
    /// Surrounding whitespace is trimmed and ASCII letters are uppercased, because codes are
    /// retyped from paper licenses; anything else (inner spaces, full-width digits) is an error.
    pub fn parse(input: &str) -> Result<Uscc, UsccError> {
        Uscc::parse_normalised(normalise(input))
    }

    /// Validates a code that is already trimmed and uppercased.
    pub(crate) fn parse_normalised(code: String) -> Result<Uscc, UsccError> {
        check_structure(&code)?;
        match check_characters(&code).into_iter().next() {
            Some(err) => Err(err),
            None => Ok(Uscc(code)),
        }
    }

    /// Parses an early pilot code under the operator override.
    ///
    /// A few codes issued during the 2015 pilots are legal yet fail a check character. With an
    /// explicit, audited override an operator may import them: every structural rule (length,
    /// character set, department, category, division) must still pass, but the organisation
    /// code check and the position-18 check are returned as warnings in the `Vec` (empty for a
    /// fully valid code) instead of failing. The caller must record those warnings in its
    /// audit trail; this function does not know who asked.
    pub fn parse_pilot_override(input: &str) -> Result<(Uscc, Vec<UsccError>), UsccError> {
        let code = normalise(input);
        check_structure(&code)?;
        let failures = check_characters(&code);
        Ok((Uscc(code), failures))
    }

    /// Builds a valid code from its parts, computing both check characters (demo data, tests).
    ///
    /// `org_base` is the 8-character organisation-code body without its check character.
    /// Letters are uppercased; the parts must satisfy the same rules as [`Uscc::parse`].
    pub fn from_parts(
        department: char,
        category: char,
        division: &str,
        org_base: &str,
    ) -> Result<Uscc, UsccError> {
        let department = department.to_ascii_uppercase();
        let category = category.to_ascii_uppercase();
        check_department_and_category(department, category)?;
        check_division(division)?;

        let org_base = org_base.to_ascii_uppercase();
        let org_len = org_base.chars().count();
        if org_len != 8 {
            // The code that would result has 10 characters around the body.
            return Err(UsccError::Length {
                found: org_len + 10,
            });
        }
        if let Some((i, found)) = org_base
            .chars()
            .enumerate()
            .find(|&(_, c)| symbol_value(c).is_none())
        {
            return Err(UsccError::Charset {
                position: 9 + i,
                found,
            });
        }

        // Every character is now a code symbol and the body has 8 of them, so both checks
        // are defined.
        let mut code = format!("{department}{category}{division}{org_base}");
        code.push(org_code_check(&org_base).expect("8 symbols validated above"));
        code.push(code_check(&code).expect("17 symbols validated above"));
        Uscc::parse_normalised(code)
    }

    /// The normalised 18 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Position 1, the registering department: `1` institutional (机构编制), `5` civil affairs
    /// (民政), `9` market regulation (工商/市场监管), `Y` other; also `2`–`8`, `A`–`G` and `N`
    /// (agriculture, rural collective economic organisations).
    pub fn registration_department(&self) -> char {
        char::from(self.0.as_bytes()[0])
    }

    /// Positions 1–2, department and category together, e.g. `91` for an enterprise.
    ///
    /// Categories accepted per department (GB 32100-2015 and the published department
    /// assignments; B–G are reserved and get the common set):
    ///
    /// | department | categories |
    /// |---|---|
    /// | `1` institutional | 1 organs, 2 public institutions, 3 mass organisations, 9 other |
    /// | `2` foreign affairs | 1, 9 |
    /// | `3` justice | 1 law firms, 2 notaries, 3 legal service offices, 4 forensic, 5 arbitration, 9 |
    /// | `4` culture | 1, 9 |
    /// | `5` civil affairs | 1 social organisations, 2 private non-enterprise units, 3 foundations, 9 |
    /// | `6` tourism | 1, 2, 9 |
    /// | `7` religion | 1, 2, 9 |
    /// | `8` trade unions | 1, 9 |
    /// | `9` market regulation | 1 enterprises, 2 individual businesses, 3 farmers' cooperatives |
    /// | `A` military | 1, 9 |
    /// | `B`–`G` | 1, 2, 3, 9 |
    /// | `N` agriculture | 1, 2, 3, 9 |
    /// | `Y` other | 1 |
    pub fn category(&self) -> &str {
        &self.0[0..2]
    }

    /// Positions 3–8, the GB/T 2260 division of the registering authority, e.g. `310115`.
    pub fn division(&self) -> &str {
        &self.0[2..8]
    }

    /// Positions 9–17, the GB 11714 organisation code including its check character.
    pub fn organization_code(&self) -> &str {
        &self.0[8..17]
    }

    /// The federation region of the registering authority.
    pub fn region(&self) -> Region {
        Region::from_division(self.division())
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uscc {
    type Err = UsccError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uscc::parse(s)
    }
}

impl TryFrom<&str> for Uscc {
    type Error = UsccError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Uscc::parse(value)
    }
}

impl AsRef<str> for Uscc {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Uscc> for String {
    fn from(code: Uscc) -> Self {
        code.0
    }
}

/// Why a string is not a Unified Social Credit Code. Positions are 1-based, as in the standard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsccError {
    /// Nothing left after trimming.
    #[error("unified social credit code is empty")]
    Empty,
    /// Not 18 characters.
    #[error("unified social credit code has {found} characters but must have 18 (GB 32100-2015)")]
    Length {
        /// Characters found (not bytes).
        found: usize,
    },
    /// A character outside the 31 code symbols.
    #[error(
        "unified social credit code has {found:?} at position {position}, which is not one of \
         the 31 code symbols 0-9 and A-Y without I, O, S, V, Z (GB 32100-2015)"
    )]
    Charset {
        /// 1-based position.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// Position 1 is not an assigned registering department.
    #[error(
        "registering department {found:?} at position 1 is not assigned \
         (GB 32100-2015 uses 1-9, A-G, N and Y)"
    )]
    Department {
        /// The character at position 1.
        found: char,
    },
    /// Position 2 is not a category of the department at position 1.
    #[error(
        "category {found:?} at position 2 is not used by registering department {department:?}, \
         which uses {} (GB 32100-2015)",
        list(.allowed)
    )]
    Category {
        /// The character at position 1.
        department: char,
        /// The character at position 2.
        found: char,
        /// The categories that department uses.
        allowed: &'static str,
    },
    /// Positions 3–8 are not a GB/T 2260 division.
    #[error(
        "administrative division {found:?} at positions 3-8 is not six digits starting with a \
         GB/T 2260 province code, nor the national code 100000"
    )]
    Division {
        /// Positions 3–8 as found.
        found: String,
    },
    /// Position 17 does not match the GB 11714 check over positions 9–16.
    #[error(
        "organisation code check character is {expected:?} but position 17 holds {found:?} \
         (GB 11714)"
    )]
    OrgCodeCheck {
        /// The check character computed over positions 9–16.
        expected: char,
        /// The character at position 17.
        found: char,
    },
    /// Position 18 does not match the check over positions 1–17.
    #[error(
        "unified social credit code check character is {expected:?} but the code ends in \
         {found:?} (GB 32100-2015 position 18)"
    )]
    CheckDigit {
        /// The check character computed over positions 1–17.
        expected: char,
        /// The character at position 18.
        found: char,
    },
}

impl UsccError {
    /// A stable machine-readable reason, for API error details and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            UsccError::Empty => "USCC_EMPTY",
            UsccError::Length { .. } => "USCC_LENGTH",
            UsccError::Charset { .. } => "USCC_CHARSET",
            UsccError::Department { .. } => "USCC_DEPARTMENT",
            UsccError::Category { .. } => "USCC_CATEGORY",
            UsccError::Division { .. } => "USCC_DIVISION",
            UsccError::OrgCodeCheck { .. } => "USCC_ORG_CODE_CHECK",
            UsccError::CheckDigit { .. } => "USCC_CHECK_DIGIT",
        }
    }

    /// Whether this is one of the two check-character failures that the pilot override
    /// tolerates.
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            UsccError::OrgCodeCheck { .. } | UsccError::CheckDigit { .. }
        )
    }
}

/// "1239" → "1, 2, 3, 9".
fn list(allowed: &str) -> String {
    let items: Vec<String> = allowed.chars().map(String::from).collect();
    items.join(", ")
}

fn normalise(input: &str) -> String {
    input.trim().to_ascii_uppercase()
}

/// Value 0–30 of a code symbol.
fn symbol_value(c: char) -> Option<u32> {
    let byte = u8::try_from(c).ok()?;
    SYMBOLS
        .iter()
        .position(|&s| s == byte)
        .and_then(|v| u32::try_from(v).ok())
}

/// Categories a registering department uses; `None` for an unassigned department.
fn categories_of(department: char) -> Option<&'static str> {
    match department {
        '1' | '5' => Some("1239"),
        '2' | '4' | '8' | 'A' => Some("19"),
        '3' => Some("123459"),
        '6' | '7' => Some("129"),
        '9' => Some("123"),
        'B'..='G' | 'N' => Some("1239"),
        'Y' => Some("1"),
        _ => None,
    }
}

/// Length, character set, department, category and division: everything but the checks.
fn check_structure(code: &str) -> Result<(), UsccError> {
    if code.is_empty() {
        return Err(UsccError::Empty);
    }
    let found = code.chars().count();
    if found != 18 {
        return Err(UsccError::Length { found });
    }
    if let Some((i, found)) = code
        .chars()
        .enumerate()
        .find(|&(_, c)| symbol_value(c).is_none())
    {
        return Err(UsccError::Charset {
            position: i + 1,
            found,
        });
    }
    // All 18 characters are ASCII from here on, so byte slicing is safe.
    let bytes = code.as_bytes();
    check_department_and_category(char::from(bytes[0]), char::from(bytes[1]))?;
    check_division(&code[2..8])
}

fn check_department_and_category(department: char, category: char) -> Result<(), UsccError> {
    let allowed = categories_of(department).ok_or(UsccError::Department { found: department })?;
    if allowed.contains(category) {
        Ok(())
    } else {
        Err(UsccError::Category {
            department,
            found: category,
            allowed,
        })
    }
}

fn check_division(division: &str) -> Result<(), UsccError> {
    let well_formed = division.len() == 6 && division.bytes().all(|b| b.is_ascii_digit());
    if well_formed && (division == NATIONAL_DIVISION || PROVINCES.contains(&&division[..2])) {
        Ok(())
    } else {
        Err(UsccError::Division {
            found: division.to_owned(),
        })
    }
}

/// Both check-character rules on a structurally valid code, failures in position order.
fn check_characters(code: &str) -> Vec<UsccError> {
    let bytes = code.as_bytes();
    let mut failures = Vec::new();
    if let Some(expected) = org_code_check(&code[8..16]) {
        let found = char::from(bytes[16]);
        if expected != found {
            failures.push(UsccError::OrgCodeCheck { expected, found });
        }
    }
    if let Some(expected) = code_check(&code[..17]) {
        let found = char::from(bytes[17]);
        if expected != found {
            failures.push(UsccError::CheckDigit { expected, found });
        }
    }
    failures
}

/// GB 11714 check character over an 8-character organisation-code body.
///
/// Letters count as A=10 … Z=35 (base 36), not as their USCC symbol values: the organisation
/// code predates the USCC and keeps its own valuation. Mixing the two is a classic bug that
/// only shows on codes whose body contains a letter after H (e.g. the `MA…` codes issued
/// since 2015).
pub(crate) fn org_code_check(body: &str) -> Option<char> {
    if body.chars().count() != 8 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in body.chars().zip(ORG_WEIGHTS) {
        sum += c.to_digit(36)? * weight;
    }
    match 11 - sum % 11 {
        10 => Some('X'),
        11 => Some('0'),
        c => char::from_digit(c, 10),
    }
}

/// GB 32100-2015 position-18 check character over positions 1–17 (symbol values 0–30).
pub(crate) fn code_check(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(CODE_WEIGHTS) {
        sum += symbol_value(c)? * weight;
    }
    let value = (31 - sum % 31) % 31;
    SYMBOLS
        .get(usize::try_from(value).ok()?)
        .map(|&b| char::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real codes as published by the entities or in public registry extracts, found quoted in
    /// public repositories (see the crate report). Each passes both checks.
    const REAL_CODES: &[(&str, &str)] = &[
        // Shanghai (division 31xxxx)
        (
            "91310000132260250X",
            "上海汽车集团股份有限公司 SAIC Motor Corporation Limited",
        ),
        (
            "9131000010000595XD",
            "交通银行股份有限公司 Bank of Communications Co., Ltd.",
        ),
        (
            "9131000013221158XC",
            "上海浦东发展银行股份有限公司 Shanghai Pudong Development Bank",
        ),
        (
            "91310000MAERED2X1W",
            "露意膳（上海）贸易有限公司, from its own site footer",
        ),
        // Elsewhere
        (
            "91330100799655058B",
            "阿里巴巴（中国）有限公司 Alibaba (China) Co., Ltd.",
        ),
        (
            "9144030071526726XG",
            "腾讯科技（深圳）有限公司 Tencent Technology (Shenzhen)",
        ),
        (
            "91440300708461136T",
            "深圳市腾讯计算机系统有限公司 Shenzhen Tencent Computer Systems",
        ),
        (
            "914403001922038216",
            "华为技术有限公司 Huawei Technologies Co., Ltd.",
        ),
        (
            "91110000802100433B",
            "北京百度网讯科技有限公司 Beijing Baidu Netcom",
        ),
        (
            "12100000425006133D",
            "华东师范大学 East China Normal University (national division)",
        ),
    ];

    /// SAIC Motor's code, used wherever a test needs one valid code.
    const SAIC: &str = "91310000132260250X";

    fn reason_of(input: &str) -> &'static str {
        Uscc::parse(input).unwrap_err().reason()
    }

    #[test]
    fn real_published_codes_are_accepted() {
        for (code, entity) in REAL_CODES {
            let parsed = Uscc::parse(code).unwrap_or_else(|e| panic!("{code} ({entity}): {e}"));
            assert_eq!(parsed.as_str(), *code);
        }
    }

    #[test]
    fn real_shanghai_codes_map_to_shanghai() {
        let shanghai = REAL_CODES
            .iter()
            .filter(|(code, _)| Uscc::parse(code).unwrap().region() == Region::Shanghai)
            .count();
        assert!(shanghai >= 2);
    }

    #[test]
    fn parts_of_a_code_are_exposed() {
        let code = Uscc::parse(SAIC).unwrap();
        assert_eq!(code.registration_department(), '9');
        assert_eq!(code.category(), "91");
        assert_eq!(code.division(), "310000");
        assert_eq!(code.organization_code(), "132260250");
        assert_eq!(code.region(), Region::Shanghai);
        assert_eq!(code.to_string(), SAIC);
        assert_eq!(code.as_ref(), SAIC);
        assert_eq!(String::from(code), SAIC);

        let university = Uscc::parse("12100000425006133D").unwrap();
        assert_eq!(university.registration_department(), '1');
        assert_eq!(university.category(), "12");
        assert_eq!(university.region(), Region::Other);
    }

    #[test]
    fn lowercase_and_surrounding_whitespace_are_normalised() {
        let code = Uscc::parse("  91310000maered2x1w\t\n").unwrap();
        assert_eq!(code.as_str(), "91310000MAERED2X1W");
        assert_eq!("91310000132260250x".parse::<Uscc>().unwrap().as_str(), SAIC);
        assert_eq!(
            Uscc::try_from(" 91310000132260250X").unwrap().as_str(),
            SAIC
        );
    }

    #[test]
    fn empty_or_blank_input_is_rejected_as_empty() {
        assert_eq!(reason_of(""), "USCC_EMPTY");
        assert_eq!(reason_of("   "), "USCC_EMPTY");
        assert_eq!(
            Uscc::parse("").unwrap_err().to_string(),
            "unified social credit code is empty"
        );
    }

    #[test]
    fn wrong_length_is_rejected_with_the_count() {
        assert_eq!(
            Uscc::parse("91310000132260250").unwrap_err(),
            UsccError::Length { found: 17 }
        );
        assert_eq!(reason_of("91310000132260250XX"), "USCC_LENGTH");
        // Inner whitespace is not trimmed away.
        assert_eq!(reason_of("9131 0000132260250X"), "USCC_LENGTH");
        // Characters are counted, not bytes.
        assert_eq!(
            Uscc::parse("９１310000132260250X").unwrap_err(),
            UsccError::Charset {
                position: 1,
                found: '９'
            }
        );
    }

    #[test]
    fn letters_outside_the_31_symbols_are_rejected_with_their_position() {
        for (i, letter) in ['I', 'O', 'S', 'V', 'Z'].into_iter().enumerate() {
            let mut code = SAIC.to_owned();
            code.replace_range(9 + i..10 + i, &letter.to_string());
            assert_eq!(
                Uscc::parse(&code).unwrap_err(),
                UsccError::Charset {
                    position: 10 + i,
                    found: letter
                }
            );
        }
        assert_eq!(reason_of("91310000132260250-"), "USCC_CHARSET");
    }

    #[test]
    fn unassigned_department_is_rejected() {
        let err = Uscc::parse("01310000132260250X").unwrap_err();
        assert_eq!(err, UsccError::Department { found: '0' });
        assert_eq!(err.reason(), "USCC_DEPARTMENT");
        assert_eq!(reason_of("H1310000132260250X"), "USCC_DEPARTMENT");
    }

    #[test]
    fn category_not_used_by_the_department_is_rejected() {
        let err = Uscc::parse("94310000132260250X").unwrap_err();
        assert_eq!(
            err,
            UsccError::Category {
                department: '9',
                found: '4',
                allowed: "123"
            }
        );
        assert_eq!(err.reason(), "USCC_CATEGORY");
        assert_eq!(
            err.to_string(),
            "category '4' at position 2 is not used by registering department '9', \
             which uses 1, 2, 3 (GB 32100-2015)"
        );
        assert_eq!(reason_of("Y2310000132260250X"), "USCC_CATEGORY");
        assert_eq!(reason_of("5A310000132260250X"), "USCC_CATEGORY");
    }

    #[test]
    fn division_must_be_a_province_or_national() {
        let err = Uscc::parse("91990000132260250X").unwrap_err();
        assert_eq!(
            err,
            UsccError::Division {
                found: "990000".into()
            }
        );
        assert_eq!(err.reason(), "USCC_DIVISION");
        // Letters are code symbols but not division digits.
        assert_eq!(reason_of("9131A000132260250X"), "USCC_DIVISION");
        // "10" is only valid as the full national code.
        assert_eq!(reason_of("91100100132260250X"), "USCC_DIVISION");
    }

    #[test]
    fn uscc_with_wrong_organisation_check_character_is_rejected() {
        let err = Uscc::parse("91310000132260257X").unwrap_err();
        assert_eq!(
            err,
            UsccError::OrgCodeCheck {
                expected: '0',
                found: '7'
            }
        );
        assert_eq!(err.reason(), "USCC_ORG_CODE_CHECK");
        assert_eq!(
            err.to_string(),
            "organisation code check character is '0' but position 17 holds '7' (GB 11714)"
        );
    }

    #[test]
    fn uscc_with_wrong_check_character_is_rejected() {
        let err = Uscc::parse("91310000132260250K").unwrap_err();
        assert_eq!(
            err,
            UsccError::CheckDigit {
                expected: 'X',
                found: 'K'
            }
        );
        assert_eq!(err.reason(), "USCC_CHECK_DIGIT");
        assert_eq!(
            err.to_string(),
            "unified social credit code check character is 'X' but the code ends in 'K' \
             (GB 32100-2015 position 18)"
        );
    }

    #[test]
    fn the_first_failing_rule_is_reported() {
        // Bad department, category, division and both checks at once.
        assert_eq!(reason_of("0A99000013226025KK"), "USCC_DEPARTMENT");
        assert_eq!(reason_of("9A99000013226025KK"), "USCC_CATEGORY");
        assert_eq!(reason_of("919900001322602500"), "USCC_DIVISION");
        assert_eq!(reason_of("91310000132260257X"), "USCC_ORG_CODE_CHECK");
    }

    /// The bug this guards against: valuing letters in the organisation code by their USCC
    /// symbol value (J=18, …) instead of base 36 (J=19, …).
    fn org_check_with_uscc_values(body: &str) -> char {
        let sum: u32 = body
            .chars()
            .zip(ORG_WEIGHTS)
            .map(|(c, w)| symbol_value(c).unwrap() * w)
            .sum();
        match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            c => char::from_digit(c, 10).unwrap(),
        }
    }

    #[test]
    fn organisation_code_letters_count_as_base_36_not_as_uscc_values() {
        // A real code whose organisation code contains M, R, E, D.
        let body = "MAERED2X";
        assert_eq!(org_code_check(body), Some('1'));
        assert!(Uscc::parse("91310000MAERED2X1W").is_ok());

        // The same body checked with USCC values gives a different character, and a code
        // built that way is rejected.
        let wrong = org_check_with_uscc_values(body);
        assert_ne!(wrong, '1');
        let mut code = format!("91310000{body}{wrong}");
        code.push(code_check(&code).unwrap());
        assert_eq!(
            Uscc::parse(&code).unwrap_err(),
            UsccError::OrgCodeCheck {
                expected: '1',
                found: wrong
            }
        );
    }

    #[test]
    fn from_parts_builds_a_code_that_parses_back() {
        let code = Uscc::from_parts('9', '1', "310000", "13226025").unwrap();
        assert_eq!(code.as_str(), SAIC);

        let built = Uscc::from_parts('9', '1', "310115", "ma1k3qxw").unwrap();
        assert_eq!(Uscc::parse(built.as_str()).unwrap(), built);
        assert_eq!(built.division(), "310115");
        assert_eq!(&built.organization_code()[..8], "MA1K3QXW");
    }

    #[test]
    fn from_parts_rejects_bad_parts() {
        let reason = |d, c, div, org| Uscc::from_parts(d, c, div, org).unwrap_err().reason();
        assert_eq!(reason('0', '1', "310000", "13226025"), "USCC_DEPARTMENT");
        assert_eq!(reason('9', '9', "310000", "13226025"), "USCC_CATEGORY");
        assert_eq!(reason('9', '1', "3100", "13226025"), "USCC_DIVISION");
        assert_eq!(reason('9', '1', "310000", "1322602"), "USCC_LENGTH");
        assert_eq!(
            Uscc::from_parts('9', '1', "310000", "1322602O").unwrap_err(),
            UsccError::Charset {
                position: 16,
                found: 'O'
            }
        );
    }

    #[test]
    fn pilot_override_returns_check_failures_instead_of_failing() {
        // Both checks wrong, structure fine.
        let (code, warnings) = Uscc::parse_pilot_override("91310000132260257X").unwrap();
        assert_eq!(code.as_str(), "91310000132260257X");
        assert_eq!(
            warnings,
            vec![
                UsccError::OrgCodeCheck {
                    expected: '0',
                    found: '7'
                },
                UsccError::CheckDigit {
                    expected: 'K',
                    found: 'X'
                },
            ]
        );
        assert!(warnings.iter().all(UsccError::is_check_failure));

        let (_, none) = Uscc::parse_pilot_override(SAIC).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn pilot_override_still_enforces_structure() {
        for (input, reason) in [
            ("", "USCC_EMPTY"),
            ("9131000013226025", "USCC_LENGTH"),
            ("9131000013226025IK", "USCC_CHARSET"),
            ("H131000013226025XK", "USCC_DEPARTMENT"),
            ("9431000013226025XK", "USCC_CATEGORY"),
            ("9199000013226025XK", "USCC_DIVISION"),
        ] {
            assert_eq!(
                Uscc::parse_pilot_override(input).unwrap_err().reason(),
                reason
            );
        }
    }

    /// Minimal deterministic generator (Knuth's MMIX LCG), enough to spread test cases.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % bound as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.next(items.len())]
        }
    }

    #[test]
    fn any_single_character_change_of_a_generated_code_is_rejected() {
        let departments: Vec<char> = "123456789ABCDEFGNY".chars().collect();
        let mut rng = Lcg(0x00C0_FFEE);
        for _ in 0..2_000 {
            let department = rng.pick(&departments);
            let allowed: Vec<char> = categories_of(department).unwrap().chars().collect();
            let category = rng.pick(&allowed);
            let division = if rng.next(10) == 0 {
                NATIONAL_DIVISION.to_owned()
            } else {
                format!("{}{:04}", rng.pick(&PROVINCES), rng.next(10_000))
            };
            let org_base: String = (0..8).map(|_| char::from(rng.pick(SYMBOLS))).collect();

            let code = Uscc::from_parts(department, category, &division, &org_base).unwrap();
            assert_eq!(Uscc::parse(code.as_str()).as_ref(), Ok(&code));

            let position = rng.next(18);
            let original = code.as_str().as_bytes()[position];
            let replacement = loop {
                let candidate = rng.pick(SYMBOLS);
                if candidate != original {
                    break candidate;
                }
            };
            let mut mutated = code.as_str().as_bytes().to_vec();
            mutated[position] = replacement;
            let mutated = String::from_utf8(mutated).unwrap();
            assert!(
                Uscc::parse(&mutated).is_err(),
                "{code} mutated at position {} to {mutated} was accepted",
                position + 1
            );
        }
    }
}
