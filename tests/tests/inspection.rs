//! The inspection code service end to end, against the real `credmesh dev` binary
//! (journey 2): establish a license → policy import → plan → conflict → join → the cap →
//! verify at the gateway → scan → record → evaluate → statistics, every step through
//! the `credmesh inspect` CLI, each party with its own profile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_auth::PrincipalKind;
use credmesh_e2e::{Dev, operator_token, post_json, with_token};
use credmesh_proto::{
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    inspection::v1::{self as pb, inspection_service_client::InspectionServiceClient},
    license::v1::{self as lpb, license_service_client::LicenseServiceClient},
};
use tonic::{Code, transport::Channel};

const MARKET: &str = "11310106MB2F10062C";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Registers a client and returns a token for it; writes its key and a CLI profile
/// `<id>.toml` under `dev`'s data directory.
#[allow(clippy::too_many_arguments)]
async fn client(
    dev: &Dev,
    channel: &Channel,
    operator: &str,
    id: &str,
    kind: PrincipalKind,
    scopes: &[&str],
    org: &str,
    cert: &str,
) -> String {
    let key = credmesh_credential::keys::IssuerKey::generate(id).unwrap();
    let key_file = dev.data.join(format!("{id}.pem"));
    std::fs::write(&key_file, key.to_pkcs8_pem().as_bytes()).unwrap();
    std::fs::write(
        profile(dev, id),
        format!(
            "endpoint = \"http://{}\"\nclient_id = \"{id}\"\nkey_file = \"{}\"\n",
            dev.grpc,
            key_file.display()
        ),
    )
    .unwrap();
    let mut identity = IdentityServiceClient::new(channel.clone());
    identity
        .register_client(with_token(
            ipb::RegisterClientRequest {
                client_id: id.into(),
                kind: kind.to_proto(),
                display_name: id.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                organization: org.into(),
                public_key: key.public_key_bytes().to_vec(),
                enforcement_certificate: cert.into(),
                ..Default::default()
            },
            operator,
        ))
        .await
        .unwrap();
    let assertion = credmesh_auth::client_assertion(id, key.signing_key(), now()).unwrap();
    identity
        .issue_token(ipb::IssueTokenRequest {
            client_id: id.into(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

/// The CLI profile `client` wrote for client `id`.
fn profile(dev: &Dev, id: &str) -> std::path::PathBuf {
    dev.data.join(format!("{id}.toml"))
}

/// Runs the CLI with dev's (operator) profile.
async fn cli(dev: &Dev, args: &[&str]) -> String {
    cli_as(&dev.data.join("cli-profile.toml"), args).await
}

/// Runs the CLI with `profile`; its stdout, or a panic with stderr.
async fn cli_as(profile: &std::path::Path, args: &[&str]) -> String {
    cli_exiting(profile, args, 0).await
}

/// Runs the CLI with `profile`, which must exit with `status`; its stdout.
async fn cli_exiting(profile: &std::path::Path, args: &[&str], status: i32) -> String {
    let run = credmesh_e2e::cli_as(profile, args).await;
    assert_eq!(
        run.status,
        Some(status),
        "credmesh {args:?} exited otherwise: {}",
        run.output()
    );
    run.stdout
}

async fn http_get(addr: &str, path: &str) -> String {
    credmesh_e2e::http(addr, "GET", path, &[], "")
        .await
        .unwrap()
        .text()
}

#[tokio::test]
async fn two_departments_one_visit_through_credmesh_dev() {
    let dev = Dev::start().await.unwrap();
    let operator = operator_token(&dev.banner);
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health_org = credmesh_uscc::Uscc::from_parts('1', '1', "310000", "00242081")
        .unwrap()
        .to_string();
    let dept_scopes = [
        "license.issue",
        "license.read",
        "inspection.plan",
        "inspection.read",
        "inspection.policy",
    ];
    let market = client(
        &dev,
        &channel,
        &operator,
        "e2e-market",
        PrincipalKind::Department,
        &dept_scopes,
        MARKET,
        "",
    )
    .await;
    client(
        &dev,
        &channel,
        &operator,
        "e2e-health",
        PrincipalKind::Department,
        &dept_scopes[2..],
        &health_org,
        "",
    )
    .await;
    let inspector = client(
        &dev,
        &channel,
        &operator,
        "e2e-insp-h",
        PrincipalKind::Inspector,
        &["inspection.read", "inspection.record"],
        &health_org,
        "沪执法31000022222",
    )
    .await;
    // The market bureau's inspector, named on its plan: inspectors are registered.
    client(
        &dev,
        &channel,
        &operator,
        "e2e-insp-m",
        PrincipalKind::Inspector,
        &["inspection.read", "inspection.record"],
        MARKET,
        "沪执法31000011111",
    )
    .await;
    let uscc = credmesh_uscc::Uscc::from_parts('9', '1', "310106", "MA1E2E01")
        .unwrap()
        .to_string();
    client(
        &dev,
        &channel,
        &operator,
        "e2e-owner",
        PrincipalKind::Enterprise,
        &["inspection.read", "inspection.respond"],
        &uscc,
        "",
    )
    .await;

    // Establish the restaurant's license.
    LicenseServiceClient::new(channel.clone())
        .establish_enterprise(with_token(
            lpb::EstablishEnterpriseRequest {
                uscc: uscc.clone(),
                name: "上海静安面馆二号有限公司".into(),
                entity_type: "有限责任公司（自然人投资或控股）".into(),
                legal_representative: "王小明".into(),
                registered_capital: Some(lpb::Money {
                    amount: "500000.00".into(),
                    currency_code: "CNY".into(),
                }),
                establishment_date: "2026-03-01".into(),
                business_term: Some(lpb::BusinessTerm {
                    long_term: true,
                    ..Default::default()
                }),
                domicile: "上海市静安区南京西路1000号".into(),
                business_scope: "餐饮服务。".into(),
                registration_authority: MARKET.into(),
                ..Default::default()
            },
            &market,
        ))
        .await
        .unwrap();
    let mut inspection = InspectionServiceClient::new(channel.clone());
    // The market bureau imports the grade (and a do-not-disturb item) from a CSV file.
    let csv = dev.data.join("policy.csv");
    std::fs::write(
        &csv,
        format!(
            "kind,enterprise_uscc,item,grade,clean,checked_at,removed,note\n\
             credit_grade,{uscc},,A,,,,annual grading\n\
             do_not_disturb,{uscc},signage,,,,,signage checked remotely\n"
        ),
    )
    .unwrap();
    let imported = cli_as(
        &profile(&dev, "e2e-market"),
        &["inspect", "import", csv.to_str().unwrap(), "--json"],
    )
    .await;
    let imported: serde_json::Value = serde_json::from_str(imported.trim()).unwrap();
    assert_eq!(imported["imported"], 2, "{imported}");
    let grade = cli(&dev, &["inspect", "grade", &uscc]).await;
    assert!(grade.contains("grade A"), "{grade}");
    // Times are shown to people as dates, not Unix seconds.
    assert!(grade.contains("(set at 20"), "{grade}");

    // 1. Market regulation plans (here through the CLI, as the operator for it).
    let start = now() - 60;
    let planned = cli(
        &dev,
        &[
            "inspect",
            "plan",
            &uscc,
            "--item",
            "food-safety",
            "--plan-number",
            "沪静市监检〔2026〕12号",
            "--inspector",
            "e2e-insp-m=沪执法31000011111",
            "--start",
            &start.to_string(),
            "--days",
            "7",
            "--department",
            MARKET,
            "--json",
        ],
    )
    .await;
    let planned: serde_json::Value = serde_json::from_str(planned.trim()).unwrap();
    let id = planned["id"].as_str().unwrap().to_string();
    assert_eq!(planned["code_version"], 1);

    // 2. Health plans for the same days: conflict, then joins.
    let health_profile = profile(&dev, "e2e-health");
    let basis = [
        "--item",
        "hygiene",
        "--plan-number",
        "沪卫监〔2026〕3号",
        "--inspector",
        "e2e-insp-h=沪执法31000022222",
    ];
    let start_text = start.to_string();
    let mut args = vec!["inspect", "plan", &uscc, "--start", &start_text, "--json"];
    args.extend(basis);
    // Exit status 3: no code was issued, a conflict to join.
    let conflict = cli_exiting(&health_profile, &args, 3).await;
    let conflict: serde_json::Value = serde_json::from_str(conflict.trim()).unwrap();
    assert_eq!(conflict["decision"], "conflict", "{conflict}");
    assert_eq!(conflict["inspections"][0]["id"], id.as_str(), "{conflict}");
    assert_eq!(conflict["inspections"][0]["departments"][0], MARKET);
    let mut args = vec!["inspect", "join", &id, "--json"];
    args.extend(basis);
    let joined = cli_as(&health_profile, &args).await;
    let joined: serde_json::Value = serde_json::from_str(joined.trim()).unwrap();
    assert_eq!(
        joined["departments"],
        serde_json::json!([MARKET, health_org]),
        "{joined}"
    );
    assert_eq!(
        joined["inspectors"],
        serde_json::json!(["e2e-insp-m", "e2e-insp-h"])
    );
    assert_eq!(joined["code_version"], 2);
    let qr_text = joined["qr_text"].as_str().unwrap().to_string();
    let vc_jwt = joined["vc_jwt"].as_str().unwrap().to_string();
    let scan_url = joined["scan_url"].as_str().unwrap().to_string();

    // 3. Grade A: another routine inspection is refused, with the rule and the count.
    let later = (start + 60 * 86_400).to_string();
    let mut args = vec![
        "inspect", "plan", &uscc, "--start", &later, "--days", "1", "--json",
    ];
    args.extend(basis);
    // Exit status 4: refused by a rule.
    let refused = cli_exiting(&health_profile, &args, 4).await;
    let refused: serde_json::Value = serde_json::from_str(refused.trim()).unwrap();
    assert_eq!(refused["decision"], "refused", "{refused}");
    assert_eq!(refused["rule"], "RULE_FREQUENCY");
    assert_eq!(refused["reason"], "FREQUENCY_CAP_REACHED");
    assert!(
        refused["message"].as_str().unwrap().contains("grade A"),
        "{refused}"
    );
    assert_eq!(refused["facts"]["routine_inspections_in_window"], "1");
    // The do-not-disturb item imported for this enterprise refuses a routine plan of it.
    let mut args = vec![
        "inspect", "plan", &uscc, "--start", &later, "--days", "1", "--json",
    ];
    args.extend([
        "--item",
        "signage",
        "--plan-number",
        "沪卫监〔2026〕3号",
        "--inspector",
        "e2e-insp-h=沪执法31000022222",
    ]);
    let refused = cli_exiting(&health_profile, &args, 4).await;
    assert!(refused.contains("ITEM_DO_NOT_DISTURB"), "{refused}");
    assert!(refused.contains("refused under rule 2"), "{refused}");

    // The code verifies at the gateway, its status lists fetched over HTTP.
    let body = serde_json::json!({ "credential": qr_text }).to_string();
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, value) = post_json(&dev.http, "/v1/verify", &operator, &body).await;
        assert_eq!(status, 200, "{value}");
        answer = value;
        if answer["outcome"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["issuer"], "SH/inspection");
    assert_eq!(answer["kind"], "inspection_code");

    // Shown on site as a QR image, it is a link to the scan page here: the owner's
    // phone camera opens it and sees the code verified by the gateway.
    let path = scan_url
        .strip_prefix(&format!("http://{}", dev.http))
        .unwrap_or_else(|| panic!("{scan_url} is not on this deployment"));
    assert!(path.starts_with("/v/CM1:"), "{path}");
    let page = http_get(&dev.http, path).await;
    assert!(page.contains("class=\"verdict ok\""), "{page}");
    assert!(page.contains("检查码"), "{page}");
    assert!(page.contains(&id), "{page}");
    let image = dev.data.join("inspection-code.png");
    let wrote = cli_as(
        &health_profile,
        &["inspect", "qr", &id, "--out", &image.display().to_string()],
    )
    .await;
    assert!(
        wrote.contains("a phone camera opens the scan page"),
        "{wrote}"
    );
    assert!(std::fs::read(&image).unwrap().starts_with(b"\x89PNG"));

    // 4. A result before the code was shown is refused; the owner scans; the result.
    let record = pb::RecordResultRequest {
        inspection_id: id.clone(),
        has_findings: false,
        summary: "no findings".into(),
        idempotency_key: "e2e-record".into(),
    };
    let early = inspection
        .record_result(with_token(record.clone(), &inspector))
        .await;
    assert_eq!(early.unwrap_err().code(), Code::FailedPrecondition);
    let owner_profile = profile(&dev, "e2e-owner");
    let scanned = cli_as(&owner_profile, &["inspect", "scan", &vc_jwt]).await;
    assert!(scanned.starts_with("shown:"), "{scanned}");
    assert!(
        scanned.contains("state        shown (on site)"),
        "{scanned}"
    );
    let done = cli_as(
        &profile(&dev, "e2e-insp-h"),
        &[
            "inspect",
            "record",
            &id,
            "--summary",
            "no findings",
            "--idempotency-key",
            "e2e-record",
            "--json",
        ],
    )
    .await;
    let done: serde_json::Value = serde_json::from_str(done.trim()).unwrap();
    assert_eq!(done["state"], "INSPECTION_STATE_COMPLETED", "{done}");
    assert_eq!(done["has_findings"], false);
    let evaluated = cli_as(
        &owner_profile,
        &[
            "inspect",
            "evaluate",
            &id,
            "--score",
            "4",
            "--tag",
            "professional",
            "--tag",
            "code_shown",
            "--json",
        ],
    )
    .await;
    let evaluated: serde_json::Value = serde_json::from_str(evaluated.trim()).unwrap();
    assert_eq!(evaluated["inspection_id"], id.as_str(), "{evaluated}");

    // The department's statistics, as aggregates.
    let stats = cli(
        &dev,
        &["inspect", "stats", "--department", &health_org, "--json"],
    )
    .await;
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(stats["inspections"], 1, "{stats}");
    assert_eq!(stats["joint_share"], 1.0);
    assert_eq!(stats["evaluations"], 1);
    assert_eq!(stats["mean_score"], 4.0);
    assert_eq!(stats["scores_withheld"], false);
    // The inspected department itself sees one evaluation only as a count.
    let own = cli_as(
        &health_profile,
        &["inspect", "stats", "--department", &health_org, "--json"],
    )
    .await;
    let own: serde_json::Value = serde_json::from_str(own.trim()).unwrap();
    assert_eq!(
        (
            &own["evaluations"],
            &own["scores_withheld"],
            &own["mean_score"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(true),
            &serde_json::json!(0.0)
        ),
        "{own}"
    );
    let listed = cli(&dev, &["inspect", "list", "--enterprise", &uscc]).await;
    assert!(listed.contains(&id), "{listed}");
    let history = cli(&dev, &["inspect", "history", "--enterprise", &uscc]).await;
    assert!(
        history.contains("CREDIT_GRADE") && history.contains("e2e-market"),
        "{history}"
    );
    // The operators' view of the same journey: decisions by rule, codes signed.
    let metrics = http_get(&dev.http, "/metrics").await;
    for sample in [
        r#"credmesh_inspection_decisions_total{rule="none",decision="issued"}"#,
        r#"credmesh_inspection_decisions_total{rule="multi_head",decision="conflict"}"#,
        r#"credmesh_inspection_decisions_total{rule="none",decision="joined"}"#,
        r#"credmesh_credentials_issued_total{kind="inspection_code"}"#,
    ] {
        assert!(metrics.contains(sample), "/metrics lacks {sample}");
    }
    dev.stop().await.unwrap();
}
