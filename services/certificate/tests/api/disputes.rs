//! Data disputes: only the holder files, only the issuer accepts and resolves, within
//! working-day deadlines on an injected clock; a correction leaves exactly one current
//! version and supersedes the old one.

use credmesh_credential::Outcome;
use credmesh_proto::certificate::v1 as pb;
use tonic::Code;

use crate::helpers::*;

const DAY: i64 = 86_400;

fn address_dispute(serial: &str) -> pb::FileDisputeRequest {
    pb::FileDisputeRequest {
        serial: serial.into(),
        fields: vec![pb::DisputedField {
            name: "address".into(),
            recorded_value: String::new(),
            claimed_value: "上海市静安区南京西路1001号".into(),
        }],
        evidence_sha256: vec!["9f".repeat(32)],
        explanation: "门牌号登记错误，附不动产权证".into(),
        idempotency_key: "d1".into(),
    }
}

struct Setup {
    app: TestApp,
    dept: String,
    holder: String,
    cert: pb::Certificate,
}

async fn setup(backend: Backend, n: u32) -> Setup {
    let app = spawn_app(backend).await;
    let uscc = sh_uscc(n);
    app.establish(&uscc).await;
    let dept = app.department("market", MARKET).await;
    let holder = app.enterprise(&format!("ent-{n}"), &uscc).await;
    let cert = app.issue(&dept, food_permit(&uscc)).await.unwrap();
    Setup {
        app,
        dept,
        holder,
        cert,
    }
}

async fn file(s: &Setup, token: &str) -> Result<pb::Dispute, tonic::Status> {
    s.app
        .certificate
        .clone()
        .file_dispute(with_token(address_dispute(&s.cert.serial), token))
        .await
        .map(|r| r.into_inner().dispute.unwrap())
}

async fn accept(s: &Setup, token: &str, id: &str) -> Result<pb::Dispute, tonic::Status> {
    s.app
        .certificate
        .clone()
        .accept_dispute(with_token(
            pb::AcceptDisputeRequest {
                dispute_id: id.into(),
                idempotency_key: String::new(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().dispute.unwrap())
}

async fn resolve(
    s: &Setup,
    token: &str,
    id: &str,
    resolution: pb::Resolution,
    reason: &str,
) -> Result<pb::ResolveDisputeResponse, tonic::Status> {
    s.app
        .certificate
        .clone()
        .resolve_dispute(with_token(
            pb::ResolveDisputeRequest {
                dispute_id: id.into(),
                resolution: resolution as i32,
                reason: reason.into(),
                idempotency_key: "r1".into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn overdue(s: &Setup, token: &str) -> (Vec<pb::Dispute>, u32) {
    let r = s
        .app
        .certificate
        .clone()
        .list_disputes(with_token(
            pb::ListDisputesRequest {
                overdue_only: true,
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    (r.disputes, r.overdue_count)
}

#[tokio::test]
async fn a_correction_supersedes_the_old_version_and_leaves_exactly_one_current() {
    for backend in BOTH {
        let s = setup(backend, 30).await;
        let d = file(&s, &s.holder).await.unwrap();
        assert_eq!(d.state, pb::DisputeState::Filed as i32);
        assert_eq!(d.fields[0].recorded_value, "上海市静安区南京西路1000号");
        // A retry with the same key files nothing new.
        assert_eq!(file(&s, &s.holder).await.unwrap().dispute_id, d.dispute_id);
        let c = s.app.get(&s.dept, &s.cert.serial).await;
        assert_eq!(c.disputed_fields, ["address"]);

        accept(&s, &s.dept, &d.dispute_id).await.unwrap();
        let r = resolve(
            &s,
            &s.dept,
            &d.dispute_id,
            pb::Resolution::Corrected,
            "核实不动产权证，予以更正",
        )
        .await
        .unwrap();
        let dispute = r.dispute.unwrap();
        let v2 = r.certificate.unwrap();
        assert_eq!(dispute.state, pb::DisputeState::Corrected as i32);
        assert_eq!(dispute.corrected_version, 2);
        assert_eq!(v2.version, 2);
        assert!(v2.disputed_fields.is_empty());
        assert!(
            v2.fields
                .iter()
                .any(|f| f.name == "address" && f.value == "上海市静安区南京西路1001号")
        );
        assert_eq!(
            v2.valid_until, s.cert.valid_until,
            "a correction keeps the validity"
        );

        let versions = s
            .app
            .service
            .store()
            .versions(&s.cert.serial)
            .await
            .unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(
            versions.iter().filter(|v| v.is_current).count(),
            1,
            "{backend:?}"
        );
        assert!(versions[1].is_current);
        assert_eq!(s.app.verify(&v2).await.outcome, Outcome::Valid);
        assert!(matches!(
            s.app.verify(&s.cert).await.outcome,
            Outcome::Revoked { superseded: true }
        ));
        let actions: Vec<String> = s
            .app
            .service
            .store()
            .history(&s.cert.serial, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.action)
            .collect();
        assert_eq!(
            actions,
            [
                "certificate.issue",
                "certificate.dispute_file",
                "certificate.dispute_accept",
                "certificate.dispute_resolve"
            ]
        );
    }
}

#[tokio::test]
async fn only_the_holder_files_and_only_the_issuer_accepts_and_resolves() {
    for backend in BOTH {
        let s = setup(backend, 31).await;
        let stranger = s.app.enterprise("ent-stranger", &sh_uscc(32)).await;
        assert_status(
            file(&s, &stranger).await,
            Code::PermissionDenied,
            "NOT_HOLDER",
        );
        // A department may not file at all (no dispute scope).
        assert_eq!(
            file(&s, &s.dept).await.unwrap_err().code(),
            Code::PermissionDenied
        );

        let d = file(&s, &s.holder).await.unwrap();
        let other_dept = s
            .app
            .department(
                "pudong",
                credmesh_certificate::domain::types::SH_PUDONG_MARKET,
            )
            .await;
        assert_status(
            accept(&s, &other_dept, &d.dispute_id).await,
            Code::PermissionDenied,
            "NOT_ISSUING_DEPARTMENT",
        );
        assert_eq!(
            accept(&s, &s.holder, &d.dispute_id)
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        // Resolving before accepting is refused; so is a rejection without a reason.
        assert_status(
            resolve(
                &s,
                &s.dept,
                &d.dispute_id,
                pb::Resolution::Rejected,
                "原登记无误",
            )
            .await,
            Code::FailedPrecondition,
            "DISPUTE_STATE",
        );
        accept(&s, &s.dept, &d.dispute_id).await.unwrap();
        assert_status(
            resolve(
                &s,
                &other_dept,
                &d.dispute_id,
                pb::Resolution::Rejected,
                "原登记无误",
            )
            .await,
            Code::PermissionDenied,
            "NOT_ISSUING_DEPARTMENT",
        );
        assert_status(
            resolve(&s, &s.dept, &d.dispute_id, pb::Resolution::Rejected, " ").await,
            Code::InvalidArgument,
            "REASON_REQUIRED",
        );
        let r = resolve(
            &s,
            &s.dept,
            &d.dispute_id,
            pb::Resolution::Rejected,
            "现场核实地址与登记一致",
        )
        .await
        .unwrap();
        assert_eq!(r.dispute.unwrap().state, pb::DisputeState::Rejected as i32);
        assert_eq!(
            r.certificate.unwrap().version,
            1,
            "{backend:?}: a rejection issues nothing"
        );
    }
}

#[tokio::test]
async fn deadlines_count_working_days_and_overdue_disputes_are_listed_and_counted() {
    for backend in BOTH {
        // T0 is Monday 2026-09-21, 22:13:20 CST.
        let monday = T0 - (22 * 3600 + 13 * 60 + 20);
        let s = setup(backend, 33).await;
        let filed = file(&s, &s.holder).await.unwrap();
        // Acceptance is due by the end of Tuesday.
        let tuesday_end = monday + 2 * DAY - 1;
        assert_eq!(filed.accept_by, tuesday_end, "{backend:?}");
        assert!(!filed.overdue);
        // Tokens live minutes; days pass here, so each step logs in afresh.
        s.app.clock.set(tuesday_end);
        let dept = s.app.department("market-tue", MARKET).await;
        assert_eq!(overdue(&s, &dept).await.1, 0);
        s.app.clock.set(tuesday_end + 1);
        let dept = s.app.department("market-wed", MARKET).await;
        let (list, count) = overdue(&s, &dept).await;
        assert_eq!((list.len(), count), (1, 1));
        assert!(list[0].overdue);
        // The holder sees its own overdue dispute too; another department none.
        let holder = s.app.enterprise("ent-33-wed", &sh_uscc(33)).await;
        assert_eq!(overdue(&s, &holder).await.1, 1);
        let other = s
            .app
            .department(
                "pudong",
                credmesh_certificate::domain::types::SH_PUDONG_MARKET,
            )
            .await;
        assert_eq!(overdue(&s, &other).await.1, 0);

        // Accepted late on Friday 25 September: five working days skip two weekends
        // and the 1 October holiday, ending on Monday 5 October.
        s.app.clock.set(T0 + 4 * DAY);
        let dept = s.app.department("market-fri", MARKET).await;
        let accepted = accept(&s, &dept, &filed.dispute_id).await.unwrap();
        let monday_5_oct_end = monday + 15 * DAY - 1;
        assert_eq!(accepted.resolve_by, monday_5_oct_end);
        assert_eq!(overdue(&s, &dept).await.1, 0);
        s.app.clock.set(monday_5_oct_end + 1);
        let dept = s.app.department("market-late", MARKET).await;
        assert_eq!(overdue(&s, &dept).await.1, 1);
        resolve(
            &s,
            &dept,
            &filed.dispute_id,
            pb::Resolution::Rejected,
            "原登记无误",
        )
        .await
        .unwrap();
        assert_eq!(overdue(&s, &dept).await.1, 0);
    }
}

#[tokio::test]
async fn a_field_already_under_dispute_cannot_be_disputed_twice() {
    let s = setup(Backend::Sqlite, 34).await;
    file(&s, &s.holder).await.unwrap();
    let mut again = address_dispute(&s.cert.serial);
    again.idempotency_key = "d2".into();
    assert_status(
        s.app
            .certificate
            .clone()
            .file_dispute(with_token(again, &s.holder))
            .await,
        Code::AlreadyExists,
        "DISPUTE_ALREADY_OPEN",
    );
}

#[tokio::test]
async fn the_dispute_gauges_count_open_and_overdue_disputes() {
    let s = setup(Backend::Postgres, 35).await;
    file(&s, &s.holder).await.unwrap();
    s.app.clock.advance(3 * DAY);
    let metrics = credmesh_telemetry::metrics::Metrics::new();
    let task = s.app.service.export_metrics(&metrics);
    // The first computation runs at once, on the task; wait for it (no clock involved).
    let mut text = String::new();
    for _ in 0..200 {
        text = metrics.encode();
        if text.contains("credmesh_certificate_disputes_overdue 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(
        text.contains("credmesh_certificate_disputes_open 1"),
        "{text}"
    );
    assert!(
        text.contains("credmesh_certificate_disputes_overdue 1"),
        "{text}"
    );
}

/// The notice keeps its bytes (and so its ETag) while it says the same, and changes at
/// once when a dispute is filed; an unchanged one is signed again once the status-list
/// refresh interval (60 s by default) has passed.
#[tokio::test]
async fn the_dispute_notice_is_signed_again_only_when_it_changes_or_has_aged() {
    use credmesh_proto::{credential::v1::DisputeNotice, prost::Message as _};
    let s = setup(Backend::Sqlite, 7).await;
    let listed = |e: &credmesh_proto::credential::v1::Envelope| {
        DisputeNotice::decode(e.payload.as_slice())
            .unwrap()
            .credentials
    };
    let empty = s.app.service.dispute_notice().await.unwrap();
    assert!(listed(&empty).is_empty());
    assert_eq!(s.app.service.dispute_notice().await.unwrap(), empty);

    file(&s, &s.holder).await.unwrap();
    let filed = s.app.service.dispute_notice().await.unwrap();
    assert_eq!(
        listed(&filed).len(),
        1,
        "a dispute filed is in the next notice"
    );
    assert_eq!(listed(&filed)[0].fields, ["address"]);
    s.app.clock.advance(59);
    assert_eq!(s.app.service.dispute_notice().await.unwrap(), filed);

    s.app.clock.advance(1);
    let aged = s.app.service.dispute_notice().await.unwrap();
    assert_ne!(aged, filed, "signed again after the refresh interval");
    assert_eq!(listed(&aged), listed(&filed));
    let sequence = |e| DisputeNotice::decode(e).unwrap().sequence;
    assert!(sequence(aged.payload.as_slice()) > sequence(filed.payload.as_slice()));
}
