//! The HTTP/JSON API and its OpenAPI document.

use serde_json::{Value, json};

use crate::helpers::*;

async fn post(
    gw: &Gateway,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = &buf[split + 4..];
    let value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (code, headers, value)
}

#[tokio::test]
async fn the_json_api_verifies_explains_bad_requests_and_is_described() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock).await;
    let gw = spawn_gateway(
        &sh,
        &[],
        Backend::Sqlite,
        Options {
            extra: vec![
                ("CREDMESH_RATE_LIMIT_BURST", "6".into()),
                ("CREDMESH_RATE_LIMIT_PER_SECOND", "0.01".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let bank = sh.partner("bank-json").await;
    let v = sh.establish(1).await;
    let qr = license_qr(&v);

    let (code, _, body) = post(
        &gw,
        "/v1/verify",
        Some(&bank),
        &json!({"credential": qr}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "valid");
    assert_eq!(body["kind"], "business_license");
    assert_eq!(body["region"], "SH");
    assert_eq!(body["credential_id"], v.license_id.as_str());
    assert_eq!(body["status"]["consulted"], true);

    let batch =
        json!({"credentials": [{"credential": qr}, {"credential": "nonsense"}]}).to_string();
    let (code, _, body) = post(&gw, "/v1/verify/batch", Some(&bank), &batch).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["results"][0]["outcome"], "valid");
    assert_eq!(body["results"][1]["outcome"], "malformed");

    let (code, _, body) = post(&gw, "/v1/verify", Some(&bank), "{not json").await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["reason"], "INVALID_JSON");
    let (code, _, body) = post(&gw, "/v1/verify", Some(&bank), "{}").await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["reason"], "CREDENTIAL_MISSING");

    let (code, headers, _) = post(
        &gw,
        "/v1/verify",
        None,
        &json!({"credential": qr}).to_string(),
    )
    .await;
    assert_eq!(code, 401);
    assert!(headers.iter().any(|(k, _)| k == "www-authenticate"));

    // Burst 6: a single, a batch of two and two bad requests (each call costs at least
    // one, a batch one per credential) leave 1; a batch of 4 exceeds it.
    let (code, headers, body) = post(&gw, "/v1/verify/batch", Some(&bank), &json!({"credentials": [{"credential": qr}, {"credential": qr}, {"credential": qr}, {"credential": qr}]}).to_string()).await;
    assert_eq!(code, 429, "{body}");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));

    let doc: Value = serde_json::from_str(credmesh_verify::api::http::OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/verify"]["post"].is_object());
    assert!(doc["paths"]["/v1/verify/batch"]["post"].is_object());
    assert!(doc["paths"]["/v1/verify/audit"]["get"].is_object());
    assert!(doc["components"]["schemas"]["VerificationAuditEntry"].is_object());
    let outcomes =
        doc["components"]["schemas"]["VerificationResult"]["properties"]["outcome"]["enum"]
            .as_array()
            .unwrap()
            .len();
    assert_eq!(outcomes, 9);
}
