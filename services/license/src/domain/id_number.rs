//! Resident identity card numbers (公民身份号码, GB 11643-1999), checked and then reduced
//! to a salted hash at once.
//!
//! The number is personal data that must not leave the register: it is never put in a
//! credential, an answer, an audit entry or a log line, and no error message echoes it.
//! The register keeps `SHA-256(domain || salt || number)` with a random 16-byte salt per
//! record, which lets an authority later confirm a number it is shown ("is this the
//! representative on record?") without storing the number. A deliberate simplification:
//! the salt sits next to the hash, so someone holding the database could still test
//! candidate numbers one by one; a deployment that needs more adds a keyed pepper here.

use sha2::{Digest, Sha256};
use time::{Date, Month};

/// Weights of positions 1–17: 2^(18−i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each value of Σ mod 11.
const CHECK: &[u8; 11] = b"10X98765432";
/// Domain separation for the stored hash.
const HASH_DOMAIN: &[u8] = b"credmesh/license/id-number/v1\0";

/// Why a string is not a resident ID number. Messages never contain the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 17 digits followed by a digit or `X`.
    #[error("a resident ID number has 18 characters: 17 digits and a digit or X (GB 11643)")]
    Format,
    /// Positions 7–14 are not a plausible date of birth.
    #[error("positions 7-14 of the resident ID number are not a valid date of birth (GB 11643)")]
    BirthDate,
    /// Position 18 does not match the check over positions 1–17.
    #[error("the resident ID number's check character does not match (GB 11643 position 18)")]
    CheckDigit,
}

/// A checked ID number, held only long enough to hash it; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdNumber([redacted])")
    }
}

/// A salted hash of an ID number, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IdHash {
    /// The random salt.
    pub salt: Vec<u8>,
    /// `SHA-256(domain || salt || number)`.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for IdHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdHash(..)")
    }
}

impl IdNumber {
    /// Checks a number: shape, date of birth (not after `today`), check character.
    /// Surrounding whitespace is trimmed and a lowercase `x` accepted.
    pub fn parse(input: &str, today: Date) -> Result<IdNumber, IdNumberError> {
        let n = input.trim().to_ascii_uppercase();
        let b = n.as_bytes();
        if b.len() != 18
            || !b[..17].iter().all(u8::is_ascii_digit)
            || !(b[17].is_ascii_digit() || b[17] == b'X')
        {
            return Err(IdNumberError::Format);
        }
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let birth = Month::try_from(num(10..12) as u8)
            .ok()
            .and_then(|m| Date::from_calendar_date(num(6..10) as i32, m, num(12..14) as u8).ok())
            .filter(|d| d.year() >= 1900 && *d <= today);
        if birth.is_none() {
            return Err(IdNumberError::BirthDate);
        }
        let sum: u32 = b[..17]
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        if CHECK[(sum % 11) as usize] != b[17] {
            return Err(IdNumberError::CheckDigit);
        }
        Ok(IdNumber(n))
    }

    /// Hashes the number with a fresh random salt.
    pub fn hash(&self) -> IdHash {
        let mut salt = vec![0u8; 16];
        if getrandom::fill(&mut salt).is_err() {
            // Without randomness the salt would be predictable; refuse to continue.
            panic!("the operating system's random source failed");
        }
        let hash = self.hash_with(&salt);
        IdHash { salt, hash }
    }

    /// Whether `stored` is the hash of this number.
    pub fn matches(&self, stored: &IdHash) -> bool {
        self.hash_with(&stored.salt) == stored.hash
    }

    fn hash_with(&self, salt: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(salt);
        h.update(self.0.as_bytes());
        h.finalize().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2025 - 06 - 01);
    /// The example number of GB 11643-1999 itself.
    const STANDARD_EXAMPLE: &str = "11010519491231002X";

    #[test]
    fn the_standards_example_number_is_valid() {
        assert!(IdNumber::parse(STANDARD_EXAMPLE, TODAY).is_ok());
        assert!(IdNumber::parse(" 11010519491231002x ", TODAY).is_ok());
    }

    #[test]
    fn a_wrong_check_character_is_refused() {
        assert_eq!(
            IdNumber::parse("110105194912310021", TODAY),
            Err(IdNumberError::CheckDigit)
        );
    }

    #[test]
    fn shape_and_birth_date_are_checked_first() {
        assert_eq!(
            IdNumber::parse("1101051949123100", TODAY),
            Err(IdNumberError::Format)
        );
        assert_eq!(
            IdNumber::parse("11010519491231002Y", TODAY),
            Err(IdNumberError::Format)
        );
        assert_eq!(
            IdNumber::parse("110105194913310021", TODAY),
            Err(IdNumberError::BirthDate)
        );
        assert_eq!(
            IdNumber::parse("110105203012310021", TODAY),
            Err(IdNumberError::BirthDate),
            "born in the future"
        );
    }

    #[test]
    fn hashes_are_salted_and_never_show_the_number() {
        let n = IdNumber::parse(STANDARD_EXAMPLE, TODAY).unwrap();
        let a = n.hash();
        let b = n.hash();
        assert_ne!(a.hash, b.hash, "a fresh salt each time");
        assert!(n.matches(&a) && n.matches(&b));
        let other = IdNumber::parse("110105194912310037", TODAY);
        if let Ok(other) = other {
            assert!(!other.matches(&a));
        }
        assert!(!format!("{n:?}{a:?}").contains("1101"));
        for e in [
            IdNumberError::Format,
            IdNumberError::BirthDate,
            IdNumberError::CheckDigit,
        ] {
            assert!(!e.to_string().contains("1101"));
        }
    }
}
