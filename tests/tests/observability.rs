//! Observability end to end, against the real `credmesh` binary: `/metrics` as
//! Prometheus reads it (the official Python client's OpenMetrics parser) and the RED
//! counters moving by exactly the calls made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use credmesh_e2e::{Dev, DevOptions, interop, operator_token, with_token};
use credmesh_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use serde_json::Value;
use tonic::{Code, transport::Channel};

const IDENTITY: &str = "credmesh.identity.v1.IdentityService";

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
            .list_clients(with_token(pb::ListClientsRequest::default(), &token))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let status = identity
            .get_client(with_token(
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

/// Plain HTTP answers are counted by the route template they matched, never by the
/// path a client chose: partners' JSON API, the token endpoint, the scan page, and
/// paths that match nothing.
#[tokio::test]
async fn http_answers_are_counted_by_route_method_and_status() {
    let dev = Dev::start().await.unwrap();
    let token = operator_token(&dev.banner);
    let qr = credmesh_e2e::banner_value(&dev.banner, "demo license of");
    let before = scrape(&dev).await;

    let post = |path: &'static str, auth: Option<String>, body: String| {
        let http = dev.http.clone();
        async move {
            let auth = auth.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            credmesh_e2e::http(&http, "POST", path, &headers, &body)
                .await
                .unwrap()
                .status
        }
    };
    let body = serde_json::json!({ "credential": qr }).to_string();
    // Two verifications, one without a token; a token request of the wrong form.
    assert_eq!(
        post("/v1/verify", Some(token.clone()), body.clone()).await,
        200
    );
    assert_eq!(
        post("/v1/verify", Some(token.clone()), body.clone()).await,
        200
    );
    assert_eq!(post("/v1/verify", None, body).await, 401);
    assert_eq!(post("/v1/token", None, "{}".into()).await, 400);
    // Two scans of different codes: one route. Two paths nobody serves.
    for path in ["/v/CM1:NOT-A-CODE", "/v/CM1:ANOTHER"] {
        let answer = credmesh_e2e::http(&dev.http, "GET", path, &[], "")
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{path}");
    }
    for path in ["/wp-admin/setup.php", "/v2/verify"] {
        let answer = credmesh_e2e::http(&dev.http, "GET", path, &[], "")
            .await
            .unwrap();
        assert_eq!(answer.status, 404, "{path}");
    }

    let after = scrape(&dev).await;
    assert_eq!(after["credmesh_http_server_requests"]["type"], "counter");
    assert_eq!(
        after["credmesh_http_server_request_duration_seconds"]["unit"],
        "seconds"
    );
    let requests = |families: &Value, route: &str, method: &str, code: &str| {
        sample(
            families,
            "credmesh_http_server_requests",
            "credmesh_http_server_requests_total",
            &[("route", route), ("method", method), ("code", code)],
        )
    };
    let moved = |route: &str, method: &str, code: &str| {
        requests(&after, route, method, code) - requests(&before, route, method, code)
    };
    assert_eq!(moved("/v1/verify", "POST", "200"), 2.0);
    assert_eq!(moved("/v1/verify", "POST", "401"), 1.0);
    assert_eq!(moved("/v1/token", "POST", "400"), 1.0);
    assert_eq!(moved("/v/{*qr}", "GET", "200"), 2.0);
    assert_eq!(moved("unmatched", "GET", "404"), 2.0);
    // No path a client sent became a label.
    let text = after["credmesh_http_server_requests"].to_string();
    for path in ["NOT-A-CODE", "wp-admin", "/v2/verify"] {
        assert!(!text.contains(path), "{path} is a label: {text}");
    }
    let count = |families: &Value| {
        sample(
            families,
            "credmesh_http_server_request_duration_seconds",
            "credmesh_http_server_request_duration_seconds_count",
            &[("route", "/v1/verify"), ("method", "POST")],
        )
    };
    assert_eq!(count(&after) - count(&before), 3.0);
    dev.stop().await.unwrap();
}

/// The domain metrics move with the work done: licenses issued and revoked, verify
/// answers by kind, region and outcome, result-cache hits, and the age of the region's
/// trust and status lists.
#[tokio::test]
async fn domain_metrics_count_issuance_revocation_and_verification() {
    use credmesh_proto::{
        license::v1::{self as lpb, license_service_client::LicenseServiceClient},
        verify::v1::{self as vpb, verify_service_client::VerifyServiceClient},
    };
    let dev = Dev::start().await.unwrap();
    let channel = connect(&dev).await;
    let operator = operator_token(&dev.banner);
    let partner = credmesh_e2e::client_token(
        &channel,
        &operator,
        credmesh_auth::PrincipalKind::Partner,
        "metrics-bank",
        vec!["verify".into()],
        "",
    )
    .await
    .unwrap();
    let lines: Vec<&str> = dev.banner.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("demo license of"))
        .unwrap();
    let qr = lines[at + 1].trim().to_string();

    let before = scrape(&dev).await;
    let counter = |families: &Value, family: &str, labels: &[(&str, &str)]| {
        sample(families, family, &format!("{family}_total"), labels)
    };

    // The first verification may fetch the status list; later ones hit the result cache.
    let mut verify = VerifyServiceClient::new(channel.clone());
    for _ in 0..3 {
        let r = verify
            .verify(with_token(
                vpb::VerifyRequest {
                    credential: Some(vpb::PresentedCredential {
                        form: Some(vpb::presented_credential::Form::Text(qr.clone())),
                    }),
                },
                &partner,
            ))
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        assert_eq!(
            r.outcome(),
            credmesh_proto::credential::v1::VerificationOutcome::Valid
        );
    }

    let uscc = credmesh_uscc::Uscc::from_parts('9', '1', "310101", "MA1METR1")
        .unwrap()
        .to_string();
    let mut license = LicenseServiceClient::new(channel.clone());
    license
        .establish_enterprise(with_token(credmesh_e2e::establishment(&uscc), &operator))
        .await
        .unwrap();
    license
        .revoke_license(with_token(
            lpb::RevokeLicenseRequest {
                uscc: uscc.clone(),
                reason: "吊销：指标测试".into(),
                ..Default::default()
            },
            &operator,
        ))
        .await
        .unwrap();
    // The age gauges are recomputed every 5 s: wait for the first values.
    let mut after = scrape(&dev).await;
    for _ in 0..40 {
        let aged = sample(
            &after,
            "credmesh_verify_trust_list_age_seconds",
            "credmesh_verify_trust_list_age_seconds",
            &[("region", "SH")],
        );
        if after["credmesh_verify_trust_list_age_seconds"]["samples"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            && aged >= 0.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        after = scrape(&dev).await;
    }
    let license_kind = [("kind", "business_license")];
    let moved = |family: &str, labels: &[(&str, &str)]| {
        counter(&after, family, labels) - counter(&before, family, labels)
    };
    assert_eq!(moved("credmesh_credentials_issued", &license_kind), 1.0);
    assert_eq!(moved("credmesh_credentials_revoked", &license_kind), 1.0);
    assert_eq!(
        moved(
            "credmesh_verify_outcomes",
            &[
                ("kind", "business_license"),
                ("region", "SH"),
                ("outcome", "valid")
            ]
        ),
        3.0
    );
    assert!(
        moved(
            "credmesh_verify_cache_requests",
            &[("cache", "result"), ("result", "hit")]
        ) >= 1.0,
        "repeated verifications of the same credential hit the result cache"
    );
    for gauge in [
        "credmesh_verify_trust_list_age_seconds",
        "credmesh_verify_status_list_age_seconds",
    ] {
        assert_eq!(after[gauge]["type"], "gauge", "{gauge}");
        assert!(
            after[gauge]["samples"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x["labels"]["region"] == "SH")),
            "{gauge} has no SH sample: {}",
            after[gauge]
        );
    }
    dev.stop().await.unwrap();
}

/// Values that must never reach a log line, whatever path they travel.
const CLIENT_SECRET: &str = "cs-LEAKCHECK-4f1d0c9e7a2b";
const REGISTER_SECRET: &str = "cs-LEAKCHECK-register-93be11";
/// Long enough to be accepted (32 characters at least).
const HTTP_SECRET: &str = "cs-LEAKCHECK-http-5e0c2a9d71b84f36";
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
        .list_clients(with_token(pb::ListClientsRequest::default(), BOGUS_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    // Registrations carrying a secret: one refused (the id exists), one accepted, and one
    // with a private key where a certificate belongs.
    let register = |client_id: &str, secret: &str, certificate: String| {
        with_token(
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

    // The same over HTTP, at the OAuth 2.0 token endpoint: a secret in the body that buys
    // a token, a wrong one in HTTP Basic, a forged assertion.
    let form = "application/x-www-form-urlencoded";
    let token_request = |headers: Vec<(&'static str, String)>, body: String| {
        let http = dev.http.clone();
        async move {
            let mut all = vec![("Content-Type", form.to_string())];
            all.extend(headers);
            let all: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
            credmesh_e2e::http(&http, "POST", "/v1/token", &all, &body)
                .await
                .unwrap()
        }
    };
    identity
        .register_client(with_token(
            pb::RegisterClientRequest {
                client_id: "log-check-http".into(),
                kind: pb::PrincipalKind::Partner as i32,
                display_name: "日志检查 (HTTP)".into(),
                scopes: vec!["verify".into()],
                client_secret: HTTP_SECRET.into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let bought = token_request(
        vec![],
        format!(
            "grant_type=client_credentials&client_id=log-check-http&client_secret={HTTP_SECRET}"
        ),
    )
    .await;
    assert_eq!(bought.status, 200, "{}", bought.text());
    let http_token = bought.json()["access_token"].as_str().unwrap().to_owned();
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{CLIENT_SECRET}"));
    let refused = token_request(
        vec![("Authorization", format!("Basic {basic}"))],
        "grant_type=client_credentials".into(),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let refused = token_request(
        vec![],
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={BOGUS_TOKEN}"
        ),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.text());

    // The license register, with a legal representative's ID number: refused (a wrong
    // check digit; an existing enterprise) and accepted (an amendment).
    let mut license = LicenseServiceClient::new(channel);
    let establish = |id: &str| {
        with_token(
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
        let amend = with_token(
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
        HTTP_SECRET,
        "cs-LEAKCHECK",
        BOGUS_TOKEN,
        PRIVATE_KEY_BODY,
        ID_NUMBER,
        VALID_ID_NUMBER,
        &token,
        &http_token,
        &basic,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Each part of a JWT is enough to recognise it.
    secrets.extend(
        BOGUS_TOKEN
            .split('.')
            .chain(token.split('.').skip(1))
            .chain(http_token.split('.').skip(1))
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

/// An in-process OTLP collector: the OpenTelemetry collector's `TraceService` over tonic,
/// keeping every span it is sent with its resource's `service.name`.
mod collector {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    };
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use tonic::{Request, Response, Status};

    /// A received span and the service that sent it.
    #[derive(Clone, Debug)]
    pub struct Received {
        pub service: String,
        pub span: Span,
    }

    impl Received {
        pub fn attribute(&self, key: &str) -> Option<AnyValue> {
            attribute(&self.span.attributes, key)
        }
    }

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<AnyValue> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    }

    #[derive(Clone, Default)]
    pub struct Collector {
        spans: Arc<Mutex<Vec<Received>>>,
    }

    impl Collector {
        /// Serves the collector on an ephemeral loopback port; returns it and its URL.
        pub async fn start() -> (Collector, String) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let collector = Collector::default();
            let service = TraceServiceServer::new(collector.clone());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
            );
            (collector, url)
        }

        pub fn spans(&self) -> Vec<Received> {
            self.spans.lock().unwrap().clone()
        }
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: Request<ExportTraceServiceRequest>,
        ) -> Result<Response<ExportTraceServiceResponse>, Status> {
            let mut spans = self.spans.lock().unwrap();
            for resource_spans in request.into_inner().resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| attribute(&r.attributes, "service.name"))
                    .and_then(|v| match v {
                        AnyValue::StringValue(s) => Some(s),
                        _ => None,
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(Received {
                            service: service.clone(),
                            span,
                        });
                    }
                }
            }
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }
}

const SPAN_KIND_INTERNAL: i32 = 1;
const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn int_attribute(span: &collector::Received, key: &str) -> Option<i64> {
    match span.attribute(key) {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i)) => Some(i),
        _ => None,
    }
}

fn status_code(span: &collector::Received) -> i32 {
    span.span.status.as_ref().map_or(0, |s| s.code)
}

async fn wait_serving_service(addr: &str, service: &str) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..300 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{service} at {addr} never reported SERVING");
}

#[tokio::test]
async fn calls_across_identity_and_license_processes_are_one_trace_each() {
    use base64::Engine as _;
    use credmesh_credential::keys::IssuerKey;
    use credmesh_e2e::Serve;
    use credmesh_proto::license::v1::{self as lpb, license_service_client::LicenseServiceClient};

    let (collector, otlp) = collector::Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = |name: &str| {
        let key = IssuerKey::generate(name).unwrap();
        let path = dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
        (key, path.display().to_string())
    };
    let (_, anchor) = key_file("anchor");
    let (_, token_key) = key_file("token");
    let (operator, _) = key_file("operator");
    let (_, signing) = key_file("signing");
    let (license_client, license_client_file) = key_file("license-client");
    let telemetry = |service: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
            (
                "DATABASE_URL".to_string(),
                format!(
                    "sqlite://{}",
                    dir.path().join(format!("{service}.db")).display()
                ),
            ),
        ]
    };

    let mut env = telemetry("identity");
    env.extend([
        ("CREDMESH_ANCHOR_KEY_FILE".to_string(), anchor),
        ("CREDMESH_TOKEN_KEY_FILE".to_string(), token_key),
        (
            "CREDMESH_BOOTSTRAP_OPERATOR_KEY".to_string(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes()),
        ),
    ]);
    let identity = Serve::start("identity", &env).await.unwrap();
    wait_serving_service(&identity.addr, IDENTITY).await;

    // License starts before identity knows its client: the first registration attempts
    // are refused, then succeed once the operator registers it.
    let mut env = telemetry("license");
    env.extend([
        ("CREDMESH_SIGNING_KEY_FILE".to_string(), signing),
        ("CREDMESH_CLIENT_KEY_FILE".to_string(), license_client_file),
        ("CREDMESH_CLIENT_ID".to_string(), "license".to_string()),
        (
            "CREDMESH_IDENTITY_URL".to_string(),
            format!("http://{}", identity.addr),
        ),
    ]);
    let license = Serve::start("license", &env).await.unwrap();

    let channel = Channel::from_shared(format!("http://{}", identity.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut identity_client = IdentityServiceClient::new(channel);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let assertion =
        credmesh_auth::client_assertion("operator", operator.signing_key(), now).unwrap();
    let token = identity_client
        .issue_token(pb::IssueTokenRequest {
            client_id: "operator".into(),
            scopes: vec![],
            audience: "credmesh".into(),
            credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    // Let at least one registration attempt fail first.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    identity_client
        .register_client(with_token(
            pb::RegisterClientRequest {
                client_id: "license".into(),
                kind: pb::PrincipalKind::Service as i32,
                display_name: "license".into(),
                scopes: vec!["identity.keys".into()],
                organization: String::new(),
                public_key: license_client.public_key_bytes().to_vec(),
                client_secret: String::new(),
                enforcement_certificate: String::new(),
                idempotency_key: String::new(),
            },
            &token,
        ))
        .await
        .unwrap();
    wait_serving_service(&license.addr, "credmesh.license.v1.LicenseService").await;

    // A call into license in a trace the test starts: its server span is the child of
    // the test's span, and whatever license asks identity joins the same trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = with_token(
        lpb::GetLicenseRequest {
            uscc: "91310101MA1K8N3D91".into(),
        },
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let answer = LicenseServiceClient::new(
        Channel::from_shared(format!("http://{}", license.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .get_license(request)
    .await;
    let get_license_code = answer.as_ref().err().map_or(Code::Ok, |s| s.code());

    // Wait for the spans: the batch exporters send every 100 ms.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = collector.spans();
        let has = |service: &str, name: &str| {
            spans
                .iter()
                .any(|s| s.service == service && s.span.name == name)
        };
        if has(
            "identity",
            "credmesh.identity.v1.IdentityService/RegisterIssuerKey",
        ) && has("license", "credmesh.license.v1.LicenseService/GetLicense")
        {
            // And one more export period, for spans that ended in the same moment.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            spans = collector.spans();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dump = || {
        spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} kind={} trace={} span={} parent={} status={}",
                    s.service,
                    s.span.name,
                    s.span.kind,
                    hex(&s.span.trace_id),
                    hex(&s.span.span_id),
                    hex(&s.span.parent_span_id),
                    status_code(s)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let find = |service: &str, name: &str, kind: i32| -> Vec<&collector::Received> {
        spans
            .iter()
            .filter(|s| s.service == service && s.span.name == name && s.span.kind == kind)
            .collect()
    };
    let children = |parent: &collector::Received, service: &str, name: &str, kind: i32| {
        spans
            .iter()
            .filter(|s| {
                s.service == service
                    && s.span.name == name
                    && s.span.kind == kind
                    && s.span.trace_id == parent.span.trace_id
                    && s.span.parent_span_id == parent.span.span_id
            })
            .collect::<Vec<_>>()
    };

    // 1. The key registration: each attempt is one trace, license's client spans the
    // parents of identity's server spans.
    let attempts = find("license", "license.register_issuer_key", SPAN_KIND_INTERNAL);
    assert!(
        attempts.len() >= 2,
        "a refused attempt, then one that succeeded:\n{}",
        dump()
    );
    let mut registered = 0;
    let mut refused = 0;
    for attempt in &attempts {
        assert!(
            attempt.span.parent_span_id.is_empty(),
            "an attempt is a root span"
        );
        let token_calls = children(
            attempt,
            "license",
            "credmesh.identity.v1.IdentityService/IssueToken",
            SPAN_KIND_CLIENT,
        );
        assert_eq!(
            token_calls.len(),
            1,
            "one token request per attempt:\n{}",
            dump()
        );
        let token_call = token_calls[0];
        let served = children(
            token_call,
            "identity",
            "credmesh.identity.v1.IdentityService/IssueToken",
            SPAN_KIND_SERVER,
        );
        assert_eq!(
            served.len(),
            1,
            "identity's span is the child of license's:\n{}",
            dump()
        );
        let server = served[0];
        assert_eq!(
            int_attribute(server, "rpc.grpc.status_code"),
            int_attribute(token_call, "rpc.grpc.status_code")
        );
        match int_attribute(token_call, "rpc.grpc.status_code") {
            Some(0) => {
                // The token came: the registration follows in the same trace.
                let register = children(
                    attempt,
                    "license",
                    "credmesh.identity.v1.IdentityService/RegisterIssuerKey",
                    SPAN_KIND_CLIENT,
                );
                assert_eq!(register.len(), 1, "{}", dump());
                assert_eq!(int_attribute(register[0], "rpc.grpc.status_code"), Some(0));
                assert_ne!(status_code(register[0]), STATUS_ERROR);
                let served = children(
                    register[0],
                    "identity",
                    "credmesh.identity.v1.IdentityService/RegisterIssuerKey",
                    SPAN_KIND_SERVER,
                );
                assert_eq!(served.len(), 1, "{}", dump());
                // The registry write is a database client span in the same trace, with
                // the semantic conventions' attribute names.
                let string = |v: &str| {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            v.into(),
                        ),
                    )
                };
                let store_spans: Vec<_> = spans
                    .iter()
                    .filter(|s| {
                        s.service == "identity"
                            && s.span.trace_id == served[0].span.trace_id
                            && s.span.kind == SPAN_KIND_CLIENT
                            && s.attribute("db.system.name") == string("sqlite")
                            && s.attribute("db.query.text").is_none()
                    })
                    .collect();
                assert!(
                    !store_spans.is_empty(),
                    "no database span under RegisterIssuerKey:\n{}",
                    dump()
                );
                // Each statement the store method ran is a child span with its text.
                let statements: Vec<_> = spans
                    .iter()
                    .filter(|s| {
                        s.span.kind == SPAN_KIND_CLIENT
                            && store_spans
                                .iter()
                                .any(|store| store.span.span_id == s.span.parent_span_id)
                    })
                    .collect();
                assert!(
                    statements.iter().any(|s| {
                        s.attribute("db.operation.name") == string("INSERT")
                            && s.span.name == "INSERT"
                            && s.attribute("db.system.name") == string("sqlite")
                            && matches!(
                                s.attribute("db.query.text"),
                                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text))
                                    if text.starts_with("INSERT") && !text.contains('\n')
                            )
                    }),
                    "no INSERT statement span under the store span:\n{}",
                    dump()
                );
                assert_eq!(
                    served[0].attribute("rpc.method"),
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            "RegisterIssuerKey".into()
                        )
                    )
                );
                registered += 1;
            }
            Some(code) => {
                // Refused: an error on the client's side, the client's mistake on the
                // server's (UNAUTHENTICATED is not a server failure).
                assert_eq!(code, Code::Unauthenticated as i64, "{}", dump());
                assert_eq!(status_code(token_call), STATUS_ERROR, "{}", dump());
                assert_ne!(status_code(server), STATUS_ERROR, "{}", dump());
                refused += 1;
            }
            None => panic!("no status code on the token request span:\n{}", dump()),
        }
    }
    assert_eq!(registered, 1, "{}", dump());
    assert!(refused >= 1, "{}", dump());

    // 2. The call the test traced: license's server span continues the test's trace.
    let get = find(
        "license",
        "credmesh.license.v1.LicenseService/GetLicense",
        SPAN_KIND_SERVER,
    );
    assert_eq!(get.len(), 1, "{}", dump());
    assert_eq!(hex(&get[0].span.trace_id), trace_id);
    assert_eq!(hex(&get[0].span.parent_span_id), parent_id);
    assert_eq!(
        int_attribute(get[0], "rpc.grpc.status_code"),
        Some(get_license_code as i64)
    );
    // Everything in that trace hangs off the test's span through license's.
    for span in spans.iter().filter(|s| hex(&s.span.trace_id) == trace_id) {
        let mut at = span;
        let mut hops = 0;
        while hex(&at.span.parent_span_id) != parent_id {
            at = spans
                .iter()
                .find(|s| s.span.span_id == at.span.parent_span_id)
                .unwrap_or_else(|| {
                    panic!("{} has no parent in the trace:\n{}", span.span.name, dump())
                });
            hops += 1;
            assert!(hops < 20);
        }
        assert_eq!(at.span.span_id, get[0].span.span_id, "{}", dump());
    }

    license.stop().await.unwrap();
    identity.stop().await.unwrap();
}

#[tokio::test]
async fn in_credmesh_dev_the_hops_between_services_are_traced_too() {
    let (collector, otlp) = collector::Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(
        &dir.path().join("data"),
        &DevOptions {
            env: vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
            ],
            stderr: None,
        },
    )
    .await
    .unwrap();

    // License registers its key with identity over loopback at start: one trace, the
    // client span in the process the parent of the server span in the same process.
    let register = "credmesh.identity.v1.IdentityService/RegisterIssuerKey";
    let tree = |spans: &[collector::Received]| {
        for attempt in spans
            .iter()
            .filter(|s| s.span.name == "license.register_issuer_key")
        {
            let child = |parent: &collector::Received, kind: i32| {
                spans
                    .iter()
                    .find(|s| {
                        s.span.name == register
                            && s.span.kind == kind
                            && s.span.trace_id == parent.span.trace_id
                            && s.span.parent_span_id == parent.span.span_id
                    })
                    .cloned()
            };
            if let Some(client) = child(attempt, SPAN_KIND_CLIENT)
                && let Some(server) = child(&client, SPAN_KIND_SERVER)
            {
                return Some((attempt.clone(), client, server));
            }
        }
        None
    };
    let mut found = None;
    for _ in 0..100 {
        found = tree(&collector.spans());
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (attempt, client, server) = found.unwrap_or_else(|| {
        panic!(
            "no license.register_issuer_key → client → server tree among {:?}",
            collector
                .spans()
                .iter()
                .map(|s| (&s.span.name, s.span.kind))
                .collect::<Vec<_>>()
        )
    });
    for span in [&attempt, &client, &server] {
        assert_eq!(span.service, "credmesh-dev");
    }
    assert_eq!(int_attribute(&client, "rpc.grpc.status_code"), Some(0));
    assert_eq!(int_attribute(&server, "rpc.grpc.status_code"), Some(0));
    dev.stop().await.unwrap();
}

/// The three journeys the on-call operator follows, each one trace in `credmesh dev`
/// (whose services call each other over loopback like separate processes): a permit
/// issuance that checks the holder's license with the license service, an inspection
/// plan that reads the license and the named inspector from identity, and a partner's
/// verification of the new permit at the gateway. Each call carries a `traceparent`;
/// every span the call caused has its trace id, every hop is a client span whose child
/// is the server span of the service called.
#[tokio::test]
async fn issuance_planning_and_partner_verification_are_each_one_trace() {
    use credmesh_auth::PrincipalKind;
    use credmesh_identity::domain::scopes::all_for;
    use credmesh_proto::certificate::v1::{self as cpb, certificate_service_client};
    use credmesh_proto::inspection::v1::{self as ipb, inspection_service_client};
    use credmesh_proto::verify::v1::{self as vpb, verify_service_client};

    const DEMO: &str = "91310106MA1FL3Q19D";
    const MARKET: &str = "11310000MB2F10003D";
    const FOOD: &str = "11100000000013127D002";

    let (collector, otlp) = collector::Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(
        &dir.path().join("data"),
        &DevOptions {
            env: vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
            ],
            stderr: None,
        },
    )
    .await
    .unwrap();
    let channel = connect(&dev).await;
    let operator = operator_token(&dev.banner);
    let token = |kind: PrincipalKind, id: &'static str| {
        let channel = channel.clone();
        let operator = operator.clone();
        async move {
            credmesh_e2e::client_token(&channel, &operator, kind, id, all_for(kind), MARKET)
                .await
                .unwrap()
        }
    };
    let market = token(PrincipalKind::Department, "trace-market").await;
    let inspector = token(PrincipalKind::Inspector, "trace-inspector").await;
    let partner = token(PrincipalKind::Partner, "trace-partner").await;

    // A request carrying its own trace: (trace id, the caller's span id).
    let mut next = 0u8;
    let mut traced = |request: &mut tonic::metadata::MetadataMap| {
        next += 1;
        let trace_id = format!("{:0>32}", format!("7e57{next:02x}"));
        let parent_id = format!("{:0>16}", format!("c0de{next:02x}"));
        request.insert(
            "traceparent",
            format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
        );
        (trace_id, parent_id)
    };

    // 1. The market bureau issues a food business permit: certificate checks the
    //    holder's license by fetching and verifying it from the license service.
    let field = |name: &str, value: &str| cpb::Field {
        name: name.into(),
        value: value.into(),
    };
    let mut request = with_token(
        cpb::IssueCertificateRequest {
            holder: DEMO.into(),
            type_code: FOOD.into(),
            fields: vec![
                field("operator_name", "上海示范餐饮有限公司"),
                field("legal_representative", "张三"),
                field("address", "上海市静安区南京西路1号"),
                field("main_business", "餐饮服务经营者"),
                field("business_items", "热食类食品制售"),
            ],
            ..Default::default()
        },
        &market,
    );
    let issue_trace = traced(request.metadata_mut());
    let permit = certificate_service_client::CertificateServiceClient::new(channel.clone())
        .issue_certificate(request)
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();

    // 2. The bureau plans an inspection of the enterprise, naming its inspector:
    //    inspection reads the license and asks identity who the inspector is.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut request = with_token(
        ipb::PlanInspectionRequest {
            enterprise_uscc: DEMO.into(),
            items: vec!["food-safety".into()],
            r#type: ipb::InspectionType::Routine as i32,
            plan_number: "沪市监检〔2026〕99号".into(),
            inspectors: vec![ipb::Inspector {
                client_id: "trace-inspector".into(),
                enforcement_certificate: "沪执法31000012345".into(),
                department: String::new(),
            }],
            window_start: now + 86_400,
            window_end: now + 8 * 86_400,
            ..Default::default()
        },
        &market,
    );
    let plan_trace = traced(request.metadata_mut());
    inspection_service_client::InspectionServiceClient::new(channel.clone())
        .plan_inspection(request)
        .await
        .unwrap();
    drop(inspector);

    // 3. A partner verifies the new permit at the gateway.
    let mut request = with_token(
        vpb::VerifyRequest {
            credential: Some(vpb::PresentedCredential {
                form: Some(vpb::presented_credential::Form::Text(
                    permit.credential.unwrap().qr_text,
                )),
            }),
        },
        &partner,
    );
    let verify_trace = traced(request.metadata_mut());
    let qr_text = request
        .get_ref()
        .credential
        .as_ref()
        .and_then(|c| match &c.form {
            Some(vpb::presented_credential::Form::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    verify_service_client::VerifyServiceClient::new(channel.clone())
        .verify(request)
        .await
        .unwrap();

    // 4. The same over HTTP, as a partner's JSON client calls it with its own trace.
    let http_trace = (format!("{:0>32}", "7e57ff"), format!("{:0>16}", "c0deff"));
    let traceparent = format!("00-{}-{}-01", http_trace.0, http_trace.1);
    let bearer = format!("Bearer {partner}");
    let answer = credmesh_e2e::http(
        &dev.http,
        "POST",
        "/v1/verify",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
            ("traceparent", &traceparent),
        ],
        &serde_json::json!({ "credential": qr_text }).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());

    // The trees, once the exporter has sent them.
    let entry = |spans: &[collector::Received], (trace, parent): &(String, String), name: &str| {
        spans
            .iter()
            .find(|s| {
                hex(&s.span.trace_id) == *trace
                    && hex(&s.span.parent_span_id) == *parent
                    && s.span.kind == SPAN_KIND_SERVER
                    && s.span.name == name
            })
            .cloned()
    };
    // A hop inside the trace: the client span and, under it, the server span.
    let hop = |spans: &[collector::Received], (trace, _): &(String, String), name: &str| {
        spans.iter().find_map(|client| {
            (hex(&client.span.trace_id) == *trace
                && client.span.kind == SPAN_KIND_CLIENT
                && client.span.name == name)
                .then(|| {
                    spans.iter().find(|server| {
                        server.span.kind == SPAN_KIND_SERVER
                            && server.span.name == name
                            && server.span.trace_id == client.span.trace_id
                            && server.span.parent_span_id == client.span.span_id
                    })
                })
                .flatten()
                .map(|server| (client.clone(), server.clone()))
        })
    };
    let complete = |spans: &[collector::Received]| {
        entry(
            spans,
            &issue_trace,
            "credmesh.certificate.v1.CertificateService/IssueCertificate",
        )
        .is_some()
            && hop(
                spans,
                &issue_trace,
                "credmesh.license.v1.LicenseService/GetLicense",
            )
            .is_some()
            && entry(
                spans,
                &plan_trace,
                "credmesh.inspection.v1.InspectionService/PlanInspection",
            )
            .is_some()
            && hop(
                spans,
                &plan_trace,
                "credmesh.license.v1.LicenseService/GetLicense",
            )
            .is_some()
            && hop(
                spans,
                &plan_trace,
                "credmesh.identity.v1.IdentityService/GetClient",
            )
            .is_some()
            && entry(
                spans,
                &verify_trace,
                "credmesh.verify.v1.VerifyService/Verify",
            )
            .is_some()
            && entry(spans, &http_trace, "POST /v1/verify").is_some()
    };
    let mut spans = collector.spans();
    for _ in 0..100 {
        if complete(&spans) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        spans = collector.spans();
    }
    let dump = |trace: &(String, String)| {
        spans
            .iter()
            .filter(|s| hex(&s.span.trace_id) == trace.0)
            .map(|s| format!("{} {} kind {}", s.service, s.span.name, s.span.kind))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (trace, name, hops) in [
        (
            &issue_trace,
            "credmesh.certificate.v1.CertificateService/IssueCertificate",
            &["credmesh.license.v1.LicenseService/GetLicense"][..],
        ),
        (
            &plan_trace,
            "credmesh.inspection.v1.InspectionService/PlanInspection",
            &[
                "credmesh.license.v1.LicenseService/GetLicense",
                "credmesh.identity.v1.IdentityService/GetClient",
            ][..],
        ),
        (
            &verify_trace,
            "credmesh.verify.v1.VerifyService/Verify",
            &[][..],
        ),
    ] {
        let server = entry(&spans, trace, name).unwrap_or_else(|| {
            panic!("no {name} server span under the caller's:\n{}", dump(trace))
        });
        assert_eq!(int_attribute(&server, "rpc.grpc.status_code"), Some(0));
        assert_ne!(status_code(&server), STATUS_ERROR);
        for hop_name in hops {
            let (client, remote) = hop(&spans, trace, hop_name)
                .unwrap_or_else(|| panic!("{name}: no {hop_name} hop:\n{}", dump(trace)));
            assert_eq!(
                int_attribute(&client, "rpc.grpc.status_code"),
                Some(0),
                "{hop_name}"
            );
            assert_eq!(
                int_attribute(&remote, "rpc.grpc.status_code"),
                Some(0),
                "{hop_name}"
            );
        }
        // Nothing the call caused left its trace: every span of the trace descends
        // from the caller's span.
        let of_trace: Vec<_> = spans
            .iter()
            .filter(|s| hex(&s.span.trace_id) == trace.0)
            .collect();
        for span in &of_trace {
            let mut at = *span;
            let mut depth = 0;
            while hex(&at.span.parent_span_id) != trace.1 {
                at = of_trace
                    .iter()
                    .find(|p| p.span.span_id == at.span.parent_span_id)
                    .unwrap_or_else(|| {
                        panic!(
                            "{} has no parent in its trace:\n{}",
                            span.span.name,
                            dump(trace)
                        )
                    });
                depth += 1;
                assert!(depth < 64);
            }
        }
    }
    // The HTTP verification: its server span is the caller's child, named by its route,
    // and everything it caused descends from it.
    let server = entry(&spans, &http_trace, "POST /v1/verify")
        .unwrap_or_else(|| panic!("no HTTP server span:\n{}", dump(&http_trace)));
    assert_eq!(
        int_attribute(&server, "http.response.status_code"),
        Some(200)
    );
    assert_eq!(
        server.attribute("http.route"),
        Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "/v1/verify".into()
            )
        )
    );
    let of_trace: Vec<_> = spans
        .iter()
        .filter(|s| hex(&s.span.trace_id) == http_trace.0)
        .collect();
    assert!(
        of_trace.len() > 1,
        "the handler's spans: {}",
        dump(&http_trace)
    );
    for span in &of_trace {
        let mut at = *span;
        while at.span.span_id != server.span.span_id {
            at = of_trace
                .iter()
                .find(|p| p.span.span_id == at.span.parent_span_id)
                .unwrap_or_else(|| {
                    panic!(
                        "{} is not under the HTTP span:\n{}",
                        span.span.name,
                        dump(&http_trace)
                    )
                });
        }
    }
    dev.stop().await.unwrap();
}
