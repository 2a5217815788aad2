//! The QR text form: `CM1:` + base45(zlib(encoded envelope)), after the EU Digital COVID
//! Certificate's `HC1:`.
//!
//! Base45 uses only characters of the QR alphanumeric mode (digits, upper-case letters,
//! space and `$%*+-./:`), which stores 5.5 bits per character instead of 8 in byte mode,
//! so a license fits a QR code a phone camera reads from a printed page. The text is
//! verifiable offline: it is the signed envelope itself, not a link.
//!
//! A printed code may carry the text inside the URL of its scan page instead
//! ([`scan_url`]: `https://host/v/CM1:…`), so that a phone's camera opens the page. The
//! URL is still the credential: [`from_qr`] takes the text back out of it, whatever the
//! host, and the signature is what is checked, never the page the link points at.

use std::borrow::Cow;

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

/// The path of the scan page showing `qr`: `/v/` and the QR text, percent-encoded where
/// a path needs it (base45 has space, `%` and `/`). Every character of it is in the QR
/// alphanumeric mode, as the text's are.
pub fn scan_path(qr: &str) -> String {
    let mut out = String::with_capacity(3 + qr.len() + qr.len() / 8);
    out.push_str(SCAN_PATH);
    for b in qr.bytes() {
        if b.is_ascii_alphanumeric() || b"-.:*$+".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of the scan page showing `qr` on the deployment whose public HTTP base URL is
/// `base` (`https://host`, or with a path prefix): what a printed code encodes so that a
/// phone camera opens the page. [`from_qr`] takes the QR text back out of it.
pub fn scan_url(base: &str, qr: &str) -> String {
    let mut url = base.trim_end_matches('/').to_string();
    url.push_str(&scan_path(qr));
    url
}

/// [`scan_url`] on a deployment whose public URL is `public_url`, or nothing (an empty
/// string, as the `scan_url` fields of answers are) when it has none.
pub fn scan_url_at(public_url: &str, qr: &str) -> String {
    if public_url.trim().is_empty() {
        String::new()
    } else {
        scan_url(public_url.trim(), qr)
    }
}

/// What follows `/v/` in a scan page URL.
const SCAN_PATH: &str = "/v/";

/// The QR text `scanned` carries: the text itself, or, when it is a scan page URL
/// ([`scan_url`]: `http://` or `https://`, any host, a path ending in `/v/` and the
/// percent-encoded text), the text in it. Any host will do: what is checked is the
/// credential's signature, never the page the link points at. A query or fragment is
/// left out (chat apps append `?from=…` to links they pass on): the escaped text has
/// neither `?` nor `#`.
pub fn unwrap_scan_url(scanned: &str) -> Cow<'_, str> {
    let t = scanned.trim();
    let is_url = ["https://", "http://"].iter().any(|scheme| {
        t.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    if !is_url {
        return Cow::Borrowed(scanned);
    }
    let t = t.split(['?', '#']).next().unwrap_or_default();
    // Base45 has no lower-case letters, so the last `/v/` ends the URL's own path.
    match t.rfind(SCAN_PATH) {
        Some(at) => Cow::Owned(percent_decode(&t[at + SCAN_PATH.len()..])),
        None => Cow::Borrowed(scanned),
    }
}

/// `text` with every `%XX` replaced by the byte it stands for; bytes that do not form
/// UTF-8 become U+FFFD, so a garbled scan still gets an answer that says what is wrong.
pub fn percent_decode(text: &str) -> String {
    let raw = text.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |at: usize| raw.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (raw[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                bytes.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Parses QR text back into the envelope, without checking its signature. The text may
/// come inside a scan page URL ([`unwrap_scan_url`]).
///
/// Surrounding whitespace (a scanner's trailing newline) is ignored. That is safe even
/// though base45 has a space character: the last character of every base45 group is its
/// most significant digit and a space there (value 36) would overflow the group, so valid
/// base45 never ends with a space. Each way of failing has its own reason.
pub fn from_qr(text: &str) -> Result<Envelope, FormatError> {
    if text.trim().len() > MAX_QR_TEXT_LEN {
        return Err(FormatError::QrTooLarge);
    }
    let text = unwrap_scan_url(text);
    let text = text.trim();
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

        let no_scan_path = format!("https://verify.example/x/{text}");
        assert_eq!(from_qr(&no_scan_path).unwrap_err().reason(), "QR_PREFIX");
    }

    #[test]
    fn a_scan_page_url_carries_the_same_envelope() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let text = to_qr(&env);
        for base in [
            "https://verify.sh.example.gov.cn",
            "https://verify.sh.example.gov.cn/",
            "http://127.0.0.1:8080",
            "https://gov.example/credmesh/sh",
        ] {
            let url = scan_url(base, &text);
            assert!(!url.contains("//v/"), "{url}");
            assert_eq!(unwrap_scan_url(&url), text);
            assert_eq!(from_qr(&url).unwrap(), env);
            assert_eq!(from_qr(&format!("{url}\r\n")).unwrap(), env);
        }
        // Passed on through a chat app, with a query and a fragment appended.
        let shared = format!(
            "{}?from=singlemessage&isappinstalled=0#top",
            scan_url("https://h", &text)
        );
        assert_eq!(from_qr(&shared).unwrap(), env);
        // Scanners may report the scheme and host in capitals.
        let shouting = scan_url("HTTPS://VERIFY.EXAMPLE", &text);
        assert_eq!(from_qr(&shouting).unwrap(), env);
        // The path stays in the QR alphanumeric mode: only the base adds other bytes.
        let path = scan_path(&text);
        assert!(
            path.chars()
                .all(|c| QR_ALPHANUMERIC.contains(c) || c == 'v')
        );
    }

    #[test]
    fn without_a_public_url_there_is_no_scan_url() {
        assert_eq!(scan_url_at("", "CM1:A B"), "");
        assert_eq!(scan_url_at("  ", "CM1:A B"), "");
        assert_eq!(
            scan_url_at("https://verify.sh.example.gov.cn/", "CM1:A B"),
            "https://verify.sh.example.gov.cn/v/CM1:A%20B"
        );
    }

    #[test]
    fn text_that_is_not_a_scan_url_is_left_as_it_is() {
        assert_eq!(unwrap_scan_url("CM1:ABC"), "CM1:ABC");
        assert_eq!(
            unwrap_scan_url("ftp://host/v/CM1:ABC"),
            "ftp://host/v/CM1:ABC"
        );
        assert_eq!(
            unwrap_scan_url("https://host/CM1:ABC"),
            "https://host/CM1:ABC"
        );
        assert!(matches!(unwrap_scan_url("CM1:ABC"), Cow::Borrowed(_)));
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(scan_path("CM1:A B%/C"), "/v/CM1:A%20B%25%2FC");
        assert_eq!(percent_decode("CM1:A%20B%25%2FC"), "CM1:A B%/C");
        assert_eq!(percent_decode("%FF%FEx%4"), "\u{FFFD}\u{FFFD}x%4");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }
}
