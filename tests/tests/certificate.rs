//! The certificate service end to end, against the real `credmesh dev` binary: the
//! demo permit verifies VALID at the verify gateway; while the holder's data dispute is
//! open the gateway says "disputed" and names the field; after a revocation it says
//! REVOKED. The `credmesh cert` and `credmesh dispute` commands drive a permit through
//! its whole life as a department and an enterprise would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_auth::PrincipalKind;
use credmesh_e2e::{Dev, credmesh_bin, operator_token, with_token};
use credmesh_proto::{
    certificate::v1::{self as pb, certificate_service_client::CertificateServiceClient},
    credential::v1::VerificationOutcome,
    verify::v1::{
        PresentedCredential, VerificationResult, VerifyRequest, presented_credential,
        verify_service_client::VerifyServiceClient,
    },
};
use tonic::transport::Channel;

/// The demo enterprise `credmesh dev` seeds, and the bureau that issued its permit.
const DEMO: &str = "91310106MA1FL3Q19D";
const MARKET: &str = "11310000MB2F10003D";

/// A client of `kind` for `org` with every scope its kind may hold; its token.
async fn client(
    channel: &Channel,
    operator: &str,
    id: &str,
    kind: PrincipalKind,
    org: &str,
) -> String {
    credmesh_e2e::client_token(
        channel,
        operator,
        kind,
        id,
        credmesh_identity::domain::scopes::all_for(kind),
        org,
    )
    .await
    .unwrap()
}

async fn verify(channel: &Channel, token: &str, qr: &str) -> VerificationResult {
    VerifyServiceClient::new(channel.clone())
        .verify(with_token(
            VerifyRequest {
                credential: Some(PresentedCredential {
                    form: Some(presented_credential::Form::Text(qr.into())),
                }),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
}

/// Verifies until `done` holds (the gateway refreshes its own region's lists about
/// every second), at most 5 seconds.
async fn verify_until(
    channel: &Channel,
    token: &str,
    qr: &str,
    done: impl Fn(&VerificationResult) -> bool,
) -> VerificationResult {
    let start = std::time::Instant::now();
    loop {
        let r = verify(channel, token, qr).await;
        if done(&r) || start.elapsed() > std::time::Duration::from_secs(5) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_permit_verifies_is_shown_disputed_while_a_dispute_is_open_and_revoked_after() {
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let operator = operator_token(&dev.banner);
    let demo = dev
        .banner
        .lines()
        .skip_while(|l| !l.starts_with("demo food business permit"))
        .nth(1)
        .unwrap()
        .to_string();
    let serial = demo
        .strip_prefix("serial ")
        .expect("the banner names the permit's serial");
    let dept = client(
        &channel,
        &operator,
        "market-bureau",
        PrincipalKind::Department,
        MARKET,
    )
    .await;
    let holder = client(
        &channel,
        &operator,
        "demo-enterprise",
        PrincipalKind::Enterprise,
        DEMO,
    )
    .await;
    let mut certs = CertificateServiceClient::new(channel.clone());
    let permit = certs
        .get_certificate(with_token(
            pb::GetCertificateRequest {
                serial: serial.into(),
            },
            &holder,
        ))
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();
    let qr = permit.credential.unwrap().qr_text;

    let r = verify_until(&channel, &operator, &qr, |r| {
        r.outcome == VerificationOutcome::Valid as i32
    })
    .await;
    assert_eq!(r.outcome, VerificationOutcome::Valid as i32, "{r:?}");
    assert!(!r.disputed);
    assert_eq!(
        r.kind,
        credmesh_proto::credential::v1::CredentialKind::Certificate as i32
    );

    certs
        .file_dispute(with_token(
            pb::FileDisputeRequest {
                serial: serial.into(),
                fields: vec![pb::DisputedField {
                    name: "address".into(),
                    recorded_value: String::new(),
                    claimed_value: "上海市静安区南京西路1268号".into(),
                }],
                evidence_sha256: vec!["ab".repeat(32)],
                explanation: "门牌号有误".into(),
                idempotency_key: "e2e-dispute".into(),
            },
            &holder,
        ))
        .await
        .unwrap();
    let r = verify_until(&channel, &operator, &qr, |r| r.disputed).await;
    assert!(r.disputed, "{r:?}");
    assert_eq!(r.disputed_fields, ["address"]);
    assert_eq!(r.outcome, VerificationOutcome::Valid as i32);

    // Offline too: the gateway's trust bundle carries the signed dispute notice, and
    // `credmesh verify` says which field is disputed without asking anyone.
    let bundle = dev.data.join("trust-bundle.pb");
    let fetched = tokio::process::Command::new(credmesh_bin())
        .args([
            "verify",
            "--fetch",
            &format!("http://{}", dev.http),
            "--bundle",
        ])
        .arg(&bundle)
        .output()
        .await
        .unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let mut offline = tokio::process::Command::new(credmesh_bin())
        .args(["verify", "-", "--json", "--bundle"])
        .arg(&bundle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = offline.stdin.take().unwrap();
        stdin.write_all(qr.as_bytes()).await.unwrap();
    }
    let out = offline.wait_with_output().await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["disputed"], true, "{answer}");
    assert_eq!(answer["disputed_fields"], serde_json::json!(["address"]));

    // And on the scan page a phone opens from the printed permit: valid, with the
    // disputed field named.
    let page = credmesh_e2e::http(
        &dev.http,
        "GET",
        &credmesh_credential::qr::scan_path(&qr),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("data-outcome=\"VALID\""),
        "{}",
        page.text()
    );
    assert!(
        page.text().contains("data-disputed=\"address\""),
        "{}",
        page.text()
    );

    certs
        .revoke_certificate(with_token(
            pb::RevokeCertificateRequest {
                serial: serial.into(),
                reason: "e2e revocation".into(),
                idempotency_key: String::new(),
            },
            &dept,
        ))
        .await
        .unwrap();
    let r = verify_until(&channel, &operator, &qr, |r| {
        r.outcome == VerificationOutcome::Revoked as i32
    })
    .await;
    assert_eq!(r.outcome, VerificationOutcome::Revoked as i32, "{r:?}");
    assert!(!r.superseded);
}

/// The commitment path (告知承诺) asks the inspection service for the credit grade: a D
/// imported there refuses the commitment with the grade named; after a B is imported,
/// the same commitment is issued.
#[tokio::test]
async fn commitments_are_judged_by_the_grade_the_inspection_service_holds() {
    use credmesh_proto::inspection::v1::{
        self as inpb, inspection_service_client::InspectionServiceClient,
    };
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let operator = operator_token(&dev.banner);
    let enterprise = client(
        &channel,
        &operator,
        "demo-ent",
        PrincipalKind::Enterprise,
        DEMO,
    )
    .await;
    let grade = |g: inpb::CreditGrade| inpb::ImportPolicyDataRequest {
        entries: vec![inpb::PolicyEntry {
            kind: inpb::PolicyKind::CreditGrade as i32,
            enterprise_uscc: DEMO.into(),
            grade: g as i32,
            note: "信用评价".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut inspection = InspectionServiceClient::new(channel.clone());
    inspection
        .import_policy_data(with_token(grade(inpb::CreditGrade::D), &operator))
        .await
        .unwrap();
    let field = |name: &str, value: &str| pb::Field {
        name: name.into(),
        value: value.into(),
    };
    let commitment = pb::IssueOnCommitmentRequest {
        holder: DEMO.into(),
        type_code: "11100000000013127D002".into(),
        fields: vec![
            field("operator_name", "上海静安面馆有限公司"),
            field("legal_representative", "王小明"),
            field("address", "上海市静安区南京西路1000号"),
            field("main_business", "餐饮服务经营者"),
            field("business_items", "热食类食品制售"),
        ],
        statement:
            "本单位承诺已具备食品经营许可条件，所提交材料真实有效，愿承担不实承诺的法律责任。"
                .into(),
        idempotency_key: "grade-d".into(),
    };
    let mut certificates = CertificateServiceClient::new(channel.clone());
    let refused = certificates
        .issue_on_commitment(with_token(commitment.clone(), &enterprise))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(
        credmesh_proto::status::reason(&refused).as_deref(),
        Some("CREDIT_GRADE_REFUSED")
    );

    inspection
        .import_policy_data(with_token(grade(inpb::CreditGrade::B), &operator))
        .await
        .unwrap();
    let issued = certificates
        .issue_on_commitment(with_token(
            pb::IssueOnCommitmentRequest {
                idempotency_key: "grade-b".into(),
                ..commitment
            },
            &enterprise,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(issued.certificate.is_some());
    dev.stop().await.unwrap();
}

/// A CLI client registered with `credmesh identity clients register` (as dev's
/// operator), with its own key and profile.
async fn cli_client(
    dev: &Dev,
    dir: &std::path::Path,
    id: &str,
    kind: PrincipalKind,
    org: &str,
) -> std::path::PathBuf {
    let (_, key_file) = credmesh_e2e::write_key(dir, &format!("{id}.pem"));
    let mut args = vec![
        "identity".to_string(),
        "clients".into(),
        "register".into(),
        "--id".into(),
        id.into(),
        "--kind".into(),
        kind.as_str().into(),
        "--name".into(),
        format!("CLI {id}"),
        "--org".into(),
        org.into(),
        "--key-file".into(),
        key_file.clone(),
    ];
    for scope in credmesh_identity::domain::scopes::all_for(kind) {
        args.extend(["--scope".to_string(), scope]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&dev.data.join("cli-profile.toml"), &args)
        .await
        .unwrap();
    let profile = dir.join(format!("{id}.toml"));
    std::fs::write(
        &profile,
        format!(
            "endpoint = \"http://{}\"\nclient_id = \"{id}\"\nkey_file = \"{key_file}\"\n",
            dev.grpc
        ),
    )
    .unwrap();
    profile
}

/// Runs the CLI as `profile`: its stdout, or its stderr as the error.
async fn cli(profile: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let run = credmesh_e2e::cli_as(profile, args).await;
    if run.status == Some(0) {
        Ok(run.stdout)
    } else {
        Err(run.stderr)
    }
}

/// Runs the CLI with `--json` and parses each line of its answer.
async fn cli_json(profile: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(profile, &all)
        .await
        .unwrap_or_else(|e| panic!("credmesh {args:?} failed: {e}"));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn the_cert_and_dispute_commands_take_a_permit_through_its_life() {
    let dev = Dev::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dept = cli_client(
        &dev,
        dir.path(),
        "market-cli",
        PrincipalKind::Department,
        MARKET,
    )
    .await;
    let ent = cli_client(
        &dev,
        dir.path(),
        "demo-cli",
        PrincipalKind::Enterprise,
        DEMO,
    )
    .await;
    let food = "11100000000013127D002";
    let fields = [
        "--field",
        "operator_name=上海静安面馆有限公司",
        "--field",
        "legal_representative=王小明",
        "--field",
        "address=上海市静安区南京西路1000号",
        "--field",
        "main_business=餐饮服务经营者",
        "--field",
        "business_items=热食类食品制售",
    ];

    // The seeded types, the comprehensive permit with what it bundles.
    let types = cli(&dept, &["cert", "types"]).await.unwrap();
    for name in ["食品经营许可证", "公共场所卫生许可证", "行业综合许可证"] {
        assert!(types.contains(name), "{types}");
    }
    assert!(
        types.contains(&format!("bundles (便利店): {food}")),
        "{types}"
    );

    // Issue, retried with the same key: one permit.
    let mut issue = vec!["cert", "issue", "--holder", DEMO, "--type", food];
    issue.extend(fields);
    issue.extend(["--validity-days", "30", "--idempotency-key", "cli-issue"]);
    let issued = cli_json(&dept, &issue).await.remove(0);
    assert_eq!(issued["state"], "active", "{issued}");
    assert_eq!(issued["version"], 1);
    let serial = issued["serial"].as_str().unwrap().to_string();
    assert_eq!(cli_json(&dept, &issue).await[0]["serial"], serial.as_str());
    // Field values are checked against the type's schema.
    let bad: Vec<&str> = issue
        .iter()
        .map(|a| match *a {
            "main_business=餐饮服务经营者" => "main_business=游乐场",
            "cli-issue" => "cli-bad",
            a => a,
        })
        .collect();
    let err = cli(&dept, &bad).await.unwrap_err();
    assert!(err.contains("main_business"), "{err}");
    // Only the issuing department changes it.
    let err = cli(&ent, &["cert", "revoke", &serial, "--reason", "自行撤销"])
        .await
        .unwrap_err();
    assert!(err.contains("PermissionDenied"), "{err}");
    // Nor does another department, though it may issue (the Pudong bureau's own type).
    let pudong = cli_client(
        &dev,
        dir.path(),
        "pudong-cli",
        PrincipalKind::Department,
        "11310115MB2F10150U",
    )
    .await;
    let err = cli(
        &pudong,
        &["cert", "suspend", &serial, "--reason", "越权暂停"],
    )
    .await
    .unwrap_err();
    assert!(err.contains("NOT_ISSUING_DEPARTMENT"), "{err}");

    let changed = cli_json(
        &dept,
        &["cert", "suspend", &serial, "--reason", "抽检不合格"],
    )
    .await;
    assert_eq!(changed[0]["state"], "suspended");
    let changed = cli_json(
        &dept,
        &["cert", "reinstate", &serial, "--reason", "整改合格"],
    )
    .await;
    assert_eq!(changed[0]["state"], "active");
    let renewed = cli_json(&dept, &["cert", "renew", &serial, "--validity-days", "365"]).await;
    assert_eq!(renewed[0]["version"], 2);

    // The holder disputes the address: the permit shows it disputed.
    let filed = cli_json(
        &ent,
        &[
            "dispute",
            "file",
            &serial,
            "--field",
            "address=上海市静安区南京西路1001号",
            "--evidence",
            &"ab".repeat(32),
            "--explanation",
            "门牌号登记有误",
        ],
    )
    .await
    .remove(0);
    assert_eq!(filed["state"], "filed", "{filed}");
    assert_eq!(filed["fields"][0]["recorded"], "上海市静安区南京西路1000号");
    let id = filed["dispute_id"].as_str().unwrap().to_string();
    let shown = cli_json(&ent, &["cert", "show", &serial]).await.remove(0);
    assert_eq!(shown["disputed_fields"], serde_json::json!(["address"]));
    let listed = cli_json(&dept, &["dispute", "list", "--open"]).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["dispute_id"], id.as_str());
    assert_eq!(listed[1]["overdue_count"], 0);
    let text = cli(&dept, &["dispute", "list", "--overdue"]).await.unwrap();
    assert!(text.ends_with("overdue: 0\n"), "{text}");
    // Only the issuer accepts.
    assert!(cli(&ent, &["dispute", "accept", &id]).await.is_err());
    let accepted = cli_json(&dept, &["dispute", "accept", &id]).await.remove(0);
    assert_eq!(accepted["state"], "accepted");
    assert!(accepted["resolve_by"].as_i64().unwrap() > 0);
    let resolved = cli_json(
        &dept,
        &[
            "dispute",
            "resolve",
            &id,
            "--corrected",
            "--reason",
            "核实不动产权证，予以更正",
        ],
    )
    .await;
    assert_eq!(resolved[0]["state"], "corrected", "{resolved:?}");
    assert_eq!(resolved[1]["version"], 3);
    assert_eq!(
        resolved[1]["fields"]["address"],
        "上海市静安区南京西路1001号"
    );
    assert_eq!(resolved[1]["disputed_fields"], serde_json::json!([]));
    let text = cli(&dept, &["cert", "show", &serial]).await.unwrap();
    assert!(text.contains("version 3"), "{text}");

    let revoked = cli_json(
        &dept,
        &["cert", "revoke", &serial, "--reason", "以欺骗手段取得许可"],
    )
    .await;
    assert_eq!(revoked[0]["state"], "revoked");

    // The enterprise's own commitment (告知承诺), then a failed follow-up revokes it.
    let mut commit = vec!["cert", "commit", "--holder", DEMO, "--type", food];
    commit.extend(fields);
    commit.extend([
        "--statement",
        "本单位承诺已具备食品经营许可条件，所提交材料真实有效，愿承担不实承诺的法律责任。",
    ]);
    let committed = cli_json(&ent, &commit).await.remove(0);
    assert_eq!(committed["state"], "active", "{committed}");
    let committed = committed["serial"].as_str().unwrap();
    let followed = cli_json(
        &dept,
        &[
            "cert",
            "follow-up",
            committed,
            "--broken",
            "--finding",
            "现场核查：无专间",
        ],
    )
    .await;
    assert_eq!(followed[0]["state"], "revoked");
    dev.stop().await.unwrap();
}
