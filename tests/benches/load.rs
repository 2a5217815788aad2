//! The load generator of `make bench`: real `credmesh serve` processes on loopback
//! (identity, license and verify, each its own process, configured by the environment
//! as in production) driven over gRPC by concurrent tonic clients, latencies in
//! HdrHistogram.
//!
//! Four configurations — SQLite or PostgreSQL (every service's `DATABASE_URL`), the
//! in-process cache or Redis (the gateway's `REDIS_URL`) — each under three loads:
//!
//! - **Verify, distinct credentials**: every call presents a credential not seen before
//!   (a presentation signed by a key registered at identity), so each one is decoded,
//!   checked and signature-verified, and its answer written to the result cache;
//! - **Verify, repeated credential**: one credential over and over, answered from the
//!   result cache;
//! - **EstablishEnterprise**: issuance of a new business license per call (validation,
//!   two signatures, the register rows, the audit entry, one transaction).
//!
//! Each beside a reference measured in this run with the same concurrency and the same
//! duration: an empty tonic RPC and a bare tonic server doing one raw Ed25519 verify per
//! request (both in this process, on their own runtime, driven by the same client; each
//! takes turns with its verify load in slices of a second, within the configuration), and
//! a raw INSERT of a license-sized row per transaction on the same database kind (a loop
//! in this process, no transport, after the first configuration on that database).
//! Goals (issue #10): uncached ≥ 0.9× the raw-verify server, cached ≥ 0.8× the empty
//! RPC, issuance ≥ 0.5× raw INSERTs.
//!
//! Issuance is also shown beside a bare tonic server whose EstablishEnterprise does one
//! raw INSERT of the request's row and answers an issued credential (the same client,
//! request and answer size): the raw INSERT loop pays no gRPC, so this second reference
//! tells the transport's share from the issuing work's. It has no goal of its own.
//!
//! The machine runs the client, the servers and the database together: on a 2-core
//! machine the ratios, not the absolute rates, are the figures to steer by.
//!
//! Settings (environment):
//! - `CREDMESH_BIN`: the `credmesh` binary (`make bench` builds a release one; without
//!   it, the debug build the e2e tests use is measured, and the bench says so);
//! - `CREDMESH_LOAD_SECONDS` per measurement (default 3), `CREDMESH_LOAD_CONCURRENCY`
//!   concurrent streams on one HTTP/2 connection (default 64);
//! - `CREDMESH_LOAD_CONFIGS`: which of `sqlite-memory,sqlite-redis,postgres-memory,
//!   postgres-redis` to run (default all four);
//! - `CREDMESH_LOAD_DISTINCT`: distinct credentials signed up front per configuration
//!   (default 10,000 per second of a load; a distinct-credential run ends early when
//!   they are used up);
//! - `CREDMESH_TEST_POSTGRES_URL`, `CREDMESH_TEST_REDIS_URL`: the servers (from
//!   `scripts/test-env.sh`); configurations needing a missing one are skipped;
//! - `CREDMESH_LOAD_OUT`: the JSON written for `scripts/bench_report.py` (default
//!   `target/bench/load.json`).
//!
//! Run: `cargo bench -p credmesh-e2e --bench load`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../services/license/benches/support/raw_table.rs"]
mod raw_table;
#[path = "../../services/verify/benches/support/reference.rs"]
mod reference;

use reference::RawVerify;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use credmesh_credential::{VerifyingKey, encode_envelope, keys::IssuerKey, sign_credential};
use credmesh_e2e::{establishment, free_port, serve, wait_serving, with_token, write_key};
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{
        self as lpb,
        license_service_client::LicenseServiceClient,
        license_service_server::{LicenseService, LicenseServiceServer},
    },
    verify::v1::{
        PresentedCredential, VerifyRequest, presented_credential::Form,
        verify_service_client::VerifyServiceClient,
    },
};
use credmesh_store::{Db, DbOptions};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tonic::{Request, Response, Status, transport::Channel};

fn setting(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------
// The driver: closed-loop streams, one histogram each, merged.

/// What one call came to.
enum Outcome {
    Ok,
    Failed(String),
    /// Nothing left to send (the distinct credentials are used up): the stream ends.
    Exhausted,
}

/// One load's result.
#[derive(Clone, Debug)]
struct Measured {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    /// Latencies of successful calls, in microseconds.
    hist: Histogram<u64>,
}

impl Measured {
    /// `other`'s calls added to these, as if measured in one go (for turns).
    fn absorb(&mut self, other: Measured) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.seconds += other.seconds;
        self.hist.add(other.hist).unwrap();
    }

    fn empty() -> Measured {
        Measured {
            ok: 0,
            errors: 0,
            first_error: None,
            seconds: 0.0,
            hist: histogram(),
        }
    }

    fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return f64::NAN;
        }
        let us = if q >= 1.0 {
            self.hist.max()
        } else {
            self.hist.value_at_quantile(q)
        };
        us as f64 / 1000.0
    }

    fn to_json(&self) -> Value {
        let ms = |q: f64| {
            let v = self.ms(q);
            if v.is_finite() {
                json!((v * 1000.0).round() / 1000.0)
            } else {
                Value::Null
            }
        };
        json!({
            "requests": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "per_second": self.per_second().round(),
            "p50_ms": ms(0.5),
            "p90_ms": ms(0.9),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
        })
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, three significant figures.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// Runs `concurrency` closed loops of `call` (given a call number unique in this run)
/// until `seconds` have passed or a call reports [`Outcome::Exhausted`].
async fn drive<F, Fut>(concurrency: u64, seconds: f64, call: F) -> Measured
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    drive_from(concurrency, seconds, Arc::new(call), Arc::default()).await
}

/// [`drive`], numbering calls from `next` (shared by the slices of one load, so that a
/// distinct-credential load never repeats a credential).
async fn drive_from<F, Fut>(
    concurrency: u64,
    seconds: f64,
    call: Arc<F>,
    next: Arc<AtomicU64>,
) -> Measured
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match call(n).await {
                    Outcome::Ok => {
                        let us = t.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        hist.record(us).unwrap();
                    }
                    Outcome::Failed(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                    Outcome::Exhausted => break,
                }
            }
            (hist, errors, first_error)
        }));
    }
    let mut all = histogram();
    let (mut errors, mut first_error) = (0, None);
    for t in tasks {
        let (h, e, f) = t.await.unwrap();
        all.add(h).unwrap();
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    Measured {
        ok: all.len(),
        errors,
        first_error,
        seconds: started.elapsed().as_secs_f64(),
        hist: all,
    }
}

/// Measures `load` and its `reference` taking turns in slices of about a second,
/// `seconds` in all each, so that a figure and its reference see the same machine: on a
/// shared 2-core machine the speed drifts by a quarter within a minute, and references
/// measured once at the start made ratios minutes later swing as much (the verify
/// bench's `take_turns`, for the same reason).
async fn take_turns<F, FutF, G, FutG>(
    concurrency: u64,
    seconds: f64,
    load: F,
    reference: G,
) -> (Measured, Measured)
where
    F: Fn(u64) -> FutF + Send + Sync + 'static,
    FutF: Future<Output = Outcome> + Send,
    G: Fn(u64) -> FutG + Send + Sync + 'static,
    FutG: Future<Output = Outcome> + Send,
{
    let slices = seconds.ceil().max(1.0);
    let slice = seconds / slices;
    let (load, reference) = (Arc::new(load), Arc::new(reference));
    let (load_next, reference_next) = (Arc::default(), Arc::default());
    let (mut m_load, mut m_reference) = (Measured::empty(), Measured::empty());
    for _ in 0..slices as u64 {
        let m = drive_from(
            concurrency,
            slice,
            reference.clone(),
            Arc::clone(&reference_next),
        )
        .await;
        m_reference.absorb(m);
        let m = drive_from(concurrency, slice, load.clone(), Arc::clone(&load_next)).await;
        m_load.absorb(m);
    }
    (m_load, m_reference)
}

// ---------------------------------------------------------------------------------------
// References: bare tonic servers on a runtime of their own.

/// Starts the empty and the raw-verify reference servers on a two-thread runtime of
/// their own (as a separate process would have); their addresses.
fn start_references(key: VerifyingKey) -> (String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut addrs = Vec::new();
            for empty in [true, false] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addrs.push(listener.local_addr().unwrap().to_string());
                reference::spawn(listener, RawVerify { key, empty });
            }
            tx.send((addrs[0].clone(), addrs[1].clone())).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Verify of `creds[n]` (or `creds[0]` when `repeated`) through `client`, with `token`
/// when given; a distinct run is exhausted past the last credential.
fn verify_call(
    client: VerifyServiceClient<Channel>,
    creds: Arc<Vec<Vec<u8>>>,
    token: Option<Arc<str>>,
    repeated: bool,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync + 'static
{
    move |n| {
        let i = if repeated { 0 } else { n as usize };
        let Some(bytes) = creds.get(i).cloned() else {
            return Box::pin(async { Outcome::Exhausted });
        };
        let mut client = client.clone();
        let token = token.clone();
        Box::pin(async move {
            let msg = VerifyRequest {
                credential: Some(PresentedCredential {
                    form: Some(Form::Envelope(bytes)),
                }),
            };
            let req = match &token {
                Some(t) => with_token(msg, t),
                None => Request::new(msg),
            };
            match client.verify(req).await {
                Ok(r) => match r.into_inner().result {
                    // The empty reference answers nothing.
                    None if token.is_none() => Outcome::Ok,
                    Some(r) if r.reason == "VALID" => Outcome::Ok,
                    Some(r) => Outcome::Failed(format!("{}: {}", r.reason, r.detail)),
                    None => Outcome::Failed("no result".into()),
                },
                Err(s) => Outcome::Failed(format!("{:?}: {}", s.code(), s.message())),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// The raw INSERT reference.

/// One license-sized row per transaction: the columns and indexes of a license version
/// (the shape `services/license/benches/registrations.rs` compares against).
const RAW_TABLE: &str = "CREATE TABLE bench_raw (
    uscc TEXT NOT NULL, version BIGINT NOT NULL, license_id TEXT NOT NULL UNIQUE,
    is_current BOOLEAN NOT NULL, name TEXT NOT NULL, entity_type TEXT NOT NULL,
    legal_representative TEXT NOT NULL, capital_amount TEXT NOT NULL,
    establishment_date TEXT NOT NULL, domicile TEXT NOT NULL, business_scope TEXT NOT NULL,
    authority TEXT NOT NULL, list_no BIGINT NOT NULL, list_index BIGINT NOT NULL,
    kid TEXT NOT NULL, envelope BYTEA NOT NULL, vc_jwt TEXT NOT NULL, issued_at BIGINT NOT NULL,
    issued_by TEXT NOT NULL, PRIMARY KEY (uscc, version), UNIQUE (list_no, list_index))";

const RAW_INSERT: &str = "INSERT INTO bench_raw VALUES ($1, 1, $2, TRUE, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// The license fields of a raw row.
struct RawRow<'a> {
    uscc: &'a str,
    name: &'a str,
    entity_type: &'a str,
    legal_representative: &'a str,
    capital: &'a str,
    establishment_date: &'a str,
    domicile: &'a str,
    business_scope: &'a str,
    authority: &'a str,
}

/// The row the raw INSERT loop writes, `R` and the row's number as its code.
const SAMPLE_ROW: RawRow<'static> = RawRow {
    uscc: "",
    name: "上海测试科技有限公司",
    entity_type: "有限责任公司（自然人投资或控股）",
    legal_representative: "李四",
    capital: "1000000.00",
    establishment_date: "2021-03-01",
    domicile: "上海市黄浦区示例路2号",
    business_scope: "软件开发。",
    authority: "11310000MB2F10003D",
};

/// INSERTs `$row` as row number `$k` (its code `R…` when the row has none), with an
/// issued license's `$envelope` and `$jwt`; evaluates to `Result<(), sqlx::Error>`.
macro_rules! raw_insert {
    ($pool:expr, $row:expr, $k:expr, $envelope:expr, $jwt:expr) => {{
        let row: &RawRow<'_> = $row;
        let k: u64 = $k;
        sqlx::query(RAW_INSERT)
            .bind(if row.uscc.is_empty() {
                format!("R{k:017}")
            } else {
                row.uscc.to_owned()
            })
            .bind(format!("raw-license-{k}"))
            .bind(row.name)
            .bind(row.entity_type)
            .bind(row.legal_representative)
            .bind(row.capital)
            .bind(row.establishment_date)
            .bind(row.domicile)
            .bind(row.business_scope)
            .bind(row.authority)
            .bind((k / 131_072) as i64)
            .bind((k % 131_072) as i64)
            .bind("SH-license-0123456789abcdef")
            .bind($envelope.to_vec())
            .bind($jwt.to_string())
            .bind(1_750_000_000i64)
            .bind("bench")
            .execute($pool)
            .await
            .map(drop)
    }};
}

/// Raw INSERTs at `url` (a fresh database), each its own transaction, with the same
/// driver; `envelope` and `jwt` are an issued license's, for the row size.
async fn raw_inserts(
    url: &str,
    concurrency: u64,
    seconds: f64,
    envelope: Arc<Vec<u8>>,
    jwt: Arc<str>,
) -> Measured {
    let db = Db::connect(url, &DbOptions::default()).await.unwrap();
    raw_table::create(&db, RAW_TABLE).await;
    let db2 = db.clone();
    let m = drive(concurrency, seconds, move |k| {
        let db = db2.clone();
        let (envelope, jwt) = (envelope.clone(), jwt.clone());
        async move {
            let r = match &db {
                Db::Sqlite(p) => raw_insert!(p, &SAMPLE_ROW, k, envelope, jwt),
                Db::Postgres(p) => raw_insert!(p, &SAMPLE_ROW, k, envelope, jwt),
            };
            match r {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
    })
    .await;
    db.close().await;
    m
}

// ---------------------------------------------------------------------------------------
// The raw-INSERT tonic server: the issuance reference that pays the same transport.

/// A bare tonic `LicenseService` whose `EstablishEnterprise` does one raw INSERT of the
/// request's license row and answers with an issued license's credential (so the answer
/// is as large), and nothing else: no token, validation, signatures, QR, register row,
/// audit entry or idempotency record. It is to issuance what the raw-verify server is to
/// Verify: the floor of the call over gRPC, where the raw INSERT loop has no transport.
#[derive(Clone)]
struct RawInsertServer {
    db: Db,
    credential: Arc<lpb::SignedCredential>,
    envelope: Arc<Vec<u8>>,
    next: Arc<AtomicU64>,
}

/// The answer of the reference's other RPCs.
fn reference_only<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "a reference server answers EstablishEnterprise only",
    ))
}

#[tonic::async_trait]
impl LicenseService for RawInsertServer {
    async fn establish_enterprise(
        &self,
        request: Request<lpb::EstablishEnterpriseRequest>,
    ) -> Result<Response<lpb::EstablishEnterpriseResponse>, Status> {
        let mut r = request.into_inner();
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let capital = r.registered_capital.take().unwrap_or_default();
        let row = RawRow {
            uscc: &r.uscc,
            name: &r.name,
            entity_type: &r.entity_type,
            legal_representative: &r.legal_representative,
            capital: &capital.amount,
            establishment_date: &r.establishment_date,
            domicile: &r.domicile,
            business_scope: &r.business_scope,
            authority: &r.registration_authority,
        };
        let (envelope, jwt) = (&self.envelope, &self.credential.vc_jwt);
        match &self.db {
            Db::Sqlite(p) => raw_insert!(p, &row, k, envelope, jwt),
            Db::Postgres(p) => raw_insert!(p, &row, k, envelope, jwt),
        }
        .map_err(|e| Status::internal(e.to_string()))?;
        let license_id = format!("raw-license-{k}");
        let at = now();
        Ok(Response::new(lpb::EstablishEnterpriseResponse {
            enterprise: Some(lpb::Enterprise {
                uscc: r.uscc.clone(),
                name: r.name.clone(),
                state: lpb::EnterpriseState::Active as i32,
                current_version: 1,
                registration_authority: r.registration_authority.clone(),
                license_id: license_id.clone(),
                created_at: at,
                updated_at: at,
                ..Default::default()
            }),
            license: Some(lpb::LicenseVersion {
                uscc: r.uscc,
                version: 1,
                license_id,
                status: lpb::VersionStatus::Current as i32,
                content: Some(lpb::LicenseContent {
                    name: r.name,
                    entity_type: r.entity_type,
                    legal_representative: r.legal_representative,
                    registered_capital: Some(capital),
                    establishment_date: r.establishment_date,
                    business_term: r.business_term,
                    domicile: r.domicile,
                    business_scope: r.business_scope,
                    registration_authority: r.registration_authority,
                    ..Default::default()
                }),
                issued_at: at,
                credential: Some((*self.credential).clone()),
                ..Default::default()
            }),
        }))
    }

    async fn amend_license(
        &self,
        _: Request<lpb::AmendLicenseRequest>,
    ) -> Result<Response<lpb::AmendLicenseResponse>, Status> {
        reference_only()
    }

    async fn deregister_enterprise(
        &self,
        _: Request<lpb::DeregisterEnterpriseRequest>,
    ) -> Result<Response<lpb::DeregisterEnterpriseResponse>, Status> {
        reference_only()
    }

    async fn revoke_license(
        &self,
        _: Request<lpb::RevokeLicenseRequest>,
    ) -> Result<Response<lpb::RevokeLicenseResponse>, Status> {
        reference_only()
    }

    async fn get_license(
        &self,
        _: Request<lpb::GetLicenseRequest>,
    ) -> Result<Response<lpb::GetLicenseResponse>, Status> {
        reference_only()
    }

    async fn get_license_version(
        &self,
        _: Request<lpb::GetLicenseVersionRequest>,
    ) -> Result<Response<lpb::GetLicenseVersionResponse>, Status> {
        reference_only()
    }

    async fn list_license_versions(
        &self,
        _: Request<lpb::ListLicenseVersionsRequest>,
    ) -> Result<Response<lpb::ListLicenseVersionsResponse>, Status> {
        reference_only()
    }

    async fn get_enterprise_history(
        &self,
        _: Request<lpb::GetEnterpriseHistoryRequest>,
    ) -> Result<Response<lpb::GetEnterpriseHistoryResponse>, Status> {
        reference_only()
    }

    async fn list_enterprises(
        &self,
        _: Request<lpb::ListEnterprisesRequest>,
    ) -> Result<Response<lpb::ListEnterprisesResponse>, Status> {
        reference_only()
    }

    async fn get_status_list(
        &self,
        _: Request<lpb::GetStatusListRequest>,
    ) -> Result<Response<lpb::GetStatusListResponse>, Status> {
        reference_only()
    }
}

/// EstablishEnterprise calls through `client` (with `token` when given), the `n`-th
/// enterprise's code on the `n`-th call.
fn issue_call(
    client: LicenseServiceClient<Channel>,
    token: Option<Arc<str>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync + 'static
{
    move |n: u64| {
        let mut client = client.clone();
        let token = token.clone();
        Box::pin(async move {
            let body = establishment(&uscc(n + 1));
            let mut req = match &token {
                Some(t) => with_token(body, t),
                None => Request::new(body),
            };
            req.set_timeout(Duration::from_secs(30));
            match client.establish_enterprise(req).await {
                Ok(_) => Outcome::Ok,
                Err(s) => Outcome::Failed(format!("{:?}: {}", s.code(), s.message())),
            }
        })
    }
}

/// Issuance against a [`RawInsertServer`] on a fresh database at `url`, served from a
/// runtime of its own (as the other references) and stopped before returning; `issued`
/// is an issued license's credential and `envelope` its encoded envelope, for the row and
/// answer sizes.
async fn raw_insert_server(
    url: &str,
    concurrency: u64,
    seconds: f64,
    issued: lpb::SignedCredential,
    envelope: Arc<Vec<u8>>,
) -> Measured {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let url = url.to_owned();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
            raw_table::create(&db, RAW_TABLE).await;
            let server = RawInsertServer {
                db: db.clone(),
                credential: Arc::new(issued),
                envelope,
                next: Arc::default(),
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx
                .send(listener.local_addr().unwrap().to_string())
                .unwrap();
            tonic::transport::Server::builder()
                .add_service(LicenseServiceServer::new(server))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .unwrap();
            db.close().await;
        });
    });
    let addr = addr_rx.await.unwrap();
    let client = LicenseServiceClient::new(channel(&addr).await);
    let m = drive(concurrency, seconds, issue_call(client, None)).await;
    let _ = stop_tx.send(());
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    m
}

// ---------------------------------------------------------------------------------------
// The configurations.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CacheKind {
    Memory,
    Redis,
}

fn config_name(b: Backend, c: CacheKind) -> &'static str {
    match (b, c) {
        (Backend::Sqlite, CacheKind::Memory) => "sqlite-memory",
        (Backend::Sqlite, CacheKind::Redis) => "sqlite-redis",
        (Backend::Postgres, CacheKind::Memory) => "postgres-memory",
        (Backend::Postgres, CacheKind::Redis) => "postgres-redis",
    }
}

/// PostgreSQL databases this run created, dropped at the end.
#[derive(Default)]
struct Databases(Vec<String>);

impl Databases {
    async fn fresh(&mut self) -> String {
        let url = credmesh_testkit::postgres::fresh_database().await.unwrap();
        self.0.push(url.clone());
        url
    }

    async fn drop_all(&self) {
        let Ok(server) = std::env::var(credmesh_testkit::postgres::ENV) else {
            return;
        };
        let server = server.trim_end_matches('/');
        let Ok(mut admin) =
            <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres")).await
        else {
            return;
        };
        for url in &self.0 {
            if let Some(name) = url.rsplit('/').next() {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            }
        }
    }
}

/// The shared fixtures of a run.
struct Fixture {
    /// The presentations' issuer key, registered at every configuration's identity.
    issuer: IssuerKey,
    /// How many distinct presentations each configuration signs.
    distinct: usize,
    concurrency: u64,
    seconds: f64,
}

const SYMBOLS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The `n`-th valid Huangpu enterprise code.
fn uscc(n: u64) -> String {
    let mut body = *b"MA000000";
    let mut v = n;
    for slot in body.iter_mut().skip(2).rev() {
        *slot = SYMBOLS[(v % 31) as usize];
        v /= 31;
    }
    credmesh_uscc::Uscc::from_parts('9', '1', "310101", std::str::from_utf8(&body).unwrap())
        .unwrap()
        .to_string()
}

/// Clients of the bare tonic reference servers (see [`start_references`]).
struct References {
    empty: VerifyServiceClient<Channel>,
    raw: VerifyServiceClient<Channel>,
    /// The credentials sent to the references; the raw-verify server goes round them.
    creds: Arc<Vec<Vec<u8>>>,
}

/// A load's figure and, for the verify loads, the reference it took turns with.
type Load = (&'static str, Measured, Option<(&'static str, Measured)>);

/// One configuration: starts identity, license and verify, measures the three loads
/// (the verify ones taking turns with their references in `refs`), stops them. Returns
/// the loads and (for the raw INSERT references) an issued license's credential.
async fn run_config(
    f: &Fixture,
    backend: Backend,
    cache: CacheKind,
    dbs: &mut Databases,
    refs: &References,
) -> (Vec<Load>, lpb::SignedCredential) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (anchor, anchor_file) = write_key(d, "anchor.pem");
    let (_, token_file) = write_key(d, "token.pem");
    let (operator, _) = write_key(d, "operator.pem");
    let (_, signing) = write_key(d, "license-signing.pem");
    let (license_client, license_client_file) = write_key(d, "license-client.pem");
    let (bank, _) = write_key(d, "bank.pem");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut db_url = async |name: &str| match backend {
        Backend::Sqlite => format!("sqlite://{}/{name}.db", d.display()),
        Backend::Postgres => dbs.fresh().await,
    };
    let (identity_db, license_db, verify_db) = (
        db_url("identity").await,
        db_url("license").await,
        db_url("verify").await,
    );
    let identity_addr = format!("127.0.0.1:{}", free_port());
    let license_addr = format!("127.0.0.1:{}", free_port());
    let verify_addr = format!("127.0.0.1:{}", free_port());

    let _identity = serve(
        "identity",
        &[
            ("DATABASE_URL", identity_db),
            ("CREDMESH_ANCHOR_KEY_FILE", anchor_file),
            ("CREDMESH_TOKEN_KEY_FILE", token_file),
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
    let token_for = |client: &str, key: &IssuerKey| ipb::IssueTokenRequest {
        client_id: client.into(),
        scopes: vec![],
        audience: String::new(),
        credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
            credmesh_auth::client_assertion(client, key.signing_key(), now()).unwrap(),
        )),
    };
    let mut id = IdentityServiceClient::new(identity);
    let op: Arc<str> = id
        .issue_token(token_for("operator", &operator))
        .await
        .unwrap()
        .into_inner()
        .access_token
        .into();
    for (client, kind, scope, key, org) in [
        (
            "license",
            credmesh_auth::PrincipalKind::Service,
            "identity.keys",
            &license_client,
            String::new(),
        ),
        (
            "bank",
            credmesh_auth::PrincipalKind::Partner,
            "verify",
            &bank,
            credmesh_uscc::Uscc::from_parts('9', '1', "320506", "MA100001")
                .unwrap()
                .to_string(),
        ),
    ] {
        id.register_client(with_token(
            ipb::RegisterClientRequest {
                client_id: client.into(),
                kind: kind.to_proto(),
                display_name: format!("load {client}"),
                scopes: vec![scope.into()],
                organization: org,
                public_key: key.public_key_bytes().to_vec(),
                ..Default::default()
            },
            &op,
        ))
        .await
        .unwrap();
    }
    id.register_issuer_key(with_token(
        ipb::RegisterIssuerKeyRequest {
            issuer: "SH/entcode".into(),
            kid: f.issuer.kid().to_string(),
            public_key: f.issuer.public_key_bytes().to_vec(),
            kinds: vec![CredentialKind::Presentation as i32],
            not_after: 0,
        },
        &op,
    ))
    .await
    .unwrap();
    // Signed now that the key is registered (a credential may not predate its key).
    let creds = Arc::new(presentations(&f.issuer, f.distinct));
    let bank_token: Arc<str> = id
        .issue_token(token_for("bank", &bank))
        .await
        .unwrap()
        .into_inner()
        .access_token
        .into();

    let _license = serve(
        "license",
        &[
            ("DATABASE_URL", license_db),
            ("CREDMESH_SIGNING_KEY_FILE", signing),
            ("CREDMESH_CLIENT_KEY_FILE", license_client_file),
            ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
            ("CREDMESH_PUBLIC_URL", format!("http://{license_addr}")),
            // A throughput measurement, not a test of the per-client limit (1000/s by
            // default, which capped issuance and counted its refusals as errors).
            ("CREDMESH_RATE_LIMIT_PER_SECOND", "0".into()),
            ("CREDMESH_GRPC_ADDR", license_addr.clone()),
            ("CREDMESH_HTTP_ADDR", license_addr.clone()),
        ],
    );
    let license = wait_serving(&license_addr, "credmesh.license.v1.LicenseService").await;
    let mut verify_env = vec![
        ("DATABASE_URL", verify_db),
        ("CREDMESH_IDENTITY_URL", format!("http://{identity_addr}")),
        (
            "CREDMESH_ANCHOR_PUBLIC_KEY",
            b64(&anchor.public_key_bytes()),
        ),
        ("CREDMESH_RATE_LIMIT_PER_SECOND", "0".into()),
        ("CREDMESH_GRPC_ADDR", verify_addr.clone()),
        ("CREDMESH_HTTP_ADDR", verify_addr.clone()),
    ];
    if cache == CacheKind::Redis {
        verify_env.push(("REDIS_URL", credmesh_testkit::redis::shared_url()));
        verify_env.push((
            "CREDMESH_CACHE_PREFIX",
            credmesh_testkit::redis::unique_prefix(),
        ));
    }
    let _verify = serve("verify", &verify_env);
    let verify = VerifyServiceClient::new(
        wait_serving(&verify_addr, "credmesh.verify.v1.VerifyService").await,
    );

    // Ready: the license key is registered (the first establishment succeeds) and the
    // gateway trusts the presentations' key (the last distinct credential verifies; it is
    // never sent again, so the distinct run stays uncached).
    let mut licenses = LicenseServiceClient::new(license);
    let issued = {
        let started = Instant::now();
        loop {
            match licenses
                .establish_enterprise(with_token(establishment(&uscc(0)), &op))
                .await
            {
                Ok(r) => break r.into_inner().license.unwrap().credential.unwrap(),
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("license never issued: {e}"),
            }
        }
    };
    let probe = Arc::new(vec![creds.last().unwrap().clone()]);
    let started = Instant::now();
    loop {
        let check = verify_call(
            verify.clone(),
            probe.clone(),
            Some(bank_token.clone()),
            true,
        );
        match check(0).await {
            Outcome::Ok => break,
            Outcome::Failed(e) if started.elapsed() > Duration::from_secs(30) => {
                panic!("the gateway never verified a presentation: {e}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // Warm the connection and the token cache.
    let warm = Arc::new(creds[creds.len() - 2..].to_vec());
    let _ = drive(
        8,
        0.3,
        verify_call(verify.clone(), warm, Some(bank_token.clone()), true),
    )
    .await;

    let mut loads: Vec<Load> = Vec::new();
    let distinct = creds[..creds.len() - 2].to_vec();
    // The raw-verify server caches nothing, so its credentials may come round again.
    let raw = verify_call(refs.raw.clone(), refs.creds.clone(), None, false);
    let n = refs.creds.len() as u64;
    let (m, r) = take_turns(
        f.concurrency,
        f.seconds,
        verify_call(
            verify.clone(),
            Arc::new(distinct),
            Some(bank_token.clone()),
            false,
        ),
        move |i| raw(i % n),
    )
    .await;
    loads.push(("verify_distinct", m, Some(("raw_verify_server", r))));
    let (m, r) = take_turns(
        f.concurrency,
        f.seconds,
        verify_call(verify.clone(), creds.clone(), Some(bank_token), true),
        verify_call(refs.empty.clone(), refs.creds.clone(), None, true),
    )
    .await;
    loads.push(("verify_cached", m, Some(("empty_rpc", r))));
    loads.push((
        "issuance",
        drive(f.concurrency, f.seconds, issue_call(licenses, Some(op))).await,
        None,
    ));
    (loads, issued)
}

/// Distinct presentations of `issuer`, valid for a day, without a nonce (multi-use, so
/// the cached load may repeat one).
fn presentations(issuer: &IssuerKey, n: usize) -> Vec<Vec<u8>> {
    let now = now();
    (0..n)
        .map(|i| {
            encode_envelope(&sign_credential(
                &Credential {
                    id: format!("urn:credmesh:presentation:load-{i}"),
                    kind: CredentialKind::Presentation as i32,
                    issuer: "SH/entcode".into(),
                    region: "SH".into(),
                    subject: "91310000MA1FL8TQ2X".into(),
                    // Not before the key's registration: it is valid from then on.
                    issued_at: now,
                    not_before: now,
                    not_after: now + 86_400,
                    status: None,
                    claims: vec![Claim {
                        name: "scenario".into(),
                        value: "bank-loan".into(),
                    }],
                    version: 0,
                    nonce: Vec::new(),
                },
                issuer,
            ))
        })
        .collect()
}

fn print_row(config: &str, load: &str, m: &Measured, reference: Option<(&str, f64, f64)>) {
    let (rname, ratio, goal) = match reference {
        Some((r, rate, goal)) if rate > 0.0 => (
            r.to_string(),
            format!("{:.2}×", m.per_second() / rate),
            format!("≥ {goal}×"),
        ),
        _ => (String::new(), String::new(), String::new()),
    };
    println!(
        "| {config} | {load} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {rname} | {ratio} | {goal} |",
        m.per_second(),
        m.ms(0.5),
        m.ms(0.9),
        m.ms(0.99),
        m.ms(1.0),
        m.errors,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(run());
    std::process::exit(code);
}

async fn run() -> i32 {
    let bin = credmesh_e2e::credmesh_bin();
    if std::env::var_os("CREDMESH_BIN").is_none() {
        // The harness's default is the debug build the e2e tests use: figures of it
        // say little about the service (`make bench` names the release build).
        eprintln!(
            "note: measuring {}, a debug build; set CREDMESH_BIN=target/release/credmesh \
             (as make bench does) to measure the release build",
            bin.display()
        );
    }
    let seconds = setting("CREDMESH_LOAD_SECONDS", 3) as f64;
    let concurrency = setting("CREDMESH_LOAD_CONCURRENCY", 64).max(1);
    let n_distinct = setting("CREDMESH_LOAD_DISTINCT", 10_000 * seconds as u64).max(16) as usize;
    let wanted = std::env::var("CREDMESH_LOAD_CONFIGS")
        .unwrap_or_else(|_| "sqlite-memory,sqlite-redis,postgres-memory,postgres-redis".into());
    let out = std::env::var("CREDMESH_LOAD_OUT")
        .unwrap_or_else(|_| format!("{}/../target/bench/load.json", env!("CARGO_MANIFEST_DIR")));
    let has = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
    let (has_pg, has_redis) = (
        has(credmesh_testkit::postgres::ENV),
        has(credmesh_testkit::redis::SHARED_URL_ENV),
    );

    let probe = IssuerKey::generate("p").unwrap();
    let kid = credmesh_credential::kid_for("SH", "entcode", &probe.public_key_bytes());
    let issuer = IssuerKey::from_pkcs8_pem(&kid, &probe.to_pkcs8_pem()).unwrap();
    let creds = Arc::new(presentations(&issuer, n_distinct));
    let fixture = Fixture {
        issuer,
        distinct: n_distinct,
        concurrency,
        seconds,
    };

    // References: bare tonic, no auth, measured taking turns with each configuration's
    // verify loads (see `take_turns`); their rows in the table sum up every turn.
    let (empty_addr, raw_addr) = start_references(fixture.issuer.verifying_key());
    let refs = References {
        empty: VerifyServiceClient::new(channel(&empty_addr).await),
        raw: VerifyServiceClient::new(channel(&raw_addr).await),
        creds: creds.clone(),
    };
    let _ = drive(
        8,
        0.3,
        verify_call(refs.raw.clone(), creds.clone(), None, true),
    )
    .await;
    let (mut m_empty, mut m_raw) = (Measured::empty(), Measured::empty());

    let mut dbs = Databases::default();
    let mut configs = Vec::new();
    let mut raw_inserts_done: Vec<(Backend, Measured)> = Vec::new();
    let mut raw_servers_done: Vec<(Backend, Measured)> = Vec::new();
    let mut measured_configs = Vec::new();
    for (backend, cache) in [
        (Backend::Sqlite, CacheKind::Memory),
        (Backend::Sqlite, CacheKind::Redis),
        (Backend::Postgres, CacheKind::Memory),
        (Backend::Postgres, CacheKind::Redis),
    ] {
        let name = config_name(backend, cache);
        if !wanted.split(',').any(|w| w.trim() == name) {
            continue;
        }
        let missing = match (backend, cache) {
            (Backend::Postgres, _) if !has_pg => Some(credmesh_testkit::postgres::ENV),
            (_, CacheKind::Redis) if !has_redis => Some(credmesh_testkit::redis::SHARED_URL_ENV),
            _ => None,
        };
        if let Some(var) = missing {
            eprintln!("{name}: skipped, {var} is not set");
            configs.push(json!({"name": name, "skipped": format!("{var} is not set")}));
            continue;
        }
        eprintln!("{name}: starting identity, license and verify");
        let (loads, issued) = run_config(&fixture, backend, cache, &mut dbs, &refs).await;
        for (_, _, reference) in &loads {
            match reference {
                Some(("empty_rpc", r)) => m_empty.absorb(r.clone()),
                Some((_, r)) => m_raw.absorb(r.clone()),
                None => {}
            }
        }
        if !raw_inserts_done.iter().any(|(b, _)| *b == backend) {
            let dir = tempfile::tempdir().unwrap();
            let mut url = async |name: &str| match backend {
                Backend::Sqlite => format!("sqlite://{}/{name}.db", dir.path().display()),
                Backend::Postgres => dbs.fresh().await,
            };
            let (loop_url, server_url) = (url("raw").await, url("raw-server").await);
            let envelope = Arc::new(
                issued
                    .envelope
                    .as_ref()
                    .map(encode_envelope)
                    .unwrap_or_default(),
            );
            let jwt: Arc<str> = issued.vc_jwt.as_str().into();
            let m = raw_inserts(&loop_url, concurrency, seconds, envelope.clone(), jwt).await;
            raw_inserts_done.push((backend, m));
            let m = raw_insert_server(&server_url, concurrency, seconds, issued, envelope).await;
            raw_servers_done.push((backend, m));
        }
        configs.push(json!({
            "name": name,
            "backend": match backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgresql" },
            "cache": match cache { CacheKind::Memory => "memory", CacheKind::Redis => "redis" },
            "loads": loads.iter().map(|(k, m, reference)| {
                let mut j = m.to_json();
                if let Some((name, r)) = reference {
                    let mut r = r.to_json();
                    r["name"] = json!(name);
                    j["reference"] = r;
                }
                (k.to_string(), j)
            }).collect::<serde_json::Map<_, _>>(),
        }));
        eprintln!("{name}: done");
        measured_configs.push((name, backend, loads));
    }
    dbs.drop_all().await;

    let of = |done: &[(Backend, Measured)], b: Backend| {
        done.iter()
            .find(|(x, _)| *x == b)
            .map(|(_, m)| m.per_second())
    };
    let backend_name = |b: Backend| match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    println!(
        "\n| configuration ({concurrency} streams, {seconds} s each) | load | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | reference | ratio | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    print_row("reference", "empty tonic RPC", &m_empty, None);
    print_row("reference", "raw-verify tonic server", &m_raw, None);
    for (b, m) in &raw_inserts_done {
        print_row(
            "reference",
            &format!("raw INSERT, {}", backend_name(*b)),
            m,
            None,
        );
    }
    for (b, m) in &raw_servers_done {
        let load = format!("raw-INSERT tonic server, {}", backend_name(*b));
        print_row("reference", &load, m, None);
    }
    for (name, backend, loads) in &measured_configs {
        for (load, m, turns) in loads {
            let turn =
                |r: &Option<(&str, Measured)>| r.as_ref().map_or(0.0, |(_, r)| r.per_second());
            let reference = match *load {
                "verify_distinct" => Some(("raw-verify server", turn(turns), 0.9)),
                "verify_cached" => Some(("empty RPC", turn(turns), 0.8)),
                _ => of(&raw_inserts_done, *backend).map(|r| ("raw INSERT", r, 0.5)),
            };
            let label = match *load {
                "verify_distinct" => "Verify, distinct credentials (uncached)",
                "verify_cached" => "Verify, repeated credential (cached)",
                _ => "EstablishEnterprise (issuance)",
            };
            print_row(name, label, m, reference);
            // Beside the reference that pays the same transport (no goal of its own).
            if *load == "issuance"
                && let Some(r) = of(&raw_servers_done, *backend)
            {
                println!(
                    "|  | … vs the raw-INSERT tonic server |  |  |  |  |  |  | raw-INSERT server | {:.2}× | reference only |",
                    m.per_second() / r
                );
            }
            if let Some(e) = &m.first_error {
                println!("|  | first error: {} |||||||||", e.replace('|', "/"));
            }
        }
    }

    let report = json!({
        "concurrency": concurrency,
        "seconds": seconds,
        "distinct_credentials": n_distinct,
        "references": {
            "empty_rpc": m_empty.to_json(),
            "raw_verify_server": m_raw.to_json(),
            "raw_insert": raw_inserts_done.iter().map(|(b, m)| (backend_name(*b).to_string(), m.to_json()))
                .collect::<serde_json::Map<_, _>>(),
            "raw_insert_server": raw_servers_done.iter().map(|(b, m)| (backend_name(*b).to_string(), m.to_json()))
                .collect::<serde_json::Map<_, _>>(),
        },
        "configurations": configs,
    });
    if let Some(parent) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!("wrote {out}");
    // Measured means every configuration asked for answered something.
    let measured = measured_configs.iter().all(|(_, _, loads)| {
        loads
            .iter()
            .all(|(_, m, r)| m.ok > 0 && r.as_ref().is_none_or(|(_, r)| r.ok > 0))
    });
    if measured && !measured_configs.is_empty() {
        0
    } else {
        1
    }
}
