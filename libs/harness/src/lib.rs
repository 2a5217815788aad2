//! The identity and license services in process, for the API tests of the services that
//! stand on them (license itself, enterprise codes, certificates, inspections, the
//! verify gateway).
//!
//! Every such test starts identity on a fresh database, registers the issuing services'
//! clients with it, starts license with its signing and client keys, serves them from
//! one server on a loopback port and then asks identity for tokens. The pieces here are
//! those steps; each service's `tests/api/helpers.rs` puts them together with its own
//! service and options. Backends and fresh databases come from [`credmesh_testkit`].
//!
//! Only tests use it, and a step that cannot be done fails the test that asked for it:
//! the functions here panic with what went wrong rather than return errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: a failed set-up step is the calling test's failure"
)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::Engine as _;
use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
use credmesh_identity::domain::client::Registration;
use credmesh_proto::{
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::license_service_client::LicenseServiceClient,
};
use credmesh_runtime::{
    Clock, ManualClock, Server, ServerConfig, ServiceParts, issuer_key::KeyRegistration,
};
use credmesh_store::{Db, DbOptions, ServiceMigrations};
use credmesh_telemetry::metrics::Metrics;
use credmesh_testkit::{Backend, Databases};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// The key files of one test, in a directory that outlives one server so a test can
/// restart its services on the same keys.
#[derive(Debug)]
pub struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("a temporary directory for key files"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The key in PKCS#8 PEM file `name`: the one written before, or a new one.
    pub fn key(&self, name: &str) -> (IssuerKey, PathBuf) {
        let path = self.dir.path().join(name);
        if path.exists() {
            let pem = std::fs::read_to_string(&path).unwrap();
            return (IssuerKey::from_pkcs8_pem("t", &pem).unwrap(), path);
        }
        let key = IssuerKey::generate("t").unwrap();
        std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
        (key, path)
    }

    /// The bootstrap operator's key (`operator.pem`), trusted by [`identity`].
    pub fn operator(&self) -> IssuerKey {
        self.key("operator.pem").0
    }
}

impl Default for Files {
    fn default() -> Files {
        Files::new()
    }
}

/// A service's environment from `(name, value)` pairs.
pub fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A connection to `url`'s database with `migrations` applied.
pub async fn migrated(url: &str, migrations: ServiceMigrations) -> Db {
    let db = Db::connect(url, &DbOptions::default()).await.unwrap();
    db.migrate(migrations).await.unwrap();
    db
}

/// Identity on database `url`: its anchor and token keys are `anchor.pem` and
/// `token.pem` of `files`, the bootstrap operator's key [`Files::operator`]; `settings`
/// add to its environment or replace what is set here (a region, a public URL).
pub async fn identity(
    files: &Files,
    url: &str,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    settings: &[(&str, String)],
) -> credmesh_identity::Built {
    let (_, anchor) = files.key("anchor.pem");
    let (_, token) = files.key("token.pem");
    let operator = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(files.operator().public_key_bytes());
    let mut environment = env(&[
        ("DATABASE_URL", url.to_string()),
        ("CREDMESH_ANCHOR_KEY_FILE", anchor.display().to_string()),
        ("CREDMESH_TOKEN_KEY_FILE", token.display().to_string()),
        ("CREDMESH_BOOTSTRAP_OPERATOR_KEY", operator),
    ]);
    environment.extend(env(settings));
    let config = credmesh_identity::IdentityConfig::from_env(&environment).unwrap();
    let db = migrated(url, credmesh_identity::migrations()).await;
    credmesh_identity::build(&config, db, clock, server)
        .await
        .unwrap()
}

/// Registers service client `id` with `key` and `scopes` in identity's register, as an
/// operator would before the service starts. A client registered already (a restarted
/// test) is left as it is.
pub async fn register_service(
    identity: &credmesh_identity::Identity,
    id: &str,
    key: &IssuerKey,
    scopes: &[&str],
) {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let display_name = format!("{id} service");
    let registration = Registration {
        client_id: id,
        kind: PrincipalKind::Service.to_proto(),
        display_name: &display_name,
        scopes: &scopes,
        public_key: &key.public_key_bytes(),
        ..Default::default()
    };
    let actor = credmesh_identity::store::Actor {
        client_id: "test",
        kind: "operator",
        trace_id: "",
    };
    match identity
        .register_client(&registration, actor, None, &|_| Vec::new())
        .await
    {
        Ok(_) | Err(credmesh_identity::error::IdentityError::ClientExists(_)) => {}
        Err(e) => panic!("registering the {id} client: {e}"),
    }
}

/// The environment every issuing service `service` starts with: database `db`, its
/// signing and identity-client keys (`<service>-signing.pem` and `<service>-client.pem`
/// of `files`), identity and its own public address at `url`.
pub fn issuing_env(files: &Files, service: &str, db: &str, url: &str) -> HashMap<String, String> {
    let (_, signing) = files.key(&format!("{service}-signing.pem"));
    let (_, client_file) = files.key(&format!("{service}-client.pem"));
    env(&[
        ("DATABASE_URL", db.to_string()),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_file.display().to_string(),
        ),
        ("CREDMESH_IDENTITY_URL", url.to_string()),
        ("CREDMESH_PUBLIC_URL", url.to_string()),
    ])
}

/// License on database `db`, with identity and its public address at `url` and its keys
/// in `files` ([`issuing_env`]); `settings` add to its environment or replace what is set
/// here. Its identity client is not registered here: a test registers it
/// ([`register_service`] with scope `identity.keys`) or leaves it out on purpose.
pub async fn license(
    files: &Files,
    db: &str,
    url: &str,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    settings: &[(&str, String)],
) -> credmesh_license::Built {
    let mut environment = issuing_env(files, "license", db, url);
    environment.extend(env(settings));
    let config = credmesh_license::LicenseConfig::from_env(&environment).unwrap();
    let channel = credmesh_runtime::client::service_channel(&config.identity_url).unwrap();
    let registrar = config.client().registrar(channel, clock.clone()).unwrap();
    let db = migrated(db, credmesh_license::migrations()).await;
    credmesh_license::build(&config, db, clock, server, registrar)
        .await
        .unwrap()
}

/// Waits until `service`'s signing key is registered with identity (its readiness).
pub async fn wait_registered(registration: &KeyRegistration, service: &str) {
    assert!(
        registration.wait(Duration::from_secs(20)).await,
        "the {service} signing key was not registered: {:?}",
        registration.state()
    );
}

/// Stops a running server when dropped.
#[derive(Debug)]
pub struct StopGuard(Option<oneshot::Sender<()>>);

impl StopGuard {
    /// Tells the server to stop now (once).
    pub fn stop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `server` on `listener` in a task of its own until the guard is dropped.
pub fn serve(server: Server, listener: TcpListener) -> (StopGuard, JoinHandle<anyhow::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(vec![listener], async move {
        let _ = stopped.await;
    }));
    (StopGuard(Some(stop)), task)
}

/// A loopback listener on a free port, and its `http://` URL.
pub async fn loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A connected channel to `url`.
pub async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A token for `client_id` from identity, by a client assertion signed with `key` at
/// `now`.
pub async fn try_token(
    identity: &IdentityServiceClient<Channel>,
    client_id: &str,
    key: &IssuerKey,
    now: i64,
) -> Result<String, tonic::Status> {
    let assertion = credmesh_auth::client_assertion(client_id, key.signing_key(), now).unwrap();
    let response = identity
        .clone()
        .issue_token(ipb::IssueTokenRequest {
            client_id: client_id.to_string(),
            credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
            ..Default::default()
        })
        .await?;
    Ok(response.into_inner().access_token)
}

/// [`try_token`] that must succeed.
pub async fn token(
    identity: &IdentityServiceClient<Channel>,
    client_id: &str,
    key: &IssuerKey,
    now: i64,
) -> String {
    try_token(identity, client_id, key, now)
        .await
        .unwrap_or_else(|status| panic!("a token for {client_id}: {status:?}"))
}

/// A registration of client `id` of `kind` for `organization` with `scopes`; the key is
/// filled in by [`new_client`].
pub fn client_request(
    id: &str,
    kind: PrincipalKind,
    scopes: &[&str],
    organization: &str,
) -> ipb::RegisterClientRequest {
    ipb::RegisterClientRequest {
        client_id: id.to_string(),
        kind: kind.to_proto(),
        display_name: format!("test client {id}"),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        organization: organization.to_string(),
        ..Default::default()
    }
}

/// Registers `request`'s client through the API as the bootstrap `operator`, with a new
/// key; answers the key and a token for the client.
pub async fn new_client(
    identity: &IdentityServiceClient<Channel>,
    operator: &IssuerKey,
    now: i64,
    mut request: ipb::RegisterClientRequest,
) -> (IssuerKey, String) {
    let key = IssuerKey::generate(&request.client_id).unwrap();
    request.public_key = key.public_key_bytes().to_vec();
    let id = request.client_id.clone();
    let operator_token = token(identity, "operator", operator, now).await;
    identity
        .clone()
        .register_client(credmesh_testkit::with_token(request, &operator_token))
        .await
        .unwrap_or_else(|status| panic!("registering client {id}: {status:?}"));
    let token = token(identity, &id, &key, now).await;
    (key, token)
}

/// A complete establishment of a Jing'an noodle restaurant with code `uscc`.
pub fn restaurant(uscc: &str) -> credmesh_proto::license::v1::EstablishEnterpriseRequest {
    use credmesh_proto::license::v1 as lpb;
    lpb::EstablishEnterpriseRequest {
        uscc: uscc.to_string(),
        name: "上海静安面馆有限公司".into(),
        entity_type: "有限责任公司（自然人投资或控股）".into(),
        legal_representative: "王小明".into(),
        registered_capital: Some(lpb::Money {
            amount: "500000.00".into(),
            currency_code: "CNY".into(),
        }),
        establishment_date: "2026-03-01".into(),
        business_term: Some(lpb::BusinessTerm {
            long_term: true,
            ..Default::default()
        }),
        domicile: "上海市静安区南京西路1000号".into(),
        business_scope: "餐饮服务；食品销售。".into(),
        registration_authority: credmesh_license::domain::authority::SHANGHAI_JINGAN.into(),
        ..Default::default()
    }
}

/// Identity and license built on fresh databases, not yet served: a test adds its own
/// service ([`Stack::issuing_env`], [`Stack::clock`]) and then serves them all together
/// ([`Stack::serve`]) on the loopback address every service already reaches the others
/// at ([`Stack::url`]), as in production.
pub struct Stack {
    pub backend: Backend,
    pub files: Files,
    pub databases: Databases,
    pub clock: Arc<ManualClock>,
    pub server: ServerConfig,
    pub listener: TcpListener,
    /// The `http://` address the services will be served at.
    pub url: String,
    pub identity: credmesh_identity::Built,
    pub license: credmesh_license::Built,
}

impl Stack {
    /// Identity and license on fresh `backend` databases with a manual clock at
    /// [`credmesh_testkit::T0`]. `clients` are the issuing services the test adds,
    /// each `(id, scopes)`: their identity clients are registered now, with the keys
    /// [`Stack::issuing_env`] gives them.
    pub async fn start(
        backend: Backend,
        server: ServerConfig,
        clients: &[(&str, &[&str])],
    ) -> Stack {
        credmesh_telemetry::init_for_tests();
        let files = Files::new();
        let mut databases = Databases::new();
        let clock = ManualClock::new(credmesh_testkit::T0);
        let identity_db = databases.fresh(backend).await;
        let identity = identity(&files, &identity_db, clock.clone(), &server, &[]).await;
        let license_client = files.key("license-client.pem").0;
        register_service(
            &identity.identity,
            "license",
            &license_client,
            &["identity.keys"],
        )
        .await;
        for (id, scopes) in clients {
            let key = files.key(&format!("{id}-client.pem")).0;
            register_service(&identity.identity, id, &key, scopes).await;
        }
        let (listener, url) = loopback().await;
        let license_db = databases.fresh(backend).await;
        let license = license(&files, &license_db, &url, clock.clone(), &server, &[]).await;
        Stack {
            backend,
            files,
            databases,
            clock,
            server,
            listener,
            url,
            identity,
            license,
        }
    }

    /// The clock as the services take it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// A fresh database for `service` and the environment it starts with
    /// ([`issuing_env`]), license reached at the same address.
    pub async fn issuing_env(&mut self, service: &str) -> (String, HashMap<String, String>) {
        let db = self.databases.fresh(self.backend).await;
        let mut environment = issuing_env(&self.files, service, &db, &self.url);
        environment.insert("CREDMESH_LICENSE_URL".into(), self.url.clone());
        (db, environment)
    }

    /// Serves identity, license and `parts` together and waits until license's and
    /// `registrations`' signing keys are registered.
    pub async fn serve(
        self,
        parts: Vec<ServiceParts>,
        registrations: &[(&str, &KeyRegistration)],
    ) -> Running {
        let Stack {
            files,
            databases,
            clock,
            server,
            listener,
            url,
            identity,
            license,
            ..
        } = self;
        let addr = listener.local_addr().unwrap();
        let mut all = Server::new(server, Metrics::new(), identity.validator)
            .with_service(identity.parts)
            .with_service(license.parts);
        for part in parts {
            all = all.with_service(part);
        }
        let (stop, _) = serve(all, listener);
        wait_registered(&license.registration, "license").await;
        for (service, registration) in registrations {
            wait_registered(registration, service).await;
        }
        let channel = connect(&url).await;
        Running {
            identity: IdentityServiceClient::new(channel.clone()),
            license: LicenseServiceClient::new(channel.clone()),
            operator: files.operator(),
            channel,
            addr,
            clock,
            _files: files,
            _databases: databases,
            _stop: stop,
        }
    }
}

/// Identity, license and a test's own service, served: clients, tokens, and what the
/// test keeps alive. A service's `TestApp` dereferences to it.
pub struct Running {
    pub identity: IdentityServiceClient<Channel>,
    pub license: LicenseServiceClient<Channel>,
    /// The bootstrap operator's key.
    pub operator: IssuerKey,
    /// A connection to the server, for the test service's own client.
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    pub clock: Arc<ManualClock>,
    _files: Files,
    _databases: Databases,
    _stop: StopGuard,
}

impl Running {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A token for `client_id` by its `key`, now.
    pub async fn try_token_for(
        &self,
        client_id: &str,
        key: &IssuerKey,
    ) -> Result<String, tonic::Status> {
        try_token(&self.identity, client_id, key, self.now()).await
    }

    /// [`Running::try_token_for`] that must succeed.
    pub async fn token_for(&self, client_id: &str, key: &IssuerKey) -> String {
        token(&self.identity, client_id, key, self.now()).await
    }

    /// A token for the bootstrap operator.
    pub async fn operator_token(&self) -> String {
        self.token_for("operator", &self.operator).await
    }

    /// Registers `request`'s client as the operator with a new key: the key and a token.
    pub async fn new_client(&self, request: ipb::RegisterClientRequest) -> (IssuerKey, String) {
        new_client(&self.identity, &self.operator, self.now(), request).await
    }

    /// Registers client `id` (lowercased, as client ids are) of `kind` for
    /// `organization` with `scopes`: a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        organization: &str,
    ) -> String {
        let id = id.to_ascii_lowercase();
        self.new_client(client_request(&id, kind, scopes, organization))
            .await
            .1
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
