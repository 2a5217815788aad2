//! Every outcome, in every form, against a real Shanghai identity + license.

use credmesh_credential::encode_envelope;
use credmesh_proto::{
    credential::v1::{CredentialKind, VerificationOutcome},
    verify::v1::{BatchVerifyRequest, CredentialForm},
};

use crate::helpers::*;

#[tokio::test]
async fn a_license_verifies_in_every_form_and_each_check_is_audited() {
    for backend in BOTH {
        let clock = credmesh_runtime::ManualClock::new(T0);
        let sh = spawn_region("SH", backend, clock).await;
        let gw = spawn_gateway(&sh, &[], backend, Options::default()).await;
        let bank = sh.partner("bank-shanghai").await;
        let v = sh.establish(1).await;
        let c = v.credential.as_ref().unwrap();

        let by_qr = gw.verify_text(&bank, &c.qr_text).await;
        assert_outcome(&by_qr, VerificationOutcome::Valid);
        assert_eq!(by_qr.form, CredentialForm::Qr as i32);
        assert_eq!(by_qr.issuer, "SH/license");
        assert_eq!(by_qr.region, "SH");
        assert_eq!(by_qr.kind, CredentialKind::BusinessLicense as i32);
        assert_eq!(by_qr.credential_id, v.license_id);
        assert!(by_qr.status.unwrap().consulted);
        assert!(!by_qr.status.unwrap().stale);
        assert!(by_qr.disclosed.iter().any(|c| c.name == "name"));
        assert!(
            by_qr
                .disclosed
                .iter()
                .all(|c| !c.name.contains("id_number"))
        );

        let by_jwt = gw.verify_text(&bank, &c.vc_jwt).await;
        assert_outcome(&by_jwt, VerificationOutcome::Valid);
        assert_eq!(by_jwt.form, CredentialForm::VcJwt as i32);
        let by_native = gw
            .verify(&bank, native(encode_envelope(c.envelope.as_ref().unwrap())))
            .await
            .unwrap();
        assert_outcome(&by_native, VerificationOutcome::Valid);
        assert_eq!(by_native.disclosed, by_qr.disclosed);

        // The audit is written in the background; it names the partner and the credential.
        // Identical verifications in one second may share a row, with their count.
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = gw.gateway.audit_for("bank-shanghai", 10).await.unwrap();
            if rows.iter().map(|r| r.count).sum::<i64>() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            rows.iter().map(|r| r.count).sum::<i64>(),
            3,
            "{backend:?}: {rows:?}"
        );
        assert!(
            rows.iter()
                .all(|r| r.credential_id == v.license_id && r.outcome == "valid")
        );
    }
}

#[tokio::test]
async fn tampered_unknown_issuer_expired_and_garbage_each_get_their_own_outcome() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let v = sh.establish(2).await;
    let entcode = sh
        .issuer_key("entcode", &[CredentialKind::Presentation])
        .await;
    let gw = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-a").await;

    // Tampered: one payload byte changed after signing.
    let mut env = v.credential.as_ref().unwrap().envelope.clone().unwrap();
    let last = env.payload.len() - 1;
    env.payload[last] ^= 1;
    let r = gw
        .verify(&bank, native(encode_envelope(&env)))
        .await
        .unwrap();
    assert_outcome(&r, VerificationOutcome::BadSignature);
    assert!(r.disclosed.is_empty(), "nothing unsigned is disclosed");

    // Unknown issuer: a key nobody registered.
    let stranger = credmesh_credential::keys::IssuerKey::generate("SH-entcode-stranger").unwrap();
    let r = gw
        .verify_text(
            &bank,
            &qr_of(&sh.presentation(&stranger, "entcode", T0, T0 + 300)),
        )
        .await;
    assert_outcome(&r, VerificationOutcome::UnknownIssuer);

    // A presentation: valid inside its window, disclosing only its scenario's fields …
    let p = sh.presentation(&entcode, "entcode", T0, T0 + 300);
    let r = gw.verify_text(&bank, &qr_of(&p)).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.kind, CredentialKind::Presentation as i32);
    let names: Vec<&str> = r.disclosed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["scenario", "name"]);
    assert!(!r.status.unwrap().consulted);
    // … single use: shown again, it is refused.
    let again = gw.verify_text(&bank, &qr_of(&p)).await;
    assert_outcome(&again, VerificationOutcome::Revoked);
    assert_eq!(again.reason, "ALREADY_USED");
    assert!(again.already_used);
    // … tolerated within the 5-minute skew, not yet valid when it starts later than that …
    let skewed = sh.presentation(&entcode, "entcode", T0 + 200, T0 + 600);
    assert_outcome(
        &gw.verify_text(&bank, &qr_of(&skewed)).await,
        VerificationOutcome::Valid,
    );
    let future = sh.presentation(&entcode, "entcode", T0 + 400, T0 + 900);
    assert_outcome(
        &gw.verify_text(&bank, &qr_of(&future)).await,
        VerificationOutcome::NotYetValid,
    );
    // … and expired once its window (plus the tolerated skew) has passed.
    clock.advance(700);
    assert_outcome(
        &gw.verify_text(&bank, &qr_of(&p)).await,
        VerificationOutcome::Expired,
    );

    // Garbage.
    let r = gw.verify_text(&bank, "hello").await;
    assert_outcome(&r, VerificationOutcome::Malformed);
    assert_eq!(r.form, CredentialForm::Unspecified as i32);

    // An empty request is a bad request, not an outcome.
    let err = gw.verify(&bank, None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        credmesh_proto::status::reason(&err).as_deref(),
        Some("CREDENTIAL_MISSING")
    );
}

#[tokio::test]
async fn a_batch_answers_each_credential_as_verify_would() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let gw = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-b").await;
    let mut inputs = Vec::new();
    for n in 10..14 {
        inputs.push(text(&license_qr(&sh.establish(n).await)).unwrap());
    }
    let mut bad = sh.establish(14).await.credential.unwrap().envelope.unwrap();
    bad.signature[0] ^= 1;
    inputs.push(native(encode_envelope(&bad)).unwrap());
    inputs.push(text("CM1:not-base45").unwrap());
    let results = gw
        .client
        .clone()
        .batch_verify(with_token(
            BatchVerifyRequest {
                credentials: inputs.clone(),
            },
            &bank,
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 6);
    for r in &results[..4] {
        assert_outcome(r, VerificationOutcome::Valid);
    }
    assert_outcome(&results[4], VerificationOutcome::BadSignature);
    assert_outcome(&results[5], VerificationOutcome::Malformed);
    for (input, batch) in inputs.iter().zip(&results) {
        let one = gw.verify(&bank, Some(input.clone())).await.unwrap();
        assert_eq!(one.outcome, batch.outcome);
        assert_eq!(one.reason, batch.reason);
    }

    let err = gw
        .client
        .clone()
        .batch_verify(with_token(
            BatchVerifyRequest {
                credentials: vec![],
            },
            &bank,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_revoked_license_answers_revoked_on_every_replica_within_a_second() {
    revocation_reaches_every_replica(credmesh_testkit::redis::shared_url()).await;
}

#[tokio::test]
async fn revocation_reaches_every_replica_through_a_redis_cluster_too() {
    revocation_reaches_every_replica(credmesh_testkit::redis::shared_cluster_url()).await;
}

#[tokio::test]
async fn a_key_registered_after_start_is_picked_up_on_demand() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let gw = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-new-key").await;
    let key = sh
        .issuer_key("entcode", &[CredentialKind::Presentation])
        .await;
    let p = sh.presentation(&key, "entcode", T0, T0 + 300);
    assert_outcome(
        &gw.verify_text(&bank, &qr_of(&p)).await,
        VerificationOutcome::Valid,
    );
}

async fn revocation_reaches_every_replica(redis: String) {
    let prefix = credmesh_testkit::redis::unique_prefix();
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    // Polling of the own region's lists is slowed down so only pub/sub can be fast.
    let options = Options {
        cache_url: Some(redis),
        cache_prefix: Some(prefix),
        extra: vec![("CREDMESH_OWN_STATUS_REFRESH_MS", "3600000".into())],
        ..Options::default()
    };
    let a = spawn_gateway(&sh, &[], Backend::Sqlite, options.clone()).await;
    let b = spawn_gateway(&sh, &[], Backend::Sqlite, options).await;
    let bank = sh.partner("bank-c").await;
    let qr = license_qr(&sh.establish(3).await);
    assert_outcome(&a.verify_text(&bank, &qr).await, VerificationOutcome::Valid);
    assert_outcome(&b.verify_text(&bank, &qr).await, VerificationOutcome::Valid);

    sh.revoke(3).await;
    // Replica A's refresh sees the new bits and tells every replica.
    a.gateway.refresh_status().await;
    assert_outcome(
        &a.verify_text(&bank, &qr).await,
        VerificationOutcome::Revoked,
    );
    let started = std::time::Instant::now();
    loop {
        let r = b.verify_text(&bank, &qr).await;
        if r.outcome == VerificationOutcome::Revoked as i32 {
            assert!(!r.superseded);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "replica B still answers {:?} after 1 s",
            r.reason
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_redis_a_revocation_still_reaches_every_replica_within_about_a_second() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let a = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let b = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-poll").await;
    let qr = license_qr(&sh.establish(6).await);
    assert_outcome(&a.verify_text(&bank, &qr).await, VerificationOutcome::Valid);
    assert_outcome(&b.verify_text(&bank, &qr).await, VerificationOutcome::Valid);
    sh.revoke(6).await;
    let started = std::time::Instant::now();
    for gw in [&a, &b] {
        loop {
            let r = gw.verify_text(&bank, &qr).await;
            if r.outcome == VerificationOutcome::Revoked as i32 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_millis(2500),
                "still {} after {:?}",
                r.reason,
                started.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn an_sd_jwt_presentation_verifies_once_across_forms_and_forgeries_are_bad_signatures() {
    use credmesh_proto::prost::Message as _;
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let gw = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-sd-jwt").await;
    let key = sh
        .issuer_key("entcode", &[CredentialKind::Presentation])
        .await;
    let p = sh.presentation(&key, "entcode", T0, T0 + 300);
    let credential =
        credmesh_proto::credential::v1::Credential::decode(p.payload.as_slice()).unwrap();
    let sd_jwt = credmesh_credential::sd_jwt::issue(&credential, &key, &[], || [3; 16]).unwrap();

    // A forged disclosure: the issuer signed no digest of it.
    let forged = sd_jwt.replacen('~', "~WyJjMkZzZEEiLCJuYW1lIiwiZm9yZ2VkIl0~", 1);
    let r = gw.verify_text(&bank, &forged).await;
    assert_outcome(&r, VerificationOutcome::BadSignature);
    assert_eq!(r.reason, "SD_JWT_UNREFERENCED_DISCLOSURE");
    assert_eq!(r.form, CredentialForm::SdJwt as i32);
    assert!(r.disclosed.is_empty());

    let r = gw.verify_text(&bank, &sd_jwt).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.form, CredentialForm::SdJwt as i32);
    assert_eq!(r.kind, CredentialKind::Presentation as i32);
    let names: Vec<&str> = r.disclosed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["scenario", "name"]);
    // One nonce, whichever form: the QR text of the same presentation is used up.
    let again = gw.verify_text(&bank, &qr_of(&p)).await;
    assert_eq!(again.reason, "ALREADY_USED");
    let again = gw.verify_text(&bank, &sd_jwt).await;
    assert_eq!(again.reason, "ALREADY_USED");
}

#[tokio::test]
async fn a_scan_page_link_verifies_as_the_qr_text_it_carries() {
    let backend = Backend::Sqlite;
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", backend, clock).await;
    let gw = spawn_gateway(&sh, &[], backend, Options::default()).await;
    let bank = sh.partner("bank-shanghai").await;
    let v = sh.establish(1).await;
    let qr = &v.credential.as_ref().unwrap().qr_text;

    // What a bank's scanner reads from a printed code: the scan page's URL, on any host.
    let bare = gw.verify_text(&bank, qr).await;
    for base in ["https://verify.sh.example.gov.cn", "http://127.0.0.1:8080"] {
        let link = credmesh_credential::scan_url(base, qr);
        let by_link = gw.verify_text(&bank, &link).await;
        assert_outcome(&by_link, VerificationOutcome::Valid);
        assert_eq!(by_link.form, CredentialForm::Qr as i32);
        assert_eq!(by_link.credential_id, v.license_id);
        assert_eq!(by_link.disclosed, bare.disclosed);
    }

    // A link to anything else is not a credential.
    let elsewhere = gw
        .verify_text(&bank, "https://verify.sh.example.gov.cn/about")
        .await;
    assert_outcome(&elsewhere, VerificationOutcome::Malformed);
    // A link whose QR text was altered does not verify.
    let mut altered = credmesh_credential::scan_url("https://verify.sh.example.gov.cn", qr);
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    let by_altered = gw.verify_text(&bank, &altered).await;
    assert_ne!(by_altered.outcome, VerificationOutcome::Valid as i32);
}
