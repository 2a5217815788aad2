//! Journey 2: two departments, one visit — plan, conflict, join, the cap, scan, record,
//! evaluate, statistics.

use credmesh_credential::{Policy, Presented, StatusCache, TrustSnapshot, envelope, verify};
use credmesh_proto::{
    credential::v1::{StatusPurpose, TrustList},
    identity::v1 as ipb,
    inspection::v1::{self as pb, plan_inspection_response::Decision},
};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn two_departments_one_visit_from_plan_to_evaluation() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let market = app.department("sh-jingan", MARKET).await;
        let health_org = health();
        let health = app.department("sh-health", &health_org).await;
        let _ = app.inspector("insp-m", MARKET, "沪执法31000011111").await;
        let _ = app
            .inspector("insp-h", &health_org, "沪执法31000022222")
            .await;
        let uscc = sh_uscc(1);
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

        // 1. Market regulation plans a routine inspection: a code is issued.
        let Decision::Issued(first) = app
            .plan(
                &market,
                routine(&uscc, start, "insp-m", "沪执法31000011111"),
            )
            .await
            .unwrap()
        else {
            panic!("{backend:?}: issued expected");
        };
        let code = first.code.clone().unwrap();
        assert_eq!(code.version, 1);
        assert_eq!(first.enterprise_name, "上海静安面馆有限公司");
        assert_eq!(first.participants[0].department, MARKET);

        // 2. Health plans for next week: a conflict naming the first; it joins.
        let mut hplan = routine(&uscc, start + 7 * DAY, "insp-h", "沪执法31000022222");
        hplan.items = vec!["hygiene".into()];
        let Decision::Conflict(conflict) = app.plan(&health, hplan.clone()).await.unwrap() else {
            panic!("{backend:?}: conflict expected");
        };
        assert_eq!(conflict.inspections[0].id, first.id);
        assert!(!conflict.message.is_empty());
        let joined = app
            .inspection
            .clone()
            .join_inspection(with_token(
                pb::JoinInspectionRequest {
                    inspection_id: first.id.clone(),
                    items: vec!["hygiene".into()],
                    r#type: pb::InspectionType::Routine as i32,
                    plan_number: "沪卫监〔2026〕3号".into(),
                    inspectors: hplan.inspectors.clone(),
                    idempotency_key: "join-1".into(),
                    ..Default::default()
                },
                &health,
            ))
            .await
            .unwrap()
            .into_inner()
            .inspection
            .unwrap();
        assert_eq!(joined.participants.len(), 2);
        assert_eq!(joined.inspectors.len(), 2);
        let new_code = joined.code.clone().unwrap();
        assert_eq!(new_code.version, 2);

        // The new code verifies offline in every form; the first is superseded.
        app.clock.set(start + 60);
        let (trust, status) = verifier(&app).await;
        for form in [
            Presented::Envelope(new_code.envelope.as_ref().unwrap()),
            Presented::Qr(&new_code.qr_text),
            Presented::VcJwt(&new_code.vc_jwt),
        ] {
            let v = verify(form, &trust, &status, &Policy::default(), app.now());
            assert!(v.is_valid(), "{backend:?} {:?}: {}", form.form(), v.detail);
            assert_eq!(v.credential.unwrap().subject, first.id);
        }
        let old = verify(
            Presented::Qr(&code.qr_text),
            &trust,
            &status,
            &Policy::default(),
            app.now(),
        );
        assert_eq!(old.outcome.as_str(), "revoked", "{}", old.detail);

        // 3. Grade A: a further routine inspection within 12 months is refused (the
        //    joint visit counts once); a complaint-triggered one is allowed.
        let market = app.token("sh-jingan").await;
        let later = routine(&uscc, start + 60 * DAY, "insp-m", "沪执法31000011111");
        let Decision::Refused(r) = app.plan(&market, later).await.unwrap() else {
            panic!("{backend:?}: refused expected");
        };
        assert_eq!(r.rule, pb::Rule::Frequency as i32);
        assert_eq!(r.reason, "FREQUENCY_CAP_REACHED");
        assert!(r.message.contains("grade A"), "{}", r.message);
        assert!(
            r.facts
                .iter()
                .any(|f| f.name == "routine_inspections_in_window" && f.value == "1")
        );
        let mut triggered = routine(&uscc, start + 60 * DAY, "insp-m", "沪执法31000011111");
        triggered.r#type = pb::InspectionType::Triggered as i32;
        triggered.plan_number = String::new();
        triggered.trigger = pb::Trigger::Complaint as i32;
        triggered.trigger_reason = "complaint 12345 about food storage".into();
        assert!(matches!(
            app.plan(&market, triggered).await.unwrap(),
            Decision::Issued(_)
        ));

        // 4. On site: the owner scans the code; it is recorded as shown. The code's
        //    image links to the scan page (the deployment has a public URL), and the
        //    link is what the owner's scanner reads.
        app.clock.set(start + 3600);
        let owner = app.enterprise(&uscc).await;
        let link = &new_code.scan_url;
        assert!(
            link.starts_with("http://")
                && link.ends_with(&credmesh_credential::scan_path(&new_code.qr_text)),
            "{link}"
        );
        let scanned = app
            .inspection
            .clone()
            .scan_code(with_token(
                pb::ScanCodeRequest { code: link.clone() },
                &owner,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(scanned.first_shown);
        assert_eq!(
            scanned.inspection.unwrap().state,
            pb::InspectionState::Shown as i32
        );
        // The superseded code does not scan.
        let stale = app
            .inspection
            .clone()
            .scan_code(with_token(
                pb::ScanCodeRequest {
                    code: code.qr_text.clone(),
                },
                &owner,
            ))
            .await;
        assert_eq!(stale.unwrap_err().code(), Code::FailedPrecondition);

        // The inspectors record the result; only a named one may.
        let insp_m = app.token("insp-m").await;
        let insp_h = app.token("insp-h").await;
        let stranger = app.inspector("insp-x", MARKET, "沪执法31000099999").await;
        let record = |token: String, key: &str| {
            let mut c = app.inspection.clone();
            let req = pb::RecordResultRequest {
                inspection_id: first.id.clone(),
                has_findings: false,
                summary: "no findings".into(),
                idempotency_key: key.to_string(),
            };
            async move { c.record_result(with_token(req, &token)).await }
        };
        assert_status(
            record(stranger, "").await,
            Code::PermissionDenied,
            "INSPECTOR_NOT_NAMED",
        );
        let done = record(insp_h.clone(), "rec-1")
            .await
            .unwrap()
            .into_inner()
            .inspection
            .unwrap();
        assert_eq!(done.state, pb::InspectionState::Completed as i32);
        // A retry with the same key answers the same; a second result is refused.
        assert!(record(insp_h.clone(), "rec-1").await.is_ok());
        assert_status(
            record(insp_m.clone(), "").await,
            Code::FailedPrecondition,
            "ALREADY_COMPLETED",
        );

        app.clock.advance(2 * DAY);
        let owner = app
            .token(&format!("ent-{}", uscc.to_ascii_lowercase()))
            .await;
        let health = app.token("sh-health").await;
        let market = app.token("sh-jingan").await;
        // The owner evaluates once, within 15 days.
        let evaluate = |key: &str| {
            let mut c = app.inspection.clone();
            let req = pb::EvaluateInspectionRequest {
                inspection_id: first.id.clone(),
                score: 4,
                tags: vec!["professional".into(), "code_shown".into()],
                comment: "quick and polite".into(),
                idempotency_key: key.to_string(),
            };
            let token = owner.clone();
            async move { c.evaluate_inspection(with_token(req, &token)).await }
        };
        evaluate("eval-1").await.unwrap();
        assert_status(
            evaluate("eval-2").await,
            Code::FailedPrecondition,
            "ALREADY_EVALUATED",
        );

        // The department sees only aggregates: with one evaluation, an aggregate would
        // be the rating itself, so scores are withheld; an operator sees them.
        let stats_as = |token: String| {
            let mut c = app.inspection.clone();
            let req = pb::GetStatisticsRequest {
                department: health_org.clone(),
                from: T0,
                to: T0 + 400 * DAY,
                ..Default::default()
            };
            async move {
                c.get_statistics(with_token(req, &token))
                    .await
                    .unwrap()
                    .into_inner()
                    .statistics
                    .unwrap()
            }
        };
        let stats = stats_as(health.clone()).await;
        assert_eq!(stats.inspections, 1);
        assert_eq!(stats.joint_inspections, 1);
        assert_eq!(stats.joint_share, 1.0);
        assert_eq!(stats.evaluations, 1);
        assert!(stats.scores_withheld);
        assert_eq!(stats.mean_score, 0.0);
        assert!(stats.tags.is_empty());
        // Per enterprise, every rating is that enterprise's: withheld from departments.
        let per_enterprise = app
            .inspection
            .clone()
            .get_statistics(with_token(
                pb::GetStatisticsRequest {
                    enterprise_uscc: uscc.clone(),
                    from: T0,
                    to: T0 + 400 * DAY,
                    ..Default::default()
                },
                &health,
            ))
            .await
            .unwrap()
            .into_inner()
            .statistics
            .unwrap();
        assert!(per_enterprise.scores_withheld);
        assert_eq!(per_enterprise.evaluations, 1);
        let stats = stats_as(app.operator_token().await).await;
        assert!(!stats.scores_withheld);
        assert_eq!(stats.mean_score, 4.0);
        assert_eq!(stats.score_counts, vec![0, 0, 0, 1, 0]);
        assert!(
            stats
                .tags
                .iter()
                .any(|t| t.tag == "professional" && t.count == 1)
        );
        let market_stats = app
            .inspection
            .clone()
            .get_statistics(with_token(
                pb::GetStatisticsRequest {
                    department: MARKET.into(),
                    from: T0,
                    to: T0 + 400 * DAY,
                    ..Default::default()
                },
                &market,
            ))
            .await
            .unwrap()
            .into_inner()
            .statistics
            .unwrap();
        assert_eq!(market_stats.inspections, 2);
        assert_eq!(market_stats.joint_inspections, 1);
        // A department cannot read another's statistics.
        let other = app
            .inspection
            .clone()
            .get_statistics(with_token(
                pb::GetStatisticsRequest {
                    department: MARKET.into(),
                    ..Default::default()
                },
                &health,
            ))
            .await;
        assert_eq!(other.unwrap_err().code(), Code::PermissionDenied);
    }
}

/// What an offline verifier holds: identity's trust list and the inspection service's
/// signed status lists of list 0.
async fn verifier(app: &TestApp) -> (TrustSnapshot, StatusCache) {
    let r = app
        .identity
        .clone()
        .get_trust_list(ipb::GetTrustListRequest {})
        .await
        .unwrap()
        .into_inner();
    let anchor: [u8; 32] = r.anchor_public_key.as_slice().try_into().unwrap();
    let anchor = credmesh_credential::VerifyingKey::from_bytes(&anchor).unwrap();
    let list: TrustList = envelope::open(
        envelope::Context::TrustList,
        r.trust_list.as_ref().unwrap(),
        &anchor,
    )
    .unwrap();
    let trust = TrustSnapshot::from_trust_list(&list, app.now()).unwrap();
    let mut cache = StatusCache::new();
    for purpose in [
        StatusPurpose::Revocation,
        StatusPurpose::Suspension,
        StatusPurpose::Superseded,
    ] {
        let env = app
            .inspection
            .clone()
            .get_status_list(pb::GetStatusListRequest {
                list_id: "SH/inspection/0".into(),
                purpose: purpose as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status_list
            .unwrap();
        cache.insert_signed(&env, &trust, 1 << 20).unwrap();
    }
    (trust, cache)
}
