//! The enterprise-code service inside `credmesh dev`: its scenarios in
//! `data/entcode.db`, its keys under `data/keys/`, its identity client (scopes
//! `identity.keys`, `license.read`, `verify`, `certificate.read` and `inspection.credit`)
//! registered in-process, its key registered and the license, certificate and inspection
//! services reached over the loopback gRPC address, as in production.

use std::{net::SocketAddr, path::Path, sync::Arc};

use credmesh_auth::PrincipalKind;
use credmesh_identity::Identity;
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

/// Builds the enterprise-code service for `credmesh dev`.
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
) -> anyhow::Result<credmesh_entcode::Built> {
    // `verify`: the scan page asks the gateway about other issuers' credentials;
    // `certificate.read`: the enterprise's permits; `inspection.credit`: its credit grade.
    // A data directory from before these were added keeps its client: permits then show
    // as not loadable until the directory is started afresh.
    let mut env = super::IssuingService {
        name: "entcode",
        display_name: "Enterprise-code service",
        scopes: &[
            "identity.keys",
            "license.read",
            "verify",
            "certificate.read",
            "inspection.credit",
        ],
    }
    .prepare(data, keys, region, identity, grpc)
    .await?;
    env.extend([
        ("CREDMESH_LICENSE_URL".into(), format!("http://{grpc}")),
        ("CREDMESH_VERIFY_URL".into(), format!("http://{grpc}")),
        // The in-process certificate and inspection services: permits on the scan page,
        // and the `permits` and `credit_grade` scenario fields.
        ("CREDMESH_CERTIFICATE_URL".into(), format!("http://{grpc}")),
        ("CREDMESH_INSPECTION_URL".into(), format!("http://{grpc}")),
        // The QR images encode the scan page's URL on this machine.
        ("CREDMESH_PUBLIC_URL".into(), format!("http://{http}")),
    ]);
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
        Ok((code, _)) => credmesh_credential::scan_url(&format!("http://{http}"), &code.qr),
        Err(e) => format!("(unavailable: {e})"),
    }
}
