//! Idempotent plans, paged lists, who sees what, and all-or-nothing policy imports.

use credmesh_proto::inspection::v1::{self as pb, plan_inspection_response::Decision};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_retried_plan_issues_once_and_lists_page_newest_first() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let uscc = sh_uscc(41);
        app.establish(&market, &uscc).await;
        app.import(
            &market,
            vec![pb::PolicyEntry {
                kind: pb::PolicyKind::CreditGrade as i32,
                enterprise_uscc: uscc.clone(),
                grade: pb::CreditGrade::D as i32,
                ..Default::default()
            }],
        )
        .await;
        let start = app.now() + DAY;
        let mut first = routine(&uscc, start, "insp-i1", "c1");
        first.idempotency_key = "plan-1".into();
        let a = app.plan(&market, first.clone()).await.unwrap();
        let b = app.plan(&market, first.clone()).await.unwrap();
        let (Decision::Issued(a), Decision::Issued(b)) = (a, b) else {
            panic!("{backend:?}: issued twice expected");
        };
        assert_eq!(
            a.id, b.id,
            "{backend:?}: a replay answers the first decision"
        );
        // The same key with another request is refused.
        let mut other = first.clone();
        other.items = vec!["hygiene".into()];
        assert_status(
            app.plan(&market, other).await,
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED",
        );
        for n in 1..5 {
            let p = routine(&uscc, start + n * 40 * DAY, "insp-i1", "c1");
            assert!(matches!(
                app.plan(&market, p).await.unwrap(),
                Decision::Issued(_)
            ));
        }
        // Five inspections, two a page, newest first, over three pages.
        let mut ids = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .inspection
                .clone()
                .list_inspections(with_token(
                    pb::ListInspectionsRequest {
                        enterprise_uscc: uscc.clone(),
                        page_size: 2,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                    &market,
                ))
                .await
                .unwrap()
                .into_inner();
            ids.extend(
                page.inspections
                    .iter()
                    .map(|i| (i.created_at, i.window_start)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(ids.len(), 5, "{backend:?}");
        assert!(ids.windows(2).all(|w| w[0].1 > w[1].1), "{ids:?}");

        // The enterprise reads its own inspections, not another's.
        let owner = app.enterprise(&uscc).await;
        let own = app
            .inspection
            .clone()
            .get_inspection(with_token(
                pb::GetInspectionRequest {
                    inspection_id: a.id.clone(),
                },
                &owner,
            ))
            .await;
        assert!(own.is_ok());
        let stranger = app.enterprise(&sh_uscc(42)).await;
        let theirs = app
            .inspection
            .clone()
            .get_inspection(with_token(
                pb::GetInspectionRequest {
                    inspection_id: a.id.clone(),
                },
                &stranger,
            ))
            .await;
        assert_eq!(theirs.unwrap_err().code(), Code::PermissionDenied);

        // A policy import with one bad entry imports nothing and names the entry.
        let bad = app
            .inspection
            .clone()
            .import_policy_data(with_token(
                pb::ImportPolicyDataRequest {
                    entries: vec![
                        pb::PolicyEntry {
                            kind: pb::PolicyKind::MonitoringList as i32,
                            enterprise_uscc: uscc.clone(),
                            ..Default::default()
                        },
                        pb::PolicyEntry {
                            kind: pb::PolicyKind::CreditGrade as i32,
                            enterprise_uscc: "not-a-code".into(),
                            grade: pb::CreditGrade::A as i32,
                            ..Default::default()
                        },
                    ],
                    idempotency_key: String::new(),
                },
                &market,
            ))
            .await;
        let s = bad.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument);
        let fields: Vec<String> = credmesh_proto::status::field_violations(&s)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, vec!["entries[1].enterprise_uscc".to_string()]);
        let history = app
            .inspection
            .clone()
            .list_policy_history(with_token(
                pb::ListPolicyHistoryRequest {
                    kind: pb::PolicyKind::MonitoringList as i32,
                    ..Default::default()
                },
                &market,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(history.changes.is_empty(), "{backend:?}: nothing imported");
    }
}

#[tokio::test]
async fn an_override_with_a_reason_is_issued_and_counted_as_multi_head() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let health_org = health();
        let health = app.department("sh-health", &health_org).await;
        let uscc = sh_uscc(51);
        app.establish(&market, &uscc).await;
        let start = app.now() + DAY;
        assert!(matches!(
            app.plan(&market, routine(&uscc, start, "insp-i1", "c1"))
                .await
                .unwrap(),
            Decision::Issued(_)
        ));
        let mut p = routine(&uscc, start + 20 * DAY, "insp-h1", "h1");
        p.r#type = pb::InspectionType::Triggered as i32;
        p.plan_number = String::new();
        p.trigger = pb::Trigger::Complaint as i32;
        p.trigger_reason = "suspected food poisoning, complaint 2026-311".into();
        assert!(matches!(
            app.plan(&health, p.clone()).await.unwrap(),
            Decision::Conflict(_)
        ));
        p.override_reason = "samples must be taken within 24 hours".into();
        let Decision::Issued(i) = app.plan(&health, p).await.unwrap() else {
            panic!("{backend:?}: issued expected");
        };
        assert!(i.multi_head);
        assert_eq!(i.override_reason, "samples must be taken within 24 hours");
        let stats = app
            .inspection
            .clone()
            .get_statistics(with_token(
                pb::GetStatisticsRequest {
                    department: health_org.clone(),
                    from: T0,
                    to: T0 + 100 * DAY,
                    ..Default::default()
                },
                &health,
            ))
            .await
            .unwrap()
            .into_inner()
            .statistics
            .unwrap();
        assert_eq!(
            (
                stats.inspections,
                stats.multi_head_inspections,
                stats.multi_head_rate
            ),
            (1, 1, 1.0),
            "{backend:?}"
        );
        // The enterprise's statistics count both visits, one of them multi-head.
        let owner = app.enterprise(&uscc).await;
        let stats = app
            .inspection
            .clone()
            .get_statistics(with_token(
                pb::GetStatisticsRequest {
                    enterprise_uscc: uscc.clone(),
                    from: T0,
                    to: T0 + 100 * DAY,
                    ..Default::default()
                },
                &owner,
            ))
            .await
            .unwrap()
            .into_inner()
            .statistics
            .unwrap();
        assert_eq!((stats.inspections, stats.multi_head_inspections), (2, 1));
    }
}
