//! Observability end to end, against the real `credmesh` binary: `/metrics` as
//! Prometheus reads it (the official Python client's OpenMetrics parser) and the RED
//! counters moving by exactly the calls made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use credmesh_e2e::{Dev, DevOptions, interop};
use credmesh_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use serde_json::Value;
use tonic::{Code, Request, transport::Channel};

const IDENTITY: &str = "credmesh.identity.v1.IdentityService";

fn operator_token(banner: &str) -> String {
    let lines: Vec<&str> = banner.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("operator token"))
        .expect("the banner prints an operator token");
    lines[i + 1].trim().to_string()
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn connect(dev: &Dev) -> Channel {
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for _ in 0..100 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32) {
            return channel;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("credmesh dev never reported SERVING");
}

/// `/metrics` of `dev`, parsed by `prometheus_client.openmetrics.parser` (which fails on
/// anything the OpenMetrics format does not allow).
async fn scrape(dev: &Dev) -> Value {
    let out = interop(
        "check_metrics.py",
        &[&format!("http://{}/metrics", dev.http)],
    )
    .await
    .unwrap();
    serde_json::from_str::<Value>(&out).unwrap()["families"].clone()
}

/// The value of the sample `name` whose labels include `labels` (0 when absent: a
/// counter that never moved is not exposed).
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    families[family]["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

/// gRPC status names as the metrics spell them.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::NotFound => "NOT_FOUND",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        other => panic!("unexpected code {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_count_every_call_by_its_code() {
    let dev = Dev::start().await.unwrap();
    let channel = connect(&dev).await;
    let token = operator_token(&dev.banner);
    let mut identity = IdentityServiceClient::new(channel);

    let before = scrape(&dev).await;

    // Three successful calls, two NOT_FOUND, one refused by authentication, and a token
    // request with a wrong secret, whose code is whatever identity answers.
    for _ in 0..3 {
        identity
            .list_clients(authed(pb::ListClientsRequest::default(), &token))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let status = identity
            .get_client(authed(
                pb::GetClientRequest {
                    client_id: "no-such-client".into(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let status = identity
        .list_clients(pb::ListClientsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let refused = identity
        .issue_token(pb::IssueTokenRequest {
            client_id: "operator".into(),
            scopes: vec![],
            audience: "credmesh".into(),
            credential: Some(pb::issue_token_request::Credential::ClientSecret(
                "not-the-secret".into(),
            )),
        })
        .await
        .unwrap_err()
        .code();

    let after = scrape(&dev).await;

    // The three RED families, with their OpenMetrics types and unit.
    let family = |name: &str| after[name].clone();
    assert_eq!(family("credmesh_grpc_server_requests")["type"], "counter");
    assert_eq!(
        family("credmesh_grpc_server_request_duration_seconds")["type"],
        "histogram"
    );
    assert_eq!(
        family("credmesh_grpc_server_request_duration_seconds")["unit"],
        "seconds"
    );
    assert_eq!(
        family("credmesh_grpc_server_requests_in_flight")["type"],
        "gauge"
    );

    // Counters moved by exactly the calls made, under the right code.
    let requests = |families: &Value, method: &str, code: &str| {
        sample(
            families,
            "credmesh_grpc_server_requests",
            "credmesh_grpc_server_requests_total",
            &[("service", IDENTITY), ("method", method), ("code", code)],
        )
    };
    let moved =
        |method: &str, code: &str| requests(&after, method, code) - requests(&before, method, code);
    let expected: BTreeMap<(&str, &str), f64> = BTreeMap::from([
        (("ListClients", "OK"), 3.0),
        (("ListClients", "UNAUTHENTICATED"), 1.0),
        (("GetClient", "NOT_FOUND"), 2.0),
        (("IssueToken", code_name(refused)), 1.0),
    ]);
    for ((method, code), n) in &expected {
        assert_eq!(moved(method, code), *n, "{method} {code}");
    }
    // … and under no other code.
    for (method, code) in [
        ("ListClients", "NOT_FOUND"),
        ("ListClients", "INTERNAL"),
        ("GetClient", "OK"),
        ("IssueToken", "OK"),
    ] {
        assert_eq!(moved(method, code), 0.0, "{method} {code}");
    }

    // Every call is in the duration histogram: count, and the +Inf bucket, moved by 4.
    let histogram = |families: &Value, name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("service", IDENTITY), ("method", "ListClients")];
        labels.extend_from_slice(extra);
        sample(
            families,
            "credmesh_grpc_server_request_duration_seconds",
            name,
            &labels,
        )
    };
    let count = "credmesh_grpc_server_request_duration_seconds_count";
    let bucket = "credmesh_grpc_server_request_duration_seconds_bucket";
    assert_eq!(
        histogram(&after, count, &[]) - histogram(&before, count, &[]),
        4.0
    );
    assert_eq!(
        histogram(&after, bucket, &[("le", "+Inf")])
            - histogram(&before, bucket, &[("le", "+Inf")]),
        4.0
    );
    assert!(
        histogram(
            &after,
            "credmesh_grpc_server_request_duration_seconds_sum",
            &[]
        ) > 0.0
    );
    // Nothing is in flight once the calls have answered.
    assert_eq!(
        sample(
            &after,
            "credmesh_grpc_server_requests_in_flight",
            "credmesh_grpc_server_requests_in_flight",
            &[("service", IDENTITY), ("method", "ListClients")],
        ),
        0.0
    );
    dev.stop().await.unwrap();
}

/// Values that must never reach a log line, whatever path they travel.
const CLIENT_SECRET: &str = "cs-LEAKCHECK-4f1d0c9e7a2b";
const REGISTER_SECRET: &str = "cs-LEAKCHECK-register-93be11";
const BOGUS_TOKEN: &str =
    "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJsZWFrY2hlY2sifQ.TEVBS0NIRUNLLXNpZ25hdHVyZS1ieXRlcw";
const PRIVATE_KEY_BODY: &str = "MC4CAQAwBQYDK2VwBCIEIExFQUtDSEVDSy1wcml2YXRlLWtleS1ieXRlcyE=";
/// GB 11643 resident ID numbers: one with a wrong check digit, one valid.
const ID_NUMBER: &str = "110101199003071234";
const VALID_ID_NUMBER: &str = "310104198506120027";

fn private_key_pem() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END PRIVATE KEY-----\n")
}

/// The base64 lines of every PEM file under `dir` (the keys `credmesh dev` generated).
fn pem_bodies(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(pem_bodies(&path));
        } else if path.extension().is_some_and(|e| e == "pem") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned),
            );
        }
    }
    out
}

#[tokio::test]
async fn logs_are_json_lines_with_trace_ids_and_never_carry_secrets_tokens_or_id_numbers() {
    use credmesh_proto::license::v1::{self as lpb, license_service_client::LicenseServiceClient};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("stderr.log");
    let dev = Dev::start_with(
        &data,
        &DevOptions {
            env: vec![
                ("RUST_LOG".into(), "debug".into()),
                ("CREDMESH_LOG_FORMAT".into(), "json".into()),
            ],
            stderr: Some(log.clone()),
        },
    )
    .await
    .unwrap();
    let channel = connect(&dev).await;
    let token = operator_token(&dev.banner);
    let mut identity = IdentityServiceClient::new(channel.clone());

    // Token requests that fail: a wrong secret, an unknown client, a PEM for an assertion.
    for (client_id, credential) in [
        (
            "operator",
            pb::issue_token_request::Credential::ClientSecret(CLIENT_SECRET.into()),
        ),
        (
            "no-such-client",
            pb::issue_token_request::Credential::ClientSecret(CLIENT_SECRET.into()),
        ),
        (
            "operator",
            pb::issue_token_request::Credential::ClientAssertion(private_key_pem()),
        ),
        (
            "operator",
            pb::issue_token_request::Credential::ClientAssertion(BOGUS_TOKEN.into()),
        ),
    ] {
        let refused = identity
            .issue_token(pb::IssueTokenRequest {
                client_id: client_id.into(),
                scopes: vec![],
                audience: "credmesh".into(),
                credential: Some(credential),
            })
            .await;
        assert!(refused.is_err(), "{client_id}: {refused:?}");
    }
    // Calls with a forged bearer token, and with the real one.
    let forged = identity
        .list_clients(authed(pb::ListClientsRequest::default(), BOGUS_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    // Registrations carrying a secret: one refused (the id exists), one accepted, and one
    // with a private key where a certificate belongs.
    let register = |client_id: &str, secret: &str, certificate: String| {
        authed(
            pb::RegisterClientRequest {
                client_id: client_id.into(),
                kind: pb::PrincipalKind::Department as i32,
                display_name: "日志检查".into(),
                scopes: vec![],
                organization: String::new(),
                public_key: vec![],
                client_secret: secret.into(),
                enforcement_certificate: certificate,
                idempotency_key: String::new(),
            },
            &token,
        )
    };
    let _ = identity
        .register_client(register("operator", REGISTER_SECRET, String::new()))
        .await;
    let _ = identity
        .register_client(register("log-check", REGISTER_SECRET, String::new()))
        .await;
    let _ = identity
        .register_client(register(
            "log-check-pem",
            REGISTER_SECRET,
            private_key_pem(),
        ))
        .await;
    let _ = identity
        .issue_token(pb::IssueTokenRequest {
            client_id: "log-check".into(),
            scopes: vec![],
            audience: "credmesh".into(),
            credential: Some(pb::issue_token_request::Credential::ClientSecret(
                "cs-LEAKCHECK-wrong".into(),
            )),
        })
        .await;

    // The license register, with a legal representative's ID number: refused (a wrong
    // check digit; an existing enterprise) and accepted (an amendment).
    let mut license = LicenseServiceClient::new(channel);
    let establish = |id: &str| {
        authed(
            lpb::EstablishEnterpriseRequest {
                uscc: "91310101MA1K8N3D91".into(),
                name: "上海外滩咖啡有限公司".into(),
                entity_type: "有限责任公司（自然人投资或控股）".into(),
                legal_representative: "周可".into(),
                legal_representative_id_number: id.into(),
                registered_capital: Some(lpb::Money {
                    amount: "300000.00".into(),
                    currency_code: "CNY".into(),
                }),
                establishment_date: "2022-03-08".into(),
                business_term: Some(lpb::BusinessTerm {
                    start_date: "2022-03-08".into(),
                    end_date: String::new(),
                    long_term: true,
                }),
                domicile: "上海市黄浦区中山东一路18号".into(),
                business_scope: "餐饮服务；咖啡制品销售。".into(),
                registration_authority: "11310101MB2F10011U".into(),
                issue_date: String::new(),
                idempotency_key: String::new(),
            },
            &token,
        )
    };
    let mut license_answers = Vec::new();
    for id in [ID_NUMBER, VALID_ID_NUMBER] {
        license_answers.push(
            license
                .establish_enterprise(establish(id))
                .await
                .map(|_| ()),
        );
    }
    for id in [ID_NUMBER, VALID_ID_NUMBER] {
        let amend = authed(
            lpb::AmendLicenseRequest {
                uscc: "91310101MA1K8N3D91".into(),
                legal_representative: Some("吴敏".into()),
                legal_representative_id_number: Some(id.into()),
                reason: "法定代表人变更".into(),
                ..Default::default()
            },
            &token,
        );
        license_answers.push(license.amend_license(amend).await.map(|_| ()));
    }
    let license_served = license_answers
        .iter()
        .all(|a| !matches!(a, Err(s) if s.code() == Code::Unimplemented));
    if !license_served {
        eprintln!("this credmesh dev serves no license service: its log paths are not exercised");
    }

    dev.stop().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 20, "too few log lines at debug:\n{text}");

    // Every line is one JSON object; a credmesh line inside a span carries the trace (h2's
    // connection spans, outside any request, carry none).
    let mut traced = 0;
    for line in &lines {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        for field in ["timestamp", "level", "target"] {
            assert!(value.get(field).is_some(), "no {field}: {line}");
        }
        let ours = value["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("credmesh"));
        if (ours && value.get("span").is_some()) || value.get("trace_id").is_some() {
            let trace_id = value["trace_id"].as_str().unwrap_or_default();
            let span_id = value["span_id"].as_str().unwrap_or_default();
            assert!(
                trace_id.len() == 32 && span_id.len() == 16,
                "a line inside a request span lacks its trace: {line}"
            );
            traced += 1;
        }
    }
    assert!(traced > 0, "no line carried a trace id:\n{text}");
    assert!(
        lines.iter().any(|l| l.contains("token request refused")),
        "the refused token requests were not logged at all:\n{text}"
    );
    assert!(
        !license_served || lines.iter().any(|l| l.contains("license amended")),
        "the amendment with an ID number was not logged at all:\n{text}"
    );

    // None of the secrets, in any line.
    let mut secrets: Vec<String> = [
        CLIENT_SECRET,
        REGISTER_SECRET,
        "cs-LEAKCHECK",
        BOGUS_TOKEN,
        PRIVATE_KEY_BODY,
        ID_NUMBER,
        VALID_ID_NUMBER,
        &token,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Each part of a JWT is enough to recognise it.
    secrets.extend(
        BOGUS_TOKEN
            .split('.')
            .chain(token.split('.').skip(1))
            .map(str::to_owned),
    );
    secrets.extend(pem_bodies(&data));
    for secret in &secrets {
        for line in &lines {
            assert!(
                !line.contains(secret.as_str()),
                "a secret reached the logs ({secret}): {line}"
            );
        }
    }
}
