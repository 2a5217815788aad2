//! The inspection code service inside `credmesh dev`: its keys under `data/keys/`, its
//! identity client (scopes `identity.keys`, `license.read` and `identity.clients.read`)
//! registered in-process,
//! its key registered and the license service reached over the loopback gRPC address,
//! as in production; a little demo policy data seeded once.

use std::{net::SocketAddr, path::Path, sync::Arc};

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_identity::{Identity, domain::client::Registration};
use credmesh_inspection::{Inspection, domain::rules::Grade, service::Caller, store::PolicyItem};
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

use crate::keyfile;

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
    let mut env = super::IssuingService {
        name: "inspection",
        display_name: "Inspection code service",
        scopes: &["identity.keys", "license.read", "identity.clients.read"],
    }
    .prepare(data, keys, region, identity, grpc)
    .await?;
    let inspector_key_file = keys.join("demo-inspector.pem");
    let (inspector_key, _) = keyfile::load_or_generate(&inspector_key_file)?;
    register_demo_inspector(identity, &inspector_key.public_key_bytes()).await?;
    super::demo_profile(data, DEMO_INSPECTOR.0, grpc, inspector_key_file)?;
    env.extend([
        ("CREDMESH_LICENSE_URL".into(), format!("http://{grpc}")),
        ("CREDMESH_PUBLIC_URL".into(), format!("http://{http}")),
    ]);
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

/// The demo inspector plans may name (`--inspector insp-1=沪执法31000011111`):
/// inspectors are registered principals, so one is registered for the Jing'an market
/// bureau, with its key in `data/keys/demo-inspector.pem` and a CLI profile in
/// `data/insp-1.toml` (record results with `--profile data/insp-1.toml`).
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
    super::register(identity, &registration).await
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
