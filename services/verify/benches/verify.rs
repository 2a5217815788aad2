//! Verify throughput (`make bench`): at 64 concurrent streams, requests/s and p50/p99 for
//! Verify on distinct credentials (result cache off: every call verifies), Verify on one
//! repeated credential (result cache on), and BatchVerify of 256 — each beside
//! references measured in the same run: a minimal tonic server doing one raw
//! ed25519-dalek verify per request on the same payloads, and an empty tonic RPC.
//!
//! Goals (issue 7): uncached ≥ 0.9× the raw-verify server; cached ≥ 0.8× the empty
//! RPC; BatchVerify ≥ 2× single-verify signatures per second.
//!
//! A third reference, for reading the cached figure, is the empty RPC called with the
//! partner's bearer token, as every Verify call is: h2 never indexes an `authorization`
//! header, so each call Huffman-codes the whole token on both sides, which the bare empty
//! RPC does not pay. It is reported beside the goal, not instead of it. A fourth, the
//! same empty RPC behind credmesh's serving stack (tracing, metrics, limits, auth, rate
//! limit), splits what remains between the stack and the gateway's handler.
//!
//! The gateway runs behind the full serving stack (auth with a real identity token,
//! limits, metrics, tracing); the references are bare tonic. Credentials are
//! presentations (no status list), signed by a key registered in a real identity
//! service started in-process. The four single-call measurements take turns in
//! one-second slices, so each figure and its reference see the same machine. Settings:
//! `CREDMESH_BENCH_SECONDS` per measurement (default 3), `CREDMESH_BENCH_STREAMS`
//! (default 64), `CREDMESH_BENCH_ONLY` a comma-separated subset of
//! `empty,empty_token,stack,raw,uncached,cached,batch` to measure (default all; for profiling one path).
//!
//! Run: `cargo bench -p credmesh-verify --bench verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/reference.rs"]
mod reference;

use reference::RawVerify;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use credmesh_auth::{GrpcJwksSource, PrincipalKind, TokenValidator, ValidatorConfig};
use credmesh_credential::{encode_envelope, keys::IssuerKey, sign_credential};
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    verify::v1::{
        BatchVerifyRequest, PresentedCredential, VerifyRequest, presented_credential::Form,
        verify_service_client::VerifyServiceClient, verify_service_server::VerifyServiceServer,
    },
};
use credmesh_runtime::{Clock as _, Server, ServerConfig, ServiceParts, SystemClock};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

fn setting(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `token` as an `authorization` value.
fn bearer(token: &str) -> MetadataValue<Ascii> {
    format!("Bearer {token}").parse().unwrap()
}

/// `msg` carrying `authorization`, built once per token as credmesh's own clients do
/// (`credmesh_auth::BearerService` keeps its header): a clone is a reference count, not
/// a copy and a byte-by-byte check of the token on every call.
fn with_token<T>(msg: T, authorization: &MetadataValue<Ascii>) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", authorization.clone());
    req
}

struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

impl Measured {
    /// Requests/s and latency percentiles of `lat`, the calls that finished in `elapsed`.
    fn of(mut lat: Vec<Duration>, elapsed: Duration) -> Measured {
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        Measured {
            per_second: lat.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(0.5),
            p99: pct(0.99),
        }
    }
}

/// A measured call, boxed so that different calls can take turns.
type Call = Arc<dyn Fn(u64) -> BoxFuture<'static, ()> + Send + Sync>;

fn call<F, Fut>(f: F) -> Call
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |i| Box::pin(f(i)))
}

/// Runs `streams` loops of `call` for `length`; each call's latency and the time taken.
async fn sample(streams: u64, length: Duration, call: &Call) -> (Vec<Duration>, Duration) {
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = s * 1_000_000;
            while Instant::now() < deadline {
                let t = Instant::now();
                call(i).await;
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

/// Runs `streams` loops of `call` for `seconds`; requests/s and latency percentiles.
async fn measure(streams: u64, seconds: u64, call: &Call) -> Measured {
    let (lat, elapsed) = sample(streams, Duration::from_secs(seconds), call).await;
    Measured::of(lat, elapsed)
}

/// Measures `calls` taking turns in one-second slices, `seconds` slices each, so that a
/// figure and its reference see the same machine: on a shared 2-core machine the speed
/// drifts by a quarter within a minute, which one-after-the-other measurements turned
/// into ratios that moved by as much.
async fn take_turns(streams: u64, seconds: u64, calls: &[Call]) -> Vec<Measured> {
    let mut taken: Vec<(Vec<Duration>, Duration)> = vec![(Vec::new(), Duration::ZERO); calls.len()];
    for _ in 0..seconds {
        for (call, (lat, elapsed)) in calls.iter().zip(&mut taken) {
            let (more, took) = sample(streams, Duration::from_secs(1), call).await;
            lat.extend(more);
            *elapsed += took;
        }
    }
    taken
        .into_iter()
        .map(|(lat, elapsed)| Measured::of(lat, elapsed))
        .collect()
}

fn row(name: &str, m: &Measured, unit: &str) {
    println!(
        "| {name} | {:.0} {unit}/s | {:.2} ms | {:.2} ms |",
        m.per_second,
        m.p50.as_secs_f64() * 1000.0,
        m.p99.as_secs_f64() * 1000.0
    );
}

async fn serve_reference(svc: RawVerify) -> VerifyServiceClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    reference::spawn(listener, svc);
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    VerifyServiceClient::new(ch)
}

/// Serves `parts` behind credmesh's serving stack on `listener` (a loopback port when
/// none is given); a channel to it.
async fn serve_stack(
    config: ServerConfig,
    validator: Arc<TokenValidator>,
    parts: ServiceParts,
    listener: Option<tokio::net::TcpListener>,
) -> Channel {
    let listener = match listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new(config, Metrics::new(), validator)
            .with_service(parts)
            .serve(vec![listener], std::future::pending()),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A validator of SH's partner tokens, with keys from the identity service at `url`.
fn partner_validator(url: &str) -> Arc<TokenValidator> {
    TokenValidator::new(
        Arc::new(GrpcJwksSource::new(
            credmesh_verify::federation::channel(url).unwrap(),
        )),
        ValidatorConfig::new(
            credmesh_auth::issuer_for_region("SH"),
            ["verify", "credmesh"],
        ),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    // The telemetry `credmesh serve` installs (logs at `warn`, as the load generator runs
    // it; spans tracked for trace ids; no exporter). Without a subscriber every span of
    // the serving stack would be inert, and the figures would leave out what a deployed
    // gateway pays for them. The references' tonic, h2 and hyper spans stay off, as they
    // do in production.
    let _telemetry = credmesh_telemetry::init(
        "verify",
        &HashMap::from([("RUST_LOG".to_owned(), "warn".to_owned())]),
    )
    .unwrap();
    let seconds = setting("CREDMESH_BENCH_SECONDS", 3);
    let streams = setting("CREDMESH_BENCH_STREAMS", 64);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let key = IssuerKey::generate("t").unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
        (key, path)
    };
    let (anchor, anchor_file) = write("anchor.pem");
    let (_, token_file) = write("token.pem");
    let (operator, _) = write("operator.pem");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let env = |pairs: &[(&str, String)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };

    // A real identity service.
    let id_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let id_addr = id_listener.local_addr().unwrap();
    let id_db_url = format!("sqlite://{}", dir.path().join("identity.db").display());
    let config = credmesh_identity::IdentityConfig::from_env(&env(&[
        ("DATABASE_URL", id_db_url.clone()),
        (
            "CREDMESH_ANCHOR_KEY_FILE",
            anchor_file.display().to_string(),
        ),
        ("CREDMESH_TOKEN_KEY_FILE", token_file.display().to_string()),
        (
            "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
            b64(&operator.public_key_bytes()),
        ),
    ]))
    .unwrap();
    let db = Db::connect(&id_db_url, &DbOptions::default())
        .await
        .unwrap();
    db.migrate(credmesh_identity::migrations()).await.unwrap();
    let server_config = ServerConfig {
        concurrency_limit: 100_000,
        // The bench measures the gateway, not the limit's refusals.
        rate_limit: credmesh_runtime::RateLimit::OFF,
        ..ServerConfig::default()
    };
    let identity = credmesh_identity::build(&config, db, Arc::new(SystemClock), &server_config)
        .await
        .unwrap();
    let mut id = IdentityServiceClient::new(
        serve_stack(
            server_config.clone(),
            identity.validator,
            identity.parts,
            Some(id_listener),
        )
        .await,
    );
    let token_for = |client: &str, key: &IssuerKey| {
        let assertion =
            credmesh_auth::client_assertion(client, key.signing_key(), SystemClock.now()).unwrap();
        ipb::IssueTokenRequest {
            client_id: client.into(),
            scopes: vec![],
            audience: String::new(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
        }
    };
    let op = id
        .issue_token(token_for("operator", &operator))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let op = bearer(&op);
    let probe = IssuerKey::generate("p").unwrap();
    let kid = credmesh_credential::kid_for("SH", "entcode", &probe.public_key_bytes());
    let issuer = IssuerKey::from_pkcs8_pem(&kid, &probe.to_pkcs8_pem()).unwrap();
    id.register_issuer_key(with_token(
        ipb::RegisterIssuerKeyRequest {
            issuer: "SH/entcode".into(),
            kid,
            public_key: issuer.public_key_bytes().to_vec(),
            kinds: vec![CredentialKind::Presentation as i32],
            not_after: 0,
        },
        &op,
    ))
    .await
    .unwrap();
    let partner = IssuerKey::generate("bank").unwrap();
    id.register_client(with_token(
        ipb::RegisterClientRequest {
            client_id: "bank".into(),
            kind: PrincipalKind::Partner.to_proto(),
            display_name: "bench partner".into(),
            scopes: vec!["verify".into()],
            organization: credmesh_uscc::Uscc::from_parts('9', '1', "320506", "MA100001")
                .unwrap()
                .to_string(),
            public_key: partner.public_key_bytes().to_vec(),
            ..Default::default()
        },
        &op,
    ))
    .await
    .unwrap();
    let token = bearer(
        &id.issue_token(token_for("bank", &partner))
            .await
            .unwrap()
            .into_inner()
            .access_token,
    );

    // Credentials: distinct presentations, valid for a day.
    let now = SystemClock.now();
    let creds: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..4096)
            .map(|i| {
                encode_envelope(&sign_credential(
                    &Credential {
                        id: format!("urn:credmesh:presentation:bench-{i}"),
                        kind: CredentialKind::Presentation as i32,
                        issuer: "SH/entcode".into(),
                        region: "SH".into(),
                        subject: "91310000MA1FL8TQ2X".into(),
                        issued_at: now + 2,
                        not_before: now,
                        not_after: now + 86_400,
                        status: None,
                        claims: vec![Claim {
                            name: "scenario".into(),
                            value: "bank-loan".into(),
                        }],
                        version: 0,
                        // No nonce: multi-use, so the cached case can repeat one.
                        nonce: Vec::new(),
                    },
                    &issuer,
                ))
            })
            .collect(),
    );

    // Gateways: result cache off (every call verifies) and on.
    let gateway = |ttl: &'static str| {
        let dir = dir.path().to_path_buf();
        let server_config = server_config.clone();
        let anchor = b64(&anchor.public_key_bytes());
        async move {
            let db_url = format!(
                "sqlite://{}",
                dir.join(format!("verify-{ttl}.db")).display()
            );
            let config = credmesh_verify::VerifyConfig::from_env(&env(&[
                ("DATABASE_URL", db_url.clone()),
                ("CREDMESH_IDENTITY_URL", format!("http://{id_addr}")),
                ("CREDMESH_ANCHOR_PUBLIC_KEY", anchor),
                ("CREDMESH_RESULT_CACHE_SECONDS", ttl.into()),
            ]))
            .unwrap();
            let db = Db::connect(&db_url, &DbOptions::default()).await.unwrap();
            db.migrate(credmesh_verify::migrations()).await.unwrap();
            let validator = partner_validator(&config.identity_url);
            let built = credmesh_verify::build(
                &config,
                db,
                Arc::new(SystemClock),
                &server_config,
                validator.clone(),
            )
            .await
            .unwrap();
            assert!(built.gateway.refresh_trust().await.is_empty());
            let ch = serve_stack(server_config, validator, built.parts, None).await;
            (VerifyServiceClient::new(ch), built.gateway)
        }
    };
    let (uncached, _g1) = gateway("0").await;
    let (cached, _g2) = gateway("5").await;
    let raw = serve_reference(RawVerify {
        key: issuer.verifying_key(),
        empty: false,
    })
    .await;
    let empty = serve_reference(RawVerify {
        key: issuer.verifying_key(),
        empty: true,
    })
    .await;
    // The same empty RPC behind credmesh's serving stack (tracing, metrics, limits, auth
    // with the partner's token, rate limit, normalize), as Verify is served: what the
    // stack costs, apart from the gateway's own work.
    let stacked = {
        let validator = partner_validator(&format!("http://{id_addr}"));
        let key = issuer.verifying_key();
        let parts = ServiceParts {
            name: "verify",
            grpc_names: vec![credmesh_verify::GRPC_NAME],
            mount: Box::new(move |routes| {
                routes.add_service(VerifyServiceServer::new(RawVerify { key, empty: true }));
            }),
            http: axum::Router::new(),
            policy: credmesh_verify::access_policy(),
            readiness: Vec::new(),
        };
        VerifyServiceClient::new(serve_stack(server_config.clone(), validator, parts, None).await)
    };

    // One Verify call: on one repeated credential or on distinct ones, with the partner's
    // token or without, checking that the answer is VALID or not (the references answer
    // nothing).
    let single = |client: VerifyServiceClient<Channel>, repeated: bool, auth: bool, check: bool| {
        let creds = creds.clone();
        let token = token.clone();
        move |i: u64| {
            let mut client = client.clone();
            let bytes = creds[if repeated {
                0
            } else {
                (i as usize) % creds.len()
            }]
            .clone();
            let token = token.clone();
            async move {
                let msg = VerifyRequest {
                    credential: Some(PresentedCredential {
                        form: Some(Form::Envelope(bytes)),
                    }),
                };
                let req = if auth {
                    with_token(msg, &token)
                } else {
                    Request::new(msg)
                };
                let r = client.verify(req).await.unwrap().into_inner();
                if check {
                    assert_eq!(r.result.unwrap().reason, "VALID");
                }
            }
        }
    };
    // Warm up (JWKS fetch, connections).
    let _ = measure(4, 1, &call(single(uncached.clone(), false, true, true))).await;

    // The single-call figures and their references take turns (see `take_turns`).
    let only = std::env::var("CREDMESH_BENCH_ONLY").unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let singles = [
        ("raw", call(single(raw.clone(), false, false, false))),
        ("empty", call(single(empty.clone(), true, false, false))),
        (
            "empty_token",
            call(single(empty.clone(), true, true, false)),
        ),
        ("stack", call(single(stacked.clone(), true, true, false))),
        (
            "uncached",
            call(single(uncached.clone(), false, true, true)),
        ),
        ("cached", call(single(cached.clone(), true, true, true))),
    ];
    let wanted: Vec<&(&str, Call)> = singles.iter().filter(|(name, _)| want(name)).collect();
    let calls: Vec<Call> = wanted.iter().map(|(_, c)| c.clone()).collect();
    let mut measured: HashMap<&str, Measured> = wanted
        .iter()
        .map(|(name, _)| *name)
        .zip(take_turns(streams, seconds, &calls).await)
        .collect();
    let m_raw = measured.remove("raw");
    let m_empty = measured.remove("empty");
    let m_uncached = measured.remove("uncached");
    let m_cached = measured.remove("cached");
    let m_empty_token = measured.remove("empty_token");
    let m_stack = measured.remove("stack");
    let batch = {
        let creds = creds.clone();
        let token = token.clone();
        let client = uncached.clone();
        move |i: u64| {
            let mut client = client.clone();
            let start = ((i as usize) * 256) % (creds.len() - 256);
            let credentials: Vec<PresentedCredential> = creds[start..start + 256]
                .iter()
                .map(|b| PresentedCredential {
                    form: Some(Form::Envelope(b.clone())),
                })
                .collect();
            let token = token.clone();
            async move {
                let r = client
                    .batch_verify(with_token(BatchVerifyRequest { credentials }, &token))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.results.len(), 256);
            }
        }
    };
    let batch_sigs = if want("batch") {
        let m = measure(streams.min(16), seconds, &call(batch)).await;
        Some(Measured {
            per_second: m.per_second * 256.0,
            p50: m.p50,
            p99: m.p99,
        })
    } else {
        None
    };

    println!("\n| verify ({streams} streams, {seconds} s each) | rate | p50 | p99 |");
    println!("|---|---|---|---|");
    let rows = [
        ("reference: empty tonic RPC", &m_empty, "req"),
        (
            "reference: empty tonic RPC with the partner's token",
            &m_empty_token,
            "req",
        ),
        (
            "reference: empty RPC behind credmesh's serving stack",
            &m_stack,
            "req",
        ),
        ("reference: raw ed25519 verify server", &m_raw, "req"),
        (
            "Verify, distinct credentials (uncached)",
            &m_uncached,
            "req",
        ),
        ("Verify, repeated credential (cached)", &m_cached, "req"),
        ("BatchVerify of 256 (signatures)", &batch_sigs, "sig"),
    ];
    for (name, m, unit) in rows {
        if let Some(m) = m {
            row(name, m, unit);
        }
    }
    let ratio = |a: &Option<Measured>, b: &Option<Measured>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a.per_second / b.per_second),
        _ => "not measured".to_owned(),
    };
    println!(
        "\ngoals: uncached/raw = {} (≥ 0.9), cached/empty = {} (≥ 0.8), batch/single signatures = {} (≥ 2); \
         reference only: cached/empty with the token = {}, cached/empty behind the stack = {}",
        ratio(&m_uncached, &m_raw),
        ratio(&m_cached, &m_empty),
        ratio(&batch_sigs, &m_uncached),
        ratio(&m_cached, &m_empty_token),
        ratio(&m_cached, &m_stack),
    );
}
