//! The inspection code service inside `credmesh dev`: its keys under `data/keys/`, its
//! identity client (scopes `identity.keys`, `license.read` and `identity.clients.read`)
//! registered in-process,
//! its key registered and the license service reached over the loopback gRPC address,
//! as in production; a little demo policy data seeded once.

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc};

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_identity::{
    Identity,
    domain::client::{ClientAuth, Registration},
    error::IdentityError,
};
use credmesh_inspection::{Inspection, domain::rules::Grade, service::Caller, store::PolicyItem};
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

use crate::keyfile;

/// The service client id inspection uses at identity.
const CLIENT_ID: &str = "inspection";

/// Builds the inspection code service for `credmesh dev`.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    data: &Path,
    keys: &Path,
    region: &str,
    identity: &Identity,
    grpc: SocketAddr,
    http: SocketAddr,
    server: &ServerConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<credmesh_inspection::Built> {
    let signing = keys.join("inspection-signing.pem");
    let client_key_file = keys.join("inspection-client.pem");
    keyfile::load_or_generate(&signing)?;
    let (client_key, _) = keyfile::load_or_generate(&client_key_file)?;
    register_client(identity, &client_key.public_key_bytes()).await?;
    let (inspector_key, _) = keyfile::load_or_generate(&keys.join("demo-inspector.pem"))?;
    register_demo_inspector(identity, &inspector_key.public_key_bytes()).await?;
    let env: HashMap<String, String> = [
        ("CREDMESH_REGION", region.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", data.join("inspection.db").display()),
        ),
        ("CREDMESH_SIGNING_KEY_FILE", signing.display().to_string()),
        (
            "CREDMESH_CLIENT_KEY_FILE",
            client_key_file.display().to_string(),
        ),
        ("CREDMESH_CLIENT_ID", CLIENT_ID.to_string()),
        ("CREDMESH_IDENTITY_URL", format!("http://{grpc}")),
        ("CREDMESH_LICENSE_URL", format!("http://{grpc}")),
        ("CREDMESH_PUBLIC_URL", format!("http://{http}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = credmesh_inspection::InspectionConfig::from_env(&env)?;
    let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_inspection::migrations()).await?;
    let identity_channel = credmesh_runtime::client::service_channel(&config.identity_url)?;
    let license_channel = credmesh_runtime::client::service_channel(&config.license_url)?;
    let registrar = config
        .client()
        .registrar(identity_channel.clone(), clock.clone())?;
    let licenses = credmesh_inspection::grpc_license(
        &config,
        identity_channel,
        license_channel,
        clock.clone(),
    )?;
    credmesh_inspection::build(&config, db, clock, server, registrar, licenses).await
}

/// Registers the inspection service's identity client unless it exists.
async fn register_client(identity: &Identity, public_key: &[u8; 32]) -> anyhow::Result<()> {
    if let Ok(existing) = identity.client(CLIENT_ID).await {
        if existing.auth != ClientAuth::PublicKey(*public_key) {
            tracing::warn!(
                client_id = CLIENT_ID,
                "the identity client 'inspection' holds another key than data/keys/inspection-client.pem; delete the data directory to start afresh"
            );
        }
        return Ok(());
    }
    let scopes = vec![
        "identity.keys".to_string(),
        "license.read".to_string(),
        "identity.clients.read".to_string(),
    ];
    let registration = Registration {
        client_id: CLIENT_ID,
        kind: PrincipalKind::Service.to_proto(),
        display_name: "Inspection code service",
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
            "registering the inspection service client: {e}"
        )),
    }
}

/// The demo inspector plans may name (`--inspector insp-1=沪执法31000011111`):
/// inspectors are registered principals, so one is registered for the Jing'an market
/// bureau, with its key in `data/keys/demo-inspector.pem`.
pub const DEMO_INSPECTOR: (&str, &str) = ("insp-1", "沪执法31000011111");

async fn register_demo_inspector(identity: &Identity, public_key: &[u8; 32]) -> anyhow::Result<()> {
    let scopes = vec![
        "inspection.read".to_string(),
        "inspection.record".to_string(),
    ];
    let registration = Registration {
        client_id: DEMO_INSPECTOR.0,
        kind: PrincipalKind::Inspector.to_proto(),
        display_name: "Demo inspector, Jing'an market bureau",
        scopes: &scopes,
        organization: "11310106MB2F10062C",
        public_key,
        enforcement_certificate: DEMO_INSPECTOR.1,
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
        Err(e) => Err(anyhow::anyhow!("registering the demo inspector: {e}")),
    }
}

/// Seeds demo policy data once: the demo restaurant is grade A, a "signage" item is on
/// the do-not-disturb list. Later starts find the history and seed nothing.
pub async fn seed(inspection: &Inspection, demo_uscc: &str) -> anyhow::Result<()> {
    let seeded = inspection
        .policy_history(None, None, 0, 1)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !seeded.is_empty() {
        return Ok(());
    }
    let principal = Principal {
        client_id: "credmesh-dev".into(),
        kind: PrincipalKind::Operator,
        scopes: vec![credmesh_inspection::SCOPE_POLICY.into()],
        organization: None,
        region: String::new(),
        token_id: String::new(),
        expires_at: 0,
        enforcement_certificate: None,
    };
    let items = vec![
        (
            PolicyItem::Grade {
                uscc: demo_uscc.to_string(),
                grade: Grade::A,
            },
            "demo credit grade".to_string(),
        ),
        (
            PolicyItem::DoNotDisturb {
                item: "signage".into(),
                uscc: String::new(),
                removed: false,
            },
            "demo do-not-disturb item".to_string(),
        ),
    ];
    inspection
        .import_policy(
            Caller {
                principal: &principal,
                trace_id: "",
            },
            &items,
            None,
            &|_| Vec::new(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
