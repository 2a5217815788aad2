//! The per-client rate limit of the serving stack, seen from a license client: one
//! client over its limit is refused with a retry delay while another is served, is
//! served again after the delay, and the refusals are counted on `/metrics`.

use std::time::Duration;

use credmesh_proto::{license::v1 as pb, status};
use credmesh_runtime::RateLimit;
use tonic::Code;

use crate::helpers::*;

/// 5 calls per second, bursts of 5: a retry delay of at most 200 ms.
const LIMIT: RateLimit = RateLimit {
    per_second: 5.0,
    burst: 5,
};

async fn get(app: &TestApp, token: &str) -> Result<pb::GetLicenseResponse, tonic::Status> {
    app.license
        .clone()
        .get_license(with_token(
            pb::GetLicenseRequest {
                uscc: sh_uscc("310106", 31),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Calls as `token` until refused with RESOURCE_EXHAUSTED (the burst and what refills
/// meanwhile); every call before is answered by the service (NOT_FOUND here).
async fn exhaust(app: &TestApp, token: &str) -> tonic::Status {
    for _ in 0..50 {
        match get(app, token).await {
            Err(s) if s.code() == Code::ResourceExhausted => return s,
            Err(s) => assert_eq!(s.code(), Code::NotFound, "{s:?}"),
            Ok(r) => panic!("no such license: {r:?}"),
        }
    }
    panic!("50 calls at 5 per second were never refused");
}

async fn http(app: &TestApp, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, text)
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_retry_while_others_are_served() {
    for backend in BOTH {
        let app = spawn_with(
            backend,
            Options {
                rate_limit: Some(LIMIT),
                ..Options::default()
            },
        )
        .await;
        let greedy = app.department("sh-greedy", JINGAN).await;
        let other = app.department("sh-other", JINGAN).await;

        let refused = exhaust(&app, &greedy).await;
        assert_eq!(
            status::reason(&refused).as_deref(),
            Some(status::RATE_LIMITED)
        );
        let delay = status::retry_delay(&refused).expect("a RetryInfo detail");
        assert!(
            delay > Duration::ZERO && delay <= Duration::from_millis(200),
            "{delay:?}"
        );
        assert_eq!(refused.metadata().get("retry-after").unwrap(), "1");
        assert_eq!(
            refused.message(),
            "client 'sh-greedy' is over the license service's rate limit of 5 calls per \
             second, bursts of 5; retry in 1 s"
        );

        // Another client has its own bucket.
        assert_eq!(get(&app, &other).await.unwrap_err().code(), Code::NotFound);

        // After the delay the greedy client is served again.
        tokio::time::sleep(delay).await;
        assert_eq!(get(&app, &greedy).await.unwrap_err().code(), Code::NotFound);

        // The refusal is counted, by service and client.
        let (code, metrics) = http(&app, "/metrics").await;
        assert_eq!(code, 200);
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("credmesh_rate_limited_total{")
                    && l.contains(r#"service="license""#)
                    && l.contains(r#"client="sh-greedy""#)
            })
            .unwrap_or_else(|| panic!("no refusal counted for sh-greedy:\n{metrics}"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1.0, "{line}");
        assert!(!metrics.contains(r#"client="sh-other""#));
    }
}

#[tokio::test]
async fn anonymous_http_callers_over_the_rate_get_429_with_retry_after() {
    let app = spawn_with(
        Backend::Sqlite,
        Options {
            rate_limit: Some(LIMIT),
            ..Options::default()
        },
    )
    .await;
    let mut refused = None;
    for _ in 0..50 {
        let (code, text) = http(&app, "/v1/status/SH/license/0/revocation").await;
        if code == 429 {
            refused = Some(text);
            break;
        }
        assert_eq!(code, 200, "{text}");
    }
    let text = refused.expect("50 anonymous requests at 5 per second were never refused");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(text.contains(r#""reason":"RATE_LIMITED""#), "{text}");
    assert!(text.contains("anonymous callers from 127.0.0.1"), "{text}");
    // Probes and scrapes are never limited.
    for _ in 0..10 {
        assert_eq!(http(&app, "/healthz").await.0, 200);
        assert_eq!(http(&app, "/metrics").await.0, 200);
    }
}
