//! The crate's error types, each with a stable `reason()` for answers and logs.
//!
//! Reasons are upper-snake strings that services put into `google.rpc.ErrorInfo.reason`
//! and verifiers show in `Verification::reason`; they never change once published.

use thiserror::Error;

/// Input that is not a well-formed credential, envelope, QR text, VC-JWT or status list.
///
/// Every variant maps to a distinct stable reason so that a partner integrator can tell
/// "your QR scanner dropped characters" (`QR_BASE45`) from "this is not ours" (`QR_PREFIX`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The encoded envelope (or its payload) is above the size bound.
    #[error("envelope is {len} bytes, above the {max}-byte limit")]
    EnvelopeTooLarge {
        /// Size seen.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a protobuf `Envelope`.
    #[error("input is not a protobuf envelope")]
    EnvelopeDecode,
    /// The envelope's signature is not 64 bytes.
    #[error("signature is {0} bytes, an ed25519 signature has 64")]
    SignatureLength(usize),
    /// The signed payload is not the expected protobuf message.
    #[error("payload is not a valid {0} message")]
    PayloadDecode(&'static str),
    /// The credential decodes but lacks something every credential has.
    #[error("credential is incomplete: {0}")]
    CredentialIncomplete(&'static str),
    /// QR text does not start with [`crate::QR_PREFIX`], nor is it a scan page URL
    /// carrying such text.
    #[error(
        "qr text does not start with the credmesh prefix CM1:, nor is it a scan page link (…/v/CM1:…)"
    )]
    QrPrefix,
    /// QR text after the prefix is not valid base45.
    #[error("qr text is not valid base45")]
    QrBase45,
    /// QR data is not a valid zlib stream.
    #[error("qr data is not a valid zlib stream")]
    QrZlib,
    /// QR text or its decompressed data is above the size bound (zip bomb guard).
    #[error("qr data is above the size limit")]
    QrTooLarge,
    /// A VC-JWT above the size bound.
    #[error("token is {0} bytes, above the size limit")]
    JwtTooLarge(usize),
    /// Not three dot-separated base64url segments.
    #[error("token is not three base64url segments")]
    JwtShape,
    /// A segment is not canonical unpadded base64url.
    #[error("token {0} segment is not valid base64url")]
    JwtBase64(&'static str),
    /// The protected header is not the JSON object expected.
    #[error("token header is invalid: {0}")]
    JwtHeader(&'static str),
    /// The header's `alg` is not `EdDSA`.
    #[error("token algorithm {0:?} is not EdDSA")]
    JwtAlg(String),
    /// The header's `typ` is not the one expected (`vc+jwt`, or `dc+sd-jwt` for the
    /// issuer-signed part of an SD-JWT).
    #[error("token type is not {0}")]
    JwtTyp(&'static str),
    /// The header has no `kid`.
    #[error("token header has no kid")]
    JwtKid,
    /// The payload is not a credmesh VC-JWT claims set.
    #[error("token claims are invalid: {0}")]
    JwtClaims(String),
    /// A status list not in multibase base64url ("u" prefix).
    #[error("status list is not multibase base64url (\"u\" prefix)")]
    StatusListPrefix,
    /// A status list whose base64url is invalid.
    #[error("status list is not valid base64url")]
    StatusListBase64,
    /// A status list whose GZIP stream is invalid.
    #[error("status list is not a valid gzip stream")]
    StatusListGzip,
    /// A status list above the caller's bound.
    #[error("status list is above the {max_bits}-bit limit")]
    StatusListTooLarge {
        /// The bound in bits.
        max_bits: usize,
    },
    /// A status list that is empty or disagrees with its declared size.
    #[error("status list size is invalid: {0}")]
    StatusListSize(&'static str),
}

impl FormatError {
    /// The stable reason code for answers, metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EnvelopeTooLarge { .. } => "ENVELOPE_TOO_LARGE",
            Self::EnvelopeDecode => "ENVELOPE_DECODE",
            Self::SignatureLength(_) => "SIGNATURE_LENGTH",
            Self::PayloadDecode(_) => "PAYLOAD_DECODE",
            Self::CredentialIncomplete(_) => "CREDENTIAL_INCOMPLETE",
            Self::QrPrefix => "QR_PREFIX",
            Self::QrBase45 => "QR_BASE45",
            Self::QrZlib => "QR_ZLIB",
            Self::QrTooLarge => "QR_TOO_LARGE",
            Self::JwtTooLarge(_) => "JWT_TOO_LARGE",
            Self::JwtShape => "JWT_SHAPE",
            Self::JwtBase64(_) => "JWT_BASE64",
            Self::JwtHeader(_) => "JWT_HEADER",
            Self::JwtAlg(_) => "JWT_ALG",
            Self::JwtTyp(_) => "JWT_TYP",
            Self::JwtKid => "JWT_KID",
            Self::JwtClaims(_) => "JWT_CLAIMS",
            Self::StatusListPrefix => "STATUS_LIST_PREFIX",
            Self::StatusListBase64 => "STATUS_LIST_BASE64",
            Self::StatusListGzip => "STATUS_LIST_GZIP",
            Self::StatusListTooLarge { .. } => "STATUS_LIST_TOO_LARGE",
            Self::StatusListSize(_) => "STATUS_LIST_SIZE",
        }
    }
}

/// A signature that does not check out against the given key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature field is not 64 bytes.
    #[error("signature is {0} bytes, an ed25519 signature has 64")]
    Length(usize),
    /// Strict Ed25519 verification failed: wrong key, tampered payload, wrong context or a
    /// non-canonical signature.
    #[error("signature does not match the payload and key")]
    Mismatch,
}

impl SignatureError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Length(_) => "SIGNATURE_LENGTH",
            Self::Mismatch => "SIGNATURE_MISMATCH",
        }
    }
}

/// Why [`crate::open`] refused a signed document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// The signature did not verify; the payload was not decoded.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The signature verified but the payload is not the expected message.
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl OpenError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Signature(e) => e.reason(),
            Self::Format(e) => e.reason(),
        }
    }
}

/// Why an issuer key could not be made or loaded. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// The PKCS#8 document is not an Ed25519 private key.
    #[error("not an ed25519 pkcs#8 private key: {0}")]
    Pkcs8(String),
}

impl KeyError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Random(_) => "KEY_RANDOM",
            Self::Pkcs8(_) => "KEY_PKCS8",
        }
    }
}

/// Why a trust-list entry was not admitted to a [`crate::TrustSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The entry has an empty key id.
    #[error("trusted key has no kid")]
    MissingKid,
    /// The public key is not 32 bytes or not a valid curve point.
    #[error("trusted key {kid} is not a valid ed25519 public key")]
    PublicKey {
        /// The offending key id.
        kid: String,
    },
    /// The public key has small order: anything would verify under it.
    #[error("trusted key {kid} is a weak (small-order) key")]
    WeakKey {
        /// The offending key id.
        kid: String,
    },
    /// The key status is unspecified or unknown.
    #[error("trusted key {kid} has no valid status")]
    Status {
        /// The offending key id.
        kid: String,
    },
    /// A retired key without `retired_at`: no way to tell what it signed before retirement.
    #[error("trusted key {kid} is retired but has no retired_at")]
    RetiredAtMissing {
        /// The offending key id.
        kid: String,
    },
    /// The issuer id is not `<region>/<service>` of the key's region.
    #[error("trusted key {kid} issuer {issuer:?} is not in region {region:?}")]
    IssuerRegion {
        /// The offending key id.
        kid: String,
        /// The issuer id.
        issuer: String,
        /// The key's region.
        region: String,
    },
    /// A trust list vouching for a key of another region.
    #[error("trust list of region {list_region:?} vouches for key {kid} of region {key_region:?}")]
    RegionMismatch {
        /// The offending key id.
        kid: String,
        /// The list's region.
        list_region: String,
        /// The key's region.
        key_region: String,
    },
}

impl TrustError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingKid => "TRUST_KID_MISSING",
            Self::PublicKey { .. } => "TRUST_PUBLIC_KEY",
            Self::WeakKey { .. } => "TRUST_WEAK_KEY",
            Self::Status { .. } => "TRUST_KEY_STATUS",
            Self::RetiredAtMissing { .. } => "TRUST_RETIRED_AT_MISSING",
            Self::IssuerRegion { .. } => "TRUST_ISSUER_REGION",
            Self::RegionMismatch { .. } => "TRUST_REGION_MISMATCH",
        }
    }
}

/// Why a status list could not be changed or admitted to a cache.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StatusListError {
    /// The index is outside the bitstring.
    #[error("index {index} is outside the {len}-bit status list")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The bitstring length in bits.
        len: usize,
    },
    /// The purpose is unspecified or unknown.
    #[error("status list purpose is unspecified")]
    Purpose,
    /// The signing key is not in the trust snapshot.
    #[error("status list signed by unknown key {0}")]
    UnknownKey(String),
    /// The signing key is revoked, or was retired before the list was made.
    #[error("status list signing key {0} may not sign it")]
    KeyNotUsable(String),
    /// The list's issuer is not the key's issuer, or the list id is outside the issuer's
    /// namespace (`<issuer>/…`).
    #[error("status list {list_id} does not belong to the key's issuer {issuer}")]
    IssuerMismatch {
        /// The list id.
        list_id: String,
        /// The key's issuer.
        issuer: String,
    },
    /// Signature or payload problem.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The encoded bitstring is invalid.
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl StatusListError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::IndexOutOfRange { .. } => "STATUS_INDEX_RANGE",
            Self::Purpose => "STATUS_PURPOSE",
            Self::UnknownKey(_) => "KEY_UNKNOWN",
            Self::KeyNotUsable(_) => "KEY_NOT_USABLE",
            Self::IssuerMismatch { .. } => "ISSUER_MISMATCH",
            Self::Open(e) => e.reason(),
            Self::Format(e) => e.reason(),
        }
    }
}
