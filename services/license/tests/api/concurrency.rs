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
