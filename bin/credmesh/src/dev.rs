//! `credmesh dev`: every service in one process, for a first try and for development.
//!
//! Data (SQLite files), generated keys and a CLI profile live under `--data` and are
//! reused on restart. The process prints where it listens, an operator token and the
//! commands to try next.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use base64::Engine as _;
use credmesh_runtime::{Server, ServerConfig, SystemClock};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
use tokio::net::TcpListener;

use crate::{cli::DevArgs, keyfile, profile::Profile};

mod certificate;
mod entcode;
mod inspection;
mod license;
mod verify;

/// An issuing service in `credmesh dev`, set up as production has it: its signing and
/// identity-client keys `data/keys/<name>-signing.pem` and `<name>-client.pem`
/// (generated once), its client registered at the in-process identity service with
/// `scopes`, and its SQLite database `data/<name>.db`.
struct IssuingService {
    /// The service's name, also its client id at identity.
    name: &'static str,
    /// How identity lists the client.
    display_name: &'static str,
    /// What the client may ask identity for.
    scopes: &'static [&'static str],
}

impl IssuingService {
    /// Generates the keys where missing, registers the client where missing, and
    /// returns the environment every issuing service reads (region, database, key
    /// files, client id, identity at `grpc`), to which the caller adds the service's own.
    async fn prepare(
        &self,
        data: &std::path::Path,
        keys: &std::path::Path,
        region: &str,
        identity: &credmesh_identity::Identity,
        grpc: std::net::SocketAddr,
    ) -> anyhow::Result<HashMap<String, String>> {
        let signing = keys.join(format!("{}-signing.pem", self.name));
        let client_key_file = keys.join(format!("{}-client.pem", self.name));
        keyfile::load_or_generate(&signing)?;
        let (client_key, _) = keyfile::load_or_generate(&client_key_file)?;
        self.register_client(identity, &client_key.public_key_bytes())
            .await?;
        let database = data.join(format!("{}.db", self.name));
        Ok([
            ("CREDMESH_REGION", region.to_string()),
            ("DATABASE_URL", format!("sqlite://{}", database.display())),
            ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
            (
                "CREDMESH_CLIENT_KEY_FILE",
                client_key_file.display().to_string(),
            ),
            ("CREDMESH_CLIENT_ID", self.name.to_string()),
            ("CREDMESH_IDENTITY_URL", format!("http://{grpc}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
    }

    /// Registers the service's identity client unless it exists; a client holding
    /// another key (a data directory whose keys were replaced) is said in the log.
    async fn register_client(
        &self,
        identity: &credmesh_identity::Identity,
        public_key: &[u8; 32],
    ) -> anyhow::Result<()> {
        use credmesh_identity::domain::client::{ClientAuth, Registration};
        if let Ok(existing) = identity.client(self.name).await {
            if existing.auth != ClientAuth::PublicKey(*public_key) {
                tracing::warn!(
                    client_id = self.name,
                    "the identity client '{0}' holds another key than data/keys/{0}-client.pem; delete the data directory to start afresh",
                    self.name
                );
            }
            return Ok(());
        }
        let scopes: Vec<String> = self.scopes.iter().map(|s| s.to_string()).collect();
        let registration = Registration {
            client_id: self.name,
            kind: credmesh_auth::PrincipalKind::Service.to_proto(),
            display_name: self.display_name,
            scopes: &scopes,
            public_key,
            ..Default::default()
        };
        register(identity, &registration).await
    }
}

/// Registers `registration` at the in-process identity service, acting as
/// `credmesh dev`, unless its client exists already.
async fn register(
    identity: &credmesh_identity::Identity,
    registration: &credmesh_identity::domain::client::Registration<'_>,
) -> anyhow::Result<()> {
    let system = credmesh_identity::store::Actor {
        client_id: "credmesh-dev",
        kind: "operator",
        trace_id: "",
    };
    match identity
        .register_client(registration, system, None, &|_| Vec::new())
        .await
    {
        Ok(_) | Err(credmesh_identity::error::IdentityError::ClientExists(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "registering the identity client {} ({}): {e}",
            registration.client_id,
            registration.display_name
        )),
    }
}

/// Writes `data/<client_id>.toml`, a CLI profile acting as `client_id` with the key in
/// `key_file`, so each demo party can be played with `--profile`.
fn demo_profile(
    data: &std::path::Path,
    client_id: &str,
    grpc: std::net::SocketAddr,
    key_file: std::path::PathBuf,
) -> anyhow::Result<()> {
    Profile {
        endpoint: format!("http://{grpc}"),
        identity_endpoint: None,
        client_id: client_id.into(),
        key_file,
    }
    .save(&data.join(format!("{client_id}.toml")))
}

/// A demo party `credmesh dev` registers, so that every step of the journeys can be
/// played from the CLI: its key is `data/keys/<id>.pem`, its CLI profile
/// `data/<id>.toml`.
struct DemoParty {
    id: &'static str,
    kind: credmesh_auth::PrincipalKind,
    name: &'static str,
    scopes: &'static [&'static str],
    organization: &'static str,
}

/// The demo restaurant itself: it scans inspection codes and evaluates inspections,
/// makes presentations of its enterprise code and disputes its permits' data.
const DEMO_OWNER: DemoParty = DemoParty {
    id: "demo-owner",
    kind: credmesh_auth::PrincipalKind::Enterprise,
    name: "上海静安面馆有限公司 (demo enterprise)",
    scopes: &[
        credmesh_inspection::SCOPE_RESPOND,
        credmesh_entcode::SCOPE_PRESENT,
        credmesh_certificate::SCOPE_DISPUTE,
    ],
    organization: license::DEMO_USCC,
};

/// The municipal market bureau as the department that issued the demo permit: it
/// suspends, revokes and renews permits and accepts and resolves their disputes.
const DEMO_MARKET: DemoParty = DemoParty {
    id: "demo-market",
    kind: credmesh_auth::PrincipalKind::Department,
    name: "上海市市场监督管理局 (demo department)",
    scopes: &[
        credmesh_certificate::SCOPE_ISSUE,
        credmesh_certificate::SCOPE_READ,
    ],
    organization: credmesh_certificate::domain::types::SH_MUNICIPAL_MARKET,
};

impl DemoParty {
    async fn register(
        &self,
        identity: &credmesh_identity::Identity,
        data: &std::path::Path,
        keys: &std::path::Path,
        grpc: std::net::SocketAddr,
    ) -> anyhow::Result<()> {
        let key_file = keys.join(format!("{}.pem", self.id));
        let (key, _) = keyfile::load_or_generate(&key_file)?;
        let scopes: Vec<String> = self.scopes.iter().map(|s| (*s).to_owned()).collect();
        let registration = credmesh_identity::domain::client::Registration {
            client_id: self.id,
            kind: self.kind.to_proto(),
            display_name: self.name,
            scopes: &scopes,
            organization: self.organization,
            public_key: &key.public_key_bytes(),
            ..Default::default()
        };
        register(identity, &registration).await?;
        demo_profile(data, self.id, grpc, key_file)
    }
}

/// Runs every service until Ctrl-C.
pub async fn run(args: DevArgs, mut env: HashMap<String, String>) -> anyhow::Result<()> {
    env.entry("CREDMESH_LOG_FORMAT".into())
        .or_insert_with(|| "pretty".into());
    let _telemetry = credmesh_telemetry::init("credmesh-dev", &env)?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating the data directory {}", args.data.display()))?;
    let data = std::fs::canonicalize(&args.data)?;
    let keys = data.join("keys");
    let (anchor, _) = keyfile::load_or_generate(&keys.join("anchor.pem"))?;
    let (_, _) = keyfile::load_or_generate(&keys.join("token.pem"))?;
    let (operator, _) = keyfile::load_or_generate(&keys.join("operator.pem"))?;
    let operator_pk =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes());

    let mut server_config = ServerConfig::from_env(&env)?;
    // One process on a laptop: the services call each other over loopback in plaintext.
    if server_config.tls.take().is_some() {
        tracing::warn!(
            "credmesh dev serves plaintext on loopback; the CREDMESH_TLS_* settings are for `credmesh serve`"
        );
    }
    // Bound first, so the trust list advertises the real HTTP address (port 0 included).
    let grpc = TcpListener::bind(args.grpc).await.with_context(|| {
        format!(
            "binding the gRPC address {} (is another credmesh running?)",
            args.grpc
        )
    })?;
    let http = TcpListener::bind(args.http).await.with_context(|| {
        format!(
            "binding the HTTP address {} (is another credmesh running?)",
            args.http
        )
    })?;
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    let identity_env: HashMap<String, String> = [
        ("CREDMESH_REGION", args.region.clone()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", data.join("identity.db").display()),
        ),
        (
            "CREDMESH_ANCHOR_KEY_FILE",
            keys.join("anchor.pem").display().to_string(),
        ),
        (
            "CREDMESH_TOKEN_KEY_FILE",
            keys.join("token.pem").display().to_string(),
        ),
        ("CREDMESH_ALLOW_CLIENT_SECRETS", "true".into()),
        ("CREDMESH_PUBLIC_URL", format!("http://{http_addr}")),
        ("CREDMESH_BOOTSTRAP_OPERATOR_KEY", operator_pk),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut identity_config = credmesh_identity::IdentityConfig::from_env(&identity_env)?;
    // One server checks every service's calls with identity's validator, so it accepts
    // a token for any of them, as each service's own process does for its name.
    identity_config.co_served = ["license", "entcode", "certificate", "inspection", "verify"]
        .map(String::from)
        .to_vec();
    let db = Db::connect(&identity_config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_identity::migrations()).await?;
    let clock = Arc::new(SystemClock);
    let identity = credmesh_identity::build(&identity_config, db, clock, &server_config).await?;

    let profile_path = data.join("cli-profile.toml");
    Profile {
        endpoint: format!("http://{grpc_addr}"),
        identity_endpoint: None,
        client_id: "operator".into(),
        key_file: keys.join("operator.pem"),
    }
    .save(&profile_path)?;
    for party in [DEMO_OWNER, DEMO_MARKET] {
        party
            .register(&identity.identity, &data, &keys, grpc_addr)
            .await?;
    }
    let assertion = credmesh_auth::client_assertion("operator", operator.signing_key(), now())?;
    let token = identity
        .identity
        .issue_token(
            "operator",
            credmesh_identity::service::Credential::Assertion(&assertion),
            &[],
            "",
        )
        .await
        .map_err(|e| anyhow::anyhow!("issuing the operator token: {e}"))?;

    let license = license::build(
        &data,
        &keys,
        &args.region,
        &identity.identity,
        grpc_addr,
        http_addr,
        &server_config,
        Arc::new(SystemClock),
    )
    .await?;
    let license_service = license.license.clone();
    let entcode = entcode::build(
        &data,
        &keys,
        &args.region,
        &identity.identity,
        grpc_addr,
        http_addr,
        &server_config,
        Arc::new(SystemClock),
    )
    .await?;
    let (entcode_service, entcode_key) = (entcode.entcode.clone(), entcode.registration.clone());
    let certificate = certificate::build(
        &data,
        &keys,
        &args.region,
        &identity.identity,
        grpc_addr,
        http_addr,
        &server_config,
        Arc::new(SystemClock),
    )
    .await?;
    let (certificate_service, certificate_key) = (
        certificate.certificates.clone(),
        certificate.registration.clone(),
    );
    let inspection = inspection::build(
        &data,
        &keys,
        &args.region,
        &identity.identity,
        grpc_addr,
        http_addr,
        &server_config,
        Arc::new(SystemClock),
    )
    .await?;
    let inspection_service = inspection.inspection.clone();
    let verify = verify::build(
        &data,
        &args.region,
        anchor.public_key_bytes(),
        grpc_addr,
        &server_config,
        identity.validator.clone(),
        Arc::new(SystemClock),
    )
    .await?;

    let gateway = verify.gateway.clone();

    let metrics = Metrics::new();
    license_service.export_metrics(&metrics);
    entcode_service.export_metrics(&metrics);
    certificate_service.export_metrics(&metrics);
    inspection_service.export_metrics(&metrics);
    gateway.export_metrics(&metrics);
    let server = Server::new(server_config, metrics, identity.validator)
        .with_service(identity.parts)
        .with_service(license.parts)
        .with_service(entcode.parts)
        .with_service(certificate.parts)
        .with_service(inspection.parts)
        .with_service(verify.parts);
    let serving =
        tokio::spawn(server.serve(vec![grpc, http], credmesh_runtime::shutdown::signal()));
    // The license key registers with identity over the loopback address, which answers
    // now; the demo enterprises are seeded (once) as soon as it has.
    let demo_qr = match license::seed(&license_service).await {
        Ok(qr) => qr,
        Err(e) => {
            tracing::warn!(error = %e, "the license service cannot issue; no demo licenses");
            format!("(unavailable: {e})")
        }
    };
    let demo_permit =
        match certificate::seed(&certificate_service, &certificate_key, license::DEMO_USCC).await {
            Ok((serial, qr)) => format!("serial {serial}\n{qr}"),
            Err(e) => {
                tracing::warn!(error = %e, "no demo permit");
                format!("(unavailable: {e})")
            }
        };
    if let Err(e) = inspection::seed(&inspection_service, license::DEMO_USCC).await {
        tracing::warn!(error = %e, "no demo inspection policy data");
    }
    let demo_scan = entcode::demo_scan_url(
        (&entcode_service, &entcode_key),
        license::DEMO_USCC,
        http_addr,
    )
    .await;
    // The issuing services registered their keys after the gateway first read the trust
    // list; read it again before announcing ready, so a first verification knows them.
    let failed = gateway.refresh_trust().await;
    if !failed.is_empty() {
        tracing::warn!(regions = ?failed, "the verify gateway could not refresh its trust list");
    }
    println!(
        "\ncredmesh dev\n\n\
         region        {region}\n\
         gRPC          {grpc_addr}   (health, reflection: grpcurl -plaintext {grpc_addr} list)\n\
         HTTP          http://{http_addr}/.well-known/jwks.json   /v1/trust/list   /metrics\n\
         status lists  http://{http_addr}/v1/status/{region}/license/0/revocation   …/{region}/certificate/0/revocation\n\
         verify        POST http://{http_addr}/v1/verify   /openapi.json   /v1/verify/bundle\n\
         tokens        POST http://{http_addr}/v1/token   (OAuth 2.0 client credentials, for HTTP clients)\n\
         data          {data}\n\
         CLI profiles  {profile}   (the operator, the default)\n\
         \x20             {data}/{owner}.toml   (the demo restaurant: scan and evaluate inspections, present its code, dispute)\n\
         \x20             {data}/{market}.toml   (the department that issued the demo permit: suspend, revoke, answer disputes)\n\
         \x20             {data}/{inspector}.toml   (the demo inspector: record results)\n\n\
         operator token (valid {ttl} s):\n{token}\n\n\
         demo license of {demo} (QR text):\n{demo_qr}\n\n\
         demo food business permit (食品经营许可证) of {demo}:\n{demo_permit}\n\n\
         scan its enterprise code (经营主体身份码):\n{demo_scan}\n\n\
         try:\n  \
         cargo run -q -p credmesh -- identity clients list\n  \
         cargo run -q -p credmesh -- identity trust-list show\n  \
         cargo run -q -p credmesh -- license list\n  \
         cargo run -q -p credmesh -- license show {demo}\n  \
         cargo run -q -p credmesh -- license history {demo}\n  \
         cargo run -q -p credmesh -- entcode show {demo}\n  \
         cargo run -q -p credmesh -- cert types\n  \
         cargo run -q -p credmesh -- cert list --holder {demo}\n  \
         cargo run -q -p credmesh -- inspect grade {demo}\n  \
         cargo run -q -p credmesh -- verify --fetch http://{http_addr}\n  \
         echo '<QR text>' | cargo run -q -p credmesh -- verify -\n\n\
         credmesh dev ready grpc={grpc_addr} http={http_addr}",
        region = args.region,
        data = data.display(),
        profile = profile_path.display(),
        ttl = token.expires_in,
        token = token.token,
        demo = license::DEMO_USCC,
        owner = DEMO_OWNER.id,
        market = DEMO_MARKET.id,
        inspector = inspection::DEMO_INSPECTOR.0,
    );
    serving.await?
}

fn now() -> i64 {
    use credmesh_runtime::Clock as _;
    SystemClock.now()
}
