//! Offline verification from the gateway's trust bundle.

use std::time::Duration;

use credmesh_proto::{
    credential::v1::VerificationOutcome, prost::Message as _, verify::v1::TrustBundle,
};
use credmesh_runtime::Clock as _;
use credmesh_verify::offline::{Offline, input_from_bytes};

use crate::helpers::*;

#[tokio::test]
async fn a_bundle_verifies_offline_as_the_gateway_does_and_its_anchor_is_checked() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let gw = spawn_gateway(&sh, &[&js], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-offline").await;
    let sh_qr = license_qr(&sh.establish(1).await);
    let js_qr = license_qr(&js.establish(1).await);
    // Online first: both valid.
    assert_outcome(
        &gw.verify_text(&bank, &sh_qr).await,
        VerificationOutcome::Valid,
    );
    assert_outcome(
        &gw.verify_text(&bank, &js_qr).await,
        VerificationOutcome::Valid,
    );
    js.revoke(1).await;
    gw.gateway.refresh_status().await;

    let bytes = gw.gateway.bundle().await.encode_to_vec();
    let bundle = TrustBundle::decode(bytes.as_slice()).unwrap();
    assert_eq!(bundle.regions.len(), 2);
    let offline = Offline::from_bundle(&bundle).unwrap();
    assert!(offline.warnings.is_empty(), "{:?}", offline.warnings);
    let max = Duration::from_secs(600);
    let r = offline.verify(
        &input_from_bytes(sh_qr.clone().into_bytes()),
        clock.now(),
        max,
    );
    assert_outcome(&r, VerificationOutcome::Valid);
    let r = offline.verify(&input_from_bytes(js_qr.into_bytes()), clock.now(), max);
    assert_outcome(&r, VerificationOutcome::Revoked);
    // An old bundle never answers valid past the bound.
    let r = offline.verify(
        &input_from_bytes(sh_qr.into_bytes()),
        clock.now() + 601,
        max,
    );
    assert_outcome(&r, VerificationOutcome::StatusUnknown);

    // A bundle whose anchor does not match its trust list is refused.
    let mut forged = bundle.clone();
    let (a, b) = (
        forged.regions[0].anchor_public_key.clone(),
        forged.regions[1].anchor_public_key.clone(),
    );
    forged.regions[0].anchor_public_key = b;
    forged.regions[1].anchor_public_key = a;
    assert!(Offline::from_bundle(&forged).is_err());
}

#[tokio::test]
async fn a_fresh_gateways_bundle_carries_every_issuers_status_lists() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region("JS", Backend::Sqlite, clock.clone()).await;
    let gw = spawn_gateway(&sh, &[&js], Backend::Sqlite, Options::default()).await;
    let sh_qr = license_qr(&sh.establish(1).await);
    let js_qr = license_qr(&js.establish(1).await);
    js.revoke(1).await;

    // No verification has needed a status list: the bundle fetches them itself.
    let bundle = gw.gateway.bundle().await;
    let mut lists: Vec<String> = bundle
        .status_lists
        .iter()
        .map(|e| {
            credmesh_proto::credential::v1::StatusList::decode(e.payload.as_slice())
                .unwrap()
                .list_id
        })
        .collect();
    lists.sort();
    lists.dedup();
    assert!(
        lists.iter().any(|l| l.starts_with("SH/license/0")),
        "{lists:?}"
    );
    assert!(
        lists.iter().any(|l| l.starts_with("JS/license/0")),
        "{lists:?}"
    );
    let offline = Offline::from_bundle(&bundle).unwrap();
    let max = Duration::from_secs(600);
    let r = offline.verify(&input_from_bytes(sh_qr.into_bytes()), clock.now(), max);
    assert_outcome(&r, VerificationOutcome::Valid);
    let r = offline.verify(&input_from_bytes(js_qr.into_bytes()), clock.now(), max);
    assert_outcome(&r, VerificationOutcome::Revoked);
}
