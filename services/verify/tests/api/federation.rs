//! Two regions as two deployments on loopback, anchors pinned both ways.

use std::time::Duration;

use credmesh_proto::credential::v1::VerificationOutcome;

use crate::helpers::*;

#[tokio::test]
async fn shanghai_and_jiangsu_verify_each_others_licenses_and_revocations() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let sh_gw = spawn_gateway(&sh, &[&js], Backend::Sqlite, Options::default()).await;
    let js_gw = spawn_gateway(&js, &[&sh], Backend::Sqlite, Options::default()).await;
    let sh_bank = sh.partner("bank-sh").await;
    let js_bank = js.partner("bank-suzhou").await;

    let sh_license = license_qr(&sh.establish(1).await);
    let js_license = license_qr(&js.establish(1).await);

    let r = js_gw.verify_text(&js_bank, &sh_license).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.region, "SH");
    let r = sh_gw.verify_text(&sh_bank, &js_license).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.region, "JS");
    assert_eq!(r.issuer, "JS/license");

    // Revoked in JS → SH answers revoked after its next refresh.
    js.revoke(1).await;
    sh_gw.gateway.refresh_status().await;
    assert_outcome(
        &sh_gw.verify_text(&sh_bank, &js_license).await,
        VerificationOutcome::Revoked,
    );
}

#[tokio::test]
async fn a_dark_partner_is_answered_stale_then_status_unknown_never_valid() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let mut js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let sh_gw = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            extra: vec![("CREDMESH_RESULT_CACHE_SECONDS", "0".into())],
            ..Options::default()
        },
    )
    .await;
    let bank = sh.partner("bank-dark").await;
    let qr = license_qr(&js.establish(2).await);
    let fresh = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&fresh, VerificationOutcome::Valid);
    assert!(!fresh.status.unwrap().stale);

    js.stop().await;
    clock.advance(300);
    assert!(
        sh_gw
            .gateway
            .refresh_trust()
            .await
            .contains(&"JS".to_string())
    );
    sh_gw.gateway.refresh_status().await;
    let stale = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&stale, VerificationOutcome::Valid);
    let status = stale.status.unwrap();
    assert!(status.stale, "{stale:?}");
    assert!(status.age_seconds >= 300, "{stale:?}");
    assert!(stale.detail.contains("s old"), "{}", stale.detail);

    clock.advance(301);
    let unknown = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&unknown, VerificationOutcome::StatusUnknown);
    assert!(unknown.status.unwrap().age_seconds > 600);

    // Shanghai's own credentials are unaffected.
    let own = license_qr(&sh.establish(3).await);
    assert_outcome(
        &sh_gw.verify_text(&bank, &own).await,
        VerificationOutcome::Valid,
    );

    // Jiangsu comes back: fresh answers again, without restarting the gateway.
    js.restart().await;
    assert!(sh_gw.gateway.refresh_trust().await.is_empty());
    sh_gw.gateway.refresh_status().await;
    let back = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&back, VerificationOutcome::Valid);
    assert!(!back.status.unwrap().stale, "{back:?}");
    assert!(!back.trust.unwrap().stale, "{back:?}");
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn clocks_five_minutes_apart_still_agree() {
    // Jiangsu's clock runs 290 s ahead of Shanghai's: its licenses are "issued in the
    // future" and its status lists "made in the future" as Shanghai sees them.
    let sh_clock = credmesh_runtime::ManualClock::new(T0);
    let js_clock = credmesh_runtime::ManualClock::new(T0 + 290);
    let sh = spawn_region("SH", Backend::Sqlite, sh_clock).await;
    let js = spawn_region("JS", Backend::Sqlite, js_clock).await;
    let sh_gw = spawn_gateway(&sh, &[&js], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-skew").await;
    let qr = license_qr(&js.establish(4).await);
    let r = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.status.unwrap().age_seconds, 0);
}

#[tokio::test]
async fn a_partner_list_imported_by_identity_is_used_and_checked_against_the_pinned_anchor() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    sh.import_partner(&js).await;
    let sh_gw = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            imported: true,
            ..Options::default()
        },
    )
    .await;
    let bank = sh.partner("bank-imported").await;
    let qr = license_qr(&js.establish(5).await);
    let r = sh_gw.verify_text(&bank, &qr).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.region, "JS");
}

#[tokio::test]
async fn a_shanghai_bank_loan_presentation_is_single_use_across_jiangsu_replicas() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let entcode = sh
        .issuer_key(
            "entcode",
            &[credmesh_proto::credential::v1::CredentialKind::Presentation],
        )
        .await;
    let options = Options {
        cache_url: Some(credmesh_testkit::redis::shared_url()),
        cache_prefix: Some(credmesh_testkit::redis::unique_prefix()),
        ..Options::default()
    };
    let a = spawn_gateway(&js, &[&sh], Backend::Sqlite, options.clone()).await;
    let b = spawn_gateway(&js, &[&sh], Backend::Sqlite, options).await;
    let bank = js.partner("bank-suzhou").await;
    let qr = qr_of(&sh.presentation(&entcode, "entcode", T0, T0 + 300));
    let first = a.verify_text(&bank, &qr).await;
    assert_outcome(&first, VerificationOutcome::Valid);
    let names: Vec<&str> = first.disclosed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["scenario", "name"], "only the scenario's fields");
    let second = b.verify_text(&bank, &qr).await;
    assert_outcome(&second, VerificationOutcome::Revoked);
    assert_eq!(second.reason, "ALREADY_USED");
}

/// A partner that accepts connections and never answers (a hung load balancer, a
/// half-dead region): every fetch gives up at its deadline, the gateway keeps
/// answering its own region's credentials at once, and the partner's credentials get
/// an answer within the fetch deadline, never "valid".
#[tokio::test]
async fn a_hung_partner_costs_at_most_a_deadline_and_never_yields_valid() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let js_license = license_qr(&js.establish(4).await);

    // A listener that accepts and then says nothing, ever.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });

    let started = std::time::Instant::now();
    let sh_gw = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            endpoints: vec![("JS", format!("http://{hung_addr}"))],
            partners_may_fail: true,
            extra: vec![("CREDMESH_RESULT_CACHE_SECONDS", "0".into())],
            ..Options::default()
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "start-up waited {:?} on a hung partner",
        started.elapsed()
    );
    let bank = sh.partner("bank-hung").await;

    // Jiangsu's credential: answered within the fetch deadline, not valid.
    let asked = std::time::Instant::now();
    let r = sh_gw.verify_text(&bank, &js_license).await;
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "a verification waited {:?} on a hung partner",
        asked.elapsed()
    );
    assert_ne!(r.outcome(), VerificationOutcome::Valid, "{r:?}");
    assert_outcome(&r, VerificationOutcome::UnknownIssuer);

    // Shanghai's own credentials are answered while a refresh toward Jiangsu hangs.
    let refresh = {
        let gw = sh_gw.gateway.clone();
        tokio::spawn(async move { gw.refresh_trust().await })
    };
    let own = license_qr(&sh.establish(5).await);
    assert_outcome(
        &sh_gw.verify_text(&bank, &own).await,
        VerificationOutcome::Valid,
    );
    assert!(refresh.await.unwrap().contains(&"JS".to_string()));
}

/// A partner's public address, as a region's Ingress exposes it: its public documents
/// only (`/v1/trust/…` and `/v1/status/…` passed to the region's services), no gRPC.
async fn public_documents_only(region: &Region) -> String {
    use axum::{
        extract::Request,
        http::{StatusCode, header},
        response::IntoResponse,
    };
    let upstream = format!("http://{}", region.addr);
    let app = axum::Router::new().fallback(move |request: Request| {
        let upstream = upstream.clone();
        async move {
            let path = request.uri().path().to_string();
            let public = path.starts_with("/v1/trust/") || path.starts_with("/v1/status/");
            if request.method() != axum::http::Method::GET || !public {
                return StatusCode::NOT_FOUND.into_response();
            }
            let (status, body) = credmesh_verify::fetch::get(
                &format!("{upstream}{path}"),
                "application/x-protobuf",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
    });
    let (listener, url) = credmesh_harness::loopback().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_partner_is_reached_at_its_public_address_where_only_its_documents_are_served() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let js_public = public_documents_only(&js).await;
    let sh_gw = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            endpoints: vec![("JS", js_public)],
            ..Options::default()
        },
    )
    .await;
    let bank = sh.partner("bank-public").await;
    let js_license = license_qr(&js.establish(6).await);

    let r = sh_gw.verify_text(&bank, &js_license).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.issuer, "JS/license");

    // Refreshes go through the same address, and a revocation in JS reaches SH.
    js.revoke(6).await;
    assert!(sh_gw.gateway.refresh_trust().await.is_empty());
    sh_gw.gateway.refresh_status().await;
    assert_outcome(
        &sh_gw.verify_text(&bank, &js_license).await,
        VerificationOutcome::Revoked,
    );
}
