//! The license service end to end, against the real `credmesh dev` binary: establish
//! and revoke with the CLI, fetch the status lists over HTTP at the URLs the credential
//! names, verify with the shared verifier and with PyJWT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use credmesh_credential::{
    Bitstring, Outcome, Policy, Presented, StatusCache, TrustSnapshot, decode_envelope,
    envelope::{self, Context},
    verify,
};
use credmesh_e2e::{
    Dev, banner_value, credmesh_bin, free_port, interop, serve, wait_serving, with_token, write_key,
};
use credmesh_proto::{
    credential::v1::TrustList,
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
};
use tonic::transport::Channel;

/// `GET path` with an `Accept` header; (status, body).
async fn http_get(addr: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let answer = credmesh_e2e::http(addr, "GET", path, &[("Accept", accept)], "")
        .await
        .unwrap();
    assert!(
        !answer.head.to_ascii_lowercase().contains("chunked"),
        "documents are sent with a length"
    );
    (answer.status, answer.body)
}

/// Runs the CLI with dev's profile; its stdout, or a panic with stderr.
async fn cli(dev: &Dev, args: &[&str]) -> String {
    let out = tokio::process::Command::new(credmesh_bin())
        .args(args)
        .arg("--profile")
        .arg(dev.data.join("cli-profile.toml"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "credmesh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn jwt_payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn wait_license_serving(channel: Channel) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..300 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "credmesh.license.v1.LicenseService".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the license service never reported SERVING");
}

/// What a relying party holds: the region's trust list checked against its anchor.
async fn trust(channel: Channel) -> TrustSnapshot {
    let r = IdentityServiceClient::new(channel)
        .get_trust_list(ipb::GetTrustListRequest {})
        .await
        .unwrap()
        .into_inner();
    let anchor: [u8; 32] = r.anchor_public_key.as_slice().try_into().unwrap();
    let anchor = credmesh_credential::VerifyingKey::from_bytes(&anchor).unwrap();
    let list: TrustList =
        envelope::open(Context::TrustList, r.trust_list.as_ref().unwrap(), &anchor).unwrap();
    TrustSnapshot::from_trust_list(&list, now()).unwrap()
}

/// The three status lists of `revocation_url`'s list, fetched over HTTP as signed
/// envelopes.
async fn status(dev: &Dev, revocation_url: &str, trust: &TrustSnapshot) -> StatusCache {
    let path = revocation_url
        .strip_prefix(&format!("http://{}", dev.http))
        .expect("the status URL is on dev's HTTP address");
    let mut cache = StatusCache::new();
    for purpose in ["revocation", "suspension", "superseded"] {
        let p = path.replace("/revocation", &format!("/{purpose}"));
        let (code, body) = http_get(&dev.http, &p, "application/x-protobuf").await;
        assert_eq!(code, 200, "{p}");
        let env = decode_envelope(&body).unwrap();
        cache.insert_signed(&env, trust, 1 << 20).unwrap();
    }
    cache
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_license_established_and_revoked_with_the_cli_verifies_from_published_lists() {
    let dev = Dev::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    wait_license_serving(channel.clone()).await;
    let trust = trust(channel.clone()).await;

    // The banner's demo license is a valid credential.
    let demo_qr = banner_value(&dev.banner, "demo license of");
    assert!(demo_qr.starts_with("CM1:"), "{demo_qr}");

    // Establish with the CLI; a retry with the same key answers the same license.
    // A valid Jing'an code (check characters computed per GB 32100 / GB 11714).
    let uscc = "91310106MA1FL3QE5E";
    let establish = |code_as: &'static str| {
        let mut args = vec!["license", "establish", "--json"];
        // The code is an argument, as every license command takes it; `--uscc` still
        // works.
        if !code_as.is_empty() {
            args.push(code_as);
        }
        args.push(uscc);
        args
    };
    let rest = [
        "--name",
        "上海静安拉面馆有限公司",
        "--entity-type",
        "有限责任公司（自然人投资或控股）",
        "--legal-representative",
        "马小兰",
        "--legal-representative-id",
        "11010519491231002X",
        "--capital",
        "300000.00",
        "--long-term",
        "--established",
        "2024-06-01",
        "--domicile",
        "上海市静安区北京西路1号",
        "--scope",
        "餐饮服务。",
        "--authority",
        "11310106MB2F10062C",
        "--idempotency-key",
        "e2e-establish-1",
    ];
    let first = [establish(""), rest.to_vec()].concat();
    let first: serde_json::Value = serde_json::from_str(&cli(&dev, &first).await).unwrap();
    let again = [establish("--uscc"), rest.to_vec()].concat();
    let again: serde_json::Value = serde_json::from_str(&cli(&dev, &again).await).unwrap();
    assert_eq!(first["license_id"], again["license_id"]);
    assert_eq!(first["vc_jwt"], again["vc_jwt"]);
    assert_eq!(first["version"], 1);
    let vc = first["vc_jwt"].as_str().unwrap().to_string();
    let qr = first["qr"].as_str().unwrap().to_string();
    assert!(!vc.contains("11010519491231002X") && !first.to_string().contains("19491231"));

    // The credential names its status lists; they are served there, signed.
    let claims = jwt_payload(&vc);
    let url = claims["credentialStatus"][0]["statusListCredential"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        url,
        format!("http://{}/v1/status/SH/license/0/revocation", dev.http)
    );
    let cache = status(&dev, &url, &trust).await;
    for (form, input) in [
        ("vc-jwt", Presented::VcJwt(&vc)),
        ("qr", Presented::Qr(&qr)),
    ] {
        let v = verify(input, &trust, &cache, &Policy::default(), now());
        assert_eq!(v.outcome, Outcome::Valid, "{form}: {}", v.detail);
    }
    let demo = verify(
        Presented::Qr(&demo_qr),
        &trust,
        &cache,
        &Policy::default(),
        now(),
    );
    assert_eq!(demo.outcome, Outcome::Valid, "{}", demo.detail);

    // A library nobody on the project wrote verifies the license and the status list.
    let issuer_jwks = format!("http://{}/v1/trust/jwks.json", dev.http);
    let out = interop("verify_jwt.py", &[&issuer_jwks, &vc, "vc"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["claims"]["credentialSubject"]["name"],
        "上海静安拉面馆有限公司"
    );
    let (code, list_jwt) = http_get(
        &dev.http,
        &url.replace(&format!("http://{}", dev.http), ""),
        "*/*",
    )
    .await;
    assert_eq!(code, 200);
    let list_jwt = String::from_utf8(list_jwt).unwrap();
    let out = interop("verify_jwt.py", &[&issuer_jwks, &list_jwt, "vc"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["claims"]["type"][1], "BitstringStatusListCredential");

    // Revoke with the CLI: the published list carries the bit and the license answers
    // revoked.
    cli(
        &dev,
        &[
            "license",
            "revoke",
            uscc,
            "--reason",
            "沪市监静处〔2026〕1号行政处罚决定书",
        ],
    )
    .await;
    let path = url.replace(&format!("http://{}", dev.http), "");
    let (_, revoked_list) = http_get(&dev.http, &path, "*/*").await;
    let revoked_list = String::from_utf8(revoked_list).unwrap();
    let bits = Bitstring::decode(
        jwt_payload(&revoked_list)["credentialSubject"]["encodedList"]
            .as_str()
            .unwrap(),
        1 << 20,
    )
    .unwrap();
    let index = claims["credentialStatus"][0]["statusListIndex"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(bits.get(index), Some(true));
    let cache = status(&dev, &url, &trust).await;
    let v = verify(
        Presented::VcJwt(&vc),
        &trust,
        &cache,
        &Policy::default(),
        now(),
    );
    assert_eq!(
        v.outcome,
        Outcome::Revoked { superseded: false },
        "{}",
        v.detail
    );

    // The history says who did what; amending a revoked license is refused.
    let history = cli(&dev, &["license", "history", uscc]).await;
    assert!(history.contains("license.establish"), "{history}");
    assert!(history.contains("license.revoke"), "{history}");
    assert!(
        history.contains("reason: 沪市监静处〔2026〕1号行政处罚决定书"),
        "the revocation's reason, read as a sentence: {history}"
    );
    let out = tokio::process::Command::new(credmesh_bin())
        .args([
            "license",
            "amend",
            uscc,
            "--name",
            "新名字有限公司",
            "--profile",
        ])
        .arg(dev.data.join("cli-profile.toml"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("LICENSE_REVOKED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dev.stop().await.unwrap();
}

#[tokio::test]
async fn separate_serve_processes_register_the_key_and_issue_verifiable_licenses() {
    use credmesh_proto::license::v1::{self as lpb, license_service_client::LicenseServiceClient};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, anchor) = write_key(d, "anchor.pem");
    let (_, token) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, signing) = write_key(d, "license-signing.pem");
    let (client, client_file) = write_key(d, "license-client.pem");
    let identity_addr = format!("127.0.0.1:{}", free_port());
    let license_addr = format!("127.0.0.1:{}", free_port());

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
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(operator.public_key_bytes()),
            ),
            ("CREDMESH_GRPC_ADDR", identity_addr.clone()),
            ("CREDMESH_HTTP_ADDR", identity_addr.clone()),
        ],
    );
    let identity = wait_serving(&identity_addr, "credmesh.identity.v1.IdentityService").await;
    let assertion =
        credmesh_auth::client_assertion("operator", operator.signing_key(), now()).unwrap();
    let op = IdentityServiceClient::new(identity.clone())
        .issue_token(ipb::IssueTokenRequest {
            client_id: "operator".into(),
            scopes: vec![],
            audience: String::new(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    IdentityServiceClient::new(identity.clone())
        .register_client(with_token(
            ipb::RegisterClientRequest {
                client_id: "license".into(),
                kind: credmesh_auth::PrincipalKind::Service.to_proto(),
                display_name: "License service".into(),
                scopes: vec!["identity.keys".into()],
                public_key: client.public_key_bytes().to_vec(),
                ..Default::default()
            },
            &op,
        ))
        .await
        .unwrap();

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

    // The operator's token (validated with identity's JWKS fetched over gRPC) issues.
    let mut req = tonic::Request::new(lpb::EstablishEnterpriseRequest {
        uscc: "91310000132260250X".into(),
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
        business_scope:
            "汽车，摩托车，拖拉机等各种机动车整车，机械设备，总成及零部件的生产、销售。".into(),
        registration_authority: "11310000MB2F10003D".into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {op}").parse().unwrap());
    let v = LicenseServiceClient::new(license.clone())
        .establish_enterprise(req)
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    let vc = v.credential.unwrap().vc_jwt;

    // Identity's trust list vouches for the license key; the lists come from license.
    let trust = trust(identity).await;
    assert!(
        trust.get(&v.kid).is_some(),
        "the key was registered with identity"
    );
    let mut cache = StatusCache::new();
    for purpose in [1, 2, 3] {
        let env = LicenseServiceClient::new(license.clone())
            .get_status_list(lpb::GetStatusListRequest {
                list_id: "SH/license/0".into(),
                purpose,
            })
            .await
            .unwrap()
            .into_inner()
            .status_list
            .unwrap();
        cache.insert_signed(&env, &trust, 1 << 20).unwrap();
    }
    let checked = verify(
        Presented::VcJwt(&vc),
        &trust,
        &cache,
        &Policy::default(),
        now(),
    );
    assert_eq!(checked.outcome, Outcome::Valid, "{}", checked.detail);
}
