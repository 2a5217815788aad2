//! Two departments planning for one enterprise at the same instant cannot both pass a
//! cap of 1: real concurrent transactions on PostgreSQL (and SQLite's write lock).

use credmesh_proto::inspection::v1::{self as pb, plan_inspection_response::Decision};

use crate::helpers::*;

#[tokio::test]
async fn concurrent_plans_cannot_both_pass_a_cap_of_one() {
    const DEPARTMENTS: u32 = 8;
    for backend in BOTH {
        // Conflicts off, so the cap alone decides: every plan is a routine one of a
        // grade-A enterprise, from its own department.
        let app = spawn_with(backend, &[("CREDMESH_INSPECTION_CONFLICT_DAYS", "0")]).await;
        let market = app.department("sh-jingan", MARKET).await;
        let uscc = sh_uscc(31);
        app.establish(&market, &uscc).await;
        app.import(
            &market,
            vec![pb::PolicyEntry {
                kind: pb::PolicyKind::CreditGrade as i32,
                enterprise_uscc: uscc.clone(),
                grade: pb::CreditGrade::A as i32,
                ..Default::default()
            }],
        )
        .await;
        let start = app.now() + DAY;
        // A triggered inspection first (never capped, far from the racing windows), so
        // the enterprise's row exists before the race: the plans then meet only at the
        // row lock, not at the insert of a new row (which would serialise them anyway).
        let mut earlier = routine(&uscc, start + 200 * DAY, "insp", "cert");
        earlier.r#type = pb::InspectionType::Triggered as i32;
        earlier.plan_number = String::new();
        earlier.trigger = pb::Trigger::Complaint as i32;
        earlier.trigger_reason = "complaint 2026-77".into();
        assert!(matches!(
            app.plan(&market, earlier).await.unwrap(),
            Decision::Issued(_)
        ));
        let mut tokens = Vec::new();
        for n in 0..DEPARTMENTS {
            let org = credmesh_uscc::Uscc::from_parts('1', '1', "310000", &format!("0099{n:04}"))
                .unwrap()
                .to_string();
            tokens.push(app.department(&format!("dept-{n}"), &org).await);
            app.inspector(&format!("insp-{n}"), &org, &format!("cert-{n}"))
                .await;
        }
        let mut tasks = Vec::new();
        for (n, token) in tokens.into_iter().enumerate() {
            let client = app.inspection.clone();
            // Windows that do not overlap, so only the cap can stop them.
            let mut req = routine(
                &uscc,
                start + n as i64 * 2 * DAY,
                &format!("insp-{n}"),
                &format!("cert-{n}"),
            );
            req.window_end = req.window_start + DAY;
            tasks.push(tokio::spawn(async move {
                client
                    .clone()
                    .plan_inspection(with_token(req, &token))
                    .await
                    .map(|r| r.into_inner().decision.unwrap())
            }));
        }
        let mut issued = 0;
        let mut refused = 0;
        for t in tasks {
            match t
                .await
                .unwrap()
                .unwrap_or_else(|s| panic!("{backend:?}: {s:?}"))
            {
                Decision::Issued(_) => issued += 1,
                Decision::Refused(r) => {
                    assert_eq!(r.reason, "FREQUENCY_CAP_REACHED");
                    refused += 1;
                }
                Decision::Conflict(c) => panic!("{backend:?}: unexpected conflict {c:?}"),
            }
        }
        assert_eq!((issued, refused), (1, DEPARTMENTS - 1), "{backend:?}");
    }
}
