//! The QR text form: `CM1:` + base45(zlib(encoded envelope)), after the EU Digital COVID
//! Certificate's `HC1:`.
//!
//! Base45 uses only characters of the QR alphanumeric mode (digits, upper-case letters,
//! space and `$%*+-./:`), which stores 5.5 bits per character instead of 8 in byte mode,
//! so a license fits a QR code a phone camera reads from a printed page. The text is
//! verifiable offline: it is the signed envelope itself, not a link.

use credmesh_proto::credential::v1::Envelope;

use crate::compress::{self, Inflate};
use crate::envelope::{MAX_ENVELOPE_LEN, decode_envelope, encode_envelope};
use crate::error::FormatError;

/// The prefix naming the format and its version ("credmesh, version 1").
pub const QR_PREFIX: &str = "CM1:";

/// Upper bound on the QR text accepted: base45 expands 2 bytes to 3 characters and zlib
/// never grows data by more than a small fraction, so twice the envelope bound is ample.
const MAX_QR_TEXT_LEN: usize = 2 * MAX_ENVELOPE_LEN;

/// Renders an envelope as QR text, ready for a QR encoder in alphanumeric mode.
pub fn to_qr(envelope: &Envelope) -> String {
    let compressed = compress::zlib(&encode_envelope(envelope));
    let body = base45::encode(compressed);
    let mut text = String::with_capacity(QR_PREFIX.len() + body.len());
    text.push_str(QR_PREFIX);
    text.push_str(&body);
    text
}

/// Parses QR text back into the envelope, without checking its signature.
///
/// Surrounding whitespace (a scanner's trailing newline) is ignored. That is safe even
/// though base45 has a space character: the last character of every base45 group is its
/// most significant digit and a space there (value 36) would overflow the group, so valid
/// base45 never ends with a space. Each way of failing has its own reason.
pub fn from_qr(text: &str) -> Result<Envelope, FormatError> {
    let text = text.trim();
    if text.len() > MAX_QR_TEXT_LEN {
        return Err(FormatError::QrTooLarge);
    }
    let body = text.strip_prefix(QR_PREFIX).ok_or(FormatError::QrPrefix)?;
    let compressed = base45::decode(body).map_err(|_| FormatError::QrBase45)?;
    let encoded = compress::unzlib(&compressed, MAX_ENVELOPE_LEN).map_err(|e| match e {
        Inflate::Invalid => FormatError::QrZlib,
        Inflate::TooLarge => FormatError::QrTooLarge,
    })?;
    decode_envelope(&encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::sign_credential;
    use crate::testing::{key, license};

    const QR_ALPHANUMERIC: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

    #[test]
    fn qr_text_round_trips_to_the_same_envelope() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let text = to_qr(&env);
        assert!(text.starts_with("CM1:"));
        assert!(text.chars().all(|c| QR_ALPHANUMERIC.contains(c)));
        assert_eq!(from_qr(&text).unwrap(), env);
    }

    #[test]
    fn surrounding_whitespace_is_accepted() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let text = format!("  \n{}\r\n ", to_qr(&env));
        assert_eq!(from_qr(&text).unwrap(), env);
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let text = to_qr(&env);
        let body = &text[QR_PREFIX.len()..];

        let wrong_prefix = format!("HC1:{body}");
        assert_eq!(from_qr(&wrong_prefix).unwrap_err().reason(), "QR_PREFIX");

        // ":::" is a group worth 91,124, above the 65,535 a three-character group may hold.
        let bad_base45 = format!("CM1:{body}:::");
        assert_eq!(from_qr(&bad_base45).unwrap_err().reason(), "QR_BASE45");

        let not_zlib = format!("CM1:{}", base45::encode(b"definitely not zlib"));
        assert_eq!(from_qr(&not_zlib).unwrap_err().reason(), "QR_ZLIB");

        let bomb = compress::zlib(&vec![0u8; MAX_ENVELOPE_LEN + 1]);
        let bomb = format!("CM1:{}", base45::encode(bomb));
        assert_eq!(from_qr(&bomb).unwrap_err().reason(), "QR_TOO_LARGE");

        let not_proto = format!(
            "CM1:{}",
            base45::encode(compress::zlib(&[0xff, 0xff, 0xff]))
        );
        assert_eq!(from_qr(&not_proto).unwrap_err().reason(), "ENVELOPE_DECODE");

        let huge = format!("CM1:{}", "A".repeat(MAX_QR_TEXT_LEN));
        assert_eq!(from_qr(&huge).unwrap_err().reason(), "QR_TOO_LARGE");
    }
}
