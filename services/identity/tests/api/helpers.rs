//! `spawn_app`: a running identity service on a fresh database.

use std::{collections::HashMap, sync::Arc};

use credmesh_credential::keys::IssuerKey;
use credmesh_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use credmesh_runtime::{Clock, ManualClock, Server, ServerConfig};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
pub use credmesh_testkit::{BOTH, Backend, T0, assert_status, with_token};
use tonic::{Request, transport::Channel};

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: IdentityServiceClient<Channel>,
    pub operator: IssuerKey,
    pub clock: Arc<ManualClock>,
    pub db_url: String,
    _dir: tempfile::TempDir,
    _sqlite: Option<credmesh_testkit::sqlite::SqliteDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_region(backend, "SH").await
}

pub async fn spawn_region(backend: Backend, region: &str) -> TestApp {
    spawn_configured(backend, region, &[]).await
}

/// A running identity service of `region` with `extra` settings beside the test's own.
pub async fn spawn_configured(backend: Backend, region: &str, extra: &[(&str, &str)]) -> TestApp {
    credmesh_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let write_key = |name: &str| {
        let key = IssuerKey::generate("t").unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
        (key, path)
    };
    let (_, anchor) = write_key("anchor.pem");
    let (_, token) = write_key("token.pem");
    let (operator, _) = write_key("operator.pem");
    use base64::Engine as _;
    let (sqlite, db_url) = match backend {
        Backend::Sqlite => {
            let db = credmesh_testkit::sqlite::SqliteDb::new().unwrap();
            let url = db.url();
            (Some(db), url)
        }
        Backend::Postgres => (
            None,
            credmesh_testkit::postgres::fresh_database().await.unwrap(),
        ),
    };
    let env: HashMap<String, String> = [
        ("CREDMESH_REGION", region.to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("CREDMESH_ANCHOR_KEY_FILE", anchor.display().to_string()),
        ("CREDMESH_TOKEN_KEY_FILE", token.display().to_string()),
        (
            "CREDMESH_BOOTSTRAP_OPERATOR_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes()),
        ),
    ]
    .into_iter()
    .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = credmesh_identity::IdentityConfig::from_env(&env).unwrap();
    let db = Db::connect(&db_url, &DbOptions::default()).await.unwrap();
    db.migrate(credmesh_identity::migrations()).await.unwrap();
    let clock = ManualClock::new(T0);
    let server_config = ServerConfig {
        max_message_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let built = credmesh_identity::build(&config, db, clock.clone(), &server_config)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        Server::new(server_config, Metrics::new(), built.validator).with_service(built.parts);
    tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestApp {
        addr,
        client: IdentityServiceClient::new(channel),
        operator,
        clock,
        db_url,
        _dir: dir,
        _sqlite: sqlite,
        stop: Some(stop),
    }
}

impl TestApp {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A token for `client_id` signed in with `key`.
    pub async fn token_for(
        &self,
        client_id: &str,
        key: &IssuerKey,
        scopes: &[&str],
    ) -> Result<String, tonic::Status> {
        let assertion =
            credmesh_auth::client_assertion(client_id, key.signing_key(), self.now()).unwrap();
        let resp = self
            .client
            .clone()
            .issue_token(pb::IssueTokenRequest {
                client_id: client_id.to_string(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                audience: String::new(),
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
            })
            .await?;
        Ok(resp.into_inner().access_token)
    }

    pub async fn operator_token(&self) -> String {
        self.token_for("operator", &self.operator, &[])
            .await
            .unwrap()
    }

    pub async fn as_operator<T>(&self, msg: T) -> Request<T> {
        with_token(msg, &self.operator_token().await)
    }

    /// Registers a client with a fresh key; returns the key.
    pub async fn register(
        &self,
        id: &str,
        kind: credmesh_auth::PrincipalKind,
        scopes: &[&str],
        org: &str,
    ) -> IssuerKey {
        let key = IssuerKey::generate(id).unwrap();
        let req = self
            .as_operator(pb::RegisterClientRequest {
                client_id: id.to_string(),
                kind: kind.to_proto(),
                display_name: format!("test client {id}"),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                organization: org.to_string(),
                public_key: key.public_key_bytes().to_vec(),
                ..Default::default()
            })
            .await;
        self.client.clone().register_client(req).await.unwrap();
        key
    }

    pub async fn audit_count(&self, target: &str) -> i64 {
        let db = Db::connect(&self.db_url, &DbOptions::default())
            .await
            .unwrap();
        let n = match &db {
            Db::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log WHERE target = $1")
                    .bind(target)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            Db::Postgres(p) => {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log WHERE target = $1")
                    .bind(target)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        };
        db.close().await;
        n
    }
}

/// A valid Shanghai USCC for tests.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}
