use std::collections::HashSet;

use credmesh_credential::Outcome;
use credmesh_proto::license::v1 as pb;
use credmesh_store::Db;
use credmesh_uscc::LicenseId;

use crate::helpers::*;

/// Rows of `license_versions` for one enterprise: (version, is_current, superseded_at).
async fn version_rows(db: &Db, uscc: &str) -> Vec<(i64, bool, i64)> {
    const SQL: &str = "SELECT version, is_current, superseded_at FROM license_versions WHERE uscc = $1 ORDER BY version";
    match db {
        Db::Sqlite(p) => sqlx::query_as(SQL).bind(uscc).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(SQL).bind(uscc).fetch_all(p).await.unwrap(),
    }
}

#[tokio::test]
async fn concurrent_amendments_leave_exactly_one_current_version_and_a_gapless_chain() {
    const TASKS: u32 = 16;
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 7);
        app.establish(&dept, restaurant(&uscc)).await.unwrap();

        let mut tasks = Vec::new();
        for n in 0..TASKS {
            let client = app.license.clone();
            let token = dept.clone();
            let uscc = uscc.clone();
            tasks.push(tokio::spawn(async move {
                client
                    .clone()
                    .amend_license(with_token(
                        pb::AmendLicenseRequest {
                            uscc,
                            domicile: Some(format!("上海市静安区江宁路{n}号")),
                            idempotency_key: format!("amend-{n}"),
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .map(|r| r.into_inner())
            }));
        }
        let mut superseded = Vec::new();
        let mut issued = Vec::new();
        for t in tasks {
            let r = t
                .await
                .unwrap()
                .unwrap_or_else(|s| panic!("{backend:?}: {s:?}"));
            superseded.push(r.superseded_version);
            issued.push(r.license.unwrap().version);
        }
        superseded.sort();
        issued.sort();
        assert_eq!(superseded, (1..=TASKS).collect::<Vec<_>>(), "{backend:?}");
        assert_eq!(issued, (2..=TASKS + 1).collect::<Vec<_>>(), "{backend:?}");

        let db = app.license_db().await;
        let rows = version_rows(&db, &uscc).await;
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            (1..=i64::from(TASKS) + 1).collect::<Vec<_>>(),
            "a gapless chain"
        );
        let current: Vec<_> = rows.iter().filter(|r| r.1).collect();
        assert_eq!(current.len(), 1, "exactly one current version");
        assert_eq!(current[0].0, i64::from(TASKS) + 1);
        assert!(rows.iter().filter(|r| !r.1).all(|r| r.2 != 0));
        db.close().await;

        let last = app.get(&dept, &uscc).await;
        assert_eq!(last.enterprise.unwrap().current_version, TASKS + 1);
        let head = last.license.unwrap();
        assert_eq!(app.verify_all_forms(&head).await.outcome, Outcome::Valid);
        // Every earlier version answers superseded.
        let (trust, cache) = app.verifier().await;
        for v in 1..=TASKS {
            let old = app.version(&dept, &uscc, v).await;
            let env = old.credential.unwrap().envelope.unwrap();
            let checked = credmesh_credential::verify(
                credmesh_credential::Presented::Envelope(&env),
                &trust,
                &cache,
                &credmesh_credential::Policy::default(),
                app.now(),
            );
            assert_eq!(
                checked.outcome,
                Outcome::Revoked { superseded: true },
                "v{v}"
            );
        }
    }
}

/// The database itself refuses a second current version, whatever the code does: a
/// partial unique index on PostgreSQL, triggers on SQLite (migration 0103).
#[tokio::test]
async fn the_database_refuses_a_second_current_version() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 8);
        app.establish(&dept, restaurant(&uscc)).await.unwrap();
        let db = app.license_db().await;
        // Version 1 again as version 2, current, on a status entry of its own.
        const COPY: &str = "INSERT INTO license_versions SELECT uscc, 2, license_id || '-copy', \
            TRUE, name, entity_type, legal_representative, rep_id_salt, rep_id_hash, \
            capital_amount, capital_currency, establishment_date, term_start, term_end, \
            domicile, business_scope, authority, issue_date, list_no + 1000000, list_index, kid, \
            envelope, vc_jwt, issued_at, issued_by, superseded_at, revoked_at \
            FROM license_versions WHERE uscc = $1 AND version = 1";
        // Version 1 made current again after it was cleared and version 2 took over.
        const CLEAR: &str =
            "UPDATE license_versions SET is_current = FALSE WHERE uscc = $1 AND version = 1";
        const SET: &str =
            "UPDATE license_versions SET is_current = TRUE WHERE uscc = $1 AND version = 1";
        macro_rules! check {
            ($pool:expr) => {{
                let copied = sqlx::query(COPY).bind(&uscc).execute($pool).await;
                assert!(
                    copied.is_err(),
                    "{backend:?}: a second current version was written"
                );
                let mut tx = $pool.begin().await.unwrap();
                sqlx::query(CLEAR)
                    .bind(&uscc)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(COPY)
                    .bind(&uscc)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let set = sqlx::query(SET).bind(&uscc).execute(&mut *tx).await;
                assert!(
                    set.is_err(),
                    "{backend:?}: an old version became current again"
                );
                drop(tx);
            }};
        }
        match &db {
            Db::Sqlite(p) => check!(p),
            Db::Postgres(p) => check!(p),
        }
        assert_eq!(
            version_rows(&db, &uscc).await,
            vec![(1, true, 0)],
            "{backend:?}: nothing of the refused writes stays"
        );
        db.close().await;
    }
}

#[tokio::test]
async fn concurrent_establishments_get_distinct_status_entries_and_serials() {
    const TASKS: u32 = 12;
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let mut tasks = Vec::new();
        for n in 0..TASKS {
            let client = app.license.clone();
            let token = op.clone();
            let mut req = restaurant(&sh_uscc("310106", 200 + n));
            req.registration_authority = JINGAN.into();
            tasks.push(tokio::spawn(async move {
                client
                    .clone()
                    .establish_enterprise(with_token(req, &token))
                    .await
                    .map(|r| r.into_inner())
            }));
        }
        let mut entries = HashSet::new();
        let mut serials = Vec::new();
        for t in tasks {
            let v = t.await.unwrap().unwrap().license.unwrap();
            let s = v.status_reference.unwrap();
            assert!(
                entries.insert((s.list_id, s.index)),
                "an entry is never shared"
            );
            serials.push(
                LicenseId::parse(&v.license_id)
                    .unwrap()
                    .serial()
                    .to_string(),
            );
        }
        serials.sort();
        let expected: Vec<String> = (1..=TASKS).map(|n| format!("{n:012}")).collect();
        assert_eq!(
            serials, expected,
            "{backend:?}: serials per authority without gaps"
        );
    }
}

/// Rows of a table (`enterprises`, `license_versions`, `audit_log`, `idempotency`).
async fn rows(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

fn serial(v: &pb::LicenseVersion) -> String {
    LicenseId::parse(&v.license_id)
        .unwrap()
        .serial()
        .to_string()
}

#[tokio::test]
async fn one_establishment_sent_many_times_at_once_registers_once_and_answers_alike() {
    const TASKS: u32 = 8;
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 300);
        let req = pb::EstablishEnterpriseRequest {
            idempotency_key: "establish-once".into(),
            ..restaurant(&uscc)
        };
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let client = app.license.clone();
            let (token, req) = (dept.clone(), req.clone());
            tasks.push(tokio::spawn(async move {
                client
                    .clone()
                    .establish_enterprise(with_token(req, &token))
                    .await
                    .map(|r| r.into_inner())
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(
                t.await
                    .unwrap()
                    .unwrap_or_else(|s| panic!("{backend:?}: {s:?}")),
            );
        }
        assert!(
            answers.iter().all(|a| a == &answers[0]),
            "{backend:?}: every retry answers the first credential, byte for byte"
        );
        let db = app.license_db().await;
        assert_eq!(rows(&db, "enterprises").await, 1, "{backend:?}");
        assert_eq!(rows(&db, "license_versions").await, 1, "{backend:?}");
        assert_eq!(
            rows(&db, "audit_log WHERE action = 'license.establish'").await,
            1,
            "{backend:?}"
        );
        assert_eq!(rows(&db, "idempotency").await, 1, "{backend:?}");
        db.close().await;
    }
}

#[tokio::test]
async fn refused_establishments_use_up_no_serial_and_a_restart_reuses_none() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let first = app
            .establish(&dept, restaurant(&sh_uscc("310106", 400)))
            .await
            .unwrap()
            .license
            .unwrap();
        // The code is registered: refused, with and without a key.
        for key in ["", "again-400"] {
            let req = pb::EstablishEnterpriseRequest {
                idempotency_key: key.into(),
                ..restaurant(&sh_uscc("310106", 400))
            };
            assert_status(
                app.establish(&dept, req).await,
                tonic::Code::AlreadyExists,
                "ENTERPRISE_EXISTS",
            );
        }
        let second = app
            .establish(&dept, restaurant(&sh_uscc("310106", 401)))
            .await
            .unwrap()
            .license
            .unwrap();
        assert_eq!(serial(&first), format!("{:012}", 1), "{backend:?}");
        assert_eq!(serial(&second), format!("{:012}", 2), "{backend:?}: no gap");

        // Whatever the stopped process had claimed is never given out again.
        let app = app.restart(false).await;
        let op = app.operator_token().await;
        let third = app
            .establish(&op, restaurant(&sh_uscc("310106", 402)))
            .await
            .unwrap()
            .license
            .unwrap();
        assert!(serial(&third) > serial(&second), "{backend:?}");
        let (a, b) = (
            second.status_reference.unwrap(),
            third.status_reference.unwrap(),
        );
        assert_ne!((a.list_id, a.index), (b.list_id, b.index), "{backend:?}");
        let db = app.license_db().await;
        assert_eq!(rows(&db, "enterprises").await, 3, "{backend:?}");
        db.close().await;
    }
}
