//! Memory and start-up of the real binary: `credmesh dev` and each `credmesh serve
//! <service>` on SQLite, idle resident memory (VmRSS) and the time from spawn to
//! SERVING with migrations already applied. Goals (issue #10): serve idle ≤ 40 MB,
//! dev ≤ 120 MB, start to SERVING ≤ 1 s. Prints a Markdown table; `make bench`
//! appends it to the report. Run with `CREDMESH_BIN` naming a release build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine as _;
use credmesh_e2e::{Dev, credmesh_bin, free_port, write_key};
use tokio::process::{Child, Command};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Polls the health of `service` at `addr` every 5 ms until SERVING.
async fn until_serving(addr: &str, service: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok();
            if status == Some(ServingStatus::Serving as i32) {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{service} never served"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(credmesh_bin());
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}

struct Row {
    what: String,
    start: Duration,
    rss: f64,
    rss_goal: f64,
}

/// Migrates, then starts `credmesh serve <service>` and measures it; the child keeps
/// running (the next services may need it).
async fn serve(
    rows: &mut Vec<Row>,
    service: &str,
    grpc_name: &str,
    mut env: Vec<(String, String)>,
) -> (Child, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    env.push(("CREDMESH_GRPC_ADDR".into(), addr.clone()));
    env.push(("CREDMESH_HTTP_ADDR".into(), addr.clone()));
    let migrated = command(&["migrate", service], &env).status().await.unwrap();
    assert!(migrated.success(), "credmesh migrate {service} failed");
    let spawned = Instant::now();
    let child = command(&["serve", service], &env).spawn().unwrap();
    let _ = until_serving(&addr, grpc_name).await;
    let start = spawned.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push(Row {
        what: format!("credmesh serve {service}"),
        start,
        rss: rss_mib(child.id().unwrap()),
        rss_goal: 40.0,
    });
    (child, addr)
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[tokio::main]
async fn main() {
    let mut rows = Vec::new();
    let b64 = |b: [u8; 32]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);

    // credmesh dev: the first start creates keys and migrates; the second does neither.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Dev::start_in(&data).await.unwrap();
    first.stop().await.unwrap();
    let spawned = Instant::now();
    let dev = Dev::start_in(&data).await.unwrap();
    let start = spawned.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push(Row {
        what: "credmesh dev (every service)".into(),
        start,
        rss: rss_mib(dev.pid().unwrap()),
        rss_goal: 120.0,
    });
    dev.stop().await.unwrap();

    // Each service alone, as in production (SQLite files, in-process cache).
    let d = dir.path();
    let (anchor, anchor_file) = write_key(d, "anchor.pem");
    let (_, token_file) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, signing) = write_key(d, "license-signing.pem");
    let (license_client, license_client_file) = write_key(d, "license-client.pem");
    let (_identity, identity_addr) = serve(
        &mut rows,
        "identity",
        "credmesh.identity.v1.IdentityService",
        pairs(&[
            (
                "DATABASE_URL",
                format!("sqlite://{}/identity.db", d.display()),
            ),
            ("CREDMESH_ANCHOR_KEY_FILE", anchor_file),
            ("CREDMESH_TOKEN_KEY_FILE", token_file),
            (
                "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
                b64(operator.public_key_bytes()),
            ),
        ]),
    )
    .await;

    // The license service's client at identity, so it can register its key.
    let channel = tonic::transport::Channel::from_shared(format!("http://{identity_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let operator_token = {
        use credmesh_proto::identity::v1::{
            self as pb, identity_service_client::IdentityServiceClient,
        };
        IdentityServiceClient::new(channel.clone())
            .issue_token(pb::IssueTokenRequest {
                client_id: "operator".into(),
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    credmesh_auth::client_assertion("operator", operator.signing_key(), now)
                        .unwrap(),
                )),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    };
    register_service_client(&channel, &operator_token, &license_client).await;

    let (_license, _) = serve(
        &mut rows,
        "license",
        "credmesh.license.v1.LicenseService",
        pairs(&[
            (
                "DATABASE_URL",
                format!("sqlite://{}/license.db", d.display()),
            ),
            ("CREDMESH_SIGNING_KEY_FILE", signing),
            ("CREDMESH_CLIENT_KEY_FILE", license_client_file),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
        ]),
    )
    .await;
    let (_verify, _) = serve(
        &mut rows,
        "verify",
        "credmesh.verify.v1.VerifyService",
        pairs(&[
            (
                "DATABASE_URL",
                format!("sqlite://{}/verify.db", d.display()),
            ),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            ("CREDMESH_ANCHOR_PUBLIC_KEY", b64(anchor.public_key_bytes())),
        ]),
    )
    .await;

    println!("| process | start to SERVING | goal | idle RSS | goal | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let met = r.start <= Duration::from_secs(1) && r.rss <= r.rss_goal;
        println!(
            "| {} | {:.0} ms | ≤ 1000 ms | {:.1} MiB | ≤ {:.0} MB | {} |",
            r.what,
            r.start.as_secs_f64() * 1000.0,
            r.rss,
            r.rss_goal,
            if met { "yes" } else { "no" }
        );
    }
}

/// Registers client `license` (a service allowed to register its issuer keys).
async fn register_service_client(
    channel: &tonic::transport::Channel,
    operator: &str,
    key: &credmesh_credential::keys::IssuerKey,
) {
    use credmesh_proto::identity::v1::{
        self as pb, identity_service_client::IdentityServiceClient,
    };
    IdentityServiceClient::new(channel.clone())
        .register_client(credmesh_e2e::with_token(
            pb::RegisterClientRequest {
                client_id: "license".into(),
                kind: credmesh_auth::PrincipalKind::Service.to_proto(),
                display_name: "license service".into(),
                scopes: vec!["identity.keys".into()],
                public_key: key.public_key_bytes().to_vec(),
                ..Default::default()
            },
            operator,
        ))
        .await
        .unwrap();
}
