//! The enterprise-code service (`credmesh.entcode.v1.EnterpriseCodeService`).
//!
//! Every enterprise in the register has a stable enterprise code (经营主体身份码): a
//! credential of kind ENTERPRISE_CODE, id `urn:credmesh:entcode:<USCC>`, signed by this
//! service's own key (issuer `<REGION>/entcode`, registered with identity at start like
//! the license service's). Nobody applies for it: the service asks the license service
//! (`GetLicense`, over gRPC as a service client) whenever a code is needed, and an
//! enterprise with a license in force has one. It is deterministic (see
//! [`domain::code`]), so it is the same across amendments without being stored, and it
//! is withdrawn — refused, and shown as not valid on the scan page — as soon as the
//! license service holds the enterprise as deregistered or revoked. A valid code's scan
//! page shows the current license and, under it, the permits linked to the enterprise
//! (`ListCertificates` on the certificate service; a silent one is said so on the page).
//!
//! An enterprise asks for a presentation of a scenario (`basic`, `bank-loan`,
//! `bidding`, `inspection`, or one operators defined): a short-lived, single-use
//! credential disclosing only that scenario's fields (license fields, and the
//! enterprise's valid permits and credit grade from the certificate and inspection
//! services, when configured: never made up when they are not). Scenarios are the one
//! thing this service stores (its own database, SQLite or PostgreSQL): every change is
//! a new, immutable version with who made it, when and why, and the built-in four are
//! seeded as version 1 at start. A presentation names the scenario and version it was
//! made under and carries the disclosed claims themselves, so a later version or the
//! scenario's retirement never changes what an earlier presentation verifies as. Verification checks the signature, the window, the live
//! license status and finally the nonce, recorded with `SET NX` in the shared cache
//! (Redis in production) so a second use is refused on every replica; when the cache
//! cannot answer, verification is refused with UNAVAILABLE rather than guessed.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`domain`]: scenarios and the credentials' shapes.
//! - [`foreign`]: other issuers' credentials on the scan page, through the verify gateway.
//! - [`keys`]: the signing key, its registration with identity, the readiness gate.
//! - [`license`]: the license service as this service sees it.
//! - [`permits`]: the enterprise's permits (certificate service) and credit grade
//!   (inspection service), both optional.
//! - [`service`]: the operations.
//! - [`store`]: scenarios and their versions, SQLite and PostgreSQL.
//! - [`trust`]: earlier keys of this service, from identity's trust list.
//! - [`api`]: the gRPC adapter and the HTTP scan page `/v/<QR text>`.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod foreign;
pub mod keys;
pub mod license;
pub mod permits;
pub mod service;
pub mod store;
pub mod trust;

use std::sync::Arc;

use anyhow::Context as _;
use credmesh_auth::{Access, AccessPolicy};
use credmesh_cache::{Cache, CacheOptions};
use credmesh_proto::entcode::v1::enterprise_code_service_server::EnterpriseCodeServiceServer;
use credmesh_runtime::{Clock, Readiness, ServerConfig, ServiceParts, client::service_channel};
use credmesh_store::{Db, ServiceMigrations};
use futures::future::BoxFuture;
use tonic::transport::Channel;

pub use config::EntcodeConfig;
pub use keys::{GrpcRegistrar, KeyRegistrar, KeyRegistration, KeyState};
pub use license::{GrpcLicense, LicenseSource, LicenseView};
pub use service::Entcode;

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.entcode.v1.EnterpriseCodeService";
/// Held by enterprises: read one's own code, make presentations.
pub const SCOPE_PRESENT: &str = "entcode.present";
/// Read any enterprise's code (services, operators, departments, inspectors).
pub const SCOPE_READ: &str = "entcode.read";
/// Verify presentations: the verify gateway's scope, held by relying parties.
pub const SCOPE_VERIFY: &str = "verify";
/// Create, change and retire scenarios (operators).
pub const SCOPE_SCENARIOS_WRITE: &str = "entcode.scenarios.write";

/// The enterprise-code service's migrations for both backends.
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
        .rule(
            &m("GetEnterpriseCode"),
            Access::AnyScope(&[SCOPE_PRESENT, SCOPE_READ]),
        )
        .rule(&m("ListScenarios"), Access::Public)
        .rule(&m("GetScenario"), Access::Public)
        // Who changed what is an audit trail: for the platform's side, not the public.
        .rule(
            &m("ListScenarioHistory"),
            Access::AnyScope(&[SCOPE_READ, SCOPE_SCENARIOS_WRITE]),
        )
        .rule(&m("PutScenario"), Access::Scope(SCOPE_SCENARIOS_WRITE))
        .rule(&m("RetireScenario"), Access::Scope(SCOPE_SCENARIOS_WRITE))
        .rule(&m("CreatePresentation"), Access::Scope(SCOPE_PRESENT))
        .rule(&m("VerifyPresentation"), Access::Scope(SCOPE_VERIFY))
}

/// A built enterprise-code service's pieces.
#[derive(Debug)]
pub struct Built {
    /// The service, for in-process callers.
    pub entcode: Arc<Entcode>,
    /// What the runtime serves.
    pub parts: ServiceParts,
    /// The signing key's registration with identity.
    pub registration: Arc<KeyRegistration>,
}

/// The license service over `license`, with `license.read` tokens from identity over
/// `identity`, as the configured client.
pub fn grpc_license(
    config: &EntcodeConfig,
    identity: Channel,
    license: Channel,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn LicenseSource>> {
    let tokens = config.client().tokens(identity, "license.read", clock)?;
    Ok(Arc::new(GrpcLicense::new(license, tokens)))
}

/// Builds the service on a migrated database, seeds the built-in scenarios (version 1,
/// where absent) and starts registering its key through `registrar`.
pub async fn build(
    config: &EntcodeConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    registrar: Arc<dyn KeyRegistrar>,
    license: Arc<dyn LicenseSource>,
) -> anyhow::Result<Built> {
    let key = keys::load_signing_key(&config.signing_key_file, config.region)?;
    let registration = KeyRegistration::new(key.kid());
    keys::spawn_registration(registrar, &key, config.region, registration.clone());
    let verify_clock = clock.clone();
    let sources_clock = clock.clone();
    let cache = Cache::connect(
        &config.cache_url,
        CacheOptions {
            key_prefix: config.cache_prefix.clone(),
            ..CacheOptions::default()
        },
    )
    .await
    .context("REDIS_URL")?;
    let entcode = Arc::new(
        Entcode::new(
            config.region,
            key,
            registration.clone(),
            license,
            store::for_db(&db),
            cache.clone(),
            clock,
            config.presentation_ttl_secs,
        )
        .with_earlier_keys(Arc::new(trust::TrustListKeys::new(service_channel(
            &config.identity_url,
        )?))),
    );
    let entcode = match &config.verify_url {
        None => entcode,
        Some(url) => {
            let tokens = config.client().tokens(
                service_channel(&config.identity_url)?,
                "verify",
                verify_clock,
            )?;
            let verifier = foreign::GatewayVerifier::new(service_channel(url)?, tokens);
            Arc::new(
                Arc::into_inner(entcode)
                    .context("the service is not shared yet")?
                    .with_foreign(Arc::new(verifier)),
            )
        }
    };
    let entcode = with_sources(config, entcode, sources_clock)?;
    let seeded = entcode
        .seed_scenarios()
        .await
        .map_err(|e| anyhow::anyhow!("seeding the built-in scenarios: {e}"))?;
    if seeded > 0 {
        tracing::info!(seeded, "stored the built-in scenarios as version 1");
    }
    let api = api::grpc::EntcodeApi::new(entcode.clone(), config.public_url.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "entcode",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                EnterpriseCodeServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(entcode.clone()),
        policy: access_policy(),
        readiness: vec![
            Arc::new(keys::KeyReady(registration.clone())),
            Arc::new(CacheReady(cache)),
            // Scenarios must be readable, or no presentation can be made.
            Arc::new(credmesh_runtime::server::DbReady(db)),
        ],
    };
    Ok(Built {
        entcode,
        parts,
        registration,
    })
}

/// Adds the optional certificate and inspection services to `entcode`, each with its own
/// scoped tokens, as configured; an unset one is said once in the log.
fn with_sources(
    config: &EntcodeConfig,
    entcode: Arc<Entcode>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Entcode>> {
    if config.certificate_url.is_none() {
        tracing::info!(
            "CREDMESH_CERTIFICATE_URL is unset: the scan page shows no permits and scenarios disclosing 'permits' are refused"
        );
    }
    if config.inspection_url.is_none() {
        tracing::info!(
            "CREDMESH_INSPECTION_URL is unset: scenarios disclosing 'credit_grade' are refused"
        );
    }
    if config.certificate_url.is_none() && config.inspection_url.is_none() {
        return Ok(entcode);
    }
    let mut service = Arc::into_inner(entcode).context("the service is not shared yet")?;
    let tokens = |scope: &'static str| {
        config
            .client()
            .tokens(service_channel(&config.identity_url)?, scope, clock.clone())
    };
    if let Some(url) = &config.certificate_url {
        service = service.with_permits(Arc::new(permits::GrpcCertificates::new(
            service_channel(url)?,
            tokens("certificate.read")?,
        )));
    }
    if let Some(url) = &config.inspection_url {
        service = service.with_grades(Arc::new(permits::InspectionGrades::new(
            service_channel(url)?,
            tokens("inspection.credit")?,
        )));
    }
    Ok(Arc::new(service))
}

/// Readiness: the used-nonce record must answer, or no presentation can be verified.
#[derive(Debug)]
struct CacheReady(Cache);

impl Readiness for CacheReady {
    fn name(&self) -> &str {
        "cache"
    }
    fn check(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { self.0.ping().await.map_err(anyhow::Error::from) })
    }
}
