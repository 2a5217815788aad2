//! Observability end to end, against the real `credmesh` binary: `/metrics` as
//! Prometheus reads it (the official Python client's OpenMetrics parser) and the RED
//! counters moving by exactly the calls made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use credmesh_e2e::{Dev, interop};
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
