//! The enterprise-code service as production runs it: `credmesh serve identity`,
//! `serve license` and `serve entcode` as three processes on their own ports. Journey 1.3
//! (the code on the door) and journey 4 (a bank-loan presentation, used once). The
//! entcode process keeps its scenarios in PostgreSQL, migrated beforehand by
//! `credmesh migrate entcode`; an operator adds a scenario the enterprise then presents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use credmesh_e2e::{free_port, serve, wait_serving, with_token, write_key};
use credmesh_proto::{
    entcode::v1::{self as epb, enterprise_code_service_client::EnterpriseCodeServiceClient},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as lpb, license_service_client::LicenseServiceClient},
};
use tonic::transport::Channel;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn token(identity: &Channel, id: &str, key: &credmesh_credential::keys::IssuerKey) -> String {
    let assertion = credmesh_auth::client_assertion(id, key.signing_key(), now()).unwrap();
    IdentityServiceClient::new(identity.clone())
        .issue_token(ipb::IssueTokenRequest {
            client_id: id.into(),
            scopes: vec![],
            audience: String::new(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

async fn register(
    identity: &Channel,
    op: &str,
    id: &str,
    kind: credmesh_auth::PrincipalKind,
    scopes: &[&str],
    org: &str,
) -> credmesh_credential::keys::IssuerKey {
    let key = credmesh_credential::keys::IssuerKey::generate(id).unwrap();
    IdentityServiceClient::new(identity.clone())
        .register_client(with_token(
            ipb::RegisterClientRequest {
                client_id: id.into(),
                kind: kind.to_proto(),
                display_name: id.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                organization: org.into(),
                public_key: key.public_key_bytes().to_vec(),
                ..Default::default()
            },
            op,
        ))
        .await
        .unwrap();
    key
}

async fn http_get(addr: &str, path: &str) -> String {
    credmesh_e2e::http(addr, "GET", path, &[], "")
        .await
        .unwrap()
        .text()
}

#[tokio::test]
async fn serve_entcode_alone_issues_codes_and_single_use_presentations() {
    use credmesh_auth::PrincipalKind::{Enterprise, Partner, Service};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, anchor) = write_key(d, "anchor.pem");
    let (_, token_key) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, license_signing) = write_key(d, "license-signing.pem");
    let (_, entcode_signing) = write_key(d, "entcode-signing.pem");
    let identity_addr = format!("127.0.0.1:{}", free_port());
    let license_addr = format!("127.0.0.1:{}", free_port());
    let entcode_addr = format!("127.0.0.1:{}", free_port());

    let _identity = serve(
        "identity",
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/identity.db", d.display()),
            ),
            ("CREDMESH_ANCHOR_KEY_FILE", anchor),
            ("CREDMESH_TOKEN_KEY_FILE", token_key),
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
    let op = token(&identity, "operator", &operator).await;
    let write = |name: &str, key: &credmesh_credential::keys::IssuerKey| {
        let path = d.join(name);
        std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
        path.display().to_string()
    };
    let license_client = register(&identity, &op, "license", Service, &["identity.keys"], "").await;
    let entcode_client = register(
        &identity,
        &op,
        "entcode",
        Service,
        &["identity.keys", "license.read"],
        "",
    )
    .await;

    let _license = serve(
        "license",
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/license.db", d.display()),
            ),
            ("CREDMESH_SIGNING_KEY_FILE", license_signing),
            (
                "CREDMESH_CLIENT_KEY_FILE",
                write("license-client.pem", &license_client),
            ),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            ("CREDMESH_GRPC_ADDR", license_addr.clone()),
            ("CREDMESH_HTTP_ADDR", license_addr.clone()),
        ],
    );
    let license = wait_serving(&license_addr, "credmesh.license.v1.LicenseService").await;
    let entcode_db = credmesh_testkit::postgres::fresh_database().await.unwrap();
    let migrated = tokio::process::Command::new(credmesh_e2e::credmesh_bin())
        .args(["migrate", "entcode"])
        .env("DATABASE_URL", &entcode_db)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let _entcode = serve(
        "entcode",
        &[
            ("DATABASE_URL", entcode_db),
            ("CREDMESH_MIGRATE", "false".into()),
            ("CREDMESH_SIGNING_KEY_FILE", entcode_signing),
            (
                "CREDMESH_CLIENT_KEY_FILE",
                write("entcode-client.pem", &entcode_client),
            ),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            ("CREDMESH_LICENSE_URL", format!("http://{license_addr}")),
            ("CREDMESH_GRPC_ADDR", entcode_addr.clone()),
            ("CREDMESH_HTTP_ADDR", entcode_addr.clone()),
        ],
    );
    let entcode = wait_serving(&entcode_addr, "credmesh.entcode.v1.EnterpriseCodeService").await;

    // Market regulation establishes the enterprise; nobody applies for a code.
    let uscc = "91310000132260250X";
    LicenseServiceClient::new(license.clone())
        .establish_enterprise(with_token(
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
                business_scope: "汽车，摩托车，拖拉机等各种机动车整车的生产、销售。".into(),
                registration_authority: "11310000MB2F10003D".into(),
                ..Default::default()
            },
            &op,
        ))
        .await
        .unwrap();

    // The enterprise's own client reads its code; the scan page shows it valid.
    let ent_key = register(
        &identity,
        &op,
        "saic",
        Enterprise,
        &["entcode.present"],
        uscc,
    )
    .await;
    let ent = token(&identity, "saic", &ent_key).await;
    let mut client = EnterpriseCodeServiceClient::new(entcode.clone());
    let code = client
        .get_enterprise_code(with_token(
            epb::GetEnterpriseCodeRequest { uscc: uscc.into() },
            &ent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code.code.unwrap().id,
        format!("urn:credmesh:entcode:{uscc}")
    );
    let page = http_get(&entcode_addr, &code.scan_path).await;
    assert!(page.contains("data-outcome=\"VALID\""), "{page}");
    assert!(page.contains("上海汽车集团股份有限公司"));

    // Journey 4: a bank-loan presentation, checked by a bank once, then "already used".
    let p = client
        .create_presentation(with_token(
            epb::CreatePresentationRequest {
                uscc: uscc.into(),
                scenario: "bank-loan".into(),
            },
            &ent,
        ))
        .await
        .unwrap()
        .into_inner();
    let bank_key = register(&identity, &op, "js-bank", Partner, &["verify"], "").await;
    let bank = token(&identity, "js-bank", &bank_key).await;
    let qr = p.presentation.unwrap().qr_text;
    let check = |qr: String| {
        let mut client = client.clone();
        let bank = bank.clone();
        async move {
            client
                .verify_presentation(with_token(
                    epb::VerifyPresentationRequest { qr_text: qr },
                    &bank,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = check(qr.clone()).await;
    assert_eq!(first.reason, "VALID", "{first:?}");
    assert!(
        first
            .disclosed
            .iter()
            .any(|d| d.name == "registered_capital")
    );
    assert!(!first.disclosed.iter().any(|d| d.name == "domicile"));
    let second = check(qr).await;
    assert_eq!(second.reason, "ALREADY_USED");

    // The bootstrap operator adds a scenario; the enterprise presents it at once.
    let put = client
        .clone()
        .put_scenario(with_token(
            epb::PutScenarioRequest {
                name: "export".into(),
                description: "An export declaration: who and where".into(),
                fields: vec!["name".into(), "uscc".into(), "domicile".into()],
                reason: "customs pilot".into(),
                expected_version: Some(0),
                idempotency_key: "export-1".into(),
            },
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.scenario.unwrap().version, 1);
    let p = client
        .clone()
        .create_presentation(with_token(
            epb::CreatePresentationRequest {
                uscc: uscc.into(),
                scenario: "export".into(),
            },
            &ent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.scenario_version, 1);
    let names: Vec<&str> = p.disclosed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["name", "uscc", "domicile"]);
    let checked = check(p.presentation.unwrap().qr_text).await;
    assert_eq!(checked.reason, "VALID", "{checked:?}");
    assert_eq!(checked.scenario_version, 1);
}
