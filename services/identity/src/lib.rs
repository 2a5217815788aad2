//! The identity and trust service (`credmesh.identity.v1.IdentityService`).
//!
//! Registers clients and issues them short-lived EdDSA access tokens; keeps the region's
//! issuer key registry and publishes it as a trust list signed by the region's anchor
//! key; pins partner regions' anchors and imports their trust lists. Every other
//! service validates tokens locally against this service's JWKS.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`domain`]: registration rules, the scope catalogue, issuer keys and trust lists.
//! - [`store`]: the repository trait and its SQLite and PostgreSQL implementations.
//! - [`service`]: the operations.
//! - [`api`]: the gRPC and HTTP adapters.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use credmesh_auth::{
    Access, AccessPolicy, Jwk, Jwks, PrincipalKind, StaticJwks, TokenSigner, TokenValidator,
    ValidatorConfig,
};
use credmesh_credential::keys::{IssuerKey, kid_for};
use credmesh_proto::identity::v1::identity_service_server::IdentityServiceServer;
use credmesh_runtime::{Clock, ServerConfig, ServiceParts};
use credmesh_store::{Db, ServiceMigrations, idempotency::Outcome};

pub use config::IdentityConfig;
pub use service::Identity;

use crate::{domain::scopes, store::Actor};

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.identity.v1.IdentityService";

/// The identity service's migrations for both backends.
pub fn migrations() -> ServiceMigrations {
    ServiceMigrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Which RPC needs what.
pub fn access_policy() -> AccessPolicy {
    let m = |name: &str| format!("/{GRPC_NAME}/{name}");
    AccessPolicy::new()
        .rule(&m("RegisterClient"), Access::Scope(scopes::IDENTITY_ADMIN))
        .rule(
            &m("GetClient"),
            Access::AnyScope(&[scopes::IDENTITY_ADMIN, scopes::IDENTITY_CLIENTS_READ]),
        )
        .rule(&m("ListClients"), Access::Scope(scopes::IDENTITY_ADMIN))
        .rule(&m("DisableClient"), Access::Scope(scopes::IDENTITY_ADMIN))
        .rule(&m("IssueToken"), Access::Public)
        .rule(&m("GetJwks"), Access::Public)
        .rule(
            &m("RegisterIssuerKey"),
            Access::Scope(scopes::IDENTITY_KEYS),
        )
        .rule(&m("RevokeIssuerKey"), Access::Scope(scopes::IDENTITY_ADMIN))
        .rule(&m("ListIssuerKeys"), Access::Scope(scopes::IDENTITY_READ))
        .rule(&m("GetTrustList"), Access::Public)
        .rule(
            &m("PinPartnerAnchor"),
            Access::Scope(scopes::IDENTITY_ADMIN),
        )
        .rule(
            &m("ListPartnerAnchors"),
            Access::Scope(scopes::IDENTITY_READ),
        )
        .rule(
            &m("ImportPartnerTrustList"),
            Access::Scope(scopes::IDENTITY_ADMIN),
        )
        .rule(&m("GetPartnerTrustList"), Access::Public)
}

/// A running identity service's pieces.
#[derive(Debug)]
pub struct Built {
    /// The service, for in-process callers (`credmesh dev` wiring, tests).
    pub identity: Arc<Identity>,
    /// What the runtime serves.
    pub parts: ServiceParts,
    /// A token validator fed directly from this service's keys, for every service
    /// served in the same process.
    pub validator: Arc<TokenValidator>,
}

/// Loads a PKCS#8 PEM signing key from `path`, naming it `<region>-<role>-<hash>`.
pub fn load_key(path: &Path, region: &str, role: &str) -> anyhow::Result<IssuerKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {role} key file {}", path.display()))?;
    let probe = IssuerKey::from_pkcs8_pem("probe", &pem).with_context(|| {
        format!(
            "the {role} key file {} is not a PKCS#8 Ed25519 key",
            path.display()
        )
    })?;
    let kid = kid_for(region, role, &probe.public_key_bytes());
    IssuerKey::from_pkcs8_pem(&kid, &pem).map_err(Into::into)
}

/// Builds the identity service on a migrated database.
pub async fn build(
    config: &IdentityConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
) -> anyhow::Result<Built> {
    let region = config.region.code();
    let anchor = load_key(&config.anchor_key_file, region, "anchor")?;
    let token_key = load_key(&config.token_key_file, region, "token")?;
    let mut jwks = Jwks {
        keys: vec![Jwk::from_ed25519(
            token_key.kid(),
            &token_key.verifying_key(),
        )],
    };
    if let Some(previous) = &config.previous_token_key_file {
        let previous = load_key(previous, region, "token")?;
        jwks.keys
            .push(Jwk::from_ed25519(previous.kid(), &previous.verifying_key()));
    }
    let issuer = service::token_issuer(config.region);
    let signer = Arc::new(TokenSigner::new(
        token_key.kid().to_string(),
        token_key.signing_key().clone(),
        issuer.clone(),
    )?);
    let source = Arc::new(StaticJwks::new(jwks.clone()));
    let clock_for_validator = clock.clone();
    let validator = TokenValidator::new(
        source,
        ValidatorConfig::new(
            issuer,
            [service::DEFAULT_AUDIENCE, "identity"]
                .into_iter()
                .chain(config.co_served.iter().map(String::as_str)),
        )
        .with_clock(Arc::new(move || clock_for_validator.now())),
    );
    let store = store::for_db(&db);
    let identity = Arc::new(Identity::new(
        config.region,
        store,
        clock,
        signer,
        jwks,
        anchor,
        config.allow_client_secrets,
        config.token_ttl.as_secs() as i64,
        config.public_url.clone(),
        validator.clone(),
    ));
    if let Some(key) = &config.bootstrap_operator_key {
        bootstrap_operator(&identity, key).await?;
    }
    pin_configured_partners(&identity, &config.partners).await?;
    let api = api::grpc::IdentityApi::new(identity.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "identity",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                IdentityServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(identity.clone()),
        policy: access_policy(),
        readiness: vec![Arc::new(credmesh_runtime::server::DbReady(db))],
    };
    Ok(Built {
        identity,
        parts,
        validator,
    })
}

/// Registers client `operator` with every operator scope if it does not exist.
pub async fn bootstrap_operator(identity: &Identity, public_key_b64: &str) -> anyhow::Result<()> {
    use base64::Engine as _;
    if identity.client("operator").await.is_ok() {
        return Ok(());
    }
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public_key_b64.trim().trim_end_matches('='))
        .context("CREDMESH_BOOTSTRAP_OPERATOR_KEY must be a base64url raw Ed25519 public key")?;
    let scopes = scopes::all_for(PrincipalKind::Operator);
    let reg = domain::client::Registration {
        client_id: "operator",
        kind: PrincipalKind::Operator.to_proto(),
        display_name: "Platform operator",
        scopes: &scopes,
        public_key: &pk,
        ..Default::default()
    };
    let system = Actor {
        client_id: "system",
        kind: "system",
        trace_id: "",
    };
    match identity
        .register_client(&reg, system, None, &|_| Vec::new())
        .await
    {
        Ok(Outcome::Done(_) | Outcome::Replayed(_))
        | Err(error::IdentityError::ClientExists(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("bootstrapping the operator client: {e}")),
    }
}

/// Pins the anchors of the partner file (`CREDMESH_PARTNERS_FILE`) that are not pinned
/// already with the same key and endpoint; the file is the deployment's statement of
/// its partners, so it wins over an earlier pin of the same region.
pub async fn pin_configured_partners(
    identity: &Identity,
    partners: &[credmesh_runtime::partners::PartnerEntry],
) -> anyhow::Result<()> {
    if partners.is_empty() {
        return Ok(());
    }
    let pinned = identity
        .anchors()
        .await
        .map_err(|e| anyhow::anyhow!("reading the pinned partner anchors: {e}"))?;
    let system = Actor {
        client_id: "system",
        kind: "system",
        trace_id: "",
    };
    for p in partners {
        let kid = if p.anchor_kid.is_empty() {
            format!("{}-anchor", p.region)
        } else {
            p.anchor_kid.clone()
        };
        let endpoint = if p.url == "identity" {
            ""
        } else {
            p.url.as_str()
        };
        let same = pinned.iter().any(|a| {
            a.region == p.region
                && a.kid == kid
                && a.public_key == p.anchor_public_key
                && a.endpoint == endpoint
        });
        if same {
            continue;
        }
        identity
            .pin_anchor(&p.region, &kid, &p.anchor_public_key, endpoint, system)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "pinning partner {} from CREDMESH_PARTNERS_FILE: {e}",
                    p.region
                )
            })?;
    }
    Ok(())
}

/// How often other processes' validators refresh the JWKS.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);
