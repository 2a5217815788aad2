//! One table per inspection rule (DOMAIN.md "Inspection code rules" 1–8), through gRPC
//! on SQLite and PostgreSQL, on the service's injected clock (`ManualClock`): each row
//! sets up a fresh enterprise (license, policy data, earlier inspections), moves the
//! clock, plans, and must get its decision. The pure rules have their own tables in
//! `domain::rules`; these prove the facts the store reads — dates relative to now,
//! windows, completions, the policy lists — reach them as the rules say.

use base64::Engine as _;
use credmesh_proto::inspection::v1::{self as pb, plan_inspection_response::Decision};
use tonic::Code;

use crate::helpers::*;

/// What a plan must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Issued,
    Conflict,
    Refused(pb::Rule, &'static str),
}

/// Asserts `d` is `want`; a refusal must also carry a sentence and the facts it used.
#[track_caller]
fn check(d: &Decision, want: Want, row: &str) {
    match (d, want) {
        (Decision::Issued(_), Want::Issued) | (Decision::Conflict(_), Want::Conflict) => {}
        (Decision::Refused(r), Want::Refused(rule, reason)) => {
            assert_eq!(
                (r.rule, r.reason.as_str()),
                (rule as i32, reason),
                "{row}: {r:?}"
            );
            assert!(r.message.len() > 20, "{row}: a readable sentence: {r:?}");
            assert!(!r.facts.is_empty(), "{row}: the facts used: {r:?}");
        }
        (d, want) => panic!("{row}: {want:?} expected, got {d:?}"),
    }
}

/// A fresh enterprise `n`: license established by the market bureau, the owner
/// registered, and its credit grade imported when given.
async fn fresh(app: &TestApp, n: u32, grade: Option<pb::CreditGrade>) -> String {
    let market = app.token("sh-jingan").await;
    let uscc = sh_uscc(n);
    app.establish(&market, &uscc).await;
    app.enterprise(&uscc).await;
    if let Some(grade) = grade {
        app.import(
            &market,
            vec![pb::PolicyEntry {
                kind: pb::PolicyKind::CreditGrade as i32,
                enterprise_uscc: uscc.clone(),
                grade: grade as i32,
                ..Default::default()
            }],
        )
        .await;
    }
    uscc
}

/// Plans as the registered client `who`, with a token fresh at the clock's time.
async fn plan_as(app: &TestApp, who: &str, req: pb::PlanInspectionRequest) -> Decision {
    app.plan(&app.token(who).await, req).await.unwrap()
}

fn owner_id(uscc: &str) -> String {
    format!("ent-{}", uscc.to_ascii_lowercase())
}

/// `req` as a complaint-triggered inspection.
fn triggered(mut req: pb::PlanInspectionRequest) -> pb::PlanInspectionRequest {
    req.r#type = pb::InspectionType::Triggered as i32;
    req.plan_number = String::new();
    req.trigger = pb::Trigger::Complaint as i32;
    req.trigger_reason = "complaint 2026-118 about food storage".into();
    req
}

/// The owner scans `i`'s code now.
async fn scan(app: &TestApp, i: &pb::Inspection) -> Result<pb::ScanCodeResponse, tonic::Status> {
    let token = app.token(&owner_id(&i.enterprise_uscc)).await;
    app.inspection
        .clone()
        .scan_code(with_token(
            pb::ScanCodeRequest {
                code: i.code.as_ref().unwrap().qr_text.clone(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// `inspector` records `i`'s result now.
async fn record(
    app: &TestApp,
    i: &pb::Inspection,
    inspector: &str,
    findings: bool,
) -> Result<pb::RecordResultResponse, tonic::Status> {
    let token = app.token(inspector).await;
    app.inspection
        .clone()
        .record_result(with_token(
            pb::RecordResultRequest {
                inspection_id: i.id.clone(),
                has_findings: findings,
                summary: if findings {
                    "expired goods on the shelf".into()
                } else {
                    "no findings".into()
                },
                idempotency_key: String::new(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// The owner evaluates `i` now.
async fn evaluate(
    app: &TestApp,
    i: &pb::Inspection,
    score: u32,
) -> Result<pb::EvaluateInspectionResponse, tonic::Status> {
    let token = app.token(&owner_id(&i.enterprise_uscc)).await;
    app.inspection
        .clone()
        .evaluate_inspection(with_token(
            pb::EvaluateInspectionRequest {
                inspection_id: i.id.clone(),
                score,
                tags: vec!["code_shown".into()],
                comment: String::new(),
                idempotency_key: String::new(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Plans a routine inspection by `inspector` whose window holds now, and completes it
/// (scanned, result recorded); the completed inspection.
async fn completed(app: &TestApp, uscc: &str, inspector: &str, findings: bool) -> pb::Inspection {
    let cert = cert_of(inspector);
    let Decision::Issued(i) = plan_as(
        app,
        "sh-jingan",
        routine(uscc, app.now() - 60, inspector, cert),
    )
    .await
    else {
        panic!("issued expected");
    };
    scan(app, &i).await.unwrap();
    record(app, &i, inspector, findings).await.unwrap();
    i
}

/// The certificate numbers the helpers registered.
fn cert_of(inspector: &str) -> &'static str {
    match inspector {
        "insp-i1" => "c1",
        "insp-i2" => "c2",
        "insp-h1" => "h1",
        _ => "cert",
    }
}

/// The JSON payload of a VC-JWT, as text.
fn jwt_payload(jwt: &str) -> String {
    let part = jwt.split('.').nth(1).unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Rule 1: a planned inspection cites its filed plan number, a triggered one its
/// trigger and reason — refused without, and the issued code carries them.
#[tokio::test]
async fn rule_1_plan_basis_table() {
    use pb::{InspectionType as T, Trigger as G};
    let plan_required = Want::Refused(pb::Rule::PlanBasis, "PLAN_NUMBER_REQUIRED");
    let trigger_required = Want::Refused(pb::Rule::PlanBasis, "TRIGGER_REQUIRED");
    // (type, plan number, trigger, reason, wanted)
    let rows: &[(T, &str, G, &str, Want)] = &[
        (
            T::Routine,
            "沪静市监检〔2026〕12号",
            G::Unspecified,
            "",
            Want::Issued,
        ),
        (T::Routine, "", G::Unspecified, "", plan_required),
        (T::Special, " ", G::Unspecified, "", plan_required),
        (T::FollowUp, "", G::Complaint, "c-1", plan_required),
        (
            T::FollowUp,
            "沪静市监复〔2026〕2号",
            G::Unspecified,
            "",
            Want::Issued,
        ),
        (
            T::Triggered,
            "",
            G::Complaint,
            "complaint 2026-31",
            Want::Issued,
        ),
        (
            T::Triggered,
            "",
            G::Referral,
            "referral from 12345",
            Want::Issued,
        ),
        (
            T::Triggered,
            "",
            G::MonitoringAlert,
            "cold chain alarm",
            Want::Issued,
        ),
        (
            T::Triggered,
            "P-1",
            G::Unspecified,
            "no trigger",
            trigger_required,
        ),
        (T::Triggered, "", G::Complaint, " ", trigger_required),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (kind, plan_number, trigger, reason, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let uscc = fresh(&app, 100 + n as u32, Some(pb::CreditGrade::D)).await;
            let mut req = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
            req.r#type = *kind as i32;
            req.plan_number = plan_number.to_string();
            req.trigger = *trigger as i32;
            req.trigger_reason = reason.to_string();
            let d = plan_as(&app, "sh-jingan", req).await;
            check(&d, *want, &row);
            if let Decision::Issued(i) = d {
                let p = &i.participants[0];
                let claims = jwt_payload(&i.code.unwrap().vc_jwt);
                if *kind == T::Triggered {
                    assert_eq!(
                        (p.trigger, p.trigger_reason.as_str()),
                        (*trigger as i32, *reason),
                        "{row}"
                    );
                    assert!(
                        claims.contains(reason),
                        "{row}: the code cites the reason: {claims}"
                    );
                } else {
                    assert_eq!(p.plan_number, *plan_number, "{row}");
                    assert!(
                        claims.contains(plan_number),
                        "{row}: the code cites the plan: {claims}"
                    );
                }
            }
        }
    }
}

/// Rule 2: routine and special inspections of an enterprise on the monitoring list, or
/// of a do-not-disturb item, are refused; triggered ones and follow-ups are not; a
/// removal from the list lifts it, and the history keeps both changes.
#[tokio::test]
async fn rule_2_two_no_lists_table() {
    use pb::InspectionType as T;
    let monitored = Want::Refused(pb::Rule::TwoNoLists, "ENTERPRISE_ON_MONITORING_LIST");
    let dnd = Want::Refused(pb::Rule::TwoNoLists, "ITEM_DO_NOT_DISTURB");
    // (on the monitoring list, then removed, planned item, type, wanted). The item
    // "signage" is on the do-not-disturb list for every enterprise, "stairs" only for
    // rows 8 and 9's enterprises.
    let rows: &[(bool, bool, &str, T, Want)] = &[
        (true, false, "food-safety", T::Routine, monitored),
        (true, false, "food-safety", T::Special, monitored),
        (true, false, "food-safety", T::Triggered, Want::Issued),
        (true, false, "food-safety", T::FollowUp, Want::Issued),
        (true, true, "food-safety", T::Routine, Want::Issued),
        (false, false, "signage", T::Routine, dnd),
        (false, false, "signage", T::Special, dnd),
        (false, false, "signage", T::Triggered, Want::Issued),
        (false, false, "stairs", T::Routine, dnd),
        (false, false, "stairs", T::FollowUp, Want::Issued),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        app.import(
            &market,
            vec![pb::PolicyEntry {
                kind: pb::PolicyKind::DoNotDisturb as i32,
                item: "signage".into(),
                ..Default::default()
            }],
        )
        .await;
        for (n, (listed, removed, item, kind, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let uscc = fresh(&app, 200 + n as u32, Some(pb::CreditGrade::D)).await;
            let mut entries = Vec::new();
            if *listed {
                entries.push(pb::PolicyEntry {
                    kind: pb::PolicyKind::MonitoringList as i32,
                    enterprise_uscc: uscc.clone(),
                    note: "under monitoring".into(),
                    ..Default::default()
                });
            }
            if *removed {
                entries.push(pb::PolicyEntry {
                    kind: pb::PolicyKind::MonitoringList as i32,
                    enterprise_uscc: uscc.clone(),
                    removed: true,
                    ..Default::default()
                });
            }
            // "stairs" is do-not-disturb for row 8's enterprise (and 9's, whose
            // follow-up passes), never for the others.
            if n >= 8 {
                entries.push(pb::PolicyEntry {
                    kind: pb::PolicyKind::DoNotDisturb as i32,
                    enterprise_uscc: uscc.clone(),
                    item: "stairs".into(),
                    ..Default::default()
                });
            }
            if !entries.is_empty() {
                app.import(&app.token("sh-jingan").await, entries).await;
            }
            let mut req = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
            req.items = vec![item.to_string()];
            req.r#type = *kind as i32;
            if *kind == T::Triggered {
                req = triggered(req);
            }
            check(&plan_as(&app, "sh-jingan", req).await, *want, &row);
            if *removed {
                let history = app
                    .inspection
                    .clone()
                    .list_policy_history(with_token(
                        pb::ListPolicyHistoryRequest {
                            kind: pb::PolicyKind::MonitoringList as i32,
                            enterprise_uscc: uscc.clone(),
                            ..Default::default()
                        },
                        &app.token("sh-jingan").await,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                let removals: Vec<bool> = history
                    .changes
                    .iter()
                    .map(|c| c.entry.as_ref().unwrap().removed)
                    .collect();
                assert_eq!(removals, [false, true], "{row}");
            }
        }
        // A do-not-disturb item named for one enterprise never reaches another's plan.
        let other = fresh(&app, 299, Some(pb::CreditGrade::D)).await;
        let mut req = routine(&other, app.now() + DAY, "insp-i1", "c1");
        req.items = vec!["stairs".into()];
        check(
            &plan_as(&app, "sh-jingan", req).await,
            Want::Issued,
            "other enterprise",
        );
    }
}

/// Rule 3, frequency by credit grade: routine inspections of an enterprise in any
/// rolling 12 months, all departments together, at most A 1, B 2, C 4, D none; no grade
/// imported is B. Each row plans routine inspections as the clock moves on by the
/// given days; all but the last are issued, the last gets the wanted answer.
#[tokio::test]
async fn rule_3_frequency_by_grade_on_the_clock_table() {
    use pb::CreditGrade as G;
    let cap = Want::Refused(pb::Rule::Frequency, "FREQUENCY_CAP_REACHED");
    // (grade, days after the first at which the next ones are planned, wanted)
    let rows: &[(Option<G>, &[i64], Want)] = &[
        (Some(G::A), &[100], cap),
        (Some(G::A), &[364], cap),
        (Some(G::A), &[366], Want::Issued),
        (Some(G::B), &[100], Want::Issued),
        (Some(G::B), &[100, 200], cap),
        (Some(G::B), &[200, 400], Want::Issued),
        (Some(G::C), &[40, 80, 120], Want::Issued),
        (Some(G::C), &[40, 80, 120, 160], cap),
        (Some(G::D), &[10, 20, 30, 40, 50, 60, 70], Want::Issued),
        (None, &[100], Want::Issued),
        (None, &[100, 200], cap),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (grade, days, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n} {grade:?} {days:?}");
            let t0 = app.now();
            let uscc = fresh(&app, 300 + n as u32, *grade).await;
            let first = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
            check(&plan_as(&app, "sh-jingan", first).await, Want::Issued, &row);
            // A triggered inspection in between never counts.
            let between = triggered(routine(&uscc, app.now() + 2 * DAY, "insp-i1", "c1"));
            check(
                &plan_as(&app, "sh-jingan", between).await,
                Want::Issued,
                &row,
            );
            for (k, d) in days.iter().enumerate() {
                app.clock.set(t0 + d * DAY);
                let req = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
                let decision = plan_as(&app, "sh-jingan", req).await;
                let wanted = if k + 1 == days.len() {
                    *want
                } else {
                    Want::Issued
                };
                check(&decision, wanted, &row);
                if let Decision::Refused(r) = &decision {
                    let cap_fact = r.facts.iter().find(|f| f.name == "cap").unwrap();
                    let count = r
                        .facts
                        .iter()
                        .find(|f| f.name == "routine_inspections_in_window")
                        .unwrap();
                    assert_eq!(cap_fact.value, count.value, "{row}: {r:?}");
                }
            }
        }
    }
}

/// Rule 3, alerts and the inspector block. More than 1 on-site inspection of an
/// enterprise in a day, 2 in a week or 3 in a month raises an alert (never a refusal);
/// an inspector with 3 no-finding inspections of one enterprise in a year is blocked
/// from a fourth routine one.
#[tokio::test]
async fn rule_3_alerts_and_inspector_block_on_the_clock_table() {
    // (hours after the first at which further on-site inspections start, alert periods
    // of the last one)
    let alert_rows: &[(&[i64], &[i32])] = &[
        (&[], &[]),
        (&[2], &[pb::AlertPeriod::Day as i32]),
        (&[48], &[]),
        (&[48, 96], &[pb::AlertPeriod::Week as i32]),
        (&[240, 480, 600], &[pb::AlertPeriod::Month as i32]),
        (
            &[1, 2, 3],
            &[
                pb::AlertPeriod::Day as i32,
                pb::AlertPeriod::Week as i32,
                pb::AlertPeriod::Month as i32,
            ],
        ),
    ];
    let blocked = Want::Refused(pb::Rule::InspectorBlock, "INSPECTOR_BLOCKED");
    // (no-finding completions by insp-i1, completions with findings, days after the
    // last completion, type, inspector named, wanted). Completions are 10 days apart.
    let block_rows: &[(u32, u32, i64, pb::InspectionType, &str, Want)] = &[
        (3, 0, 1, pb::InspectionType::Routine, "insp-i1", blocked),
        (
            2,
            0,
            1,
            pb::InspectionType::Routine,
            "insp-i1",
            Want::Issued,
        ),
        (
            2,
            2,
            1,
            pb::InspectionType::Routine,
            "insp-i1",
            Want::Issued,
        ),
        (
            3,
            0,
            1,
            pb::InspectionType::Triggered,
            "insp-i1",
            Want::Issued,
        ),
        (
            3,
            0,
            1,
            pb::InspectionType::Routine,
            "insp-i2",
            Want::Issued,
        ),
        // The first completion is 360 days old: still within the year.
        (3, 0, 340, pb::InspectionType::Routine, "insp-i1", blocked),
        // 370 days old: out of the year, two remain.
        (
            3,
            0,
            350,
            pb::InspectionType::Routine,
            "insp-i1",
            Want::Issued,
        ),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (hours, periods)) in alert_rows.iter().enumerate() {
            let row = format!("{backend:?} alerts row {n}");
            let uscc = fresh(&app, 400 + n as u32, Some(pb::CreditGrade::D)).await;
            let start = app.now() + DAY;
            let mut last = None;
            for h in std::iter::once(&0).chain(hours.iter()) {
                let req = triggered(routine(&uscc, start + h * 3600, "insp-i1", "c1"));
                let Decision::Issued(i) = plan_as(&app, "sh-jingan", req).await else {
                    panic!("{row}: alerts never refuse");
                };
                last = Some(i);
            }
            let last = last.unwrap();
            let got: Vec<i32> = last.alerts.iter().map(|a| a.period).collect();
            assert_eq!(got, *periods, "{row}: {:?}", last.alerts);
            assert!(
                last.alerts
                    .iter()
                    .all(|a| a.count > a.limit && !a.message.is_empty())
            );
        }
        for (n, (clean, found, days, kind, inspector, want)) in block_rows.iter().enumerate() {
            let row = format!("{backend:?} block row {n}");
            let uscc = fresh(&app, 450 + n as u32, Some(pb::CreditGrade::D)).await;
            let mut last = app.now();
            for k in 0..(clean + found) {
                completed(&app, &uscc, "insp-i1", k >= *clean).await;
                last = app.now();
                app.clock.advance(10 * DAY);
            }
            app.clock.set(last + days * DAY);
            let mut req = routine(&uscc, app.now() + DAY, inspector, cert_of(inspector));
            if *kind == pb::InspectionType::Triggered {
                req = triggered(req);
            }
            check(&plan_as(&app, "sh-jingan", req).await, *want, &row);
        }
    }
}

/// Rule 4: another department's planned or active inspection within ±30 days of the
/// window is a conflict naming it — join it or override with a recorded reason
/// (multi-head); a completed one, or the same department's, is not.
#[tokio::test]
async fn rule_4_multi_head_table() {
    // (days after the first window's start at which health's window starts, the first
    // is completed, the same department plans, override reason, wanted). The first
    // window is 10 days long, so starts up to 40 days later are within 30 days of it.
    let rows: &[(i64, bool, bool, &str, Want)] = &[
        (0, false, false, "", Want::Conflict),
        (15, false, false, "", Want::Conflict),
        (40, false, false, "", Want::Conflict),
        (41, false, false, "", Want::Issued),
        (0, true, false, "", Want::Issued),
        (0, false, true, "", Want::Issued),
        (
            0,
            false,
            false,
            "samples must be taken within 24 hours",
            Want::Issued,
        ),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        app.department("sh-health", &health()).await;
        for (n, (days, done, same, reason, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let uscc = fresh(&app, 500 + n as u32, Some(pb::CreditGrade::D)).await;
            let first = if *done {
                completed(&app, &uscc, "insp-i1", true).await
            } else {
                let req = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
                match plan_as(&app, "sh-jingan", req).await {
                    Decision::Issued(i) => i,
                    other => panic!("{row}: {other:?}"),
                }
            };
            let (planner, inspector) = if *same {
                ("sh-jingan", "insp-i2")
            } else {
                ("sh-health", "insp-h1")
            };
            let mut req = routine(
                &uscc,
                first.window_start + days * DAY,
                inspector,
                cert_of(inspector),
            );
            req.items = vec!["hygiene".into()];
            req.override_reason = reason.to_string();
            let d = plan_as(&app, planner, req).await;
            check(&d, *want, &row);
            match d {
                Decision::Conflict(c) => {
                    assert_eq!(c.inspections.len(), 1, "{row}");
                    assert_eq!(c.inspections[0].id, first.id, "{row}");
                    assert_eq!(c.inspections[0].participants[0].department, MARKET);
                    assert!(c.message.contains("join"), "{row}: {}", c.message);
                }
                Decision::Issued(i) => {
                    assert_eq!(i.multi_head, !reason.is_empty(), "{row}");
                    assert_eq!(i.override_reason, *reason, "{row}");
                }
                Decision::Refused(_) => unreachable!(),
            }
        }
    }
}

/// Rule 5: a clean non-site check of a planned item in the last 90 days (by the clock)
/// refuses a routine on-site inspection of it.
#[tokio::test]
async fn rule_5_non_site_first_on_the_clock_table() {
    let refused = Want::Refused(pb::Rule::NonSiteFirst, "CLEAN_NON_SITE_CHECK");
    // (check age in days when planned, clean, checked item, type, wanted); the plan's
    // item is food-safety.
    let rows: &[(i64, bool, &str, pb::InspectionType, Want)] = &[
        (
            10,
            true,
            "food-safety",
            pb::InspectionType::Routine,
            refused,
        ),
        (
            89,
            true,
            "food-safety",
            pb::InspectionType::Routine,
            refused,
        ),
        (
            91,
            true,
            "food-safety",
            pb::InspectionType::Routine,
            Want::Issued,
        ),
        (
            10,
            false,
            "food-safety",
            pb::InspectionType::Routine,
            Want::Issued,
        ),
        (
            10,
            true,
            "hygiene",
            pb::InspectionType::Routine,
            Want::Issued,
        ),
        (
            10,
            true,
            "food-safety",
            pb::InspectionType::Special,
            Want::Issued,
        ),
        (
            10,
            true,
            "food-safety",
            pb::InspectionType::Triggered,
            Want::Issued,
        ),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (age, clean, item, kind, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let t0 = app.now();
            let uscc = fresh(&app, 600 + n as u32, Some(pb::CreditGrade::D)).await;
            // The check is imported 5 days old; the clock then moves on.
            app.import(
                &app.token("sh-jingan").await,
                vec![pb::PolicyEntry {
                    kind: pb::PolicyKind::NonSiteCheck as i32,
                    enterprise_uscc: uscc.clone(),
                    item: item.to_string(),
                    clean: *clean,
                    checked_at: t0 - 5 * DAY,
                    ..Default::default()
                }],
            )
            .await;
            app.clock.set(t0 + (age - 5) * DAY);
            let mut req = routine(&uscc, app.now() + DAY, "insp-i1", "c1");
            req.r#type = *kind as i32;
            if *kind == pb::InspectionType::Triggered {
                req = triggered(req);
            }
            check(&plan_as(&app, "sh-jingan", req).await, *want, &row);
        }
    }
}

/// Rule 6: the code scans only inside its window; a result only for a shown code,
/// inside its window.
#[tokio::test]
async fn rule_6_scan_and_result_on_the_clock_table() {
    // (scan at seconds from the window start or None, result at seconds from the window
    // start, the scan's code and the result's reason when refused). The window is 10 days.
    type Row = (Option<i64>, i64, Option<Code>, Option<&'static str>);
    let end = 10 * DAY;
    let rows: &[Row] = &[
        (Some(60), 120, None, None),
        (Some(60), end, None, None),
        (Some(60), end + 1, None, Some("OUTSIDE_WINDOW")),
        (None, 120, None, Some("CODE_NOT_SHOWN")),
        (
            Some(-60),
            120,
            Some(Code::FailedPrecondition),
            Some("CODE_NOT_SHOWN"),
        ),
        (
            Some(end + 60),
            end + 120,
            Some(Code::FailedPrecondition),
            Some("CODE_NOT_SHOWN"),
        ),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (scan_at, record_at, scan_refused, result_refused)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let uscc = fresh(&app, 700 + n as u32, Some(pb::CreditGrade::D)).await;
            let start = app.now() + DAY;
            let Decision::Issued(i) =
                plan_as(&app, "sh-jingan", routine(&uscc, start, "insp-i1", "c1")).await
            else {
                panic!("{row}: issued expected");
            };
            if let Some(at) = scan_at {
                app.clock.set(start + at);
                let scanned = scan(&app, &i).await;
                match scan_refused {
                    Some(code) => assert_eq!(scanned.unwrap_err().code(), *code, "{row}"),
                    None => assert!(scanned.unwrap().first_shown, "{row}"),
                }
            }
            app.clock.set(start + record_at);
            let result = record(&app, &i, "insp-i1", false).await;
            match result_refused {
                Some(reason) => {
                    assert_status(result, Code::FailedPrecondition, reason);
                }
                None => {
                    let done = result.unwrap().inspection.unwrap();
                    assert_eq!(done.state, pb::InspectionState::Completed as i32, "{row}");
                }
            }
        }
    }
}

/// Rule 7: the enterprise evaluates a completed inspection once, within 15 days of
/// completion (by the clock); evaluations are immutable.
#[tokio::test]
async fn rule_7_evaluation_on_the_clock_table() {
    // (completed, seconds after completion, evaluated before, wanted reason or None)
    let rows: &[(bool, i64, bool, Option<&str>)] = &[
        (true, 60, false, None),
        (true, 15 * DAY, false, None),
        (true, 15 * DAY + 1, false, Some("EVALUATION_PERIOD_OVER")),
        (false, 60, false, Some("NOT_COMPLETED")),
        (true, 120, true, Some("ALREADY_EVALUATED")),
    ];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        for (n, (done, after, before, want)) in rows.iter().enumerate() {
            let row = format!("{backend:?} row {n}");
            let t0 = app.now();
            let uscc = fresh(&app, 800 + n as u32, Some(pb::CreditGrade::D)).await;
            let i = if *done {
                completed(&app, &uscc, "insp-i1", false).await
            } else {
                let req = routine(&uscc, app.now() - 60, "insp-i1", "c1");
                match plan_as(&app, "sh-jingan", req).await {
                    Decision::Issued(i) => i,
                    other => panic!("{row}: {other:?}"),
                }
            };
            if *before {
                app.clock.advance(60);
                evaluate(&app, &i, 5).await.unwrap();
            }
            app.clock.set(t0 + after);
            let answer = evaluate(&app, &i, 3).await;
            match want {
                None => assert!(answer.is_ok(), "{row}: {answer:?}"),
                Some(reason) => {
                    assert_status(answer, Code::FailedPrecondition, reason);
                }
            }
        }
    }
}

/// Rule 8: statistics per department and per enterprise — inspections, repeats,
/// multi-head, joint share, alerts raised (rule 3) and evaluation scores, which a
/// department sees only as aggregates of enough evaluations.
#[tokio::test]
async fn rule_8_statistics_per_department_and_enterprise() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        app.department("sh-jingan", MARKET).await;
        let health_org = health();
        app.department("sh-health", &health_org).await;
        let e1 = fresh(&app, 901, Some(pb::CreditGrade::D)).await;
        let e2 = fresh(&app, 902, Some(pb::CreditGrade::D)).await;
        let e3 = fresh(&app, 903, Some(pb::CreditGrade::D)).await;
        let issued = |d: Decision| match d {
            Decision::Issued(i) => i,
            other => panic!("{backend:?}: issued expected, got {other:?}"),
        };
        let now = app.now();
        // Market: e1 twice the same day (the second a repeat, raising a day alert), e2
        // once; health joins e2's and plans e3 overriding market's e3 inspection.
        let a = issued(plan_as(&app, "sh-jingan", routine(&e1, now - 60, "insp-i1", "c1")).await);
        let b = issued(
            plan_as(
                &app,
                "sh-jingan",
                triggered(routine(&e1, now, "insp-i1", "c1")),
            )
            .await,
        );
        assert!(!a.participants[0].repeat && b.participants[0].repeat);
        assert_eq!(b.alerts.len(), 1, "{:?}", b.alerts);
        let c = issued(plan_as(&app, "sh-jingan", routine(&e2, now - 60, "insp-i1", "c1")).await);
        let mut hplan = routine(&e2, now, "insp-h1", "h1");
        hplan.items = vec!["hygiene".into()];
        assert!(matches!(
            plan_as(&app, "sh-health", hplan.clone()).await,
            Decision::Conflict(_)
        ));
        app.inspection
            .clone()
            .join_inspection(with_token(
                pb::JoinInspectionRequest {
                    inspection_id: c.id.clone(),
                    items: hplan.items.clone(),
                    r#type: hplan.r#type,
                    plan_number: hplan.plan_number.clone(),
                    inspectors: hplan.inspectors.clone(),
                    ..Default::default()
                },
                &app.token("sh-health").await,
            ))
            .await
            .unwrap();
        let c = app
            .inspection
            .clone()
            .get_inspection(with_token(
                pb::GetInspectionRequest {
                    inspection_id: c.id.clone(),
                },
                &app.operator_token().await,
            ))
            .await
            .unwrap()
            .into_inner()
            .inspection
            .unwrap();
        let d = issued(plan_as(&app, "sh-jingan", routine(&e3, now - 60, "insp-i1", "c1")).await);
        let mut over = routine(&e3, now, "insp-h1", "h1");
        over.override_reason = "a separate visit is required by law".into();
        let e = issued(plan_as(&app, "sh-health", over).await);
        assert!(e.multi_head);
        // Market's three visits of e1 (first), e2 and e3 are completed and evaluated.
        for (i, score) in [(&a, 5), (&c, 4), (&d, 2)] {
            scan(&app, i).await.unwrap();
            record(&app, i, "insp-i1", false).await.unwrap();
            evaluate(&app, i, score).await.unwrap();
        }
        let stats = |token: String, department: &str, uscc: &str| {
            let mut client = app.inspection.clone();
            let req = pb::GetStatisticsRequest {
                department: department.to_string(),
                enterprise_uscc: uscc.to_string(),
                from: T0 - 10 * DAY,
                to: T0 + 10 * DAY,
            };
            async move {
                client
                    .get_statistics(with_token(req, &token))
                    .await
                    .unwrap()
                    .into_inner()
                    .statistics
                    .unwrap()
            }
        };
        let market = stats(app.token("sh-jingan").await, MARKET, "").await;
        assert_eq!(
            (
                market.inspections,
                market.routine_inspections,
                market.enterprises,
                market.repeat_inspections,
                market.multi_head_inspections,
                market.joint_inspections,
                market.alerts,
                market.completed,
            ),
            (4, 3, 3, 1, 0, 1, 1, 3),
            "{backend:?}: {market:?}"
        );
        assert_eq!(market.repeat_rate, 0.25);
        assert_eq!(market.joint_share, 0.25);
        // Three evaluations: the department sees their aggregate, never one rating.
        assert!(!market.scores_withheld, "{backend:?}");
        assert_eq!(market.evaluations, 3);
        assert!((market.mean_score - 11.0 / 3.0).abs() < 1e-9);
        assert_eq!(market.score_counts, [0, 1, 0, 1, 1]);
        let health_stats = stats(app.token("sh-health").await, &health_org, "").await;
        assert_eq!(
            (
                health_stats.inspections,
                health_stats.multi_head_inspections,
                health_stats.joint_inspections,
                health_stats.evaluations,
                health_stats.scores_withheld,
            ),
            (2, 1, 1, 1, true),
            "{backend:?}: {health_stats:?}"
        );
        assert_eq!(health_stats.multi_head_rate, 0.5);
        assert_eq!(health_stats.mean_score, 0.0);
        // Per enterprise: e1's two visits, one a repeat, one alert; its owner sees its
        // own; a department sees the counts, not the enterprise's scores.
        let owner = stats(app.token(&owner_id(&e1)).await, "", &e1).await;
        assert_eq!(
            (
                owner.inspections,
                owner.repeat_inspections,
                owner.alerts,
                owner.evaluations
            ),
            (2, 1, 1, 1),
            "{backend:?}: {owner:?}"
        );
        assert_eq!(owner.mean_score, 5.0);
        let seen = stats(app.token("sh-jingan").await, "", &e1).await;
        assert_eq!((seen.inspections, seen.evaluations), (2, 1));
        assert!(seen.scores_withheld && seen.mean_score == 0.0);
        let e3_stats = stats(app.operator_token().await, "", &e3).await;
        assert_eq!(
            (e3_stats.inspections, e3_stats.multi_head_inspections),
            (2, 1)
        );
    }
}
