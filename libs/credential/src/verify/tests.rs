use std::time::Duration;

use credmesh_proto::credential::v1::{
    Credential, CredentialKind, Envelope, KeyStatus, StatusPurpose, TrustedKey, VerificationOutcome,
};
use credmesh_proto::prost::Message;

use super::*;
use crate::IssuerKey;
use crate::envelope::{Context, encode_envelope, seal, sign_credential};
use crate::qr::to_qr;
use crate::status_list::Bitstring;
use crate::testing::{T0, key, license, presentation};
use crate::vcjwt::{VcOptions, to_vc_jwt};

const NOW: i64 = T0 + 86_400;
const CLEAR: u64 = 42;
const REVOKED: u64 = 7;
const SUSPENDED: u64 = 8;
const SUPERSEDED: u64 = 9;

struct World {
    trust: TrustSnapshot,
    status: StatusCache,
    license_key: IssuerKey,
    entcode_key: IssuerKey,
}

fn trusted(k: &IssuerKey, issuer: &str, kinds: &[CredentialKind]) -> TrustedKey {
    k.to_trusted_key(issuer, "SH", kinds, T0 - 1_000)
}

fn lists(updated_at: i64) -> StatusCache {
    let mut revocation = Bitstring::new(0);
    revocation.set(REVOKED, true).unwrap();
    revocation.set(SUPERSEDED, true).unwrap();
    let mut suspension = Bitstring::new(0);
    suspension.set(SUSPENDED, true).unwrap();
    let mut superseded = Bitstring::new(0);
    superseded.set(SUPERSEDED, true).unwrap();
    let mut cache = StatusCache::new();
    for (purpose, bits) in [
        (StatusPurpose::Revocation, revocation),
        (StatusPurpose::Suspension, suspension),
        (StatusPurpose::Superseded, superseded),
    ] {
        cache
            .insert_list("SH/license/0", purpose, bits, updated_at)
            .unwrap();
    }
    cache
}

fn world() -> World {
    let license_key = key("SH-license-a");
    let entcode_key = key("SH-entcode-a");
    let mut trust = TrustSnapshot::new();
    trust
        .insert(
            &trusted(
                &license_key,
                "SH/license",
                &[CredentialKind::BusinessLicense],
            ),
            NOW - 60,
        )
        .unwrap();
    trust
        .insert(
            &trusted(
                &entcode_key,
                "SH/entcode",
                &[CredentialKind::EnterpriseCode, CredentialKind::Presentation],
            ),
            NOW - 60,
        )
        .unwrap();
    World {
        trust,
        status: lists(NOW - 60),
        license_key,
        entcode_key,
    }
}

impl World {
    fn verify(&self, input: Presented<'_>) -> Verification {
        verify(input, &self.trust, &self.status, &Policy::default(), NOW)
    }

    fn verify_at(&self, input: Presented<'_>, now: i64) -> Verification {
        verify(input, &self.trust, &self.status, &Policy::default(), now)
    }

    fn native(&self, c: &Credential) -> Vec<u8> {
        encode_envelope(&sign_credential(c, &self.license_key))
    }

    fn verify_license(&self, c: &Credential) -> Verification {
        self.verify(Presented::Native(&self.native(c)))
    }
}

fn license_at(index: u64) -> Credential {
    let mut c = license();
    c.status.as_mut().unwrap().index = index;
    c
}

fn options() -> VcOptions {
    VcOptions {
        status_base_url: "https://verify.sh.example".into(),
    }
}

#[test]
fn every_form_verifies_as_the_identical_credential() {
    let w = world();
    let env = sign_credential(&license(), &w.license_key);
    let native = encode_envelope(&env);
    let qr = to_qr(&env);
    let jwt = to_vc_jwt(&license(), &w.license_key, &options());

    let answers = [
        (w.verify(Presented::Native(&native)), Form::Native),
        (w.verify(Presented::Envelope(&env)), Form::Native),
        (w.verify(Presented::detect(&qr)), Form::Qr),
        (w.verify(Presented::detect(&jwt)), Form::VcJwt),
    ];
    for (v, form) in answers {
        assert_eq!(v.outcome, Outcome::Valid, "{form:?}: {}", v.detail);
        assert_eq!(v.reason, "VALID");
        assert_eq!(v.form, Some(form));
        assert_eq!(v.credential.as_ref(), Some(&license()));
        assert_eq!(v.kid.as_deref(), Some("SH-license-a"));
        assert_eq!(v.issuer.as_deref(), Some("SH/license"));
        assert_eq!(v.region.as_deref(), Some("SH"));
        assert_eq!(v.status_age, Some(Duration::from_secs(60)));
        assert_eq!(v.trust_age, Some(Duration::from_secs(60)));
    }
}

#[test]
fn a_presentation_without_status_is_valid_within_its_minutes() {
    let w = world();
    let env = encode_envelope(&sign_credential(&presentation(), &w.entcode_key));
    let v = w.verify_at(Presented::Native(&env), T0 + 60);
    assert_eq!(v.outcome, Outcome::Valid, "{}", v.detail);
    assert_eq!(v.status_age, None);
    let v = w.verify_at(Presented::Native(&env), T0 + 3_600);
    assert_eq!(v.outcome, Outcome::Expired);
}

#[test]
fn detect_tells_the_forms_apart() {
    assert!(matches!(Presented::detect("  CM1:ABC\n"), Presented::Qr(_)));
    assert!(matches!(
        Presented::detect("eyJh.eyJi.c2ln"),
        Presented::VcJwt(_)
    ));
    assert!(matches!(
        Presented::detect("eyJh.eyJi"),
        Presented::Unrecognized(_)
    ));
    assert!(matches!(
        Presented::detect("a.b=.c"),
        Presented::Unrecognized(_)
    ));
    assert!(matches!(
        Presented::detect("hello"),
        Presented::Unrecognized(_)
    ));
    assert_eq!(Presented::detect("hello").form(), None);
}

#[test]
fn a_tampered_payload_is_a_bad_signature() {
    let w = world();
    let mut env = sign_credential(&license(), &w.license_key);
    let at = env.payload.len() - 3;
    env.payload[at] ^= 0x20;
    let v = w.verify(Presented::Envelope(&env));
    assert_eq!(v.outcome, Outcome::BadSignature);
    assert_eq!(v.reason, "SIGNATURE_MISMATCH");
    assert_eq!(
        v.credential, None,
        "unsigned data is never shown as the credential"
    );
}

#[test]
fn a_tampered_vc_jwt_is_a_bad_signature() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let w = world();
    let token = to_vc_jwt(&license(), &w.license_key, &options());
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let at = payload.len() / 3;
    payload[at] ^= 0x01;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload),
        parts[2]
    );
    let v = w.verify(Presented::VcJwt(&tampered));
    assert_eq!(v.outcome, Outcome::BadSignature);
}

#[test]
fn a_status_list_signature_is_refused_as_a_credential() {
    let w = world();
    let env = seal(
        Context::StatusList,
        license().encode_to_vec(),
        &w.license_key,
    );
    let v = w.verify(Presented::Envelope(&env));
    assert_eq!(v.outcome, Outcome::BadSignature);
    assert_eq!(v.reason, "SIGNATURE_MISMATCH");
}

#[test]
fn an_unknown_kid_is_an_unknown_issuer() {
    let w = world();
    let stranger = key("SH-license-zz");
    let env = encode_envelope(&sign_credential(&license(), &stranger));
    let v = w.verify(Presented::Native(&env));
    assert_eq!(v.outcome, Outcome::UnknownIssuer);
    assert_eq!(v.reason, "KEY_UNKNOWN");
    assert_eq!(v.kid.as_deref(), Some("SH-license-zz"));
    assert_eq!(v.issuer, None);
}

#[test]
fn a_known_kid_with_a_foreign_signature_is_a_bad_signature() {
    let w = world();
    let mut env = sign_credential(&license(), &key("SH-license-zz"));
    env.kid = "SH-license-a".into();
    assert_eq!(
        w.verify(Presented::Envelope(&env)).outcome,
        Outcome::BadSignature
    );
}

#[test]
fn a_revoked_key_verifies_nothing() {
    let mut w = world();
    let mut k = trusted(
        &w.license_key,
        "SH/license",
        &[CredentialKind::BusinessLicense],
    );
    k.status = KeyStatus::Revoked as i32;
    w.trust.insert(&k, NOW).unwrap();
    let v = w.verify_license(&license());
    assert_eq!(v.outcome, Outcome::UnknownIssuer);
    assert_eq!(v.reason, "KEY_REVOKED");
    assert_eq!(v.credential, None);
}

#[test]
fn a_retired_key_verifies_what_it_signed_before_retirement_only() {
    let mut w = world();
    let mut k = trusted(
        &w.license_key,
        "SH/license",
        &[CredentialKind::BusinessLicense],
    );
    k.status = KeyStatus::Retired as i32;
    k.retired_at = T0 + 3_600;
    w.trust.insert(&k, NOW).unwrap();

    let before = license();
    assert_eq!(w.verify_license(&before).outcome, Outcome::Valid);

    let mut after = license();
    after.issued_at = T0 + 7_200;
    let v = w.verify_license(&after);
    assert_eq!(v.outcome, Outcome::UnknownIssuer);
    assert_eq!(v.reason, "KEY_RETIRED");
    assert!(v.detail.contains("retired"), "{}", v.detail);
}

#[test]
fn a_key_vouches_only_for_its_kinds_issuer_region_and_validity() {
    let w = world();
    let mut c = license();
    c.kind = CredentialKind::Certificate as i32;
    assert_eq!(w.verify_license(&c).reason, "KEY_KIND_NOT_ALLOWED");

    let mut c = license();
    c.issuer = "SH/health".into();
    assert_eq!(w.verify_license(&c).reason, "ISSUER_MISMATCH");

    let mut c = license();
    c.region = "JS".into();
    assert_eq!(w.verify_license(&c).reason, "REGION_MISMATCH");

    let mut c = license();
    c.issued_at = T0 - 2_000;
    let v = w.verify_license(&c);
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::UnknownIssuer, "KEY_NOT_YET_VALID")
    );

    let mut w = world();
    let mut k = trusted(
        &w.license_key,
        "SH/license",
        &[CredentialKind::BusinessLicense],
    );
    k.not_after = T0 - 1;
    w.trust.insert(&k, NOW).unwrap();
    assert_eq!(w.verify_license(&license()).reason, "KEY_EXPIRED");
}

#[test]
fn a_credential_without_kind_or_id_is_malformed() {
    let w = world();
    let mut c = license();
    c.id.clear();
    let v = w.verify_license(&c);
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::Malformed, "CREDENTIAL_INCOMPLETE")
    );
    let mut c = license();
    c.kind = 0;
    assert_eq!(w.verify_license(&c).outcome, Outcome::Malformed);
}

#[test]
fn a_signed_payload_that_is_not_a_credential_is_malformed() {
    let w = world();
    let env = seal(Context::Credential, vec![0xff, 0xff, 0xff], &w.license_key);
    let v = w.verify(Presented::Envelope(&env));
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::Malformed, "PAYLOAD_DECODE")
    );
}

#[test]
fn validity_boundaries_allow_the_clock_skew_and_no_more() {
    let w = world();
    let skew = 300;
    let mut c = license();
    c.not_before = NOW + 60;
    c.issued_at = NOW - 10;
    assert_eq!(w.verify_license(&c).outcome, Outcome::Valid, "inside skew");
    c.not_before = NOW + skew + 1;
    let v = w.verify_license(&c);
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::NotYetValid, "NOT_YET_VALID")
    );

    let mut c = license();
    c.not_after = NOW - 60;
    assert_eq!(w.verify_license(&c).outcome, Outcome::Valid, "inside skew");
    c.not_after = NOW - skew;
    let v = w.verify_license(&c);
    assert_eq!((v.outcome, v.reason), (Outcome::Expired, "EXPIRED"));

    let mut c = license();
    c.issued_at = NOW + skew + 1;
    c.not_before = T0;
    let v = w.verify_license(&c);
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::NotYetValid, "ISSUED_IN_FUTURE")
    );
}

#[test]
fn revoked_superseded_and_suspended_credentials_say_so() {
    let w = world();
    let v = w.verify_license(&license_at(REVOKED));
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::Revoked { superseded: false }, "REVOKED")
    );
    assert!(v.credential.is_some());

    let v = w.verify_license(&license_at(SUPERSEDED));
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::Revoked { superseded: true }, "SUPERSEDED")
    );

    let v = w.verify_license(&license_at(SUSPENDED));
    assert_eq!((v.outcome, v.reason), (Outcome::Suspended, "SUSPENDED"));
}

#[test]
fn stale_status_data_is_status_unknown_with_its_age() {
    let mut w = world();
    w.status = lists(NOW - 3_600);
    let v = w.verify_license(&license_at(CLEAR));
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::StatusUnknown, "STATUS_STALE")
    );
    assert_eq!(v.status_age, Some(Duration::from_secs(3_600)));
    assert!(v.detail.contains("3600"), "{}", v.detail);

    // Suspension may have been lifted since: stale data cannot say suspended either.
    assert_eq!(
        w.verify_license(&license_at(SUSPENDED)).outcome,
        Outcome::StatusUnknown
    );
    // Revocation is permanent: stale data proving it is still proof.
    assert_eq!(
        w.verify_license(&license_at(REVOKED)).outcome,
        Outcome::Revoked { superseded: false }
    );
}

#[test]
fn missing_status_data_is_status_unknown() {
    let mut w = world();
    w.status = StatusCache::new();
    let v = w.verify_license(&license());
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::StatusUnknown, "STATUS_UNAVAILABLE")
    );
    assert_eq!(v.status_age, None);

    let mut only_revocation = StatusCache::new();
    only_revocation
        .insert_list(
            "SH/license/0",
            StatusPurpose::Revocation,
            Bitstring::new(0),
            NOW - 30,
        )
        .unwrap();
    w.status = only_revocation;
    let v = w.verify_license(&license());
    assert_eq!(v.outcome, Outcome::StatusUnknown);
    assert_eq!(v.status_age, Some(Duration::from_secs(30)));
}

#[test]
fn revoked_wins_over_expired_and_expired_over_suspended_or_unknown() {
    let mut w = world();
    let mut c = license_at(REVOKED);
    c.not_after = NOW - 3_600;
    assert_eq!(
        w.verify_license(&c).outcome,
        Outcome::Revoked { superseded: false }
    );

    let mut c = license_at(SUSPENDED);
    c.not_after = NOW - 3_600;
    assert_eq!(w.verify_license(&c).outcome, Outcome::Expired);

    w.status = StatusCache::new();
    let mut c = license_at(CLEAR);
    c.not_after = NOW - 3_600;
    assert_eq!(w.verify_license(&c).outcome, Outcome::Expired);
}

#[test]
fn garbage_is_malformed_in_every_form() {
    let w = world();
    let cases = [
        (Presented::Native(b"\xff\xff\xff"), "ENVELOPE_DECODE"),
        (Presented::detect("CM1:%%%%"), "QR_BASE45"),
        (Presented::detect("HC1:NCFOXN"), "INPUT_UNRECOGNIZED"),
        (Presented::detect("eyJh.eyJi.c2ln"), "JWT_HEADER"),
        (Presented::detect("not a credential"), "INPUT_UNRECOGNIZED"),
    ];
    for (input, reason) in cases {
        let v = w.verify(input);
        assert_eq!(
            (v.outcome, v.reason),
            (Outcome::Malformed, reason),
            "{input:?}"
        );
    }
    let mut env = sign_credential(&license(), &w.license_key);
    env.signature.pop();
    let v = w.verify(Presented::Envelope(&env));
    assert_eq!(
        (v.outcome, v.reason),
        (Outcome::Malformed, "SIGNATURE_LENGTH")
    );
    let v = w.verify(Presented::Qr(" CM1:\n"));
    assert_eq!(v.outcome, Outcome::Malformed);
}

#[test]
fn a_qr_text_with_any_one_character_changed_never_verifies_as_valid() {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    let w = world();
    let text = to_qr(&sign_credential(&license(), &w.license_key));
    let mut seen_bad_signature_or_malformed = 0;
    for pos in QR_PREFIX.len()..text.len() {
        let mut bytes = text.clone().into_bytes();
        let current = ALPHABET.iter().position(|c| *c == bytes[pos]).unwrap();
        bytes[pos] = ALPHABET[(current + 1 + pos % 44) % ALPHABET.len()];
        let tampered = String::from_utf8(bytes).unwrap();
        let v = w.verify(Presented::Qr(&tampered));
        assert!(
            matches!(
                v.outcome,
                Outcome::Malformed | Outcome::BadSignature | Outcome::UnknownIssuer
            ),
            "position {pos}: {:?} {}",
            v.outcome,
            v.reason
        );
        seen_bad_signature_or_malformed += 1;
    }
    assert!(seen_bad_signature_or_malformed > 100);
}

#[test]
fn batch_verification_flags_exactly_the_one_bad_signature() {
    let w = world();
    let mut envelopes: Vec<Envelope> = (0..16)
        .map(|i| {
            let mut c = license();
            c.id = format!("urn:credmesh:test:{i}");
            sign_credential(&c, &w.license_key)
        })
        .collect();
    envelopes[11].payload[5] ^= 0x01;
    let inputs: Vec<Presented<'_>> = envelopes.iter().map(Presented::Envelope).collect();
    let answers = verify_batch(&inputs, &w.trust, &w.status, &Policy::default(), NOW);
    assert_eq!(answers.len(), 16);
    for (i, v) in answers.iter().enumerate() {
        if i == 11 {
            assert_eq!(v.outcome, Outcome::BadSignature);
        } else {
            assert_eq!(v.outcome, Outcome::Valid, "{i}: {}", v.detail);
        }
    }
}

#[test]
fn batch_answers_equal_single_answers_across_forms_and_failures() {
    let w = world();
    let env = sign_credential(&license(), &w.license_key);
    let native = encode_envelope(&env);
    let qr = to_qr(&env);
    let jwt = to_vc_jwt(&license_at(REVOKED), &w.license_key, &options());
    let presentation = encode_envelope(&sign_credential(&presentation(), &w.entcode_key));
    let stranger = encode_envelope(&sign_credential(&license(), &key("SH-license-zz")));
    let inputs = [
        Presented::Native(&native),
        Presented::detect(&qr),
        Presented::detect(&jwt),
        Presented::Native(&presentation),
        Presented::Native(&stranger),
        Presented::detect("garbage"),
    ];
    let batch = verify_batch(&inputs, &w.trust, &w.status, &Policy::default(), NOW);
    let single: Vec<Verification> = inputs.iter().map(|i| w.verify(*i)).collect();
    assert_eq!(batch, single);
    assert_eq!(batch[2].outcome, Outcome::Revoked { superseded: false });
    assert_eq!(batch[3].outcome, Outcome::Expired);
    assert_eq!(batch[4].outcome, Outcome::UnknownIssuer);
    assert_eq!(batch[5].outcome, Outcome::Malformed);
}

#[test]
fn outcomes_map_to_proto_and_stable_names() {
    let all = [
        (Outcome::Valid, VerificationOutcome::Valid, "valid"),
        (
            Outcome::Revoked { superseded: true },
            VerificationOutcome::Revoked,
            "revoked",
        ),
        (
            Outcome::Suspended,
            VerificationOutcome::Suspended,
            "suspended",
        ),
        (Outcome::Expired, VerificationOutcome::Expired, "expired"),
        (
            Outcome::NotYetValid,
            VerificationOutcome::NotYetValid,
            "not_yet_valid",
        ),
        (
            Outcome::UnknownIssuer,
            VerificationOutcome::UnknownIssuer,
            "unknown_issuer",
        ),
        (
            Outcome::BadSignature,
            VerificationOutcome::BadSignature,
            "bad_signature",
        ),
        (
            Outcome::Malformed,
            VerificationOutcome::Malformed,
            "malformed",
        ),
        (
            Outcome::StatusUnknown,
            VerificationOutcome::StatusUnknown,
            "status_unknown",
        ),
    ];
    for (outcome, proto, name) in all {
        assert_eq!(outcome.to_proto(), proto);
        assert_eq!(outcome.as_str(), name);
        assert_eq!(outcome.to_string(), name);
    }
}

fn sd_jwt_presentation(w: &World) -> (Credential, String) {
    let mut c = presentation();
    c.version = 1;
    let text = crate::sd_jwt::issue(&c, &w.entcode_key, &[], || [5; 16]).unwrap();
    (c, text)
}

#[test]
fn an_sd_jwt_verifies_like_the_other_forms() {
    let w = world();
    let (c, text) = sd_jwt_presentation(&w);
    let presented = Presented::detect(&text);
    assert!(matches!(presented, Presented::SdJwt(_)));
    assert_eq!(presented.form(), Some(Form::SdJwt));
    let v = w.verify_at(presented, T0 + 60);
    assert_eq!(v.outcome, Outcome::Valid, "{}", v.detail);
    assert_eq!(v.form, Some(Form::SdJwt));
    assert_eq!(v.credential.as_ref(), Some(&c));
    assert_eq!(v.kid.as_deref(), Some("SH-entcode-a"));
    assert_eq!(Form::SdJwt.as_str(), "sd-jwt");
    assert_eq!(
        w.verify_at(Presented::SdJwt(&text), T0 + 3_600).outcome,
        Outcome::Expired
    );
}

#[test]
fn an_sd_jwt_with_a_forged_disclosure_is_a_bad_signature() {
    let w = world();
    let (_, text) = sd_jwt_presentation(&w);
    let mut parts: Vec<String> = text.split('~').map(String::from).collect();
    parts[1] =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"["c2FsdA","name","forged"]"#);
    use base64::Engine as _;
    let v = w.verify_at(Presented::SdJwt(&parts.join("~")), T0 + 60);
    assert_eq!(v.outcome, Outcome::BadSignature, "{}", v.detail);
    assert_eq!(v.reason, "SD_JWT_UNREFERENCED_DISCLOSURE");
    assert_eq!(v.credential, None);
    // Signed by a key that may sign licenses only: the issuer binding still applies.
    let mut c = presentation();
    c.issuer = "SH/license".into();
    let wrong = crate::sd_jwt::issue(&c, &w.license_key, &[], || [5; 16]).unwrap();
    let v = w.verify_at(Presented::SdJwt(&wrong), T0 + 60);
    assert_eq!(v.reason, "KEY_KIND_NOT_ALLOWED");
    let v = w.verify(Presented::SdJwt("eyJh.eyJi.c2ln~"));
    assert_eq!(v.outcome, Outcome::Malformed);
    assert_eq!(v.form, Some(Form::SdJwt));
}

#[test]
fn batch_answers_for_sd_jwts_equal_single_answers() {
    let w = world();
    let (_, good) = sd_jwt_presentation(&w);
    let mut c = presentation();
    c.id = "another".into();
    let foreign = crate::sd_jwt::issue(&c, &key("SH-entcode-a-other"), &[], || [6; 16]).unwrap();
    let forged = good.replacen('~', "~WyJjMkZzZEEiLCJ4IiwieSJd~", 1);
    let inputs = [
        Presented::detect(&good),
        Presented::detect(&forged),
        Presented::detect(&foreign),
        Presented::detect(&good),
    ];
    let batch = verify_batch(&inputs, &w.trust, &w.status, &Policy::default(), T0 + 60);
    let single: Vec<Verification> = inputs.iter().map(|i| w.verify_at(*i, T0 + 60)).collect();
    assert_eq!(batch, single);
    assert_eq!(batch[0].outcome, Outcome::Valid);
    assert_eq!(batch[1].outcome, Outcome::BadSignature);
    assert_eq!(batch[2].outcome, Outcome::UnknownIssuer);
}

#[test]
fn staged_verification_answers_exactly_as_verify() {
    let w = world();
    let env = sign_credential(&license(), &w.license_key);
    let native = encode_envelope(&env);
    let jwt = to_vc_jwt(&license(), &w.license_key, &options());
    let mut tampered = env.clone();
    tampered.payload.push(0);
    let tampered = encode_envelope(&tampered);
    let inputs = [
        Presented::Native(&native),
        Presented::detect(&jwt),
        Presented::Native(&tampered),
        Presented::Native(b"not an envelope"),
    ];
    for input in inputs {
        let expected = w.verify(input);
        let got = match stage(input, &w.trust, NOW) {
            Err(v) => *v,
            Ok(staged) => {
                let ok = staged
                    .key()
                    .verify_strict(&staged.message(), &staged.signature())
                    .is_ok();
                staged.conclude(ok, &w.status, &Policy::default())
            }
        };
        assert_eq!(got, expected);
    }
    // A caller whose check failed gets the bad-signature answer, never a decoded credential.
    let staged = stage(Presented::Native(&native), &w.trust, NOW).unwrap();
    let v = staged.conclude(false, &w.status, &Policy::default());
    assert_eq!(v.outcome, Outcome::BadSignature);
    assert_eq!(v.reason, "SIGNATURE_MISMATCH");
    assert!(v.credential.is_none());
}

#[test]
fn check_signatures_finds_exactly_the_forged_ones() {
    let k = key("SH-license-a");
    let other = key("SH-entcode-a");
    let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 40]).collect();
    let mut items: Vec<(&[u8], Signature, VerifyingKey)> = messages
        .iter()
        .map(|m| (m.as_slice(), k.sign(m), k.verifying_key()))
        .collect();
    assert_eq!(check_signatures(&items), vec![true; 20]);
    // A signature over another message, and one by another key.
    items[3].1 = k.sign(b"something else");
    items[11].1 = other.sign(items[11].0);
    let expected: Vec<bool> = (0..20).map(|i| i != 3 && i != 11).collect();
    assert_eq!(check_signatures(&items), expected);
    assert_eq!(check_signatures(&items[3..4]), vec![false]);
    assert_eq!(check_signatures(&items[4..5]), vec![true]);
    assert!(check_signatures(&[]).is_empty());
}
