//! The single verification entry point for every form, online or offline.
//!
//! Checks run in a fixed order and the first failure is the answer:
//!
//! 1. **decode** the input (QR text, VC-JWT, SD-JWT, envelope bytes) → `Malformed`;
//! 2. **key lookup** by kid in the [`TrustSnapshot`] → `UnknownIssuer` (`KEY_UNKNOWN`,
//!    `KEY_REVOKED`);
//! 3. **signature**, strict Ed25519 over the bytes as received → `BadSignature`;
//! 4. **payload decode** (only now: nothing unsigned is parsed as trusted) → `Malformed`;
//!    for an SD-JWT also the disclosures against the signed digests → `BadSignature` for
//!    a disclosure the issuer did not sign, `Malformed` for any other problem;
//! 5. **issuer binding**: the key may sign this kind, the credential's issuer and region
//!    are the key's, and it was issued inside the key's validity and not after the key's
//!    retirement → `UnknownIssuer` with a precise reason;
//! 6. **time window** with `max_clock_skew` tolerance → `NotYetValid` / `Expired`;
//! 7. **status** → `Revoked`, `Suspended`, `StatusUnknown` or `Valid`.
//!
//! Precedence between 6 and 7: an expired credential whose status data says revoked is
//! `Revoked` (revocation is permanent and the stronger statement: a relying party looking
//! at an old license should learn it was withdrawn); otherwise it is `Expired`, even if
//! suspended or if status data is missing, since nothing can make it valid again. A
//! revoked or superseded bit is believed even from stale data (revocation never
//! reverses); stale data never yields `Valid` or `Suspended`.
//!
//! A key used after it leaked can back-date credentials to before its retirement; the
//! remedy is revoking the key (`KEY_REVOKED` refuses everything it signed), which is why
//! retirement and revocation are distinct states.

mod status;
mod trust;

pub use status::{StatusCache, StatusLookup, StatusSource};
pub use trust::{TrustEntry, TrustSnapshot};

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use credmesh_proto::credential::v1::{
    Credential, CredentialKind, Envelope, KeyStatus, VerificationOutcome,
};
use credmesh_proto::prost::Message;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::envelope::{Context, MAX_ENVELOPE_LEN, decode_envelope, signing_input, verify_parts};
use crate::error::{FormatError, SignatureError};
use crate::qr::{QR_PREFIX, from_qr, unwrap_scan_url};
use crate::sd_jwt::{SdJwt, SdJwtError, looks_like_sd_jwt};
use crate::vcjwt::{ParsedJwt, parse_vc_jwt, vc_type};

/// A credential as a verifier received it.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// An encoded [`Envelope`] (gRPC bytes, a file).
    Native(&'a [u8]),
    /// An already decoded envelope.
    Envelope(&'a Envelope),
    /// QR text, `CM1:…`, or a scan page URL carrying it.
    Qr(&'a str),
    /// A compact VC-JWT.
    VcJwt(&'a str),
    /// An SD-JWT (RFC 9901), `<jwt>~<disclosure>~…~`.
    SdJwt(&'a str),
    /// Text in none of the known forms; verifies as `Malformed`.
    Unrecognized(&'a str),
}

impl<'a> Presented<'a> {
    /// Classifies scanned or pasted text: `CM1:` is QR, and so is a scan page URL
    /// carrying it (`https://host/v/CM1:…`, what a printed enterprise code encodes);
    /// three base64url segments are a VC-JWT, a JWT followed by `~` is an SD-JWT,
    /// anything else is unrecognized (and verifies as `Malformed`).
    pub fn detect(text: &'a str) -> Presented<'a> {
        let t = text.trim();
        if t.starts_with(QR_PREFIX) || unwrap_scan_url(t).trim_start().starts_with(QR_PREFIX) {
            Presented::Qr(text)
        } else if looks_like_jwt(t) {
            Presented::VcJwt(text)
        } else if looks_like_sd_jwt(t) {
            Presented::SdJwt(text)
        } else {
            Presented::Unrecognized(text)
        }
    }

    /// The form, if known.
    pub fn form(&self) -> Option<Form> {
        match self {
            Self::Native(_) | Self::Envelope(_) => Some(Form::Native),
            Self::Qr(_) => Some(Form::Qr),
            Self::VcJwt(_) => Some(Form::VcJwt),
            Self::SdJwt(_) => Some(Form::SdJwt),
            Self::Unrecognized(_) => None,
        }
    }
}

fn looks_like_jwt(t: &str) -> bool {
    let mut segments = 0;
    for part in t.split('.') {
        segments += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}

/// Which form a credential was presented in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// Protobuf envelope.
    Native,
    /// `CM1:` QR text.
    Qr,
    /// VC-JWT.
    VcJwt,
    /// SD-JWT (RFC 9901).
    SdJwt,
}

impl Form {
    /// A stable lowercase name for answers and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Qr => "qr",
            Self::VcJwt => "vc-jwt",
            Self::SdJwt => "sd-jwt",
        }
    }
}

/// The one answer a verifier gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Signature, issuer, validity period and status all check out.
    Valid,
    /// Revoked; `superseded` when a newer version replaced it.
    Revoked {
        /// A newer version replaced the credential.
        superseded: bool,
    },
    /// Suspended until reinstated.
    Suspended,
    /// The validity period has ended.
    Expired,
    /// The validity period has not started.
    NotYetValid,
    /// The key is unknown or revoked, or may not vouch for this credential.
    UnknownIssuer,
    /// The signature does not match.
    BadSignature,
    /// Not decodable as a credential.
    Malformed,
    /// Signature good, but no fresh enough status data.
    StatusUnknown,
}

impl Outcome {
    /// The proto enum for gRPC answers.
    pub fn to_proto(&self) -> VerificationOutcome {
        match self {
            Self::Valid => VerificationOutcome::Valid,
            Self::Revoked { .. } => VerificationOutcome::Revoked,
            Self::Suspended => VerificationOutcome::Suspended,
            Self::Expired => VerificationOutcome::Expired,
            Self::NotYetValid => VerificationOutcome::NotYetValid,
            Self::UnknownIssuer => VerificationOutcome::UnknownIssuer,
            Self::BadSignature => VerificationOutcome::BadSignature,
            Self::Malformed => VerificationOutcome::Malformed,
            Self::StatusUnknown => VerificationOutcome::StatusUnknown,
        }
    }

    /// A stable lowercase name ("valid", "revoked", …) for JSON answers and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked { .. } => "revoked",
            Self::Suspended => "suspended",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BadSignature => "bad_signature",
            Self::Malformed => "malformed",
            Self::StatusUnknown => "status_unknown",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verification answer with everything a relying party or an operator needs to act on
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The answer.
    pub outcome: Outcome,
    /// The form the credential arrived in, when recognisable.
    pub form: Option<Form>,
    /// The decoded credential, once its signature verified (also for revoked, expired,
    /// … answers, so they can be shown). Never set for unsigned or mis-signed data.
    pub credential: Option<Credential>,
    /// The key id the input named.
    pub kid: Option<String>,
    /// The issuer of the key, once the key is found.
    pub issuer: Option<String>,
    /// The region of the key, once the key is found.
    pub region: Option<String>,
    /// A stable machine-readable reason, e.g. "VALID", "KEY_REVOKED",
    /// "SIGNATURE_MISMATCH", "STATUS_STALE".
    pub reason: &'static str,
    /// One human sentence explaining the answer.
    pub detail: String,
    /// How old the status data consulted was.
    pub status_age: Option<Duration>,
    /// How old the trust data consulted was.
    pub trust_age: Option<Duration>,
}

impl Verification {
    fn new(outcome: Outcome, reason: &'static str, detail: String) -> Self {
        Self {
            outcome,
            form: None,
            credential: None,
            kid: None,
            issuer: None,
            region: None,
            reason,
            detail,
            status_age: None,
            trust_age: None,
        }
    }

    fn malformed(form: Option<Form>, err: &FormatError) -> Box<Self> {
        let mut v = Self::new(
            Outcome::Malformed,
            err.reason(),
            format!("The input could not be decoded as a credential: {err}."),
        );
        v.form = form;
        Box::new(v)
    }

    fn malformed_sd_jwt(err: &SdJwtError) -> Box<Self> {
        let mut v = Self::new(
            Outcome::Malformed,
            err.reason(),
            format!("The input could not be decoded as an SD-JWT: {err}."),
        );
        v.form = Some(Form::SdJwt);
        Box::new(v)
    }

    /// True only for [`Outcome::Valid`].
    pub fn is_valid(&self) -> bool {
        self.outcome == Outcome::Valid
    }
}

/// How strict a verifier is about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Status data older than this never yields `Valid` (default 10 minutes).
    pub max_status_age: Duration,
    /// Tolerance for clocks disagreeing at validity boundaries (default 5 minutes).
    pub max_clock_skew: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_status_age: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn age(now: i64, then: i64) -> Duration {
    Duration::from_secs(u64::try_from(now.saturating_sub(then)).unwrap_or(0))
}

fn when(unix: i64) -> String {
    crate::vcjwt::rfc3339(unix).unwrap_or_else(|| unix.to_string())
}

/// A decoded input, before its signature is checked.
enum Item<'i> {
    Envelope {
        envelope: Cow<'i, Envelope>,
        signature: Signature,
    },
    Jwt(ParsedJwt<'i>),
    SdJwt(SdJwt<'i>),
}

/// Why a signed payload was not accepted as a credential.
struct Refusal {
    outcome: Outcome,
    reason: &'static str,
    detail: String,
}

impl From<FormatError> for Refusal {
    fn from(e: FormatError) -> Self {
        Self {
            outcome: Outcome::Malformed,
            reason: e.reason(),
            detail: format!("The signed payload is not a credential: {e}."),
        }
    }
}

impl From<SdJwtError> for Refusal {
    fn from(e: SdJwtError) -> Self {
        Self {
            outcome: if e.is_tampering() {
                Outcome::BadSignature
            } else {
                Outcome::Malformed
            },
            reason: e.reason(),
            detail: format!("The SD-JWT was refused: {e}."),
        }
    }
}

impl Item<'_> {
    fn kid(&self) -> &str {
        match self {
            Self::Envelope { envelope, .. } => &envelope.kid,
            Self::Jwt(jwt) => jwt.kid(),
            Self::SdJwt(sd) => sd.kid(),
        }
    }

    fn check_signature(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        match self {
            Self::Envelope {
                envelope,
                signature,
            } => verify_parts(Context::Credential, &envelope.payload, signature, key),
            Self::Jwt(jwt) => jwt.check_signature(key),
            Self::SdJwt(sd) => sd.jwt().check_signature(key),
        }
    }

    fn signature(&self) -> Signature {
        match self {
            Self::Envelope { signature, .. } => *signature,
            Self::Jwt(jwt) => *jwt.signature(),
            Self::SdJwt(sd) => *sd.jwt().signature(),
        }
    }

    fn signed_message(&self) -> Cow<'_, [u8]> {
        match self {
            Self::Envelope { envelope, .. } => {
                Cow::Owned(signing_input(Context::Credential, &envelope.payload))
            }
            Self::Jwt(jwt) => Cow::Borrowed(jwt.signing_input()),
            Self::SdJwt(sd) => Cow::Borrowed(sd.jwt().signing_input()),
        }
    }

    /// The credential; call only after the signature checked out.
    fn credential(&self) -> Result<Credential, Refusal> {
        match self {
            Self::Envelope { envelope, .. } => Credential::decode(envelope.payload.as_slice())
                .map_err(|_| FormatError::PayloadDecode("Credential").into()),
            Self::Jwt(jwt) => Ok(jwt.credential()?),
            Self::SdJwt(sd) => Ok(sd.disclose()?.credential()?),
        }
    }
}

/// An input that decoded and whose kid names a usable key.
struct Admitted<'i, 't> {
    form: Form,
    item: Item<'i>,
    entry: &'t TrustEntry,
    now: i64,
}

impl Admitted<'_, '_> {
    /// An answer carrying what is known about the key.
    fn answer(&self, outcome: Outcome, reason: &'static str, detail: String) -> Verification {
        let mut v = Verification::new(outcome, reason, detail);
        v.form = Some(self.form);
        v.kid = Some(self.entry.kid.clone());
        v.issuer = Some(self.entry.issuer.clone());
        v.region = Some(self.entry.region.clone());
        v.trust_age = Some(age(self.now, self.entry.fetched_at));
        v
    }

    fn bad_signature(&self, err: SignatureError) -> Verification {
        self.answer(
            Outcome::BadSignature,
            err.reason(),
            format!(
                "The signature does not match the credential and key {}.",
                self.entry.kid
            ),
        )
    }
}

fn envelope_item<'i>(
    envelope: Cow<'i, Envelope>,
    form: Form,
) -> Result<(Form, Item<'i>), Box<Verification>> {
    if envelope.payload.len() > MAX_ENVELOPE_LEN {
        let err = FormatError::EnvelopeTooLarge {
            len: envelope.payload.len(),
            max: MAX_ENVELOPE_LEN,
        };
        return Err(Verification::malformed(Some(form), &err));
    }
    let signature = Signature::from_slice(&envelope.signature).map_err(|_| {
        Verification::malformed(
            Some(form),
            &FormatError::SignatureLength(envelope.signature.len()),
        )
    })?;
    Ok((
        form,
        Item::Envelope {
            envelope,
            signature,
        },
    ))
}

/// Steps 1 and 2: decode, find the key.
fn admit<'i, 't>(
    input: Presented<'i>,
    trust: &'t TrustSnapshot,
    now: i64,
) -> Result<Admitted<'i, 't>, Box<Verification>> {
    let (form, item) = match input {
        Presented::Native(bytes) => {
            let envelope = decode_envelope(bytes)
                .map_err(|e| Verification::malformed(Some(Form::Native), &e))?;
            envelope_item(Cow::Owned(envelope), Form::Native)?
        }
        Presented::Envelope(envelope) => envelope_item(Cow::Borrowed(envelope), Form::Native)?,
        Presented::Qr(text) => {
            let envelope =
                from_qr(text).map_err(|e| Verification::malformed(Some(Form::Qr), &e))?;
            envelope_item(Cow::Owned(envelope), Form::Qr)?
        }
        Presented::VcJwt(token) => {
            let jwt =
                parse_vc_jwt(token).map_err(|e| Verification::malformed(Some(Form::VcJwt), &e))?;
            (Form::VcJwt, Item::Jwt(jwt))
        }
        Presented::SdJwt(text) => {
            let sd = crate::sd_jwt::parse(text).map_err(|e| Verification::malformed_sd_jwt(&e))?;
            (Form::SdJwt, Item::SdJwt(sd))
        }
        Presented::Unrecognized(_) => {
            return Err(Box::new(Verification::new(
                Outcome::Malformed,
                "INPUT_UNRECOGNIZED",
                "The input is neither QR text (CM1:), a VC-JWT, an SD-JWT nor an envelope."
                    .to_owned(),
            )));
        }
    };
    let Some(entry) = trust.get(item.kid()) else {
        let mut v = Verification::new(
            Outcome::UnknownIssuer,
            "KEY_UNKNOWN",
            format!("Key {:?} is not in any trusted list.", item.kid()),
        );
        v.form = Some(form);
        v.kid = Some(item.kid().to_owned());
        return Err(Box::new(v));
    };
    let admitted = Admitted {
        form,
        item,
        entry,
        now,
    };
    if entry.status == KeyStatus::Revoked {
        return Err(Box::new(admitted.answer(
            Outcome::UnknownIssuer,
            "KEY_REVOKED",
            format!(
                "Key {} of {} is revoked; nothing it signed verifies.",
                entry.kid, entry.issuer
            ),
        )));
    }
    Ok(admitted)
}

/// Steps 4 to 7, after the signature verified.
fn conclude(
    admitted: Admitted<'_, '_>,
    status: &dyn StatusSource,
    policy: &Policy,
) -> Verification {
    let credential = match admitted.item.credential() {
        Ok(c) => c,
        Err(r) => return admitted.answer(r.outcome, r.reason, r.detail),
    };
    let mut v = judge(&admitted, &credential, status, policy);
    v.credential = Some(credential);
    v
}

fn judge(
    a: &Admitted<'_, '_>,
    c: &Credential,
    status: &dyn StatusSource,
    policy: &Policy,
) -> Verification {
    let entry = a.entry;
    let now = a.now;

    // The payload itself.
    let kind_known =
        CredentialKind::try_from(c.kind).is_ok_and(|k| k != CredentialKind::Unspecified);
    if !kind_known {
        let err = FormatError::CredentialIncomplete("kind is unspecified or unknown");
        return a.answer(
            Outcome::Malformed,
            err.reason(),
            format!("The credential {err}."),
        );
    }
    if c.id.is_empty() {
        let err = FormatError::CredentialIncomplete("id is empty");
        return a.answer(
            Outcome::Malformed,
            err.reason(),
            format!("The credential {err}."),
        );
    }

    // Issuer binding.
    if !entry.may_sign(c.kind) {
        return a.answer(
            Outcome::UnknownIssuer,
            "KEY_KIND_NOT_ALLOWED",
            format!(
                "Key {} may not sign {} credentials.",
                entry.kid,
                vc_type(c.kind)
            ),
        );
    }
    if c.issuer != entry.issuer {
        return a.answer(
            Outcome::UnknownIssuer,
            "ISSUER_MISMATCH",
            format!(
                "The credential names issuer {:?} but key {} belongs to {}.",
                c.issuer, entry.kid, entry.issuer
            ),
        );
    }
    if c.region != entry.region {
        return a.answer(
            Outcome::UnknownIssuer,
            "REGION_MISMATCH",
            format!(
                "The credential names region {:?} but key {} is vouched for by {}.",
                c.region, entry.kid, entry.region
            ),
        );
    }
    if c.issued_at < entry.not_before {
        return a.answer(
            Outcome::UnknownIssuer,
            "KEY_NOT_YET_VALID",
            format!(
                "The credential was issued at {}, before key {} became valid at {}.",
                when(c.issued_at),
                entry.kid,
                when(entry.not_before)
            ),
        );
    }
    if entry.not_after != 0 && c.issued_at > entry.not_after {
        return a.answer(
            Outcome::UnknownIssuer,
            "KEY_EXPIRED",
            format!(
                "The credential was issued at {}, after key {} stopped being valid at {}.",
                when(c.issued_at),
                entry.kid,
                when(entry.not_after)
            ),
        );
    }
    if entry.retired_at != 0 && c.issued_at > entry.retired_at {
        return a.answer(
            Outcome::UnknownIssuer,
            "KEY_RETIRED",
            format!(
                "The credential was issued at {}, after key {} was retired at {}.",
                when(c.issued_at),
                entry.kid,
                when(entry.retired_at)
            ),
        );
    }

    // Time window.
    let skew = secs(policy.max_clock_skew);
    let ahead = now.saturating_add(skew);
    if c.issued_at > ahead {
        return a.answer(
            Outcome::NotYetValid,
            "ISSUED_IN_FUTURE",
            format!(
                "The credential claims to be issued at {}, in the future.",
                when(c.issued_at)
            ),
        );
    }
    if c.not_before > ahead {
        return a.answer(
            Outcome::NotYetValid,
            "NOT_YET_VALID",
            format!("The credential is valid from {}.", when(c.not_before)),
        );
    }
    let expired = c.not_after != 0 && now.saturating_sub(skew) >= c.not_after;
    let expired_answer = || {
        a.answer(
            Outcome::Expired,
            "EXPIRED",
            format!("The credential expired at {}.", when(c.not_after)),
        )
    };

    // Status.
    let Some(reference) = &c.status else {
        if expired {
            return expired_answer();
        }
        return a.answer(
            Outcome::Valid,
            "VALID",
            "Signature, issuer and validity period check out; the credential has no status \
             list (too short-lived to be revoked)."
                .to_owned(),
        );
    };
    match status.lookup(&reference.list_id, reference.index) {
        StatusLookup::Known {
            revoked,
            suspended,
            superseded,
            updated_at,
        } => {
            let status_age = age(now, updated_at);
            let mut v = if revoked || superseded {
                let (reason, detail) = if superseded {
                    (
                        "SUPERSEDED",
                        "The credential was revoked: a newer version replaced it.",
                    )
                } else {
                    ("REVOKED", "The credential was revoked by its issuer.")
                };
                a.answer(Outcome::Revoked { superseded }, reason, detail.to_owned())
            } else if expired {
                expired_answer()
            } else if now.saturating_sub(updated_at) > secs(policy.max_status_age) {
                a.answer(
                    Outcome::StatusUnknown,
                    "STATUS_STALE",
                    format!(
                        "The status data for list {} is {} s old, above the {} s limit.",
                        reference.list_id,
                        status_age.as_secs(),
                        policy.max_status_age.as_secs()
                    ),
                )
            } else if suspended {
                a.answer(
                    Outcome::Suspended,
                    "SUSPENDED",
                    "The credential is suspended by its issuer until reinstated.".to_owned(),
                )
            } else {
                a.answer(
                    Outcome::Valid,
                    "VALID",
                    "Signature, issuer, validity period and status all check out.".to_owned(),
                )
            };
            v.status_age = Some(status_age);
            v
        }
        StatusLookup::Unknown { last_seen } => {
            let mut v = if expired {
                expired_answer()
            } else {
                a.answer(
                    Outcome::StatusUnknown,
                    "STATUS_UNAVAILABLE",
                    format!(
                        "No status data covers entry {} of list {}.",
                        reference.index, reference.list_id
                    ),
                )
            };
            v.status_age = last_seen.map(|t| age(now, t));
            v
        }
    }
}

/// Verifies one credential in any form against cached trust and status data, at time
/// `now` (Unix seconds). Never fails: every problem is an [`Outcome`] with a reason.
pub fn verify(
    input: Presented<'_>,
    trust: &TrustSnapshot,
    status: &dyn StatusSource,
    policy: &Policy,
    now: i64,
) -> Verification {
    let admitted = match admit(input, trust, now) {
        Ok(a) => a,
        Err(v) => return *v,
    };
    if let Err(e) = admitted.item.check_signature(&admitted.entry.key) {
        return admitted.bad_signature(e);
    }
    conclude(admitted, status, policy)
}

/// Checks many Ed25519 signatures, each `(message, signature, key)`; answers in input
/// order whether each verified. One signature is checked strictly as [`verify`] does;
/// several with one batch equation (about half the cost per signature from 16 on), and
/// if that fails, each alone (strict) to find the bad ones — so a forged signature
/// never makes an honest one fail, nor passes because honest ones surround it. The
/// batch equation's deliberate difference in strength is that of [`verify_batch`].
pub fn check_signatures(items: &[(&[u8], Signature, VerifyingKey)]) -> Vec<bool> {
    let strict = |(m, s, k): &(&[u8], Signature, VerifyingKey)| k.verify_strict(m, s).is_ok();
    if items.len() < 2 {
        return items.iter().map(strict).collect();
    }
    let messages: Vec<&[u8]> = items.iter().map(|i| i.0).collect();
    let signatures: Vec<Signature> = items.iter().map(|i| i.1).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.2).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        vec![true; items.len()]
    } else {
        items.iter().map(strict).collect()
    }
}

/// A credential decoded and matched to a usable trusted key (steps 1 and 2 of
/// [`verify`]), waiting for its signature check — for verifiers that check signatures
/// elsewhere, e.g. batched across concurrent requests. Check
/// [`message`](Self::message), [`signature`](Self::signature) and [`key`](Self::key)
/// with Ed25519 (strict, or in a batch equation as [`verify_batch`] does), then pass the
/// result to [`conclude`](Self::conclude).
pub struct Staged<'i, 't>(Admitted<'i, 't>);

impl fmt::Debug for Staged<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("form", &self.0.form)
            .field("kid", &self.0.entry.kid)
            .finish_non_exhaustive()
    }
}

impl Staged<'_, '_> {
    /// The signed bytes, exactly as the signature covers them.
    pub fn message(&self) -> Cow<'_, [u8]> {
        self.0.item.signed_message()
    }

    /// The signature.
    pub fn signature(&self) -> Signature {
        self.0.item.signature()
    }

    /// The trusted key the signature must verify under.
    pub fn key(&self) -> &VerifyingKey {
        &self.0.entry.key
    }

    /// Steps 3 to 7 given the outcome of the signature check: `signature_ok` must be
    /// true only when the signature verified under [`key`](Self::key) over
    /// [`message`](Self::message). The answer is then exactly that of [`verify`].
    pub fn conclude(
        self,
        signature_ok: bool,
        status: &dyn StatusSource,
        policy: &Policy,
    ) -> Verification {
        if signature_ok {
            conclude(self.0, status, policy)
        } else {
            self.0.bad_signature(SignatureError::Mismatch)
        }
    }
}

/// Steps 1 and 2 of [`verify`]: decodes the input and finds its key. `Err` is already
/// the final answer (malformed, unknown or revoked key); `Ok` needs its signature
/// checked, then [`Staged::conclude`].
pub fn stage<'i, 't>(
    input: Presented<'i>,
    trust: &'t TrustSnapshot,
    now: i64,
) -> Result<Staged<'i, 't>, Box<Verification>> {
    admit(input, trust, now).map(Staged)
}

/// Verifies many credentials with one Ed25519 batch equation over every input that
/// decoded and named a usable key (about twice as fast per signature as single checks).
/// If the batch fails, each signature is checked alone to find the bad ones, so the
/// answers are exactly those of [`verify`] one by one.
///
/// One deliberate difference in strength: batch verification uses the cofactored
/// equation, which accepts a few non-canonical signatures that strict single
/// verification refuses. Only the key holder can make such signatures, so they prove
/// the same thing; small-order keys, the dangerous case, never enter a
/// [`TrustSnapshot`].
pub fn verify_batch(
    inputs: &[Presented<'_>],
    trust: &TrustSnapshot,
    status: &dyn StatusSource,
    policy: &Policy,
    now: i64,
) -> Vec<Verification> {
    if inputs.len() < 2 {
        return inputs
            .iter()
            .map(|i| verify(*i, trust, status, policy, now))
            .collect();
    }
    let staged: Vec<Result<Admitted<'_, '_>, Box<Verification>>> = inputs
        .iter()
        .map(|input| admit(*input, trust, now))
        .collect();

    let good: Vec<&Admitted<'_, '_>> = staged.iter().filter_map(|s| s.as_ref().ok()).collect();
    let batch_ok = good.len() >= 2 && {
        let messages: Vec<Cow<'_, [u8]>> = good.iter().map(|a| a.item.signed_message()).collect();
        let messages: Vec<&[u8]> = messages.iter().map(|m| m.as_ref()).collect();
        let signatures: Vec<Signature> = good.iter().map(|a| a.item.signature()).collect();
        let keys: Vec<VerifyingKey> = good.iter().map(|a| a.entry.key).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    };
    drop(good);

    staged
        .into_iter()
        .map(|staged| match staged {
            Err(v) => *v,
            Ok(a) if batch_ok => conclude(a, status, policy),
            Ok(a) => match a.item.check_signature(&a.entry.key) {
                Ok(()) => conclude(a, status, policy),
                Err(e) => a.bad_signature(e),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
