//! The verify gateway end to end, against the real `credmesh dev` binary: the demo
//! license verified over HTTP/JSON and gRPC with the banner's operator token, then
//! offline with `credmesh verify` from the gateway's trust bundle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_e2e::{
    Dev, banner_value, credmesh_bin, free_port, post_json, serve, wait_serving, with_token,
    write_key,
};
use credmesh_proto::verify::v1::{
    PresentedCredential, VerifyRequest, presented_credential::Form,
    verify_service_client::VerifyServiceClient,
};
use tonic::transport::Channel;

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

    // The gateway's audit names both verifications (HTTP and gRPC) by the operator, who
    // reads every partner's audit (scope verify.audit.read) with the dev profile.
    let profile = dev.data.join("cli-profile.toml");
    let profile = profile.to_str().unwrap();
    let mut entries = Vec::new();
    for _ in 0..100 {
        let (ok, out) = cli(
            &[
                "verify",
                "audit",
                "--profile",
                profile,
                "--since",
                "1h",
                "--outcome",
                "valid",
                "--json",
            ],
            None,
        )
        .await;
        assert!(ok, "{out}");
        entries = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        // Identical verifications in one second may share an entry, with their count.
        let verifications: u64 = entries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
        if verifications >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let verifications: u64 = entries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert!(verifications >= 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e["outcome"] == "valid" && e["kind"] == "business_license")
    );
    let (ok, out) = cli(
        &[
            "verify",
            "audit",
            "--profile",
            profile,
            "--since",
            "yesterday",
        ],
        None,
    )
    .await;
    assert!(!ok && out.contains("--since"), "{out}");

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
    // Partners reach the region at its public URL (dev's HTTP address), where its trust
    // list is served.
    let public = format!("http://{}", dev.http);
    assert!(
        out.contains(&format!("CREDMESH_PARTNERS=SH={public}@")),
        "{out}"
    );
    let pin = out
        .lines()
        .find(|l| l.trim_start().starts_with("credmesh identity anchors pin"))
        .unwrap_or_else(|| panic!("no pin line: {out}"));
    assert!(pin.ends_with(&format!("--partner-url {public}")), "{pin}");

    // The printed line works as printed (here pinning the key as if it were JS's): the
    // partner's URL is recorded, and the connection goes to our own identity.
    let mut args: Vec<&str> = pin.split_whitespace().skip(1).collect();
    let region = args.iter().position(|a| *a == "--region").unwrap() + 1;
    args[region] = "JS";
    args.extend(["--profile", profile]);
    let (ok, out) = cli(&args, None).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&["identity", "anchors", "list", "--profile", profile], None).await;
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("JS") && l.ends_with(&public)),
        "{out}"
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn separate_serve_processes_on_postgresql_and_redis_verify_and_revoke_within_a_second() {
    use base64::Engine as _;
    use credmesh_proto::{
        identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
        license::v1::{self as lpb, license_service_client::LicenseServiceClient},
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (anchor_key, anchor) = write_key(d, "anchor.pem");
    let (_, token) = write_key(d, "token.pem");
    let (operator, operator_file) = write_key(d, "operator.pem");
    let (_, signing) = write_key(d, "license-signing.pem");
    let (client, client_file) = write_key(d, "license-client.pem");
    let (bank, _) = write_key(d, "bank.pem");
    let identity_addr = format!("127.0.0.1:{}", free_port());
    let license_addr = format!("127.0.0.1:{}", free_port());
    let verify_addr = format!("127.0.0.1:{}", free_port());
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);

    // The region's public URL is where its status lists are served (an ingress in
    // production; here the license process itself).
    let _identity = serve(
        "identity",
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/identity.db", d.display()),
            ),
            ("CREDMESH_ANCHOR_KEY_FILE", anchor),
            ("CREDMESH_TOKEN_KEY_FILE", token),
            (
                "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
                b64(&operator.public_key_bytes()),
            ),
            ("CREDMESH_PUBLIC_URL", format!("http://{license_addr}")),
            ("CREDMESH_GRPC_ADDR", identity_addr.clone()),
            ("CREDMESH_HTTP_ADDR", identity_addr.clone()),
        ],
    );
    let identity = wait_serving(&identity_addr, "credmesh.identity.v1.IdentityService").await;
    let token_for =
        |client: &str, key: &credmesh_credential::keys::IssuerKey| ipb::IssueTokenRequest {
            client_id: client.into(),
            scopes: vec![],
            audience: String::new(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                credmesh_auth::client_assertion(client, key.signing_key(), now()).unwrap(),
            )),
        };
    let mut id = IdentityServiceClient::new(identity.clone());
    let op = id
        .issue_token(token_for("operator", &operator))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let as_operator = |msg| with_token(msg, &op);
    for (id_, kind, scope, key) in [
        (
            "license",
            credmesh_auth::PrincipalKind::Service,
            "identity.keys",
            &client,
        ),
        (
            "bank-hangzhou",
            credmesh_auth::PrincipalKind::Partner,
            "verify",
            &bank,
        ),
    ] {
        id.register_client(as_operator(ipb::RegisterClientRequest {
            client_id: id_.into(),
            kind: kind.to_proto(),
            display_name: id_.into(),
            scopes: vec![scope.into()],
            public_key: key.public_key_bytes().to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    let bank_token = id
        .issue_token(token_for("bank-hangzhou", &bank))
        .await
        .unwrap()
        .into_inner()
        .access_token;

    let _license = serve(
        "license",
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/license.db", d.display()),
            ),
            ("CREDMESH_SIGNING_KEY_FILE", signing),
            ("CREDMESH_CLIENT_KEY_FILE", client_file),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            ("CREDMESH_PUBLIC_URL", format!("http://{license_addr}")),
            ("CREDMESH_GRPC_ADDR", license_addr.clone()),
            ("CREDMESH_HTTP_ADDR", license_addr.clone()),
        ],
    );
    let license = wait_serving(&license_addr, "credmesh.license.v1.LicenseService").await;
    let _verify = serve(
        "verify",
        &[
            (
                "DATABASE_URL",
                credmesh_testkit::postgres::fresh_database().await.unwrap(),
            ),
            ("REDIS_URL", credmesh_testkit::redis::shared_url()),
            (
                "CREDMESH_CACHE_PREFIX",
                credmesh_testkit::redis::unique_prefix(),
            ),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            (
                "CREDMESH_ANCHOR_PUBLIC_KEY",
                b64(&anchor_key.public_key_bytes()),
            ),
            ("CREDMESH_GRPC_ADDR", verify_addr.clone()),
            ("CREDMESH_HTTP_ADDR", verify_addr.clone()),
        ],
    );
    wait_serving(&verify_addr, "credmesh.verify.v1.VerifyService").await;

    let uscc = "91310000132260250X";
    let mut req = with_token(
        lpb::EstablishEnterpriseRequest {
            uscc: uscc.into(),
            name: "上海汽车集团股份有限公司".into(),
            entity_type: "其他股份有限公司（上市）".into(),
            legal_representative: "王晓秋".into(),
            registered_capital: Some(lpb::Money {
                amount: "11683461365.00".into(),
                currency_code: "CNY".into(),
            }),
            establishment_date: "1984-04-16".into(),
            business_term: Some(lpb::BusinessTerm {
                long_term: true,
                ..Default::default()
            }),
            domicile: "中国（上海）自由贸易试验区松涛路563号1号楼509室".into(),
            business_scope: "汽车整车的生产、销售。".into(),
            registration_authority: "11310000MB2F10003D".into(),
            ..Default::default()
        },
        &op,
    );
    req.set_timeout(std::time::Duration::from_secs(30));
    let v = LicenseServiceClient::new(license.clone())
        .establish_enterprise(req)
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    let vc = v.credential.unwrap().vc_jwt;
    let body = serde_json::json!({ "credential": vc }).to_string();
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        answer = post_json(&verify_addr, "/v1/verify", &bank_token, &body)
            .await
            .1;
        if answer["outcome"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["form"], "vc-jwt");

    LicenseServiceClient::new(license)
        .revoke_license(with_token(
            lpb::RevokeLicenseRequest {
                uscc: uscc.into(),
                reason: "沪市监处〔2026〕2号".into(),
                ..Default::default()
            },
            &op,
        ))
        .await
        .unwrap();
    let revoked_at = std::time::Instant::now();
    loop {
        let (_, a) = post_json(&verify_addr, "/v1/verify", &bank_token, &body).await;
        if a["outcome"] == "revoked" {
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_millis(2500),
            "still {a} after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The operator's CLI against separate processes: the token from identity
    // (identity_endpoint), the call to license.
    let profile = d.join("operator.toml");
    std::fs::write(
        &profile,
        format!(
            "endpoint = \"http://{license_addr}\"\nidentity_endpoint = \"http://{identity_addr}\"\n\
             client_id = \"operator\"\nkey_file = \"{operator_file}\"\n"
        ),
    )
    .unwrap();
    let run = credmesh_e2e::cli_as(&profile, &["license", "show", uscc]).await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    assert!(run.stdout.contains("revoked"), "{}", run.output());
    // Asked of license itself, the token is refused, and the error says what to set.
    let run = credmesh_e2e::cli_as(
        &profile,
        &["license", "show", uscc, "--identity-endpoint", ""],
    )
    .await;
    assert_ne!(run.status, Some(0), "{}", run.output());
    assert!(
        run.output().contains(&format!(
            "http://{license_addr} is not the identity service"
        )) && run.output().contains("identity_endpoint"),
        "{}",
        run.output()
    );
}

/// A partner in another language with nothing but the address: the official Python
/// gRPC runtime builds VerifyService's types from server reflection and verifies the
/// demo license (tools/interop/reflect_verify.py).
#[tokio::test]
async fn a_partner_verifies_through_grpc_reflection_alone_from_python() {
    let dev = Dev::start().await.unwrap();
    let token = banner_value(&dev.banner, "operator token");
    let qr = banner_value(&dev.banner, "demo license of");
    // The gateway may still be loading the trust list right after start.
    let mut last = serde_json::Value::Null;
    for _ in 0..50 {
        let out = credmesh_e2e::interop("reflect_verify.py", &[&dev.grpc, &token, &qr])
            .await
            .unwrap();
        last = serde_json::from_str(&out).unwrap();
        if last["answer"]["result"]["outcome"] == "VERIFICATION_OUTCOME_VALID" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let result = &last["answer"]["result"];
    assert_eq!(result["outcome"], "VERIFICATION_OUTCOME_VALID", "{last}");
    assert_eq!(result["kind"], "CREDENTIAL_KIND_BUSINESS_LICENSE", "{last}");
    assert_eq!(result["subject"], qr_subject(&dev.banner), "{last}");
    assert_eq!(
        last["methods"],
        serde_json::json!(["BatchVerify", "ListVerificationAudit", "Verify"])
    );
}

/// A partner in another language over HTTP alone: a Python client with PyJWT signs a
/// client assertion with the key `credmesh keygen` wrote, trades it for a token at the
/// OAuth 2.0 token endpoint and verifies the demo license at `/v1/verify`
/// (tools/interop/http_partner.py).
#[tokio::test]
async fn a_partner_gets_a_token_and_verifies_over_http_alone_from_python() {
    let dev = Dev::start().await.unwrap();
    let qr = banner_value(&dev.banner, "demo license of");
    let key = dev.data.join("bank-ningbo.pem");
    let key = key.to_str().unwrap();
    let operator = dev.data.join("cli-profile.toml");
    let bank = dev.data.join("bank-ningbo.toml");
    let (ok, out) = cli(&["keygen", "--out", key], None).await;
    assert!(ok, "{out}");
    let run = credmesh_e2e::cli_as(
        &operator,
        &[
            "identity",
            "clients",
            "register",
            "bank-ningbo",
            "--kind",
            "partner",
            "--name",
            "宁波银行 (ZJ partner)",
            "--scope",
            "verify",
            "--key-file",
            key,
            "--write-profile",
            bank.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.status, Some(0), "{}", run.output());

    // From a shell, as the README shows: the CLI signs the assertion, curl would post it.
    let run = credmesh_e2e::cli_as(&bank, &["identity", "assertion"]).await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    let form = format!(
        "grant_type=client_credentials&scope=verify&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
        run.stdout.trim()
    );
    let answer = credmesh_e2e::http(
        &dev.http,
        "POST",
        "/v1/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["scope"], "verify");

    // A token asked for the gateway by name (`audience=verify`) is accepted by it, as
    // `credmesh serve verify` accepts it.
    let run = credmesh_e2e::cli_as(&bank, &["identity", "assertion"]).await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    let form = format!(
        "grant_type=client_credentials&scope=verify&audience=verify&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
        run.stdout.trim()
    );
    let answer = credmesh_e2e::http(
        &dev.http,
        "POST",
        "/v1/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let bearer = format!("Bearer {}", answer.json()["access_token"].as_str().unwrap());
    let verified = credmesh_e2e::http(
        &dev.http,
        "POST",
        "/v1/verify",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", bearer.as_str()),
        ],
        &serde_json::json!({ "credential": qr }).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(verified.status, 200, "{}", verified.text());

    let base = format!("http://{}", dev.http);
    // The gateway may still be loading the trust list right after start.
    let mut last = serde_json::Value::Null;
    for _ in 0..50 {
        let out = credmesh_e2e::interop("http_partner.py", &[&base, "bank-ningbo", key, &qr])
            .await
            .unwrap();
        last = serde_json::from_str(&out).unwrap();
        if last["answer"]["outcome"] == "valid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last["answer"]["outcome"], "valid", "{last}");
    assert_eq!(last["answer"]["subject"], qr_subject(&dev.banner), "{last}");
    assert_eq!(last["token"]["token_type"], "Bearer", "{last}");
    assert_eq!(last["token"]["scope"], "verify", "{last}");
    assert_eq!(last["token"]["cache_control"], "no-store", "{last}");
    assert_eq!(
        last["replay"],
        serde_json::json!({"status": 401, "error": "invalid_client"}),
        "the same assertion twice: {last}"
    );
}

/// The USCC the banner's demo license line names.
fn qr_subject(banner: &str) -> String {
    let line = banner
        .lines()
        .find(|l| l.starts_with("demo license of"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().to_string()
}

/// Journey 5 at the gateway: the enterprise code and its presentations name the
/// enterprise's standing entry in the license service's standing list, so after a
/// revocation the gateway (and any partner region, or an offline bundle) answers
/// REVOKED for them from a status list. An amendment leaves the code valid.
#[tokio::test]
async fn a_revoked_enterprises_code_and_presentations_answer_revoked_at_the_gateway() {
    const DEMO: &str = "91310106MA1FL3Q19D";
    let dev = Dev::start().await.unwrap();
    let token = banner_value(&dev.banner, "operator token");
    let code = banner_value(&dev.banner, "scan its enterprise code");
    let operator = dev.data.join("cli-profile.toml");
    let owner = dev.data.join("demo-owner.toml");
    let outcome_of = |text: &str| {
        let body = serde_json::json!({ "credential": text }).to_string();
        let (http, token) = (dev.http.clone(), token.clone());
        async move {
            let (status, answer) = post_json(&http, "/v1/verify", &token, &body).await;
            assert_eq!(status, 200, "{answer}");
            answer
        }
    };
    // Polls until the outcome is `want` (the gateway may still be loading lists).
    let until = |text: String, want: &'static str| async move {
        let mut answer = serde_json::Value::Null;
        for _ in 0..100 {
            answer = outcome_of(&text).await;
            if answer["outcome"] == want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        answer
    };

    let answer = until(code.clone(), "valid").await;
    assert_eq!(answer["outcome"], "valid", "{answer}");
    assert_eq!(answer["kind"], "enterprise_code", "{answer}");
    assert_eq!(answer["status"]["consulted"], true, "{answer}");

    // An amendment supersedes license version 1, not the enterprise: the code stays valid.
    let run = credmesh_e2e::cli_as(
        &operator,
        &[
            "license",
            "amend",
            DEMO,
            "--domicile",
            "上海市静安区南京西路1200号",
            "--reason",
            "住所变更",
        ],
    )
    .await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    let run = credmesh_e2e::cli_as(&owner, &["entcode", "present", DEMO, "--qr"]).await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    let presentation = run.stdout.trim().to_string();
    let answer = outcome_of(&code).await;
    assert_eq!(answer["outcome"], "valid", "{answer}");

    // Revoked (吊销): the code and the presentation made before it answer revoked.
    let run = credmesh_e2e::cli_as(
        &operator,
        &["license", "revoke", DEMO, "--reason", "沪市监罚〔2026〕1号"],
    )
    .await;
    assert_eq!(run.status, Some(0), "{}", run.output());
    let answer = until(code, "revoked").await;
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    assert_eq!(answer["reason"], "REVOKED", "{answer}");
    let answer = until(presentation, "revoked").await;
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    assert_eq!(answer["kind"], "presentation", "{answer}");
}
