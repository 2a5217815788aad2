//! `spawn_app`: identity, license and inspection served together from one real server
//! on an ephemeral loopback port, on fresh databases, with one manual clock. The
//! inspection service reaches license and identity over that loopback address, as in
//! production.

use std::{collections::HashMap, ops::Deref, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
use credmesh_harness::{Running, Stack, migrated};
use credmesh_proto::{
    identity::v1 as ipb,
    inspection::v1::{self as pb, inspection_service_client::InspectionServiceClient},
};
use credmesh_runtime::ServerConfig;
pub use credmesh_testkit::{BOTH, Backend, T0, assert_status, with_token};
use tonic::transport::Channel;

pub const DAY: i64 = 86_400;

/// Jing'an market regulation bureau (registers the test enterprises, plans).
pub const MARKET: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;
/// A second department: the health commission.
pub fn health() -> String {
    credmesh_uscc::Uscc::from_parts('1', '1', "310000", "00242081")
        .unwrap()
        .to_string()
}

pub struct TestApp {
    pub inspection: InspectionServiceClient<Channel>,
    #[allow(dead_code)]
    pub inspection_db: String,
    keys: std::sync::Mutex<HashMap<String, String>>,
    stack: Running,
}

/// Identity's and license's clients, the clock and tokens come from the stack.
impl Deref for TestApp {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.stack
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, &[]).await
}

/// Starts the three services; `extra` adds inspection settings.
pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let server = ServerConfig {
        max_message_bytes: 1024 * 1024,
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let mut stack = Stack::start(
        backend,
        server,
        &[(
            "inspection",
            &["identity.keys", "license.read", "identity.clients.read"],
        )],
    )
    .await;
    let (inspection_db, mut environment) = stack.issuing_env("inspection").await;
    for (k, v) in extra {
        environment.insert(k.to_string(), v.to_string());
    }
    let config = credmesh_inspection::InspectionConfig::from_env(&environment).unwrap();
    let db = migrated(&inspection_db, credmesh_inspection::migrations()).await;
    let channel = credmesh_runtime::client::service_channel(&stack.url).unwrap();
    let registrar = config
        .client()
        .registrar(channel.clone(), stack.clock())
        .unwrap();
    let licenses =
        credmesh_inspection::grpc_license(&config, channel.clone(), channel, stack.clock())
            .unwrap();
    let built = credmesh_inspection::build(
        &config,
        db,
        stack.clock(),
        &stack.server,
        registrar,
        licenses,
    )
    .await
    .unwrap();
    let stack = stack
        .serve(vec![built.parts], &[("inspection", &built.registration)])
        .await;
    let app = TestApp {
        inspection: InspectionServiceClient::new(stack.channel.clone()),
        inspection_db,
        keys: std::sync::Mutex::new(HashMap::new()),
        stack,
    };
    // The inspectors the tests name on plans: registered, as a plan requires.
    // A department sends only its own inspectors: the health commission has its own.
    for (id, cert) in [("insp-i1", "c1"), ("insp-i2", "c2"), ("insp", "cert")] {
        app.inspector(id, MARKET, cert).await;
    }
    app.inspector("insp-h1", &health(), "h1").await;
    app
}

impl TestApp {
    /// Registers a client (an inspector with enforcement certificate `cert`) and returns
    /// a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        org: &str,
        cert: &str,
    ) -> String {
        let (key, token) = self
            .new_client(ipb::RegisterClientRequest {
                enforcement_certificate: cert.to_string(),
                ..credmesh_harness::client_request(id, kind, scopes, org)
            })
            .await;
        self.keys
            .lock()
            .unwrap()
            .insert(id.to_string(), key.to_pkcs8_pem().to_string());
        token
    }

    /// A fresh token for a registered client (after the clock moved).
    pub async fn token(&self, id: &str) -> String {
        let pem = self
            .keys
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .expect("a registered client");
        let key = IssuerKey::from_pkcs8_pem(id, &pem).unwrap();
        self.token_for(id, &key).await
    }

    pub async fn department(&self, id: &str, org: &str) -> String {
        self.client(
            id,
            PrincipalKind::Department,
            &[
                "license.issue",
                "license.read",
                "inspection.plan",
                "inspection.read",
                "inspection.policy",
                "inspection.credit",
            ],
            org,
            "",
        )
        .await
    }

    pub async fn inspector(&self, id: &str, org: &str, cert: &str) -> String {
        self.client(
            id,
            PrincipalKind::Inspector,
            &["inspection.read", "inspection.record"],
            org,
            cert,
        )
        .await
    }

    pub async fn enterprise(&self, uscc: &str) -> String {
        self.client(
            &format!("ent-{}", uscc.to_ascii_lowercase()),
            PrincipalKind::Enterprise,
            &["inspection.read", "inspection.respond"],
            uscc,
            "",
        )
        .await
    }

    /// Establishes a restaurant registered by the Jing'an bureau.
    pub async fn establish(&self, token: &str, uscc: &str) {
        self.license
            .clone()
            .establish_enterprise(with_token(credmesh_harness::restaurant(uscc), token))
            .await
            .unwrap();
    }

    pub async fn plan(
        &self,
        token: &str,
        req: pb::PlanInspectionRequest,
    ) -> Result<pb::plan_inspection_response::Decision, tonic::Status> {
        Ok(self
            .inspection
            .clone()
            .plan_inspection(with_token(req, token))
            .await?
            .into_inner()
            .decision
            .expect("a decision"))
    }

    pub async fn import(&self, token: &str, entries: Vec<pb::PolicyEntry>) {
        self.inspection
            .clone()
            .import_policy_data(with_token(
                pb::ImportPolicyDataRequest {
                    entries,
                    idempotency_key: String::new(),
                },
                token,
            ))
            .await
            .unwrap();
    }
}

/// A valid Shanghai enterprise code in Jing'an, varied by `n`.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// A routine food-safety plan of `uscc` starting `days` from now, by `inspector`.
pub fn routine(uscc: &str, start: i64, inspector: &str, cert: &str) -> pb::PlanInspectionRequest {
    pb::PlanInspectionRequest {
        enterprise_uscc: uscc.to_string(),
        items: vec!["food-safety".into()],
        r#type: pb::InspectionType::Routine as i32,
        plan_number: "沪静市监检〔2026〕12号".into(),
        inspectors: vec![pb::Inspector {
            client_id: inspector.to_string(),
            enforcement_certificate: cert.to_string(),
            department: String::new(),
        }],
        window_start: start,
        window_end: start + 10 * DAY,
        ..Default::default()
    }
}
