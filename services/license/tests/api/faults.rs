//! Faults under load: the database crashes and comes back while departments keep
//! establishing enterprises, retrying failed calls with the same idempotency key.

use std::{collections::HashMap, sync::Arc, time::Duration};

use credmesh_proto::license::v1 as pb;
use credmesh_store::Db;
use tokio::sync::Notify;

use crate::helpers::*;

const CLIENTS: u32 = 6;
const PER_CLIENT: u32 = 12;

/// Establishes until it succeeds, retrying transient failures with the same request (and
/// so the same idempotency key), as a well-behaved client does; gives up after 90 s.
async fn establish_with_retries(
    app: &TestApp,
    token: &str,
    req: pb::EstablishEnterpriseRequest,
) -> (pb::EstablishEnterpriseResponse, u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut failures = 0;
    loop {
        match app.establish(token, req.clone()).await {
            Ok(r) => return (r, failures),
            Err(s) => {
                assert!(
                    matches!(s.code(), tonic::Code::Unavailable),
                    "a database outage must look transient, not like bad input: {s:?}"
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still failing 90 s later: {s:?}"
                );
                failures += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn a_postgres_crash_under_issuance_loses_nothing_and_duplicates_nothing() {
    let pg = credmesh_testkit::postgres::PostgresServer::start()
        .await
        .unwrap();
    let url = pg.create_database("license").await.unwrap();
    let app = Arc::new(spawn_on(url).await);
    let dept = app.department("sh-jingan", JINGAN).await;

    // Crash the database once a fifth of the establishments are done, while the rest
    // are in flight; bring it back a second later.
    let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let crash_now = Arc::new(Notify::new());
    // Clients keep establishing until the database is back, so calls are made while it
    // is down however fast the first fifth went.
    let back = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crasher = {
        let (crash_now, back) = (crash_now.clone(), back.clone());
        tokio::spawn(async move {
            crash_now.notified().await;
            let crashed_at = tokio::time::Instant::now();
            pg.crash().unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            pg.restart().unwrap();
            let back_at = tokio::time::Instant::now();
            back.store(true, std::sync::atomic::Ordering::SeqCst);
            (pg, crashed_at, back_at)
        })
    };
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (app, dept, done, crash_now, back) = (
            app.clone(),
            dept.clone(),
            done.clone(),
            crash_now.clone(),
            back.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0;
            while i < PER_CLIENT || !back.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                assert!(i < 1000, "the database never came back");
                let uscc = sh_uscc("310106", 10_000 + c * 1000 + i);
                let req = pb::EstablishEnterpriseRequest {
                    idempotency_key: format!("establish-{uscc}"),
                    ..restaurant(&uscc)
                };
                let started = tokio::time::Instant::now();
                let (r, failures) = establish_with_retries(&app, &dept, req.clone()).await;
                let span = (started, tokio::time::Instant::now());
                if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
                    == CLIENTS * PER_CLIENT / 5
                {
                    crash_now.notify_one();
                }
                out.push((req, r.license.unwrap().license_id, failures, span));
            }
            out
        }));
    }
    let mut issued = HashMap::new();
    let mut retried = 0;
    let mut spans = Vec::new();
    for t in tasks {
        for (req, id, failures, span) in t.await.unwrap() {
            retried += failures;
            spans.push(span);
            issued.insert(req.uscc.clone(), (req, id));
        }
    }
    let (_pg, crashed_at, back_at) = crasher.await.unwrap();
    let sent = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent >= CLIENTS * PER_CLIENT);
    assert_eq!(
        issued.len() as u32,
        sent,
        "every establishment answered once"
    );
    // A call caught by the outage either failed and was retried or waited inside the
    // pool for the database to come back; either way its span covers part of the outage.
    let caught = spans
        .iter()
        .filter(|(start, end)| *start < back_at && *end > crashed_at)
        .count();
    assert!(caught > 0, "the crash happened while calls were in flight");

    // A retry after the fact answers the same credential: nothing is issued twice.
    for (req, id) in issued.values() {
        let again = app.establish(&dept, req.clone()).await.unwrap();
        assert_eq!(&again.license.unwrap().license_id, id);
    }
    let db = app.license_db().await;
    let n = i64::from(sent);
    assert_eq!(count(&db, "SELECT count(*) FROM enterprises").await, n);
    assert_eq!(count(&db, "SELECT count(*) FROM license_versions").await, n);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT (list_no, list_index)) FROM license_versions"
        )
        .await,
        n,
        "every version has its own status-list entry"
    );
    eprintln!(
        "postgres crashed and restarted under {n} establishments; {caught} calls caught by \
         the outage, {retried} failures retried; {n} enterprises, {n} versions, none duplicated"
    );
}
