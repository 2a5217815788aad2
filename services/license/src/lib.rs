//! The electronic business license service (`credmesh.license.v1.LicenseService`).
//!
//! Keeps the enterprise register keyed by unified social credit code; establishes,
//! amends, deregisters (注销) and revokes (吊销) e-licenses. Every license version is an
//! Ed25519-signed credential (native envelope, QR text, W3C VC-JWT) with a GB/T 36904
//! identifier and an entry in the service's W3C Bitstring Status Lists, which it
//! publishes signed over gRPC and HTTP. Its signing key is registered with the identity
//! service at start; incoming tokens are validated against identity's keys.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`domain`]: license validation, registration authorities, ID numbers, credentials.
//! - [`store`]: the repository trait and its SQLite and PostgreSQL implementations,
//!   including how exactly one version stays current.
//! - [`keys`]: the signing key, its registration with identity, the readiness gate.
//! - [`service`]: the operations and the status-list publisher.
//! - [`api`]: the gRPC and HTTP adapters.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod service;
pub mod store;

use std::sync::Arc;

use credmesh_auth::{Access, AccessPolicy};
use credmesh_proto::license::v1::license_service_server::LicenseServiceServer;
use credmesh_runtime::{Clock, ServerConfig, ServiceParts};
use credmesh_store::{Db, ServiceMigrations};

pub use config::LicenseConfig;
pub use keys::{GrpcRegistrar, KeyRegistrar, KeyRegistration, KeyState};
pub use service::License;

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.license.v1.LicenseService";
/// Establish, amend, deregister and revoke licenses.
pub const SCOPE_ISSUE: &str = "license.issue";
/// Read the register and licenses.
pub const SCOPE_READ: &str = "license.read";

/// The license service's migrations for both backends.
pub fn migrations() -> ServiceMigrations {
    ServiceMigrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Which RPC needs what. Issuing implies reading what one issues.
pub fn access_policy() -> AccessPolicy {
    let m = |name: &str| format!("/{GRPC_NAME}/{name}");
    let read = Access::AnyScope(&[SCOPE_READ, SCOPE_ISSUE]);
    AccessPolicy::new()
        .rule(&m("EstablishEnterprise"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("AmendLicense"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("DeregisterEnterprise"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("RevokeLicense"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("GetLicense"), read.clone())
        .rule(&m("GetLicenseVersion"), read.clone())
        .rule(&m("ListLicenseVersions"), read.clone())
        .rule(&m("GetEnterpriseHistory"), read.clone())
        .rule(&m("ListEnterprises"), read)
        .rule(&m("GetStatusList"), Access::Public)
}

/// A built license service's pieces.
#[derive(Debug)]
pub struct Built {
    /// The service, for in-process callers (`credmesh dev` seeding, tests, benchmarks).
    pub license: Arc<License>,
    /// What the runtime serves.
    pub parts: ServiceParts,
    /// The signing key's registration with identity (readiness waits for it).
    pub registration: Arc<KeyRegistration>,
}

/// Builds the license service on a migrated database and starts registering its key
/// through `registrar`.
pub async fn build(
    config: &LicenseConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    registrar: Arc<dyn KeyRegistrar>,
) -> anyhow::Result<Built> {
    let key = keys::load_signing_key(&config.signing_key_file, config.region)?;
    let registration = KeyRegistration::new(key.kid());
    keys::spawn_registration(registrar, &key, config.region, registration.clone());
    let authorities = Arc::new(config.authorities.clone());
    let signer = service::Signer::new(
        config.region,
        key,
        config.type_code.clone(),
        authorities.clone(),
        &config.public_url,
    );
    let license = Arc::new(License::new(
        config.region,
        store::for_db(&db),
        clock,
        signer,
        authorities,
        registration.clone(),
        config.public_url.clone(),
        config.status_refresh_secs,
    ));
    let api = api::grpc::LicenseApi::new(license.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "license",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                LicenseServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(license.clone()),
        policy: access_policy(),
        readiness: vec![
            Arc::new(credmesh_runtime::server::DbReady(db)),
            Arc::new(keys::KeyReady(registration.clone())),
        ],
    };
    Ok(Built {
        license,
        parts,
        registration,
    })
}
