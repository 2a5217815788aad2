//! `credmesh dev` end to end: the real binary, its public surfaces, and verifiers
//! nobody on the project wrote (PyJWT with `cryptography`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_e2e::{Dev, interop, operator_token, with_token};
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind, StatusReference},
    identity::v1::{self as pb, identity_service_client::IdentityServiceClient},
};
use tonic::transport::Channel;

async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let answer = credmesh_e2e::http(addr, "GET", path, &[], "")
        .await
        .unwrap();
    (answer.status, answer.text())
}

async fn wait_serving(channel: Channel) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..100 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("credmesh dev never reported SERVING");
}

#[tokio::test]
async fn credmesh_dev_serves_tokens_and_credentials_that_third_party_libraries_verify() {
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    wait_serving(channel.clone()).await;
    let token = operator_token(&dev.banner);

    // The access token verifies with PyJWT against the served JWKS.
    let jwks = format!("http://{}/.well-known/jwks.json", dev.http);
    let out = interop("verify_jwt.py", &[&jwks, &token, "access", "credmesh"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["claims"]["sub"], "operator");
    assert_eq!(v["header"]["alg"], "EdDSA");

    // An issuer key registered with identity signs a VC-JWT that PyJWT verifies against
    // the published credential JWKS.
    let key = credmesh_credential::keys::IssuerKey::generate("SH-interop-1").unwrap();
    let mut identity = IdentityServiceClient::new(channel.clone());
    identity
        .register_issuer_key(with_token(
            pb::RegisterIssuerKeyRequest {
                issuer: "SH/interop".into(),
                kid: "SH-interop-1".into(),
                public_key: key.public_key_bytes().to_vec(),
                kinds: vec![CredentialKind::BusinessLicense as i32],
                not_after: 0,
            },
            &token,
        ))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let credential = Credential {
        id: "urn:credmesh:e2e:1".into(),
        kind: CredentialKind::BusinessLicense as i32,
        issuer: "SH/interop".into(),
        region: "SH".into(),
        subject: "91310000132260250X".into(),
        issued_at: now,
        not_before: now,
        not_after: 0,
        status: Some(StatusReference {
            list_id: "SH/license/0".into(),
            index: 7,
        }),
        claims: vec![Claim {
            name: "name".into(),
            value: "上海汽车集团股份有限公司".into(),
        }],
        version: 1,
        nonce: vec![],
    };
    let vc = credmesh_credential::vcjwt::to_vc_jwt(
        &credential,
        &key,
        &credmesh_credential::vcjwt::VcOptions {
            status_base_url: format!("http://{}", dev.http),
        },
    );
    let issuer_jwks = format!("http://{}/v1/trust/jwks.json", dev.http);
    let out = interop("verify_jwt.py", &[&issuer_jwks, &vc, "vc"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["header"]["typ"], "vc+jwt");
    assert_eq!(
        v["claims"]["credentialSubject"]["name"],
        "上海汽车集团股份有限公司"
    );

    // Tampering with the VC-JWT is caught by the third-party verifier too.
    let mut tampered: Vec<char> = vc.chars().collect();
    let mid = vc.find('.').unwrap() + 5;
    tampered[mid] = if tampered[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert!(
        interop("verify_jwt.py", &[&issuer_jwks, &tampered, "vc"])
            .await
            .is_err()
    );

    // The demo enterprise code's scan page shows the license and, under it, the demo
    // food business permit from the in-process certificate service.
    let scan = dev
        .banner
        .lines()
        .find_map(|l| l.trim().split_once("/v/").map(|(_, qr)| format!("/v/{qr}")))
        .expect("the banner prints the demo code's scan page");
    let serial = dev
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial "))
        .expect("the banner prints the demo permit's serial")
        .to_string();
    let (code, page) = http_get(&dev.http, &scan).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("data-outcome=\"VALID\""), "{page}");
    assert!(
        page.contains(&format!("data-serial=\"{serial}\" data-state=\"valid\"")),
        "{page}"
    );
    assert!(page.contains("食品经营许可证"), "{page}");

    // Metrics are served.
    let (code, metrics) = http_get(&dev.http, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("credmesh_grpc_server_requests_total"),
        "{metrics}"
    );
    dev.stop().await.unwrap();
}

#[tokio::test]
async fn credmesh_dev_keeps_its_data_and_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dev = Dev::start_in(&data).await.unwrap();
    let (_, jwks_before) = http_get(&dev.http, "/.well-known/jwks.json").await;
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    wait_serving(channel.clone()).await;
    let token = operator_token(&dev.banner);
    let key = credmesh_credential::keys::IssuerKey::generate("k").unwrap();
    IdentityServiceClient::new(channel)
        .register_issuer_key(with_token(
            pb::RegisterIssuerKeyRequest {
                issuer: "SH/interop".into(),
                kid: "SH-interop-keep".into(),
                public_key: key.public_key_bytes().to_vec(),
                kinds: vec![CredentialKind::BusinessLicense as i32],
                not_after: 0,
            },
            &token,
        ))
        .await
        .unwrap();
    dev.stop().await.unwrap();

    let dev = Dev::start_in(&data).await.unwrap();
    let (_, jwks_after) = http_get(&dev.http, "/.well-known/jwks.json").await;
    assert_eq!(jwks_before, jwks_after, "the token key survives a restart");
    let (code, issuer_jwks) = http_get(&dev.http, "/v1/trust/jwks.json").await;
    assert_eq!(code, 200);
    assert!(issuer_jwks.contains("SH-interop-keep"), "{issuer_jwks}");

    // The CLI works with the profile dev wrote.
    let out = tokio::process::Command::new(credmesh_e2e::credmesh_bin())
        .args(["identity", "clients", "list", "--profile"])
        .arg(data.join("cli-profile.toml"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("operator"));

    // An operator defines a scenario with the CLI, changes it, reads its history and
    // retires it; the scenarios live in data/entcode.db.
    let profile = data.join("cli-profile.toml");
    let cli = |args: &'static [&'static str]| {
        let profile = profile.clone();
        async move {
            let out = tokio::process::Command::new(credmesh_e2e::credmesh_bin())
                .args(["entcode", "scenario"])
                .args(args)
                .arg("--profile")
                .arg(&profile)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let put = cli(&[
        "put",
        "export",
        "--description",
        "An export declaration: who and where",
        "--fields",
        "name,uscc",
        "--reason",
        "customs pilot",
        "--expected-version",
        "0",
    ])
    .await;
    assert!(put.contains("export") && put.contains("v1"), "{put}");
    let put = cli(&[
        "put",
        "export",
        "--description",
        "An export declaration: who and where",
        "--fields",
        "name,uscc,domicile",
        "--reason",
        "customs needs the address",
        "--expected-version",
        "1",
    ])
    .await;
    assert!(put.contains("v2"), "{put}");
    let history = cli(&["history", "export"]).await;
    assert!(history.contains("customs needs the address"), "{history}");
    assert!(history.contains("+domicile"), "{history}");
    assert!(history.contains("operator"), "{history}");
    let shown = cli(&["show", "export", "--version", "1"]).await;
    assert!(
        shown.contains("name, uscc") && !shown.contains("domicile"),
        "{shown}"
    );
    let retired = cli(&["retire", "export", "--reason", "pilot over"]).await;
    assert!(retired.contains("(retired)"), "{retired}");
    let list = cli(&["list"]).await;
    assert!(list.contains("basic") && list.contains("export"), "{list}");
    assert!(data.join("entcode.db").exists());
    dev.stop().await.unwrap();
}

/// Runs the CLI as the party of `profile`; its exit status and stdout (stderr appended).
async fn cli_as(profile: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let run = credmesh_e2e::cli_as(profile, args).await;
    (run.status, run.output())
}

/// The parties of the journeys come with `credmesh dev`: each has a CLI profile in the
/// data directory, so a newcomer plays every step from the command line.
#[tokio::test]
async fn credmesh_devs_demo_parties_play_the_journeys_from_the_cli() {
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    wait_serving(channel).await;
    let operator = dev.data.join("cli-profile.toml");
    let owner = dev.data.join("demo-owner.toml");
    let market = dev.data.join("demo-market.toml");
    let inspector = dev.data.join("insp-1.toml");
    for profile in [&owner, &market, &inspector] {
        assert!(
            dev.banner.contains(&profile.display().to_string()),
            "{}",
            dev.banner
        );
    }
    let uscc = "91310106MA1FL3Q19D";

    // The owner prints the enterprise code for the door: it links to the scan page here.
    let page = format!("scan page: http://{}/v/CM1:", dev.http);
    let (status, shown) = cli_as(&owner, &["entcode", "show", uscc]).await;
    assert_eq!(status, Some(0), "{shown}");
    assert!(shown.contains(&page), "{shown}");
    let png = dev.data.join("door.png");
    let (status, wrote) = cli_as(
        &owner,
        &["entcode", "qr", uscc, "--out", &png.display().to_string()],
    )
    .await;
    assert_eq!(status, Some(0), "{wrote}");
    assert!(
        wrote.contains(&format!(
            "a phone camera opens the scan page on http://{}",
            dev.http
        )),
        "{wrote}"
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // A bank checks the enterprise's bank-loan code: valid once, then "already used",
    // and the exit status says which.
    let (status, code) = cli_as(
        &owner,
        &[
            "entcode",
            "present",
            uscc,
            "--scenario",
            "bank-loan",
            "--qr",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{code}");
    let code = code.trim().to_string();
    let (status, first) = cli_as(&operator, &["entcode", "verify", &code]).await;
    assert_eq!(status, Some(0), "{first}");
    assert!(first.starts_with("VALID"), "{first}");
    let (status, again) = cli_as(&operator, &["entcode", "verify", &code]).await;
    assert_eq!(status, Some(1), "{again}");
    assert!(again.starts_with("ALREADY_USED"), "{again}");

    // A wrong address: the owner disputes the demo permit, the issuing department
    // accepts and corrects it.
    let (status, filed) = cli_as(
        &owner,
        &[
            "dispute",
            "file",
            "000000000001",
            "--field",
            "address=上海市静安区南京西路1268号",
            "--json",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{filed}");
    let filed: serde_json::Value = serde_json::from_str(filed.trim()).unwrap();
    let id = filed["dispute_id"].as_str().unwrap().to_string();
    let (status, refused) = cli_as(&operator, &["dispute", "accept", &id]).await;
    assert_eq!(
        status,
        Some(1),
        "only the issuing department answers: {refused}"
    );
    assert!(refused.contains("NOT_ISSUING_DEPARTMENT"), "{refused}");
    let (status, accepted) = cli_as(&market, &["dispute", "accept", &id]).await;
    assert_eq!(status, Some(0), "{accepted}");
    let (status, resolved) = cli_as(
        &market,
        &[
            "dispute",
            "resolve",
            &id,
            "--corrected",
            "--reason",
            "门牌号核实",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{resolved}");
    assert!(resolved.contains("corrected"), "{resolved}");
    let (_, shown) = cli_as(&operator, &["cert", "show", "000000000001"]).await;
    assert!(shown.contains("version 2"), "{shown}");
    assert!(shown.contains("南京西路1268号"), "{shown}");
    // Named for people: the type, the department and each field's label.
    assert!(
        shown.contains("食品经营许可证 (") && shown.contains("上海市市场监督管理局 ("),
        "{shown}"
    );
    assert!(shown.contains("经营场所 address"), "{shown}");

    // An inspection: planned by the operator for the market bureau, shown by the owner,
    // recorded by the demo inspector.
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60)
        .to_string();
    let (status, planned) = cli_as(
        &operator,
        &[
            "inspect",
            "plan",
            uscc,
            "--item",
            "food-safety",
            "--plan-number",
            "沪静市监检〔2026〕12号",
            "--inspector",
            "insp-1=沪执法31000011111",
            "--start",
            &start,
            "--department",
            "11310106MB2F10062C",
            "--json",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{planned}");
    let planned: serde_json::Value = serde_json::from_str(planned.trim()).unwrap();
    let inspection = planned["id"].as_str().unwrap().to_string();
    let qr = planned["qr_text"].as_str().unwrap().to_string();
    let (status, scanned) = cli_as(&owner, &["inspect", "scan", &qr]).await;
    assert_eq!(status, Some(0), "{scanned}");
    assert!(scanned.contains("shown (on site)"), "{scanned}");
    let (status, recorded) = cli_as(
        &inspector,
        &["inspect", "record", &inspection, "--summary", "未发现问题"],
    )
    .await;
    assert_eq!(status, Some(0), "{recorded}");
    assert!(recorded.contains("state        completed"), "{recorded}");
    assert!(
        recorded.contains("no findings: 未发现问题 (recorded by insp-1 at 20"),
        "{recorded}"
    );
    dev.stop().await.unwrap();
}
