//! Planning decisions per second (`make bench`), with 10,000 and 1,000,000 past
//! inspections in the database. Goal: with 1,000,000 ≥ 0.8× the rate with 10,000 —
//! every rule reads "this enterprise, near this date" through an index, never a scan.
//!
//! One decision is everything `PlanInspection` does behind the gRPC adapter except the
//! license check (a call to another service, whose latency is not this service's):
//! the idempotency claim, the enterprise lock, the facts of rules 2–5 (grade, the two
//! lists, routine and on-site inspections within a year, the inspectors' no-finding
//! record, other departments' inspections, clean non-site checks), the decision, and
//! for an issued code the status entry, two Ed25519 signatures and the rows, the audit
//! entry and the stored answer, in one transaction. Past inspections are spread over
//! enterprises ten each, in the past two years, so both sizes ask the same questions
//! of enterprises with the same history; only the table sizes differ.
//!
//! Settings (environment): `CREDMESH_BENCH_N` decisions per measurement (default 1000),
//! `CREDMESH_BENCH_PAST` comma-separated numbers of past inspections (default
//! `10000,1000000`), `CREDMESH_TEST_POSTGRES_URL` the PostgreSQL server (SQLite alone
//! without it). Past rows are generated in SQL, not through the service.
//!
//! Run: `cargo bench -p credmesh-inspection --bench planning`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_credential::keys::IssuerKey;
use credmesh_inspection::{
    Inspection,
    domain::{
        input::NamedInspector,
        rules::{Basis, Kind},
    },
    license::{ActiveLicense, LicenseCheck, LicenseCheckError},
    service::Caller,
    store::{NewPlan, Planned},
};
use credmesh_proto::{
    credential::v1::KeyStatus,
    identity::v1::{IssuerKey as PbKey, RegisterIssuerKeyRequest, RegisterIssuerKeyResponse},
};
use credmesh_runtime::{ServerConfig, SystemClock};
use credmesh_store::{Db, DbOptions, idempotency::IdempotencyKey};
use futures::future::BoxFuture;

const DAY: i64 = 86_400;
const PER_ENTERPRISE: i64 = 10;

/// The license service's answer, fixed: its latency is another service's.
#[derive(Debug)]
struct Licensed;

impl LicenseCheck for Licensed {
    fn active(&self, uscc: &str) -> BoxFuture<'_, Result<ActiveLicense, LicenseCheckError>> {
        let uscc = uscc.to_string();
        Box::pin(async move {
            Ok(ActiveLicense {
                uscc,
                name: "上海静安面馆有限公司".into(),
                license_id: "bench".into(),
            })
        })
    }
}

fn active_registrar() -> Arc<dyn credmesh_inspection::KeyRegistrar> {
    let f = |req: RegisterIssuerKeyRequest| -> BoxFuture<'static, Result<RegisterIssuerKeyResponse, tonic::Status>> {
        Box::pin(async move {
            Ok(RegisterIssuerKeyResponse {
                key: Some(PbKey {
                    key: Some(credmesh_proto::credential::v1::TrustedKey {
                        kid: req.kid,
                        status: KeyStatus::Active as i32,
                        ..Default::default()
                    }),
                    registered_at: 0,
                }),
                retired: None,
            })
        })
    };
    Arc::new(f)
}

async fn service(db: Db, dir: &std::path::Path) -> Arc<Inspection> {
    let key = IssuerKey::generate("bench").unwrap();
    let path = dir.join("signing.pem");
    std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
    let env: HashMap<String, String> = [(
        "CREDMESH_SIGNING_KEY_FILE".to_string(),
        path.display().to_string(),
    )]
    .into();
    let config = credmesh_inspection::InspectionConfig::from_env(&env).unwrap();
    let built = credmesh_inspection::build(
        &config,
        db,
        Arc::new(SystemClock),
        &ServerConfig::default(),
        active_registrar(),
        Arc::new(Licensed),
    )
    .await
    .unwrap();
    assert!(built.registration.wait(Duration::from_secs(5)).await);
    built.inspection
}

fn department() -> Principal {
    Principal {
        client_id: "bench".into(),
        kind: PrincipalKind::Department,
        scopes: vec!["inspection.plan".into()],
        organization: Some("11310106MB2F10062C".into()),
        region: "SH".into(),
        token_id: String::new(),
        expires_at: 0,
        enforcement_certificate: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `n` planning decisions for the enterprises of block `run` (`block` enterprises of the
/// prefilled history no other measurement touches, so every measurement meets the same
/// history); decisions per second and how many codes were issued.
async fn decisions(inspection: &Inspection, run: u32, n: u32, block: i64) -> (f64, u32) {
    let principal = department();
    let t0 = now();
    let mut issued = 0;
    let started = Instant::now();
    for i in 0..n {
        let e = i64::from(run) * block + (i64::from(i) * 7919) % block.max(1);
        let start = t0 + DAY + i64::from(i % 20) * DAY;
        let plan = NewPlan {
            id: format!("B{run}-{i}"),
            uscc: format!("P{e:017}"),
            enterprise_name: String::new(),
            department: "11310106MB2F10062C".into(),
            basis: Basis {
                kind: Kind::Routine,
                plan_number: "沪静市监检〔2026〕12号".into(),
                trigger: None,
                trigger_reason: String::new(),
            },
            items: vec!["food-safety".into(), "hygiene".into()],
            inspectors: vec![
                NamedInspector {
                    client_id: "insp-1".into(),
                    certificate: "沪执法31000011111".into(),
                },
                NamedInspector {
                    client_id: "insp-2".into(),
                    certificate: "沪执法31000022222".into(),
                },
            ],
            window: (start, start + 7 * DAY),
            override_reason: String::new(),
        };
        let key = IdempotencyKey::new(
            "inspection.PlanInspection",
            "bench",
            &format!("bench-{run}-{i}"),
            plan.id.as_bytes(),
        )
        .unwrap();
        let outcome = inspection
            .plan(
                Caller {
                    principal: &principal,
                    trace_id: "",
                },
                plan,
                key.as_ref(),
                &|_: &Planned| Vec::new(),
            )
            .await
            .unwrap();
        if matches!(
            outcome,
            credmesh_store::idempotency::Outcome::Done(Planned::Issued(_))
        ) {
            issued += 1;
        }
    }
    (f64::from(n) / started.elapsed().as_secs_f64(), issued)
}

/// Grows the history to `total` past inspections: enterprise `P…e` gets ten, in the
/// past two years, half of them completed without findings by `insp-1`, each with its
/// department and inspector rows.
async fn prefill(db: &Db, from: i64, total: i64) {
    if total <= from {
        return;
    }
    let t = now();
    let (lo, hi) = (from + 1, total);
    let cols = |i: &str, pad: &str, epad: &str| {
        format!(
            "'H' || {pad}, {i} + 1000000000, 'P' || {epad}, 'prefill', TRUE, {t} - ({i} % 730) * {DAY}, {t} - ({i} % 730) * {DAY} + 7 * {DAY}, \
             CASE WHEN {i} % 2 = 0 THEN 'completed' ELSE 'issued' END, FALSE, '', '[]', 0, 1, 1000 + {i} / 131072, {i} % 131072, 'k', X, 'prefill', \
             0, CASE WHEN {i} % 2 = 0 THEN {t} - ({i} % 730) * {DAY} + DAYX ELSE 0 END, FALSE, '', '', FALSE, 0, 'prefill'",
        )
    };
    match db {
        Db::Postgres(p) => {
            let series = format!("generate_series({lo}, {hi}) i");
            let pad = "lpad(i::text, 17, '0')";
            let c = cols(
                "i",
                pad,
                &format!("lpad(((i - 1) / {PER_ENTERPRISE})::text, 17, '0')"),
            )
            .replace(" X,", " '\\x00'::bytea,")
            .replace("DAYX", &DAY.to_string());
            for sql in [
                format!(
                    "INSERT INTO inspections (id, seq, uscc, enterprise_name, routine, window_start, window_end, state, multi_head, override_reason, alerts, alert_count, code_version, list_no, list_index, kid, envelope, vc_jwt, shown_at, completed_at, has_findings, summary, recorded_by, evaluated, created_at, created_by) SELECT {c} FROM {series}"
                ),
                format!(
                    "INSERT INTO inspection_participants SELECT 'H' || {pad}, '1131000000' || lpad((i % 5)::text, 8, '0'), 0, 'routine', 'food-safety', 'P', '', '', FALSE, 0 FROM {series}"
                ),
                format!(
                    "INSERT INTO inspection_inspectors SELECT 'H' || {pad}, 'insp-' || (i % 3)::text, 'c', 'd', 0 FROM {series}"
                ),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
        Db::Sqlite(p) => {
            let seq = format!(
                "WITH RECURSIVE seq(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM seq WHERE i < {hi})"
            );
            let pad = "printf('%017d', i)";
            let c = cols(
                "i",
                pad,
                &format!("printf('%017d', (i - 1) / {PER_ENTERPRISE})"),
            )
            .replace(" X,", " X'00',")
            .replace("DAYX", &DAY.to_string());
            for sql in [
                format!(
                    "{seq} INSERT INTO inspections (id, seq, uscc, enterprise_name, routine, window_start, window_end, state, multi_head, override_reason, alerts, alert_count, code_version, list_no, list_index, kid, envelope, vc_jwt, shown_at, completed_at, has_findings, summary, recorded_by, evaluated, created_at, created_by) SELECT {c} FROM seq"
                ),
                format!(
                    "{seq} INSERT INTO inspection_participants SELECT 'H' || {pad}, '1131000000' || printf('%08d', i % 5), 0, 'routine', 'food-safety', 'P', '', '', FALSE, 0 FROM seq"
                ),
                format!(
                    "{seq} INSERT INTO inspection_inspectors SELECT 'H' || {pad}, 'insp-' || (i % 3), 'c', 'd', 0 FROM seq"
                ),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Refreshes planner statistics, as autovacuum / `ANALYZE` would after a bulk load.
async fn analyze(db: &Db) {
    match db {
        Db::Sqlite(p) => sqlx::raw_sql("ANALYZE").execute(p).await.map(drop).unwrap(),
        Db::Postgres(p) => sqlx::raw_sql("ANALYZE").execute(p).await.map(drop).unwrap(),
    }
}

async fn bench_backend(name: &str, url: &str, n: u32, sizes: &[i64]) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(url, &DbOptions::default()).await.unwrap();
    db.migrate(credmesh_inspection::migrations()).await.unwrap();
    let inspection = service(db.clone(), dir.path()).await;
    let mut past = 0i64;
    let mut first_rate = None;
    for (run, &size) in sizes.iter().enumerate() {
        let started = Instant::now();
        prefill(&db, past, size).await;
        analyze(&db).await;
        past = past.max(size);
        let filled = started.elapsed();
        // Enterprises of the smallest history, in disjoint blocks: a warm-up and a
        // measurement per size.
        let block = sizes[0] / PER_ENTERPRISE / (2 * sizes.len() as i64);
        decisions(&inspection, 2 * run as u32, 50, block).await;
        let (rate, issued) = decisions(&inspection, 2 * run as u32 + 1, n, block).await;
        let base = *first_rate.get_or_insert(rate);
        println!(
            "| {name} | {size} | {rate:.0} | {issued} | {:.2}× | {:.1} s |",
            rate / base,
            filled.as_secs_f64()
        );
    }
    db.close().await;
}

#[tokio::main]
async fn main() {
    let n: u32 = std::env::var("CREDMESH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sizes: Vec<i64> = std::env::var("CREDMESH_BENCH_PAST")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("inspection planning decisions, {n} per measurement (one transaction each)\n");
    println!(
        "| backend | past inspections | decisions/s | codes issued | vs first | prefill time |"
    );
    println!("|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    bench_backend("sqlite", &sqlite, n, &sizes).await;
    match std::env::var("CREDMESH_TEST_POSTGRES_URL") {
        Ok(server) if !server.is_empty() => {
            let server = server.trim_end_matches('/');
            let name = format!("bench_inspection_{}", std::process::id());
            let mut admin =
                <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
                    .await
                    .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            bench_backend("postgres", &format!("{server}/{name}"), n, &sizes).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
        }
        _ => println!("\n(PostgreSQL skipped: CREDMESH_TEST_POSTGRES_URL is not set)"),
    }
    println!(
        "\ngoals: with the largest history ≥ 0.8× the decision rate with the smallest (indexes, not scans)"
    );
}
