//! Faults against the real binary: `credmesh dev` killed (SIGKILL) while establishments
//! are in flight, then started again on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use credmesh_e2e::{Dev, establishment, operator_token, with_token};
use credmesh_proto::license::v1::{self as lpb, license_service_client::LicenseServiceClient};
use tonic::transport::Channel;

const CALLS: u32 = 24;

async fn connect(dev: &Dev) -> LicenseServiceClient<Channel> {
    LicenseServiceClient::new(
        Channel::from_shared(format!("http://{}", dev.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

fn uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310101", &format!("MA1K{n:04}"))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_kill_mid_request_leaves_no_half_written_state_and_retries_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dev = Dev::start_in(&data).await.unwrap();
    let client = connect(&dev).await;
    let operator = operator_token(&dev.banner);

    // Establish concurrently; kill the process once a few have been answered.
    let answered = Arc::new(AtomicU32::new(0));
    let kill = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for n in 0..CALLS {
        let (mut client, operator, answered, kill) = (
            client.clone(),
            operator.clone(),
            answered.clone(),
            kill.clone(),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(n) * 15)).await;
            let req = lpb::EstablishEnterpriseRequest {
                idempotency_key: format!("kill-{n}"),
                ..establishment(&uscc(n))
            };
            let r = client
                .establish_enterprise(with_token(req, &operator))
                .await;
            if answered.fetch_add(1, Ordering::SeqCst) + 1 == 4 {
                kill.notify_one();
            }
            r.ok().map(|r| r.into_inner().license.unwrap().license_id)
        }));
    }
    kill.notified().await;
    dev.stop().await.unwrap();
    let mut before: HashMap<u32, String> = HashMap::new();
    for (n, t) in tasks.into_iter().enumerate() {
        if let Some(id) = t.await.unwrap() {
            before.insert(n as u32, id);
        }
    }
    assert!(
        (before.len() as u32) < CALLS,
        "the kill happened after every call was answered"
    );

    // Started again on the same data: every retry (same key) succeeds, and the ones
    // answered before the kill answer the same license.
    let dev = Dev::start_in(&data).await.unwrap();
    let mut client = connect(&dev).await;
    let operator = operator_token(&dev.banner);
    for n in 0..CALLS {
        let req = lpb::EstablishEnterpriseRequest {
            idempotency_key: format!("kill-{n}"),
            ..establishment(&uscc(n))
        };
        let r = client
            .establish_enterprise(with_token(req, &operator))
            .await
            .unwrap_or_else(|s| panic!("retry {n} after the restart: {s:?}"))
            .into_inner();
        let id = r.license.unwrap().license_id;
        if let Some(first) = before.get(&n) {
            assert_eq!(&id, first, "call {n} was answered twice differently");
        }
        // Exactly one version and one history entry: nothing half-written, nothing twice.
        let versions = client
            .list_license_versions(with_token(
                lpb::ListLicenseVersionsRequest {
                    uscc: uscc(n),
                    page_size: 10,
                    ..Default::default()
                },
                &operator,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(versions.versions.len(), 1, "enterprise {n}: {versions:?}");
        let history = client
            .get_enterprise_history(with_token(
                lpb::GetEnterpriseHistoryRequest {
                    uscc: uscc(n),
                    page_size: 10,
                    ..Default::default()
                },
                &operator,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(history.entries.len(), 1, "enterprise {n}: {history:?}");
    }
    eprintln!(
        "killed credmesh dev with {} of {CALLS} establishments answered; after the restart \
         every retry applied once",
        before.len()
    );
    dev.stop().await.unwrap();
}
