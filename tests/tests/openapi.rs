//! The verify gateway's OpenAPI document held to the running gateway by a tool nobody
//! here wrote: schemathesis generates requests from the document (valid ones, and
//! invalid ones that must be refused), sends them to `credmesh dev` with the banner's
//! operator token, and checks every answer against the document: status code, content
//! type, headers, body schema, no 5xx, 401 without a token. The demo license's QR text
//! and its native envelope are added to the document as request examples, so valid
//! credentials' full answers are held to the schema too, not only refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use credmesh_e2e::{Dev, operator_token, python};
use credmesh_proto::prost::Message as _;
use serde_json::{Value, json};

/// The line after the banner line starting with `prefix`.
fn banner_value(banner: &str, prefix: &str) -> String {
    let lines: Vec<&str> = banner.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the banner has no '{prefix}' line:\n{banner}"));
    lines[i + 1].trim().to_string()
}

/// The body of a 200 answer to `method path` with an optional token and JSON body.
async fn call(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&buf)
    );
    buf[split + 4..].to_vec()
}

/// Adds `examples` to the JSON request body of `path`'s POST.
fn add_examples(doc: &mut Value, path: &str, examples: Value) {
    doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"] = examples;
}

#[tokio::test]
async fn every_answer_of_the_gateway_matches_its_openapi_document() {
    let dev = Dev::start().await.unwrap();
    let token = operator_token(&dev.banner);
    let qr = banner_value(&dev.banner, "demo license of");
    let envelope = credmesh_credential::from_qr(&qr).unwrap().encode_to_vec();
    let envelope = base64::engine::general_purpose::STANDARD.encode(envelope);

    let mut doc: Value =
        serde_json::from_slice(&call(&dev.http, "GET", "/openapi.json", None, "").await).unwrap();
    add_examples(
        &mut doc,
        "/v1/verify",
        json!({
            "qr": {"value": {"credential": qr}},
            "native": {"value": {"envelope": envelope}},
        }),
    );
    add_examples(
        &mut doc,
        "/v1/verify/batch",
        json!({"both": {"value": {"credentials": [{"credential": qr}, {"envelope": envelope}]}}}),
    );

    // The gateway may still be loading the trust list right after start.
    let body = json!({ "credential": qr }).to_string();
    for _ in 0..100 {
        let answer: Value = serde_json::from_slice(
            &call(&dev.http, "POST", "/v1/verify", Some(&token), &body).await,
        )
        .unwrap();
        if answer["outcome"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The audit is written behind the answers (within 50 ms).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = valid_verifications(&dev.http, &token).await;

    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, serde_json::to_vec(&doc).unwrap()).unwrap();
    // The audit's time range must be increasing (400 TIME_RANGE otherwise), which a
    // JSON schema cannot say: there, a schema-valid query may be refused. Everything else
    // the document allows must be accepted.
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[[operations]]\n\
         include-path = \"/v1/verify/audit\"\n\
         checks.positive_data_acceptance.enabled = false\n",
    )
    .unwrap();

    let out = tokio::process::Command::new(python())
        .current_dir(dir.path())
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(&schema)
        .args(["--url", &format!("http://{}", dev.http)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "150", "--seed", "1", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .output()
        .await
        .expect("run schemathesis (make deps installs it in .tools/venv)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers the document does not allow:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation was tested, the examples with the real credentials among them.
    assert!(stdout.contains("Tested: 3"), "{stdout}");
    assert!(stdout.contains("✅ Examples"), "{stdout}");

    // The examples were answered as valid, not refused: the checks above held full
    // answers of a valid credential to the schema (two single, two in a batch).
    let after = valid_verifications(&dev.http, &token).await;
    assert!(
        after >= before + 4,
        "the examples were not all verified as valid: {before} valid before, {after} after"
    );
}

/// How many verifications the audit counts as valid.
async fn valid_verifications(http: &str, token: &str) -> i64 {
    let path = "/v1/verify/audit?outcome=valid&page_size=500";
    let audit: Value =
        serde_json::from_slice(&call(http, "GET", path, Some(token), "").await).unwrap();
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_i64().unwrap())
        .sum()
}
