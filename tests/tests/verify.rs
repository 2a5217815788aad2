//! The verify gateway end to end, against the real `credmesh dev` binary: the demo
//! license verified over HTTP/JSON and gRPC with the banner's operator token, then
//! offline with `credmesh verify` from the gateway's trust bundle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_e2e::{Dev, credmesh_bin};
use credmesh_proto::verify::v1::{
    PresentedCredential, VerifyRequest, presented_credential::Form,
    verify_service_client::VerifyServiceClient,
};
use tonic::transport::Channel;

/// The line after the banner line starting with `prefix`.
fn banner_value(banner: &str, prefix: &str) -> String {
    let lines: Vec<&str> = banner.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the banner has no '{prefix}' line:\n{banner}"));
    lines[i + 1].trim().to_string()
}

async fn post_json(addr: &str, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_slice(&buf[split + 4..]).unwrap_or_default(),
    )
}

async fn cli(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(credmesh_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_demo_license_verifies_online_and_offline_through_the_gateway() {
    let dev = Dev::start().await.unwrap();
    let token = banner_value(&dev.banner, "operator token");
    let qr = banner_value(&dev.banner, "demo license of");
    assert!(qr.starts_with("CM1:"), "{qr}");

    // HTTP/JSON; the gateway may still be loading the trust list right after start.
    let body = serde_json::json!({ "credential": qr }).to_string();
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        let (code, value) = post_json(&dev.http, "/v1/verify", &token, &body).await;
        assert_eq!(code, 200, "{value}");
        answer = value;
        if answer["outcome"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["issuer"], "SH/license");
    assert_eq!(answer["kind"], "business_license");

    // gRPC, the same answer.
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(VerifyRequest {
        credential: Some(PresentedCredential {
            form: Some(Form::Text(qr.clone())),
        }),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let result = VerifyServiceClient::new(channel)
        .verify(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(result.reason, "VALID", "{}", result.detail);

    // Offline: fetch the bundle, then verify from it without the network.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pb");
    let bundle = bundle.to_str().unwrap();
    let (ok, out) = cli(
        &[
            "verify",
            "--fetch",
            &format!("http://{}", dev.http),
            "--bundle",
            bundle,
        ],
        None,
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&["verify", "-", "--bundle", bundle], Some(&qr)).await;
    assert!(ok, "{out}");
    assert!(out.starts_with("VALID"), "{out}");
    let (ok, out) = cli(
        &["verify", "-", "--bundle", bundle, "--json"],
        Some("CM1:garbage"),
    )
    .await;
    assert!(!ok, "a credential that does not verify exits non-zero");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["outcome"], "malformed");

    // What a partner pins, read from the public trust list.
    let (ok, out) = cli(
        &[
            "region",
            "anchor",
            "--endpoint",
            &format!("http://{}", dev.grpc),
        ],
        None,
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("CREDMESH_PARTNERS=SH=http://{}@", dev.grpc)),
        "{out}"
    );
}
