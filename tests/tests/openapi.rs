//! The verify gateway's OpenAPI document held to the running gateway by a tool nobody
//! here wrote: schemathesis generates requests from the document (valid ones, and
//! invalid ones that must be refused), sends them to `credmesh dev` with the banner's
//! operator token, and checks every answer against the document: status code, content
//! type, headers, body schema, no 5xx, 401 without a token. The demo license's QR text
//! and its native envelope are added to the document as request examples, so valid
//! credentials' full answers are held to the schema too, not only refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use credmesh_e2e::{Dev, banner_value, http, operator_token, post_json, python};
use credmesh_proto::prost::Message as _;
use serde_json::{Value, json};

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

    let doc = http(&dev.http, "GET", "/openapi.json", &[], "")
        .await
        .unwrap();
    assert_eq!(doc.status, 200, "{}", doc.text());
    let mut doc = doc.json();
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
        let (_, answer) = post_json(&dev.http, "/v1/verify", &token, &body).await;
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
async fn valid_verifications(addr: &str, token: &str) -> i64 {
    let path = "/v1/verify/audit?outcome=valid&page_size=500";
    let auth = format!("Bearer {token}");
    let audit = http(addr, "GET", path, &[("Authorization", &auth)], "")
        .await
        .unwrap();
    assert_eq!(audit.status, 200, "{}", audit.text());
    audit.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_i64().unwrap())
        .sum()
}
