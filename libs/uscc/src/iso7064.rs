//! ISO/IEC 7064 MOD 37,36: the hybrid check-character system over `0-9A-Z`.
//!
//! Hybrid systems keep a running value `P` in `1..=M` (here `M = 36`), starting at `M`. For
//! each character value `a`: `S = (P + a) mod M`, with 0 read as `M`; then
//! `P = (2 × S) mod (M + 1)`. A string with its check character appended is valid when the
//! last `S` is 1, so the check character is the value that brings `S` to 1 from the `P` left
//! by the data: `(M + 1 − P) mod M`. It catches every single substitution and every
//! adjacent transposition.

const M: u32 = 36;

fn value(c: char) -> Option<u32> {
    match c {
        '0'..='9' | 'A'..='Z' => c.to_digit(36),
        _ => None,
    }
}

/// One hybrid step: returns the new `S` and `P`.
fn step(p: u32, a: u32) -> (u32, u32) {
    let s = match (p + a) % M {
        0 => M,
        s => s,
    };
    (s, (2 * s) % (M + 1))
}

/// The MOD 37,36 check character for `data`, or `None` if `data` holds anything other than
/// `0-9` and uppercase `A-Z`.
pub fn mod37_36_check(data: &str) -> Option<char> {
    let mut p = M;
    for c in data.chars() {
        p = step(p, value(c)?).1;
    }
    char::from_digit((M + 1 - p) % M, 36).map(|c| c.to_ascii_uppercase())
}

/// Whether `data_with_check` ends in its correct MOD 37,36 check character. Empty strings
/// and characters outside `0-9A-Z` are invalid.
pub fn mod37_36_is_valid(data_with_check: &str) -> bool {
    let mut p = M;
    let mut s = 0;
    for c in data_with_check.chars() {
        let Some(a) = value(c) else {
            return false;
        };
        (s, p) = step(p, a);
    }
    s == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published MOD 37,36 examples, as used in the test suite of xbib `standardnumber`
    /// (`MOD3736Test`); the first is the IFPI example GRid (Global Release Identifier)
    /// `A1-2425G-ABC1234002-M`, whose last character is a MOD 37,36 check.
    const PUBLISHED: [&str; 3] = [
        "A12425GABC1234002M",
        "B159D8FA01240000K",
        "188166C7342000003",
    ];

    #[test]
    fn published_examples_validate_and_their_check_is_recomputed() {
        for example in PUBLISHED {
            assert!(mod37_36_is_valid(example), "{example}");
            let (data, check) = example.split_at(example.len() - 1);
            assert_eq!(
                mod37_36_check(data).map(String::from).as_deref(),
                Some(check)
            );
        }
    }

    #[test]
    fn any_single_substitution_or_adjacent_swap_is_detected() {
        let valid = "A12425GABC1234002M";
        let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for i in 0..valid.len() {
            for c in alphabet.chars() {
                let mut changed: Vec<char> = valid.chars().collect();
                if changed[i] == c {
                    continue;
                }
                changed[i] = c;
                let changed: String = changed.into_iter().collect();
                assert!(!mod37_36_is_valid(&changed), "{changed}");
            }
        }
        for i in 0..valid.len() - 1 {
            let mut swapped: Vec<char> = valid.chars().collect();
            if swapped[i] == swapped[i + 1] {
                continue;
            }
            swapped.swap(i, i + 1);
            let swapped: String = swapped.into_iter().collect();
            assert!(!mod37_36_is_valid(&swapped), "{swapped}");
        }
    }

    #[test]
    fn characters_outside_the_alphabet_have_no_check() {
        assert_eq!(mod37_36_check("abc"), None);
        assert_eq!(mod37_36_check("1.2"), None);
        assert!(!mod37_36_is_valid("a12425GABC1234002M"));
        assert!(!mod37_36_is_valid(""));
    }

    #[test]
    fn empty_data_has_check_one() {
        assert_eq!(mod37_36_check(""), Some('1'));
        assert!(mod37_36_is_valid("1"));
    }
}
