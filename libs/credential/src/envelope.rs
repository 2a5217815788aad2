//! The native signed form: an [`Envelope`] holding exact payload bytes, an Ed25519
//! signature over `context || 0x00 || payload` and the key id.
//!
//! The payload is signed and verified as the bytes that travel; nothing is re-encoded
//! before a signature check, so two protobuf encoders disagreeing about field order or
//! default values can never turn a good signature bad (or a bad one good).

use std::cell::Cell;

use credmesh_proto::credential::v1::{Credential, Envelope, TrustList};
use credmesh_proto::prost::Message;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{FormatError, OpenError, SignatureError};
use crate::keys::IssuerKey;

/// Upper bound on an encoded envelope (and on a decompressed QR payload): 64 KiB.
///
/// Real credentials are well under 4 KiB; the bound keeps a hostile input from costing a
/// verifier more than a fixed amount of memory and hashing.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;

/// What an envelope's payload is, bound into its signature so that a signature made for
/// one kind of document is refused as another (a signed status list is not a credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// A [`Credential`]: "credmesh/credential/v1".
    Credential,
    /// A `StatusList`: "credmesh/status-list/v1".
    StatusList,
    /// A [`TrustList`]: "credmesh/trust-list/v1".
    TrustList,
    /// A `DisputeNotice`: "credmesh/dispute-notice/v1".
    DisputeNotice,
}

impl Context {
    /// The context string, as fixed by the proto contract.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Credential => b"credmesh/credential/v1",
            Self::StatusList => b"credmesh/status-list/v1",
            Self::TrustList => b"credmesh/trust-list/v1",
            Self::DisputeNotice => b"credmesh/dispute-notice/v1",
        }
    }

    /// The payload message's name, for error messages.
    pub const fn message_name(self) -> &'static str {
        match self {
            Self::Credential => "Credential",
            Self::StatusList => "StatusList",
            Self::TrustList => "TrustList",
            Self::DisputeNotice => "DisputeNotice",
        }
    }
}

/// The exact bytes an envelope signature covers: `context || 0x00 || payload`.
///
/// Exposed so that other implementations (a partner's verifier, a test vector) can be
/// checked against this one.
pub fn signing_input(context: Context, payload: &[u8]) -> Vec<u8> {
    let ctx = context.as_bytes();
    let mut msg = Vec::with_capacity(ctx.len() + 1 + payload.len());
    msg.extend_from_slice(ctx);
    msg.push(0);
    msg.extend_from_slice(payload);
    msg
}

thread_local! {
    /// Per-thread buffer for the signing input, so the verify hot path does not allocate
    /// one per call (`verify_strict` needs the message contiguous).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` over `context || 0x00 || payload` without allocating in the steady state.
///
/// The buffer is taken out of the thread-local and put back afterwards, so re-entry or
/// thread teardown merely costs an allocation.
fn with_signing_input<R>(context: Context, payload: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(context.as_bytes());
    buf.push(0);
    buf.extend_from_slice(payload);
    let out = f(&buf);
    // Keep the buffer unless an oversized envelope was passed to `check_signature`.
    if buf.capacity() <= 2 * MAX_ENVELOPE_LEN {
        let _ = SCRATCH.try_with(|cell| cell.set(buf));
    }
    out
}

/// Checks an Ed25519 signature over `context || 0x00 || payload` with strict verification
/// (canonical `s`, no small-order `R` or key), the same rule for every form.
pub(crate) fn verify_parts(
    context: Context,
    payload: &[u8],
    signature: &Signature,
    key: &VerifyingKey,
) -> Result<(), SignatureError> {
    with_signing_input(context, payload, |msg| key.verify_strict(msg, signature))
        .map_err(|_| SignatureError::Mismatch)
}

/// Signs `payload` as a document of kind `context` and wraps it with the key id.
///
/// Verifiers refuse envelopes above [`MAX_ENVELOPE_LEN`]; issuers keep credentials far
/// below it.
pub fn seal(context: Context, payload: Vec<u8>, key: &IssuerKey) -> Envelope {
    let signature = with_signing_input(context, &payload, |msg| key.sign(msg));
    Envelope {
        payload,
        signature: signature.to_vec(),
        kid: key.kid().to_owned(),
    }
}

/// Encodes and signs a credential: the native form every other form is derived from.
pub fn sign_credential(credential: &Credential, key: &IssuerKey) -> Envelope {
    seal(Context::Credential, credential.encode_to_vec(), key)
}

/// Encodes and signs a region's trust list with its anchor key.
pub fn sign_trust_list(list: &TrustList, anchor: &IssuerKey) -> Envelope {
    seal(Context::TrustList, list.encode_to_vec(), anchor)
}

/// Checks an envelope's signature for the given context and key, over the payload bytes
/// exactly as received.
pub fn check_signature(
    context: Context,
    envelope: &Envelope,
    key: &VerifyingKey,
) -> Result<(), SignatureError> {
    let signature = Signature::from_slice(&envelope.signature)
        .map_err(|_| SignatureError::Length(envelope.signature.len()))?;
    verify_parts(context, &envelope.payload, &signature, key)
}

/// Verifies an envelope, then decodes its payload: the only way to read a signed
/// document, so that nothing unsigned is ever parsed as trusted.
pub fn open<M: Message + Default>(
    context: Context,
    envelope: &Envelope,
    key: &VerifyingKey,
) -> Result<M, OpenError> {
    check_signature(context, envelope, key)?;
    M::decode(envelope.payload.as_slice())
        .map_err(|_| OpenError::Format(FormatError::PayloadDecode(context.message_name())))
}

/// Encodes an envelope for transport (gRPC bytes, files, the QR form's input).
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    envelope.encode_to_vec()
}

/// Decodes an envelope received as bytes, refusing anything above [`MAX_ENVELOPE_LEN`]
/// before parsing.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, FormatError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(FormatError::EnvelopeTooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    Envelope::decode(bytes).map_err(|_| FormatError::EnvelopeDecode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, license};
    use ed25519_dalek::Verifier;

    #[test]
    fn the_signature_covers_context_separator_and_payload() {
        let k = key("SH-license-a");
        let env = sign_credential(&license(), &k);
        let sig = Signature::from_slice(&env.signature).unwrap();
        let mut msg = b"credmesh/credential/v1\0".to_vec();
        msg.extend_from_slice(&env.payload);
        assert!(k.verifying_key().verify(&msg, &sig).is_ok());
        assert_eq!(signing_input(Context::Credential, &env.payload), msg);
    }

    #[test]
    fn an_opened_credential_is_the_signed_one() {
        let k = key("SH-license-a");
        let env = sign_credential(&license(), &k);
        let back: Credential = open(Context::Credential, &env, &k.verifying_key()).unwrap();
        assert_eq!(back, license());
        assert_eq!(env.kid, "SH-license-a");
    }

    #[test]
    fn a_status_list_signature_is_refused_as_a_credential() {
        let k = key("SH-license-a");
        // A payload that happens to decode as a Credential, signed as a status list.
        let env = seal(Context::StatusList, license().encode_to_vec(), &k);
        let err = check_signature(Context::Credential, &env, &k.verifying_key()).unwrap_err();
        assert_eq!(err, SignatureError::Mismatch);
        assert!(check_signature(Context::StatusList, &env, &k.verifying_key()).is_ok());
        let opened = open::<Credential>(Context::Credential, &env, &k.verifying_key());
        assert_eq!(opened.unwrap_err().reason(), "SIGNATURE_MISMATCH");
    }

    #[test]
    fn a_tampered_payload_fails_and_is_not_decoded() {
        let k = key("SH-license-a");
        let mut env = sign_credential(&license(), &k);
        let last = env.payload.len() - 1;
        env.payload[last] ^= 0x01;
        assert_eq!(
            check_signature(Context::Credential, &env, &k.verifying_key()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_short_signature_is_reported_as_such() {
        let k = key("SH-license-a");
        let mut env = sign_credential(&license(), &k);
        env.signature.truncate(10);
        let err = check_signature(Context::Credential, &env, &k.verifying_key()).unwrap_err();
        assert_eq!(err.reason(), "SIGNATURE_LENGTH");
    }

    #[test]
    fn another_key_does_not_verify() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let other = key("SH-license-b");
        assert!(check_signature(Context::Credential, &env, &other.verifying_key()).is_err());
    }

    #[test]
    fn envelopes_round_trip_through_bytes_with_a_size_bound() {
        let env = sign_credential(&license(), &key("SH-license-a"));
        let bytes = encode_envelope(&env);
        assert_eq!(decode_envelope(&bytes).unwrap(), env);
        let big = vec![0u8; MAX_ENVELOPE_LEN + 1];
        assert_eq!(
            decode_envelope(&big).unwrap_err().reason(),
            "ENVELOPE_TOO_LARGE"
        );
        assert_eq!(
            decode_envelope(&[0xff, 0xff]).unwrap_err().reason(),
            "ENVELOPE_DECODE"
        );
    }

    #[test]
    fn oversized_payloads_still_verify_through_check_signature() {
        let k = key("SH-license-a");
        let env = seal(Context::Credential, vec![7u8; 3 * MAX_ENVELOPE_LEN], &k);
        assert!(check_signature(Context::Credential, &env, &k.verifying_key()).is_ok());
        // And the scratch buffer still works afterwards.
        let env = sign_credential(&license(), &k);
        assert!(check_signature(Context::Credential, &env, &k.verifying_key()).is_ok());
    }
}
