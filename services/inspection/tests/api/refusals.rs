//! Refusals carry the rule, a stable reason, a sentence and the facts; results for
//! unshown or expired codes are refused; an enterprise without a license in force gets
//! no code.

use credmesh_proto::{
    inspection::v1::{self as pb, plan_inspection_response::Decision},
    license::v1 as lpb,
};
use tonic::Code;

use crate::helpers::*;

fn refused(d: Decision) -> pb::Refusal {
    match d {
        Decision::Refused(r) => r,
        other => panic!("refused expected, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_name_the_rule_and_a_readable_reason() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let start = app.now() + DAY;
        let (a, b, c) = (sh_uscc(11), sh_uscc(12), sh_uscc(13));
        for u in [&a, &b, &c] {
            app.establish(&market, u).await;
        }
        app.import(
            &market,
            vec![
                pb::PolicyEntry {
                    kind: pb::PolicyKind::MonitoringList as i32,
                    enterprise_uscc: a.clone(),
                    note: "under monitoring".into(),
                    ..Default::default()
                },
                pb::PolicyEntry {
                    kind: pb::PolicyKind::DoNotDisturb as i32,
                    item: "signage".into(),
                    ..Default::default()
                },
                pb::PolicyEntry {
                    kind: pb::PolicyKind::NonSiteCheck as i32,
                    enterprise_uscc: c.clone(),
                    item: "food-safety".into(),
                    clean: true,
                    checked_at: app.now() - 10 * DAY,
                    ..Default::default()
                },
            ],
        )
        .await;

        // Rule 1: no plan number.
        let mut p = routine(&b, start, "insp-i1", "c1");
        p.plan_number = String::new();
        let r = refused(app.plan(&market, p).await.unwrap());
        assert_eq!(
            (r.rule, r.reason.as_str()),
            (pb::Rule::PlanBasis as i32, "PLAN_NUMBER_REQUIRED")
        );
        assert!(r.message.contains("plan number"), "{}", r.message);

        // Rule 2: monitoring list and do-not-disturb item.
        let r = refused(
            app.plan(&market, routine(&a, start, "insp-i1", "c1"))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.rule, r.reason.as_str()),
            (pb::Rule::TwoNoLists as i32, "ENTERPRISE_ON_MONITORING_LIST")
        );
        assert!(r.facts.iter().any(|f| f.name == "monitoring_list"));
        let mut p = routine(&b, start, "insp-i1", "c1");
        p.items = vec!["signage".into()];
        let r = refused(app.plan(&market, p).await.unwrap());
        assert_eq!(r.reason, "ITEM_DO_NOT_DISTURB");

        // Rule 5: a clean non-site check of the item in the last 90 days.
        let r = refused(
            app.plan(&market, routine(&c, start, "insp-i1", "c1"))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.rule, r.reason.as_str()),
            (pb::Rule::NonSiteFirst as i32, "CLEAN_NON_SITE_CHECK")
        );

        // Policy history keeps every change, filterable by kind.
        let history = app
            .inspection
            .clone()
            .list_policy_history(with_token(
                pb::ListPolicyHistoryRequest {
                    kind: pb::PolicyKind::NonSiteCheck as i32,
                    ..Default::default()
                },
                &market,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(history.changes.len(), 1);
        assert_eq!(history.changes[0].changed_by, "sh-jingan");
        // A mistyped enterprise code is refused with the rule it breaks, not "no changes".
        let mut typo = b.clone();
        let last = if typo.ends_with('0') { '1' } else { '0' };
        typo.pop();
        typo.push(last);
        assert_status(
            app.inspection
                .clone()
                .list_policy_history(with_token(
                    pb::ListPolicyHistoryRequest {
                        enterprise_uscc: typo,
                        ..Default::default()
                    },
                    &market,
                ))
                .await,
            Code::InvalidArgument,
            "USCC_CHECK_DIGIT",
        );

        // The credit grade is readable; the default applies when none was imported.
        let g = app
            .inspection
            .clone()
            .get_credit_grade(with_token(
                pb::GetCreditGradeRequest { uscc: b.clone() },
                &market,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((g.grade, g.updated_at), (pb::CreditGrade::B as i32, 0));

        // No code for an enterprise without a license in force.
        let unknown = sh_uscc(99);
        assert_status(
            app.plan(&market, routine(&unknown, start, "insp-i1", "c1"))
                .await,
            Code::FailedPrecondition,
            "LICENSE_NOT_ACTIVE",
        );
        app.license
            .clone()
            .revoke_license(with_token(
                lpb::RevokeLicenseRequest {
                    uscc: b.clone(),
                    reason: "吊销：严重违法".into(),
                    ..Default::default()
                },
                &market,
            ))
            .await
            .unwrap();
        let s = assert_status(
            app.plan(&market, routine(&b, start, "insp-i1", "c1")).await,
            Code::FailedPrecondition,
            "LICENSE_NOT_ACTIVE",
        );
        assert!(s.message().contains("revoked"), "{}", s.message());

        // Invalid input is INVALID_ARGUMENT with the field named.
        let mut p = routine(&c, start, "insp-i1", "c1");
        p.window_end = p.window_start + 40 * DAY;
        p.items.clear();
        let s = assert_status(
            app.plan(&market, p).await,
            Code::InvalidArgument,
            "ITEMS_INVALID",
        );
        let fields: Vec<String> = credmesh_proto::status::field_violations(&s)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert!(
            fields.contains(&"items".to_string()) && fields.contains(&"window_end".to_string()),
            "{fields:?}"
        );
    }
}

#[tokio::test]
async fn a_result_for_an_unshown_or_expired_code_is_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        app.inspector("insp-1", MARKET, "沪执法31000011111").await;
        let uscc = sh_uscc(21);
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
        app.enterprise(&uscc).await;
        let start = app.now() + 3600;
        let issue = |n: i64| {
            let p = routine(&uscc, start + n * 11 * DAY, "insp-1", "沪执法31000011111");
            let market = market.clone();
            let app = &app;
            async move {
                match app.plan(&market, p).await.unwrap() {
                    Decision::Issued(i) => i,
                    other => panic!("issued expected, got {other:?}"),
                }
            }
        };
        let unshown = issue(0).await;
        let expiring = issue(1).await;
        let record = |id: String, token: String| {
            let mut c = app.inspection.clone();
            async move {
                c.record_result(with_token(
                    pb::RecordResultRequest {
                        inspection_id: id,
                        has_findings: true,
                        summary: "expired goods on shelf".into(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
            }
        };
        app.clock.set(start + 60);
        let inspector = app.token("insp-1").await;
        assert_status(
            record(unshown.id.clone(), inspector.clone()).await,
            Code::FailedPrecondition,
            "CODE_NOT_SHOWN",
        );

        // Shown inside its window, then the window ends before the result.
        app.clock.set(expiring.window_start + 60);
        let owner = app
            .token(&format!("ent-{}", uscc.to_ascii_lowercase()))
            .await;
        let code = expiring.code.clone().unwrap();
        app.inspection
            .clone()
            .scan_code(with_token(
                pb::ScanCodeRequest {
                    code: code.vc_jwt.clone(),
                },
                &owner,
            ))
            .await
            .unwrap();
        app.clock.set(expiring.window_end + 1);
        let inspector = app.token("insp-1").await;
        let owner = app
            .token(&format!("ent-{}", uscc.to_ascii_lowercase()))
            .await;
        assert_status(
            record(expiring.id.clone(), inspector.clone()).await,
            Code::FailedPrecondition,
            "OUTSIDE_WINDOW",
        );
        // An expired code does not scan either.
        let late = app
            .inspection
            .clone()
            .scan_code(with_token(
                pb::ScanCodeRequest {
                    code: unshown.code.unwrap().qr_text,
                },
                &owner,
            ))
            .await;
        assert_eq!(late.unwrap_err().code(), Code::FailedPrecondition);
        // Another enterprise cannot scan someone else's code.
        let other = sh_uscc(22);
        app.clock.set(expiring.window_start + 120);
        let stranger = app.enterprise(&other).await;
        let s = app
            .inspection
            .clone()
            .scan_code(with_token(
                pb::ScanCodeRequest { code: code.qr_text },
                &stranger,
            ))
            .await;
        assert_eq!(s.unwrap_err().code(), Code::PermissionDenied);
    }
}

/// Inspectors are registered principals: a plan naming a client that is not registered,
/// one that is not an inspector, or an inspector with another certificate number is
/// refused with every such inspector named.
#[tokio::test]
async fn a_plan_names_only_registered_inspectors_with_their_certificates() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let uscc = sh_uscc(41);
        app.establish(&market, &uscc).await;
        let start = app.now() + 3600;
        let mut plan = routine(&uscc, start, "insp-i1", "c1");
        plan.inspectors = vec![
            pb::Inspector {
                client_id: "nobody-registered".into(),
                enforcement_certificate: "c9".into(),
                department: String::new(),
            },
            pb::Inspector {
                client_id: "sh-jingan".into(),
                enforcement_certificate: "c1".into(),
                department: String::new(),
            },
            pb::Inspector {
                client_id: "insp-i1".into(),
                enforcement_certificate: "c2".into(),
                department: String::new(),
            },
        ];
        let refused = app.plan(&market, plan).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(
            credmesh_proto::status::reason(&refused).as_deref(),
            Some("INSPECTOR_NOT_REGISTERED")
        );
        let fields: Vec<String> = credmesh_proto::status::field_violations(&refused)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["inspectors[0]", "inspectors[1]", "inspectors[2]"],
            "{refused:?}"
        );
        // Another department's inspector is not this department's to send.
        app.inspector("insp-health", &health(), "c7").await;
        let refused = app
            .plan(&market, routine(&uscc, start, "insp-health", "c7"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        let violations = credmesh_proto::status::field_violations(&refused);
        assert_eq!(violations.len(), 1, "{refused:?}");
        assert!(
            violations[0]
                .description
                .contains("inspects for department"),
            "{refused:?}"
        );
        // The same plan with the inspector as registered is issued.
        match app
            .plan(&market, routine(&uscc, start, "insp-i1", "c1"))
            .await
            .unwrap()
        {
            Decision::Issued(_) => {}
            other => panic!("issued expected, got {other:?}"),
        }
    }
}
