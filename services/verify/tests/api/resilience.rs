//! Redis killed mid-run, and the per-partner rate limit.

use credmesh_proto::credential::v1::VerificationOutcome;

use crate::helpers::*;

/// A region and its gateway caching in a Redis server of their own, which the test may
/// stop and restart; the region's clock.
async fn on_a_redis_of_its_own() -> (
    credmesh_testkit::redis::RedisServer,
    std::sync::Arc<credmesh_runtime::ManualClock>,
    Region,
    Gateway,
) {
    let redis = credmesh_testkit::redis::RedisServer::start().await.unwrap();
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let gw = spawn_gateway(
        &sh,
        &[],
        Backend::Sqlite,
        Options {
            cache_url: Some(redis.url()),
            ..Options::default()
        },
    )
    .await;
    (redis, clock, sh, gw)
}

#[tokio::test]
async fn answers_stay_correct_while_redis_is_down_and_after_it_returns() {
    let (mut redis, _clock, sh, gw) = on_a_redis_of_its_own().await;
    let bank = sh.partner("bank-redis").await;
    let keep = license_qr(&sh.establish(1).await);
    let revoke = license_qr(&sh.establish(2).await);
    assert_outcome(
        &gw.verify_text(&bank, &keep).await,
        VerificationOutcome::Valid,
    );
    assert_outcome(
        &gw.verify_text(&bank, &revoke).await,
        VerificationOutcome::Valid,
    );

    redis.stop().await;
    assert_outcome(
        &gw.verify_text(&bank, &keep).await,
        VerificationOutcome::Valid,
    );
    sh.revoke(2).await;
    gw.gateway.refresh_status().await;
    assert_outcome(
        &gw.verify_text(&bank, &revoke).await,
        VerificationOutcome::Revoked,
    );
    let fresh = license_qr(&sh.establish(3).await);
    assert_outcome(
        &gw.verify_text(&bank, &fresh).await,
        VerificationOutcome::Valid,
    );

    redis.restart().await.unwrap();
    for _ in 0..3 {
        assert_outcome(
            &gw.verify_text(&bank, &keep).await,
            VerificationOutcome::Valid,
        );
        assert_outcome(
            &gw.verify_text(&bank, &revoke).await,
            VerificationOutcome::Revoked,
        );
        assert_outcome(
            &gw.verify_text(&bank, &fresh).await,
            VerificationOutcome::Valid,
        );
    }
}

#[tokio::test]
async fn a_replica_answers_a_repeated_credential_from_its_own_copy_and_never_past_a_revocation() {
    let (mut redis, clock, sh, gw) = on_a_redis_of_its_own().await;
    let metrics = credmesh_telemetry::metrics::Metrics::new();
    gw.gateway.export_metrics(&metrics);
    let hits = || {
        metrics
            .verify()
            .cache
            .get_or_create(&credmesh_telemetry::metrics::CacheLabels {
                cache: "result",
                result: "hit",
            })
            .get()
    };
    let bank = sh.partner("bank-near").await;
    // The first credential of a status list brings the list in, which changes the data
    // answers are keyed by; the second credential's answer is kept under the data that
    // stays.
    let warm = license_qr(&sh.establish(1).await);
    assert_outcome(
        &gw.verify_text(&bank, &warm).await,
        VerificationOutcome::Valid,
    );
    let qr = license_qr(&sh.establish(2).await);
    assert_outcome(
        &gw.verify_text(&bank, &qr).await,
        VerificationOutcome::Valid,
    );
    assert_eq!(hits(), 0);

    // With Redis gone, every read of it is a miss: a hit is the replica's own copy.
    redis.stop().await;
    clock.advance(2);
    let again = gw.verify_text(&bank, &qr).await;
    assert_outcome(&again, VerificationOutcome::Valid);
    assert_eq!(hits(), 1, "answered from the replica's own copy");
    assert_eq!(again.status.as_ref().map(|s| s.age_seconds), Some(2));

    // A revocation this replica learns of ends the copy at once.
    sh.revoke(2).await;
    gw.gateway.refresh_status().await;
    assert_outcome(
        &gw.verify_text(&bank, &qr).await,
        VerificationOutcome::Revoked,
    );
}

#[tokio::test]
async fn the_rate_limit_is_per_partner() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let gw = spawn_gateway(
        &sh,
        &[],
        Backend::Sqlite,
        Options {
            extra: vec![
                ("CREDMESH_RATE_LIMIT_PER_SECOND", "0.01".into()),
                ("CREDMESH_RATE_LIMIT_BURST", "3".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let greedy = sh.partner("bank-greedy").await;
    let other = sh.partner("bank-other").await;
    let qr = license_qr(&sh.establish(1).await);
    for _ in 0..3 {
        gw.verify(&greedy, text(&qr)).await.unwrap();
    }
    let err = gw.verify(&greedy, text(&qr)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        credmesh_proto::status::reason(&err).as_deref(),
        Some("RATE_LIMITED")
    );
    assert!(err.metadata().get("retry-after").is_some());
    gw.verify(&other, text(&qr)).await.unwrap();

    // Without the scope, the call is refused before any limit is spent.
    let no_scope = sh
        .client(
            "nosy",
            credmesh_auth::PrincipalKind::Partner,
            &[],
            &uscc('9', '1', "320506", 901),
        )
        .await;
    let err = gw.verify(&no_scope, text(&qr)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn concurrent_single_verifications_read_the_shared_answers_together() {
    for redis in [
        credmesh_testkit::redis::shared_url(),
        credmesh_testkit::redis::shared_cluster_url(),
    ] {
        concurrent_reads_of_shared_answers(redis).await;
    }
}

/// Replica `a` verifies credentials; replica `b` then gets them all at once, as single
/// Verify calls. Its reads of the shared cache are coalesced into MGETs
/// (`shared::SharedReads`); each call must still get its own credential's answer, from
/// the shared cache and not by verifying again.
async fn concurrent_reads_of_shared_answers(redis: String) {
    const N: u32 = 40;
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let options = Options {
        cache_url: Some(redis.clone()),
        cache_prefix: Some(credmesh_testkit::redis::unique_prefix()),
        ..Options::default()
    };
    let a = spawn_gateway(&sh, &[], Backend::Sqlite, options.clone()).await;
    let b = spawn_gateway(&sh, &[], Backend::Sqlite, options).await;
    let bank = sh.partner("bank-together").await;
    // One credential per replica brings the region's status list in (a credential both
    // verified would be answered to the second from the first one's shared copy, before
    // it held the list).
    let warm_a = license_qr(&sh.establish(1).await);
    let warm_b = license_qr(&sh.establish(2).await);
    let mut licenses = Vec::new();
    for n in 3..3 + N {
        licenses.push(sh.establish(n).await);
    }
    for (gw, warm) in [(&a, &warm_a), (&b, &warm_b)] {
        assert_outcome(
            &gw.verify_text(&bank, warm).await,
            VerificationOutcome::Valid,
        );
    }
    for v in &licenses {
        assert_outcome(
            &a.verify_text(&bank, &license_qr(v)).await,
            VerificationOutcome::Valid,
        );
    }
    // `a` writes the shared copies off the request path.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let metrics = credmesh_telemetry::metrics::Metrics::new();
    b.gateway.export_metrics(&metrics);
    let qrs: Vec<String> = licenses.iter().map(license_qr).collect();
    let answers = futures::future::join_all(qrs.iter().map(|qr| b.verify_text(&bank, qr))).await;
    for (v, answer) in licenses.iter().zip(&answers) {
        assert_outcome(answer, VerificationOutcome::Valid);
        assert_eq!(
            answer.credential_id, v.license_id,
            "{redis}: another call's answer"
        );
    }
    let hits = metrics
        .verify()
        .cache
        .get_or_create(&credmesh_telemetry::metrics::CacheLabels {
            cache: "result",
            result: "hit",
        })
        .get();
    assert_eq!(
        hits,
        u64::from(N),
        "{redis}: every answer from the shared cache"
    );
}
