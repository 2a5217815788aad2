//! The inspection code service (`credmesh.inspection.v1.InspectionService`): "no code,
//! no inspection" (先赋码 → 凭码检查 → 扫码评价).
//!
//! A department plans an on-site inspection; the service verifies the enterprise's
//! license with the license service (fetching the credential and verifying it like any
//! verifier), applies the inspection rules 1–5 of DOMAIN.md under a lock on the
//! enterprise, and answers with a decision: a signed inspection code (native, QR,
//! VC-JWT; kind `INSPECTION_CODE`, subject the inspection id; listed in the service's
//! status lists), a conflict naming other departments' inspections to join, or a
//! refusal naming the rule, a sentence and its facts. The enterprise scans the code on
//! site; only a named inspector records the result of a shown code inside its window;
//! the enterprise evaluates once within the evaluation period. Policy data (credit
//! grades, the "two no" lists, non-site checks) is imported through the API with
//! history; statistics aggregate per department and per enterprise.
//!
//! # Layout
//! - [`config`]: settings and the configurable rules.
//! - [`domain`]: the rules as pure functions, request validation, the code credential.
//! - [`store`]: the repository trait with its SQLite and PostgreSQL implementations,
//!   and how one enterprise's decisions are serialised.
//! - [`license`]: the license check over gRPC.
//! - [`keys`]: the signing key and its registration with identity.
//! - [`service`]: the operations and the status-list publisher.
//! - [`api`]: the gRPC and HTTP adapters.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod inspectors;
pub mod keys;
pub mod license;
pub mod service;
pub mod store;

use std::sync::Arc;

use credmesh_auth::{Access, AccessPolicy};
use credmesh_proto::inspection::v1::inspection_service_server::InspectionServiceServer;
use credmesh_runtime::{Clock, ServerConfig, ServiceParts};
use credmesh_store::{Db, ServiceMigrations};
use tonic::transport::Channel;

pub use config::InspectionConfig;
pub use keys::{GrpcRegistrar, KeyRegistrar, KeyRegistration, KeyState};
pub use license::{GrpcLicenseCheck, LicenseCheck};
pub use service::Inspection;

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.inspection.v1.InspectionService";
/// Plan and join inspections (departments, operators).
pub const SCOPE_PLAN: &str = "inspection.plan";
/// Read inspections and statistics.
pub const SCOPE_READ: &str = "inspection.read";
/// Record results (inspectors).
pub const SCOPE_RECORD: &str = "inspection.record";
/// Scan codes and evaluate inspections (enterprises).
pub const SCOPE_RESPOND: &str = "inspection.respond";
/// Import policy data and read its history.
pub const SCOPE_POLICY: &str = "inspection.policy";
/// Read credit grades (services such as the certificate service, operators, departments).
pub const SCOPE_CREDIT: &str = "inspection.credit";

/// The inspection service's migrations for both backends.
pub fn migrations() -> ServiceMigrations {
    ServiceMigrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Which RPC needs what. Row-level checks (an enterprise sees its own, a department
/// plans for itself, only named inspectors record) are the service's.
pub fn access_policy() -> AccessPolicy {
    let m = |name: &str| format!("/{GRPC_NAME}/{name}");
    AccessPolicy::new()
        .rule(&m("PlanInspection"), Access::Scope(SCOPE_PLAN))
        .rule(&m("JoinInspection"), Access::Scope(SCOPE_PLAN))
        .rule(&m("GetInspection"), Access::Scope(SCOPE_READ))
        .rule(&m("ListInspections"), Access::Scope(SCOPE_READ))
        .rule(&m("ScanCode"), Access::Scope(SCOPE_RESPOND))
        .rule(&m("RecordResult"), Access::Scope(SCOPE_RECORD))
        .rule(&m("EvaluateInspection"), Access::Scope(SCOPE_RESPOND))
        .rule(&m("GetStatistics"), Access::Scope(SCOPE_READ))
        .rule(&m("ImportPolicyData"), Access::Scope(SCOPE_POLICY))
        .rule(&m("ListPolicyHistory"), Access::Scope(SCOPE_POLICY))
        .rule(&m("GetCreditGrade"), Access::Scope(SCOPE_CREDIT))
        .rule(&m("GetStatusList"), Access::Public)
}

/// A built inspection service's pieces.
#[derive(Debug)]
pub struct Built {
    /// The service, for in-process callers.
    pub inspection: Arc<Inspection>,
    /// What the runtime serves.
    pub parts: ServiceParts,
    /// The signing key's registration with identity.
    pub registration: Arc<KeyRegistration>,
}

/// The license check: the license service over `license` with `license.read` tokens
/// from identity over `identity`, verified against identity's trust list.
pub fn grpc_license(
    config: &InspectionConfig,
    identity: Channel,
    license: Channel,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn LicenseCheck>> {
    let tokens = config
        .client()
        .tokens(identity.clone(), "license.read", clock.clone())?;
    Ok(Arc::new(GrpcLicenseCheck::new(
        license, identity, tokens, clock,
    )))
}

/// Identity's client registry, asked with `identity.clients.read` tokens, so every
/// inspector a plan names is a registered inspector holding the certificate given.
pub fn inspector_registry(
    config: &InspectionConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn inspectors::InspectorRegistry>> {
    let identity = credmesh_runtime::client::service_channel(&config.identity_url)?;
    let tokens = config
        .client()
        .tokens(identity.clone(), "identity.clients.read", clock)?;
    Ok(Arc::new(inspectors::GrpcInspectorRegistry::new(
        identity, tokens,
    )))
}

/// Builds the inspection service on a migrated database and starts registering its key.
pub async fn build(
    config: &InspectionConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    registrar: Arc<dyn KeyRegistrar>,
    licenses: Arc<dyn LicenseCheck>,
) -> anyhow::Result<Built> {
    let key = keys::load_signing_key(&config.signing_key_file, config.region)?;
    let clock_for_registry = clock.clone();
    let registration = KeyRegistration::new(key.kid());
    keys::spawn_registration(registrar, &key, config.region, registration.clone());
    let signer = service::Signer::new(config.region, key, &config.public_url);
    let mut inspection = Inspection::new(
        config.region,
        store::for_db(&db),
        clock,
        signer,
        config.policy.clone(),
        licenses,
        registration.clone(),
        config.public_url.clone(),
        config.status_refresh_secs,
    )
    .with_earlier_keys(credmesh_runtime::client::service_channel(
        &config.identity_url,
    )?);
    // Named inspectors are checked with the service's identity client; without one (the
    // planning benchmark) there is nobody to ask, and nothing can be registered either.
    if config.client_key_file.is_some() {
        inspection =
            inspection.with_inspector_registry(inspector_registry(config, clock_for_registry)?);
    } else {
        tracing::warn!("no CREDMESH_CLIENT_KEY_FILE: inspectors named on plans are not checked");
    }
    let inspection = Arc::new(inspection);
    let api = api::grpc::InspectionApi::new(inspection.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "inspection",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                InspectionServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(inspection.clone()),
        policy: access_policy(),
        readiness: vec![
            Arc::new(credmesh_runtime::server::DbReady(db)),
            Arc::new(keys::KeyReady(registration.clone())),
        ],
    };
    Ok(Built {
        inspection,
        parts,
        registration,
    })
}
