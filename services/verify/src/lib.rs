//! The verify gateway (`credmesh.verify.v1.VerifyService`): partner-facing
//! verification of every credential kind, in every form, from every trusted region.
//!
//! Answers come from in-process trust and status data, never from a call to the issuing
//! service on the request path: trust lists are fetched from this region's identity
//! service and from pinned partner regions, status lists from each region's public HTTP
//! base URL; both are verified, kept in memory, shared through the cache (Redis in
//! production) and refreshed in the background. A revocation seen by one replica is
//! pushed to all through cache invalidation. When a source is unreachable the last good
//! data keeps answering, marked stale, until the maximum staleness; then the answer is
//! STATUS_UNKNOWN, never VALID.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`domain`]: the answer rules (staleness, disclosure).
//! - [`federation`]: trust lists of this and partner regions, pinned anchors.
//! - [`status`]: status lists over HTTP or HTTPS ([`fetch`]), the hot structure,
//!   invalidation.
//! - [`offline`]: verification from a trust bundle, without a network.
//! - [`store`]: the per-partner audit on SQLite or PostgreSQL.
//! - [`audit`]: who may read which audit entries, filters and page tokens.
//! - [`service`]: [`Gateway`], the operations.
//! - [`api`]: the gRPC and HTTP/JSON adapters and the OpenAPI document.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.
//!
//! # Performance
//!
//! The hot path holds no lock across an await and makes no network call when the data
//! is held: one read lock on the decoded status lists, one `Arc` clone of the trust
//! snapshot, Ed25519 over the bytes as received (one batch equation for BatchVerify, and
//! concurrent single calls batched together), and the result cache. With Redis a
//! replica first looks in its own copies of the answers it stored or read (answers
//! are keyed by the trust and status data they were made from, so a revocation reaching
//! the replica ends them), then in Redis with one pipelined read; writes to Redis leave
//! the request path. Audit rows go through a bounded channel to a writer that batches
//! them into one transaction.
//!
//! `make bench` measures it (`benches/verify.rs` in process, `tests/benches/load.rs`
//! against `credmesh serve` processes) beside a bare tonic raw-verify server and an
//! empty bare RPC in the same run; `target/bench/report.md` has the latest figures.

pub mod api;
pub mod audit;
pub mod batcher;
pub mod config;
pub mod disputes;
pub mod domain;
pub mod error;
pub mod federation;
pub mod fetch;
pub mod offline;
pub mod service;
pub mod shared;
pub mod status;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use credmesh_auth::{Access, AccessPolicy, TokenValidator};
use credmesh_cache::{Cache, CacheOptions};
use credmesh_credential::VerifyingKey;
use credmesh_proto::verify::v1::{VerificationResult, verify_service_server::VerifyServiceServer};
use credmesh_runtime::{Clock, ServerConfig, ServiceParts};
use credmesh_store::{Db, ServiceMigrations};

pub use config::VerifyConfig;
pub use service::{Gateway, Input};

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.verify.v1.VerifyService";
/// The scope partners need.
pub const SCOPE: &str = "verify";

/// The verify gateway's migrations for both backends.
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
        .rule(&m("Verify"), Access::Scope(SCOPE))
        .rule(&m("BatchVerify"), Access::Scope(SCOPE))
        // Partners read their own entries, operators everyone's; the handler decides
        // which (see `audit::query`).
        .rule(
            &m("ListVerificationAudit"),
            Access::AnyScope(&[SCOPE, audit::AUDIT_SCOPE]),
        )
}

/// The token validator for `credmesh serve verify`: this region's identity keys,
/// refreshed in the background; accepts tokens for `verify` or every service.
pub fn validator(config: &VerifyConfig) -> anyhow::Result<Arc<TokenValidator>> {
    let channel = federation::tls_channel(&config.identity_url, &partner_tls(config)?)?;
    Ok(TokenValidator::for_service(
        "verify",
        config.region.code(),
        channel,
    ))
}

/// The roots `https://` partner endpoints are checked against: the system's plus
/// `CREDMESH_PARTNER_CA_FILE`.
pub fn partner_tls(config: &VerifyConfig) -> anyhow::Result<fetch::PartnerTls> {
    let tls = fetch::PartnerTls::load(config.partner_ca_file.as_deref())
        .context("CREDMESH_PARTNER_CA_FILE")?;
    let (system, extra) = tls.counts();
    if system + extra == 0
        && config
            .partners
            .iter()
            .any(|p| p.endpoint.to_ascii_lowercase().starts_with("https://"))
    {
        tracing::warn!(
            "no CA certificate is trusted (the system has none and CREDMESH_PARTNER_CA_FILE is unset): https:// partners will be unreachable"
        );
    }
    Ok(tls)
}

/// A built gateway's pieces.
#[derive(Debug)]
pub struct Built {
    /// The gateway, for in-process callers (the scan page, tests, benchmarks).
    pub gateway: Arc<Gateway>,
    /// The trust lists of this and the partner regions (why a partner is unreachable:
    /// [`federation::Federation::last_failure`]).
    pub federation: Arc<federation::Federation>,
    /// What the runtime serves.
    pub parts: ServiceParts,
}

/// Verifies scanned QR text (or a VC-JWT or SD-JWT) as the public scan page `/v/{qr}` does: no
/// caller, no rate limit, no audit; the same answer a partner gets.
#[tracing::instrument(skip_all)]
pub async fn verify_qr(gateway: &Gateway, text: &str) -> VerificationResult {
    gateway.verify_text(text).await
}

/// Builds the gateway on a migrated database and starts the background refresh (trust
/// lists are fetched at once in the background; see [`Gateway::start`]). `validator` checks partner tokens on the HTTP API (gRPC calls
/// are checked by the server's auth layer).
pub async fn build(
    config: &VerifyConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    validator: Arc<TokenValidator>,
) -> anyhow::Result<Built> {
    let cache = Cache::connect(
        &config.cache_url,
        CacheOptions {
            key_prefix: config.cache_prefix.clone(),
            ..CacheOptions::default()
        },
    )
    .await
    .context("REDIS_URL")?;
    let own_anchor = config
        .anchor_public_key
        .map(|k| VerifyingKey::from_bytes(&k))
        .transpose()
        .context("CREDMESH_ANCHOR_PUBLIC_KEY is not an Ed25519 public key")?;
    let tls = partner_tls(config)?;
    let mut partners = Vec::new();
    for p in &config.partners {
        let anchor = VerifyingKey::from_bytes(&p.anchor).with_context(|| {
            format!(
                "the anchor key of partner {} is not an Ed25519 key",
                p.region
            )
        })?;
        let source = if p.endpoint == "identity" {
            federation::PartnerSource::Imported
        } else {
            federation::PartnerSource::Url(p.endpoint.clone())
        };
        partners.push((p.region.clone(), source, anchor));
    }
    let federation = Arc::new(federation::Federation::new(
        config.region.code(),
        federation::tls_channel(&config.identity_url, &tls)?,
        own_anchor,
        partners,
        fetch::Client::new(tls),
        cache.clone(),
        clock.clone(),
    ));
    let settings = service::Settings {
        freshness: domain::answer::Freshness {
            max_staleness: config.max_staleness,
            fresh: config.fresh,
        },
        result_ttl: config.result_ttl,
        trust_refresh: config.trust_refresh,
        status_refresh: config.status_refresh,
        own_status_refresh: config.own_status_refresh,
    };
    let gateway = Gateway::new(
        federation.clone(),
        cache.clone(),
        clock,
        settings,
        store::for_db(&db),
    );
    gateway.start();
    let api = api::grpc::VerifyApi::new(gateway.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "verify",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                VerifyServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(gateway.clone(), validator),
        policy: access_policy(),
        readiness: vec![Arc::new(credmesh_runtime::server::DbReady(db))],
    };
    Ok(Built {
        gateway,
        federation,
        parts,
    })
}
