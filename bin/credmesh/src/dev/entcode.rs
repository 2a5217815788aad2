//! The enterprise-code service inside `credmesh dev`: its scenarios in
//! `data/entcode.db`, its keys under `data/keys/`, its identity client (scopes
//! `identity.keys`, `license.read`, `verify`, `certificate.read` and `inspection.credit`)
//! registered in-process, its key registered and the license, certificate and inspection
//! services reached over the loopback gRPC address, as in production.

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc};

use credmesh_auth::PrincipalKind;
use credmesh_identity::{
    Identity,
    domain::client::{ClientAuth, Registration},
    error::IdentityError,
};
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

use crate::keyfile;

/// The service client id entcode uses at identity.
const CLIENT_ID: &str = "entcode";

/// Builds the enterprise-code service for `credmesh dev`.
pub async fn build(
    data: &Path,
    keys: &Path,
    region: &str,
    identity: &Identity,
    grpc: SocketAddr,
    server: &ServerConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<credmesh_entcode::Built> {
    let signing = keys.join("entcode-signing.pem");
    let client_key_file = keys.join("entcode-client.pem");
    keyfile::load_or_generate(&signing)?;
    let (client_key, _) = keyfile::load_or_generate(&client_key_file)?;
    register_client(identity, &client_key.public_key_bytes()).await?;
    let env: HashMap<String, String> = [
        ("CREDMESH_REGION", region.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", data.join("entcode.db").display()),
        ),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_key_file.display().to_string(),
        ),
        ("CREDMESH_CLIENT_ID", CLIENT_ID.to_string()),
        ("CREDMESH_IDENTITY_URL", format!("http://{grpc}")),
        ("CREDMESH_LICENSE_URL", format!("http://{grpc}")),
        ("CREDMESH_VERIFY_URL", format!("http://{grpc}")),
        // The in-process certificate and inspection services: permits on the scan page,
        // and the `permits` and `credit_grade` scenario fields.
        ("CREDMESH_CERTIFICATE_URL", format!("http://{grpc}")),
        ("CREDMESH_INSPECTION_URL", format!("http://{grpc}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = credmesh_entcode::EntcodeConfig::from_env(&env)?;
    let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_entcode::migrations()).await?;
    let identity_channel = credmesh_runtime::client::service_channel(&config.identity_url)?;
    let license_channel = credmesh_runtime::client::service_channel(&config.license_url)?;
    let registrar = config
        .client()
        .registrar(identity_channel.clone(), clock.clone())?;
    let license =
        credmesh_entcode::grpc_license(&config, identity_channel, license_channel, clock.clone())?;
    credmesh_entcode::build(&config, db, clock, server, registrar, license).await
}

/// Registers the enterprise-code service's identity client unless it exists.
async fn register_client(identity: &Identity, public_key: &[u8; 32]) -> anyhow::Result<()> {
    if let Ok(existing) = identity.client(CLIENT_ID).await {
        if existing.auth != ClientAuth::PublicKey(*public_key) {
            tracing::warn!(
                client_id = CLIENT_ID,
                "the identity client 'entcode' holds another key than data/keys/entcode-client.pem; delete the data directory to start afresh"
            );
        }
        return Ok(());
    }
    // `verify`: the scan page asks the gateway about other issuers' credentials;
    // `certificate.read`: the enterprise's permits; `inspection.credit`: its credit grade.
    // A data directory from before these were added keeps its client: permits then show
    // as not loadable until the directory is started afresh.
    let scopes = vec![
        "identity.keys".to_string(),
        "license.read".to_string(),
        "verify".to_string(),
        "certificate.read".to_string(),
        "inspection.credit".to_string(),
    ];
    let registration = Registration {
        client_id: CLIENT_ID,
        kind: PrincipalKind::Service.to_proto(),
        display_name: "Enterprise-code service",
        scopes: &scopes,
        public_key,
        ..Default::default()
    };
    let system = credmesh_identity::store::Actor {
        client_id: "credmesh-dev",
        kind: "operator",
        trace_id: "",
    };
    match identity
        .register_client(&registration, system, None, &|_| Vec::new())
        .await
    {
        Ok(_) | Err(IdentityError::ClientExists(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "registering the enterprise-code service client: {e}"
        )),
    }
}

/// The scan page URL of the demo enterprise's code, once the entcode key is registered
/// and the demo license exists; a sentence saying why not otherwise.
pub async fn demo_scan_url(
    built: (
        &credmesh_entcode::Entcode,
        &credmesh_entcode::KeyRegistration,
    ),
    uscc: &str,
    http: SocketAddr,
) -> String {
    let (entcode, registration) = built;
    if !registration.wait(std::time::Duration::from_secs(30)).await {
        return format!("(unavailable: {:?})", registration.state());
    }
    let principal = credmesh_auth::Principal {
        client_id: "credmesh-dev".into(),
        kind: PrincipalKind::Operator,
        scopes: vec![credmesh_entcode::SCOPE_READ.into()],
        organization: None,
        region: String::new(),
        token_id: String::new(),
        expires_at: 0,
        enforcement_certificate: None,
    };
    match entcode.code(&principal, uscc).await {
        Ok((code, _)) => format!(
            "http://{http}{}",
            credmesh_entcode::api::http::scan_path(&code.qr)
        ),
        Err(e) => format!("(unavailable: {e})"),
    }
}
