//! Reading the per-partner audit: partners see their own entries, operators everyone's,
//! filtered and paged, newest first, over gRPC and HTTP, on SQLite and PostgreSQL.

use std::time::Duration;

use credmesh_proto::{
    credential::v1::{CredentialKind, VerificationOutcome},
    verify::v1::{BatchVerifyRequest, ListVerificationAuditRequest, ListVerificationAuditResponse},
};
use tonic::Code;

use crate::helpers::*;

impl Gateway {
    async fn audit(
        &self,
        token: &str,
        req: ListVerificationAuditRequest,
    ) -> Result<ListVerificationAuditResponse, tonic::Status> {
        self.client
            .clone()
            .list_verification_audit(with_token(req, token))
            .await
            .map(|r| r.into_inner())
    }

    /// Waits until the background writer has recorded `n` verifications for `client`.
    async fn wait_for_audit(&self, client: &str, n: i64) {
        for _ in 0..200 {
            let rows = self.gateway.audit_for(client, 100).await.unwrap();
            if rows.iter().map(|r| r.count).sum::<i64>() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{client}'s {n} audit rows were not written");
    }
}

/// `GET path` with a bearer token (none when empty): the status code and JSON body.
async fn get_json(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&buf[split + 4..]).unwrap_or(serde_json::Value::Null);
    (code, body)
}

fn all() -> ListVerificationAuditRequest {
    ListVerificationAuditRequest::default()
}

#[tokio::test]
async fn partners_read_their_own_audit_and_operators_everyones_filtered_and_paged() {
    for backend in BOTH {
        let clock = credmesh_runtime::ManualClock::new(T0);
        let sh = spawn_region("SH", backend, clock.clone()).await;
        let gw = spawn_gateway(&sh, &[], backend, Options::default()).await;
        let bank_a = sh.partner("bank-a").await;
        let bank_b = sh.partner("bank-b").await;
        let operator = sh.token_for("operator", &sh.operator).await;
        let v = sh.establish(1).await;
        let qr = license_qr(&v);

        // T0: bank-a verifies the license; T0+10: bank-a sends garbage; T0+20 and T0+21:
        // bank-b verifies the license.
        gw.verify_text(&bank_a, &qr).await;
        clock.advance(10);
        gw.verify_text(&bank_a, "not a credential").await;
        clock.advance(10);
        gw.verify_text(&bank_b, &qr).await;
        clock.advance(1);
        gw.verify_text(&bank_b, &qr).await;
        gw.wait_for_audit("bank-a", 2).await;
        gw.wait_for_audit("bank-b", 2).await;

        // A partner sees only its own entries, newest first, minimised.
        let own = gw.audit(&bank_a, all()).await.unwrap();
        assert_eq!(own.entries.len(), 2, "{backend:?}");
        assert!(own.entries.iter().all(|e| e.client_id == "bank-a"));
        assert_eq!(
            own.entries[0].outcome,
            VerificationOutcome::Malformed as i32
        );
        assert_eq!(own.entries[0].verified_at, T0 + 10);
        let first = &own.entries[1];
        assert_eq!(first.outcome, VerificationOutcome::Valid as i32);
        assert_eq!(first.kind, CredentialKind::BusinessLicense as i32);
        assert_eq!(first.credential_id, v.license_id);
        assert_eq!(first.issuer, "SH/license");
        assert_eq!(first.reason, "VALID");
        assert!(own.next_page_token.is_empty());
        // Naming itself is the same; naming another partner is refused.
        let named = ListVerificationAuditRequest {
            client_id: "bank-a".into(),
            ..all()
        };
        assert_eq!(gw.audit(&bank_a, named).await.unwrap(), own);
        let other = ListVerificationAuditRequest {
            client_id: "bank-b".into(),
            ..all()
        };
        let err = gw.audit(&bank_a, other.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

        // The operator sees everyone, or one partner.
        let everyone = gw.audit(&operator, all()).await.unwrap();
        assert_eq!(everyone.entries.len(), 4, "{backend:?}");
        let times: Vec<i64> = everyone.entries.iter().map(|e| e.verified_at).collect();
        assert_eq!(times, [T0 + 21, T0 + 20, T0 + 10, T0]);
        assert!(everyone.entries.iter().all(|e| e.count == 1));
        assert_eq!(gw.audit(&operator, other).await.unwrap().entries.len(), 2);

        // Filters: outcome, kind, time range.
        let valid = ListVerificationAuditRequest {
            outcome: VerificationOutcome::Valid as i32,
            ..all()
        };
        assert_eq!(gw.audit(&operator, valid).await.unwrap().entries.len(), 3);
        let licenses = ListVerificationAuditRequest {
            kind: CredentialKind::BusinessLicense as i32,
            ..all()
        };
        assert_eq!(
            gw.audit(&operator, licenses).await.unwrap().entries.len(),
            3
        );
        let presentations = ListVerificationAuditRequest {
            kind: CredentialKind::Presentation as i32,
            ..all()
        };
        assert!(
            gw.audit(&operator, presentations)
                .await
                .unwrap()
                .entries
                .is_empty()
        );
        let window = ListVerificationAuditRequest {
            since: T0 + 5,
            until: T0 + 20,
            ..all()
        };
        let in_window = gw.audit(&operator, window).await.unwrap();
        assert_eq!(in_window.entries.len(), 1);
        assert_eq!(in_window.entries[0].client_id, "bank-a");

        // Pages of one, newest first, equal to the whole list.
        let mut token = String::new();
        let mut paged = Vec::new();
        loop {
            let page = gw
                .audit(
                    &operator,
                    ListVerificationAuditRequest {
                        page_size: 1,
                        page_token: token.clone(),
                        ..all()
                    },
                )
                .await
                .unwrap();
            assert!(page.entries.len() <= 1);
            paged.extend(page.entries);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(paged, everyone.entries, "{backend:?}");

        // Bad input.
        let bad_token = ListVerificationAuditRequest {
            page_token: "zz".into(),
            ..all()
        };
        let err = gw.audit(&operator, bad_token).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            credmesh_proto::status::reason(&err).as_deref(),
            Some("PAGE_TOKEN")
        );
        let inverted = ListVerificationAuditRequest {
            since: T0 + 20,
            until: T0,
            ..all()
        };
        let err = gw.audit(&operator, inverted).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            credmesh_proto::status::reason(&err).as_deref(),
            Some("TIME_RANGE")
        );
    }
}

#[tokio::test]
async fn identical_verifications_in_one_second_are_one_entry_with_their_count() {
    for backend in BOTH {
        let clock = credmesh_runtime::ManualClock::new(T0);
        let sh = spawn_region("SH", backend, clock.clone()).await;
        let gw = spawn_gateway(&sh, &[], backend, Options::default()).await;
        let bank = sh.partner("bank-loop").await;
        let v = sh.establish(2).await;
        let qr = license_qr(&v);

        // Three in one BatchVerify (their rows reach the writer together), then two more
        // single calls in the same second, and one different answer.
        let batch = BatchVerifyRequest {
            credentials: vec![text(&qr).unwrap(); 3],
        };
        let results = gw
            .client
            .clone()
            .batch_verify(with_token(batch, &bank))
            .await
            .unwrap()
            .into_inner()
            .results;
        assert!(results.iter().all(|r| r.reason == "VALID"), "{results:?}");
        gw.verify_text(&bank, &qr).await;
        gw.verify_text(&bank, &qr).await;
        gw.verify_text(&bank, "not a credential").await;
        gw.wait_for_audit("bank-loop", 6).await;

        let entries = gw.audit(&bank, all()).await.unwrap().entries;
        let valid: Vec<_> = entries
            .iter()
            .filter(|e| e.outcome == VerificationOutcome::Valid as i32)
            .collect();
        // Nothing is lost: the counts add up to the five verifications...
        assert_eq!(valid.iter().map(|e| e.count).sum::<u32>(), 5, "{entries:?}");
        // ...and the batch's three (written together) are one entry.
        assert!(valid.len() <= 3, "{backend:?}: {entries:?}");
        assert!(valid.iter().any(|e| e.count >= 3), "{entries:?}");
        assert!(valid.iter().all(|e| e.verified_at == T0
            && e.credential_id == v.license_id
            && e.client_id == "bank-loop"));
        let malformed: Vec<_> = entries
            .iter()
            .filter(|e| e.outcome == VerificationOutcome::Malformed as i32)
            .collect();
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].count, 1);
    }
}

#[tokio::test]
async fn the_audit_is_served_as_json_with_the_same_rules() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let gw = spawn_gateway(&sh, &[], Backend::Sqlite, Options::default()).await;
    let bank = sh.partner("bank-json").await;
    let enterprise_bank = sh.partner("bank-other").await;
    let operator = sh.token_for("operator", &sh.operator).await;
    let qr = license_qr(&sh.establish(3).await);
    gw.verify_text(&bank, &qr).await;
    gw.verify_text(&enterprise_bank, &qr).await;
    gw.wait_for_audit("bank-json", 1).await;
    gw.wait_for_audit("bank-other", 1).await;

    let base = "/v1/verify/audit".to_string();
    let addr = gw.addr;
    let get = |path: String, token: String| async move { get_json(addr, &path, &token).await };
    let (code, body) = get(base.clone(), bank.clone()).await;
    assert_eq!(code, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["client_id"], "bank-json");
    assert_eq!(entries[0]["outcome"], "valid");
    assert_eq!(entries[0]["kind"], "business_license");
    assert_eq!(entries[0]["count"], 1);

    let (code, body) = get(format!("{base}?client_id=bank-other"), bank.clone()).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"]["reason"], "AUDIT_OF_ANOTHER_PARTNER");

    let (code, body) = get(
        format!("{base}?outcome=valid&kind=business_license"),
        operator.clone(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["entries"].as_array().unwrap().len(), 2);

    let (code, body) = get(format!("{base}?outcome=fine"), operator.clone()).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["reason"], "OUTCOME_UNKNOWN");
    let (code, body) = get(format!("{base}?since=20&until=10"), operator.clone()).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["reason"], "TIME_RANGE");

    let (code, _) = get(base, String::new()).await;
    assert_eq!(code, 401);
}

/// A write of many rows (more than one statement's worth on SQLite, one array-bound
/// statement on PostgreSQL) keeps every row and every field, on both backends.
#[tokio::test]
async fn a_burst_of_audit_rows_is_written_whole_on_both_backends() {
    use credmesh_verify::store::{AuditQuery, AuditRow, for_db};
    for backend in BOTH {
        let mut keep = Databases::new();
        let url = keep.fresh(backend).await;
        let db = credmesh_harness::migrated(&url, credmesh_verify::migrations()).await;
        let store = for_db(&db);
        let rows: Vec<AuditRow> = (0..600)
            .map(|i| AuditRow {
                client_id: if i % 2 == 0 { "bank-a" } else { "bank-b" }.into(),
                credential_id: format!("lic-{i}"),
                outcome: "valid".into(),
                reason: "VALID".into(),
                issuer: "SH/license 营业执照".into(),
                verified_at: 1_000 + i,
                kind: "business_license".into(),
                count: 1 + i % 3,
            })
            .collect();
        store.record(&rows).await.unwrap();
        store.record(&[]).await.unwrap();
        let mut listed = store
            .list_audit(&AuditQuery {
                limit: 1_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        listed.reverse();
        let got: Vec<AuditRow> = listed.into_iter().map(|r| r.row).collect();
        assert_eq!(got, rows, "{backend:?}");
    }
}
