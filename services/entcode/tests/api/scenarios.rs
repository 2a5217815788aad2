//! Scenarios defined and changed by operators: versions, history, idempotency,
//! optimistic concurrency, validation, retirement, and presentations made under a
//! version that is no longer current.

use credmesh_proto::{
    credential::v1::Credential,
    entcode::v1::{self as epb, PresentationOutcome},
    prost::Message as _,
    status,
};
use credmesh_runtime::Clock as _;
use tonic::Code;

use crate::helpers::{BOTH, TestApp, sh_uscc, spawn_app, with_token};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn put_request(name: &str, fields: &[&str], reason: &str) -> epb::PutScenarioRequest {
    epb::PutScenarioRequest {
        name: name.into(),
        description: format!("{name}: a test scenario"),
        fields: strings(fields),
        reason: reason.into(),
        expected_version: None,
        idempotency_key: String::new(),
    }
}

impl TestApp {
    async fn operator_token(&self) -> String {
        self.token_for("operator", &self.operator).await
    }

    async fn put(
        &self,
        token: &str,
        req: epb::PutScenarioRequest,
    ) -> Result<epb::PutScenarioResponse, tonic::Status> {
        self.entcode
            .clone()
            .put_scenario(with_token(req, token))
            .await
            .map(|r| r.into_inner())
    }

    async fn retire(
        &self,
        token: &str,
        name: &str,
        expected_version: Option<u32>,
    ) -> Result<epb::RetireScenarioResponse, tonic::Status> {
        self.entcode
            .clone()
            .retire_scenario(with_token(
                epb::RetireScenarioRequest {
                    name: name.into(),
                    reason: "no longer accepted by the banks' association".into(),
                    expected_version,
                    idempotency_key: String::new(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn scenario(
        &self,
        name: &str,
        version: u32,
    ) -> Result<epb::GetScenarioResponse, tonic::Status> {
        self.entcode
            .clone()
            .get_scenario(epb::GetScenarioRequest {
                name: name.into(),
                version,
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn history(&self, token: &str, name: &str) -> Vec<epb::ScenarioChange> {
        self.entcode
            .clone()
            .list_scenario_history(with_token(
                epb::ListScenarioHistoryRequest {
                    name: name.into(),
                    page_size: 0,
                    page_token: String::new(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .changes
    }

    async fn list(&self, page_size: u32, page_token: &str) -> epb::ListScenariosResponse {
        self.entcode
            .clone()
            .list_scenarios(epb::ListScenariosRequest {
                page_size,
                page_token: page_token.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test]
async fn the_built_in_scenarios_are_seeded_once_as_version_1() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let list = app.list(0, "").await;
        let names: Vec<&str> = list.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["bank-loan", "basic", "bidding", "inspection"],
            "{backend:?}"
        );
        assert!(list.scenarios.iter().all(|s| s.version == 1 && !s.retired));
        // Starting again (a restart, or another replica on its own pool) stores nothing
        // more.
        assert_eq!(app.entcode_service.seed_scenarios().await.unwrap(), 0);
        let replica = credmesh_store::Db::connect(&app.entcode_db, &Default::default())
            .await
            .unwrap();
        let store = credmesh_entcode::store::for_db(&replica);
        let seeded = store
            .seed(
                credmesh_entcode::domain::scenario::BUILT_IN,
                app.clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(seeded, 0);
        let op = app.operator_token().await;
        let history = app.history(&op, "basic").await;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].changed_by, "system");
        assert_eq!(
            history[0].fields_added,
            strings(&["name", "uscc", "entity_type", "domicile"])
        );
    }
}

#[tokio::test]
async fn an_operator_creates_a_scenario_and_each_change_is_a_version_in_its_history() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let created_at = app.clock.now();
        let v1 = app
            .put(
                &op,
                put_request("customs", &["name", "uscc"], "customs pilot"),
            )
            .await
            .unwrap();
        assert!(v1.changed);
        assert_eq!(v1.scenario.as_ref().unwrap().version, 1);
        app.clock.advance(3600);
        let op = app.operator_token().await;
        let mut req = put_request(
            "customs",
            &["uscc", "name", "business_scope"],
            "customs needs the business scope",
        );
        req.expected_version = Some(1);
        let v2 = app.put(&op, req).await.unwrap();
        assert_eq!(v2.scenario.as_ref().unwrap().version, 2, "{backend:?}");

        let got = app.scenario("customs", 0).await.unwrap();
        assert_eq!(got.current_version, 2);
        assert_eq!(
            got.scenario.unwrap().fields,
            strings(&["uscc", "name", "business_scope"])
        );
        let old = app.scenario("customs", 1).await.unwrap();
        assert_eq!(old.scenario.unwrap().fields, strings(&["name", "uscc"]));
        assert_eq!(old.current_version, 2);
        let missing = app.scenario("customs", 3).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);

        let history = app.history(&op, "customs").await;
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].changed_by, "operator");
        assert_eq!(history[0].changed_by_kind, "operator");
        assert_eq!(history[0].changed_at, created_at);
        assert_eq!(history[0].reason, "customs pilot");
        assert_eq!(history[1].changed_at, created_at + 3600);
        assert_eq!(history[1].reason, "customs needs the business scope");
        assert_eq!(history[1].fields_added, strings(&["business_scope"]));
        assert!(history[1].fields_removed.is_empty());
        assert!(history[1].order_changed);
        assert!(!history[1].description_changed);

        // A put that changes nothing makes no version.
        let same = app
            .put(
                &op,
                put_request("customs", &["uscc", "name", "business_scope"], "again"),
            )
            .await
            .unwrap();
        assert!(!same.changed);
        assert_eq!(same.scenario.unwrap().version, 2);
        assert_eq!(app.history(&op, "customs").await.len(), 2);
    }
}

#[tokio::test]
async fn a_retried_put_answers_the_same_version_and_makes_no_other() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let mut req = put_request("basic", &["name", "uscc"], "basic shows less");
        req.idempotency_key = "put-basic-1".into();
        let first = app.put(&op, req.clone()).await.unwrap();
        let retry = app.put(&op, req.clone()).await.unwrap();
        assert_eq!(first, retry, "{backend:?}");
        assert_eq!(first.scenario.unwrap().version, 2);
        assert_eq!(app.history(&op, "basic").await.len(), 2);
        // The same key for another request is refused, not replayed.
        req.fields = strings(&["name"]);
        let err = app.put(&op, req).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(
            status::reason(&err).as_deref(),
            Some("IDEMPOTENCY_KEY_REUSED")
        );
        assert_eq!(app.scenario("basic", 0).await.unwrap().current_version, 2);
    }
}

#[tokio::test]
async fn of_concurrent_puts_expecting_the_same_version_exactly_one_wins() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        // Eight operators' tools change `bidding` at once, all having read version 1.
        let tries = (0..8).map(|i| {
            let mut req = put_request("bidding", &["name", "uscc"], &format!("change {i}"));
            req.description = format!("bidding, change {i}");
            req.expected_version = Some(1);
            let (app, op) = (&app, &op);
            async move { app.put(op, req).await }
        });
        let results = futures::future::join_all(tries).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{backend:?}: {results:?}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.code(), Code::Aborted, "{r:?}");
            assert_eq!(
                status::reason(r).as_deref(),
                Some("SCENARIO_VERSION_CONFLICT")
            );
        }
        assert_eq!(app.scenario("bidding", 0).await.unwrap().current_version, 2);
        assert_eq!(app.history(&op, "bidding").await.len(), 2);

        // Eight creations of one new name, each expecting it absent.
        let tries = (0..8).map(|i| {
            let mut req = put_request("export", &["name"], &format!("create {i}"));
            req.description = format!("export {i}");
            req.expected_version = Some(0);
            let (app, op) = (&app, &op);
            async move { app.put(op, req).await }
        });
        let results = futures::future::join_all(tries).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| e.code() == Code::Aborted),
            "{results:?}"
        );
        assert_eq!(app.history(&op, "export").await.len(), 1);

        // A stale expectation is refused with the current version named.
        let mut stale = put_request("bidding", &["name"], "stale");
        stale.expected_version = Some(1);
        let err = app.put(&op, stale).await.unwrap_err();
        assert_eq!(err.code(), Code::Aborted);
        assert!(err.message().contains("version 2"), "{}", err.message());
    }
}

#[tokio::test]
async fn an_unknown_field_is_refused_naming_it_and_nothing_is_stored() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let err = app
            .put(
                &op,
                put_request("kyc", &["name", "legal_representative_id_number"], "kyc"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{backend:?}");
        assert_eq!(
            status::reason(&err).as_deref(),
            Some("SCENARIO_FIELD_UNKNOWN")
        );
        assert!(
            err.message().contains("'legal_representative_id_number'"),
            "{}",
            err.message()
        );
        let violations = status::field_violations(&err);
        assert_eq!(violations[0].field, "fields");
        assert!(
            violations[0]
                .description
                .contains("legal_representative_id_number")
        );
        assert_eq!(
            app.scenario("kyc", 0).await.unwrap_err().code(),
            Code::NotFound
        );
    }
}

#[tokio::test]
async fn only_operators_change_scenarios() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let uscc = sh_uscc(31);
    let me = app.enterprise(&uscc).await;
    let dept = app.department().await;
    for token in [&me, &dept] {
        let err = app
            .put(token, put_request("mine", &["name"], "mine"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        let err = app.retire(token, "basic", None).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    assert_eq!(app.scenario("basic", 0).await.unwrap().current_version, 1);
}

#[tokio::test]
async fn a_retired_scenario_cannot_be_presented_and_earlier_presentations_still_verify() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let dept = app.department().await;
        let uscc = sh_uscc(32);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        let before = app.present(&me, &uscc, "bank-loan").await.unwrap();

        let retired = app.retire(&op, "bank-loan", Some(1)).await.unwrap();
        let s = retired.scenario.unwrap();
        assert!(s.retired);
        assert_eq!(s.version, 2);
        let err = app.present(&me, &uscc, "bank-loan").await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{backend:?}");
        assert_eq!(status::reason(&err).as_deref(), Some("SCENARIO_RETIRED"));
        // Retiring twice is refused; the history says who retired it and why.
        let again = app.retire(&op, "bank-loan", None).await.unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);
        let history = app.history(&op, "bank-loan").await;
        assert_eq!(history.len(), 2);
        assert!(history[1].retired_changed);
        assert_eq!(history[1].changed_by, "operator");
        assert!(history[1].reason.contains("banks' association"));

        let v = app
            .verify(&bank, &before.presentation.unwrap().qr_text)
            .await
            .unwrap();
        assert_eq!(v.outcome, PresentationOutcome::Valid as i32, "{v:?}");
        assert_eq!(v.scenario, "bank-loan");
        assert_eq!(v.scenario_version, 1);
        let names: Vec<&str> = v.disclosed.iter().map(|d| d.name.as_str()).collect();
        let disclosed_before: Vec<&str> =
            before.disclosed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, disclosed_before);

        // Putting it again makes it current again.
        let back = app
            .put(
                &op,
                put_request("bank-loan", &["name", "uscc"], "banks asked for it back"),
            )
            .await
            .unwrap();
        assert_eq!(back.scenario.unwrap().version, 3);
        assert!(app.present(&me, &uscc, "bank-loan").await.is_ok());
    }
}

#[tokio::test]
async fn an_operator_defined_scenario_discloses_exactly_its_fields_and_old_presentations_keep_theirs()
 {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let dept = app.department().await;
        let uscc = sh_uscc(33);
        let me = app.enterprise(&uscc).await;
        let bank = app.bank().await;
        app.establish(&dept, &uscc).await;
        let v1_fields = ["uscc", "registered_capital", "issue_date"];
        app.put(&op, put_request("leasing", &v1_fields, "leasing pilot"))
            .await
            .unwrap();
        let p1 = app.present(&me, &uscc, "leasing").await.unwrap();
        assert_eq!(p1.scenario_version, 1);
        let names: Vec<&str> = p1.disclosed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, v1_fields, "{backend:?}");
        let signed = p1.presentation.clone().unwrap();
        let cred = Credential::decode(signed.envelope.unwrap().payload.as_slice()).unwrap();
        let signed_names: Vec<&str> = cred.claims.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            signed_names, v1_fields,
            "the signed payload holds nothing more"
        );
        assert_eq!(cred.version, 1);

        // Version 2 discloses other fields; the version-1 presentation does not change.
        let v2_fields = ["name", "uscc", "domicile"];
        app.put(
            &op,
            put_request("leasing", &v2_fields, "leasing wants the address"),
        )
        .await
        .unwrap();
        let p2 = app.present(&me, &uscc, "leasing").await.unwrap();
        assert_eq!(p2.scenario_version, 2);
        let names: Vec<&str> = p2.disclosed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, v2_fields);

        let v = app.verify(&bank, &signed.qr_text).await.unwrap();
        assert_eq!(v.outcome, PresentationOutcome::Valid as i32, "{v:?}");
        assert_eq!((v.scenario.as_str(), v.scenario_version), ("leasing", 1));
        let verified: Vec<&str> = v.disclosed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(verified, v1_fields);
        let v = app
            .verify(&bank, &p2.presentation.unwrap().qr_text)
            .await
            .unwrap();
        assert_eq!(v.scenario_version, 2);
        let verified: Vec<&str> = v.disclosed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(verified, v2_fields);
    }
}

#[tokio::test]
async fn scenarios_are_listed_a_page_at_a_time() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        app.put(&op, put_request("zoning", &["domicile"], "zoning"))
            .await
            .unwrap();
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = app.list(2, &token).await;
            assert!(page.scenarios.len() <= 2);
            names.extend(page.scenarios.into_iter().map(|s| s.name));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(
            names,
            ["bank-loan", "basic", "bidding", "inspection", "zoning"],
            "{backend:?}"
        );
        let err = app
            .entcode
            .clone()
            .list_scenarios(epb::ListScenariosRequest {
                page_size: 2,
                page_token: "zz".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}
