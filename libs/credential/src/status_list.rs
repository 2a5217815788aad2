//! W3C Bitstring Status List v1.0: one bit per credential, GZIP-compressed and multibase
//! base64url-encoded, signed and published per issuer.
//!
//! Every credential with a status reference owns one index in each of its list's
//! bitstrings (revocation, suspension, and for versioned kinds superseded). A verifier
//! holding the current lists answers "revoked?" offline in O(1), and the issuer learns
//! nothing about who checked what.

use credmesh_proto::credential::v1::{Envelope, StatusList};
use credmesh_proto::prost::Message;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::compress::{self, Inflate};
use crate::envelope::{Context, seal};
use crate::error::{FormatError, StatusListError};
use crate::keys::IssuerKey;

/// A fixed-size bitstring; bit 0 is the most significant bit of byte 0, as the W3C
/// specification requires, so lists interoperate with other implementations.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitstring {
    bytes: Vec<u8>,
}

impl Bitstring {
    /// The smallest list size, 131,072 bits (16 KiB), the W3C minimum: a list that small
    /// already hides which credential a verifier is checking among many.
    pub const MIN_SIZE: usize = 131_072;

    /// An all-clear bitstring of at least `size` bits: sizes below [`Self::MIN_SIZE`] are
    /// raised to it, and every size is rounded up to a whole number of bytes.
    pub fn new(size: usize) -> Self {
        let bits = size.max(Self::MIN_SIZE);
        Self {
            bytes: vec![0; bits.div_ceil(8)],
        }
    }

    /// The number of bits (a multiple of 8).
    pub fn len(&self) -> usize {
        self.bytes.len() * 8
    }

    /// True for a bitstring with no bits (only possible through [`Self::from_bytes`]).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn locate(&self, index: u64) -> Option<(usize, u8)> {
        let byte = usize::try_from(index / 8).ok()?;
        if byte >= self.bytes.len() {
            return None;
        }
        // Bit 0 of a byte is its most significant bit.
        Some((byte, 0x80 >> (index % 8)))
    }

    /// The bit at `index`, or `None` outside the list (which a verifier must treat as
    /// "status unknown", never as "clear").
    pub fn get(&self, index: u64) -> Option<bool> {
        self.locate(index)
            .map(|(byte, mask)| self.bytes[byte] & mask != 0)
    }

    /// Sets or clears the bit at `index`.
    pub fn set(&mut self, index: u64, value: bool) -> Result<(), StatusListError> {
        let (byte, mask) = self.locate(index).ok_or(StatusListError::IndexOutOfRange {
            index,
            len: self.len(),
        })?;
        if value {
            self.bytes[byte] |= mask;
        } else {
            self.bytes[byte] &= !mask;
        }
        Ok(())
    }

    /// How many bits are set (revoked or suspended credentials), for statistics.
    pub fn count_set(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The raw bytes, bit 0 first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Wraps raw bytes (bit 0 = most significant bit of byte 0) without a size check.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// The `encodedList` text: "u" + base64url without padding of the GZIP-compressed
    /// bytes (multibase base64url).
    pub fn encode(&self) -> String {
        let gz = compress::gzip(&self.bytes);
        let mut out = String::with_capacity(1 + gz.len().div_ceil(3) * 4);
        out.push('u');
        URL_SAFE_NO_PAD.encode_string(gz, &mut out);
        out
    }

    /// Parses an `encodedList`, refusing anything that would inflate beyond
    /// `max_size_bits` (a verifier sets this to the largest list it is willing to hold,
    /// so a hostile partner cannot exhaust its memory with a GZIP bomb).
    ///
    /// Lists below [`Self::MIN_SIZE`] are accepted: the minimum protects holders' privacy
    /// and is the publisher's duty; refusing a small list would only make every
    /// credential on it "status unknown".
    pub fn decode(encoded: &str, max_size_bits: usize) -> Result<Self, FormatError> {
        let max_bytes = max_size_bits / 8;
        let body = encoded
            .strip_prefix('u')
            .ok_or(FormatError::StatusListPrefix)?;
        // GZIP output is never much larger than its input; base64 adds a third.
        if body.len() > max_bytes.saturating_mul(2).saturating_add(1024) {
            return Err(FormatError::StatusListTooLarge {
                max_bits: max_size_bits,
            });
        }
        let gz = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| FormatError::StatusListBase64)?;
        let bytes = compress::gunzip(&gz, max_bytes).map_err(|e| match e {
            Inflate::Invalid => FormatError::StatusListGzip,
            Inflate::TooLarge => FormatError::StatusListTooLarge {
                max_bits: max_size_bits,
            },
        })?;
        if bytes.is_empty() {
            return Err(FormatError::StatusListSize("the list is empty"));
        }
        Ok(Self { bytes })
    }

    /// Decodes a [`StatusList`]'s bitstring and checks it against the declared `size`.
    pub fn from_status_list(list: &StatusList, max_size_bits: usize) -> Result<Self, FormatError> {
        let bits = Self::decode(&list.encoded_list, max_size_bits)?;
        let declared = usize::try_from(list.size).unwrap_or(usize::MAX);
        if declared > bits.len() || bits.len() - declared >= 8 {
            return Err(FormatError::StatusListSize(
                "the declared size disagrees with the bitstring",
            ));
        }
        Ok(bits)
    }
}

impl std::fmt::Debug for Bitstring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitstring")
            .field("len", &self.len())
            .field("set", &self.count_set())
            .finish()
    }
}

/// Encodes and signs a status list with the issuer's key (context
/// "credmesh/status-list/v1", so it can never pass as a credential).
pub fn sign_status_list(list: &StatusList, key: &IssuerKey) -> Envelope {
    seal(Context::StatusList, list.encode_to_vec(), key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_zero_is_the_most_significant_bit_of_byte_zero() {
        let mut bits = Bitstring::new(Bitstring::MIN_SIZE);
        bits.set(0, true).unwrap();
        assert_eq!(bits.as_bytes()[0], 0x80);
        bits.set(0, false).unwrap();
        bits.set(7, true).unwrap();
        assert_eq!(bits.as_bytes()[0], 0x01);
        bits.set(8, true).unwrap();
        assert_eq!(bits.as_bytes()[1], 0x80);
        assert_eq!(bits.get(7), Some(true));
        assert_eq!(bits.get(6), Some(false));
        assert_eq!(bits.count_set(), 2);
    }

    #[test]
    fn sizes_are_raised_to_the_minimum_and_rounded_to_bytes() {
        assert_eq!(Bitstring::new(10).len(), Bitstring::MIN_SIZE);
        assert_eq!(Bitstring::new(1_000_001).len(), 1_000_008);
    }

    #[test]
    fn indexes_outside_the_list_are_none_and_refused() {
        let mut bits = Bitstring::new(0);
        let len = bits.len() as u64;
        assert_eq!(bits.get(len - 1), Some(false));
        assert_eq!(bits.get(len), None);
        assert_eq!(bits.get(u64::MAX), None);
        assert_eq!(
            bits.set(len, true).unwrap_err().reason(),
            "STATUS_INDEX_RANGE"
        );
    }

    #[test]
    fn a_minimum_size_list_round_trips() {
        let mut bits = Bitstring::new(Bitstring::MIN_SIZE);
        for i in [0, 1, 99, 4096, 131_071] {
            bits.set(i, true).unwrap();
        }
        let encoded = bits.encode();
        assert!(encoded.starts_with('u'));
        let back = Bitstring::decode(&encoded, Bitstring::MIN_SIZE).unwrap();
        assert_eq!(back, bits);
        assert_eq!(back.count_set(), 5);
    }

    #[test]
    fn a_million_bit_list_round_trips() {
        let mut bits = Bitstring::new(1_000_000);
        for i in (0..1_000_000).step_by(7919) {
            bits.set(i, true).unwrap();
        }
        let back = Bitstring::decode(&bits.encode(), 1_000_000).unwrap();
        assert_eq!(back, bits);
        assert_eq!(back.get(7919), Some(true));
        assert_eq!(back.get(7920), Some(false));
    }

    #[test]
    fn the_w3c_example_empty_list_decodes() {
        // encodedList of the example in W3C Bitstring Status List v1.0 (16 KiB, all clear).
        let example = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA";
        let bits = Bitstring::decode(example, Bitstring::MIN_SIZE).unwrap();
        assert_eq!(bits.len(), Bitstring::MIN_SIZE);
        assert_eq!(bits.count_set(), 0);
    }

    #[test]
    fn lists_larger_than_the_bound_are_refused() {
        let encoded = Bitstring::new(1_000_000).encode();
        let err = Bitstring::decode(&encoded, Bitstring::MIN_SIZE).unwrap_err();
        assert_eq!(err.reason(), "STATUS_LIST_TOO_LARGE");
    }

    #[test]
    fn malformed_lists_have_distinct_reasons() {
        let encoded = Bitstring::new(0).encode();
        let no_prefix = &encoded[1..];
        assert_eq!(
            Bitstring::decode(no_prefix, 1 << 20).unwrap_err().reason(),
            "STATUS_LIST_PREFIX"
        );
        assert_eq!(
            Bitstring::decode("u!!!", 1 << 20).unwrap_err().reason(),
            "STATUS_LIST_BASE64"
        );
        assert_eq!(
            Bitstring::decode("uAAAA", 1 << 20).unwrap_err().reason(),
            "STATUS_LIST_GZIP"
        );
    }

    #[test]
    fn the_declared_size_must_match_the_bitstring() {
        let bits = Bitstring::new(0);
        let mut list = StatusList {
            encoded_list: bits.encode(),
            size: Bitstring::MIN_SIZE as u64,
            ..Default::default()
        };
        assert!(Bitstring::from_status_list(&list, 1 << 20).is_ok());
        list.size = 2 * Bitstring::MIN_SIZE as u64;
        assert_eq!(
            Bitstring::from_status_list(&list, 1 << 20)
                .unwrap_err()
                .reason(),
            "STATUS_LIST_SIZE"
        );
    }
}
