//! The verify gateway inside `credmesh dev`: the in-process cache, its audit in
//! `data/verify.db`, this region's trust list read over the loopback gRPC address with
//! the anchor pinned from `data/keys/anchor.pem`.

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc};

use base64::Engine as _;
use credmesh_auth::TokenValidator;
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

/// Builds the verify gateway for `credmesh dev`.
pub async fn build(
    data: &Path,
    region: &str,
    anchor_public_key: [u8; 32],
    grpc: SocketAddr,
    server: &ServerConfig,
    validator: Arc<TokenValidator>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<credmesh_verify::Built> {
    let env: HashMap<String, String> = [
        ("CREDMESH_REGION", region.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", data.join("verify.db").display()),
        ),
        ("CREDMESH_IDENTITY_URL", format!("http://{grpc}")),
        (
            "CREDMESH_ANCHOR_PUBLIC_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(anchor_public_key),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = credmesh_verify::VerifyConfig::from_env(&env)?;
    let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_verify::migrations()).await?;
    credmesh_verify::build(&config, db, clock, server, validator).await
}
