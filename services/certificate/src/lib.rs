//! The e-certificate service (`credmesh.certificate.v1.CertificateService`).
//!
//! Competent departments issue permits (电子证照) to enterprises whose business license
//! is active — checked by verifying the license credential fetched from the license
//! service, as any relying party would. Operators register certificate types with a
//! field schema; three real ones are seeded, including an industry comprehensive
//! permit ("one industry, one permit", 一业一证). Enterprises may apply on commitment
//! (告知承诺) when their credit grade allows; such certificates await a follow-up check
//! that can revoke them. Holders dispute wrong data; issuing departments accept and
//! resolve within working-day deadlines, a correction issuing a new version that
//! supersedes the old one atomically. Every version is an Ed25519-signed credential
//! with a GB/T 36904 identifier and entries in the service's status lists.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`domain`]: types and field schemas, the working-day calendar, credentials,
//!   dispute rules.
//! - [`license`]: the shared license check, its refusals as this service's errors.
//! - [`credit`]: credit grades for the commitment path.
//! - [`store`]: the repository trait and its SQLite and PostgreSQL implementations.
//! - [`keys`]: the signing key and its registration with identity.
//! - [`service`]: the operations and status lists.
//! - [`api`]: the gRPC and HTTP adapters.
//! - [`error`]: the error enum and its one mapping to gRPC statuses.

pub mod api;
pub mod config;
pub mod credit;
pub mod domain;
pub mod error;
pub mod keys;
pub mod license;
pub mod service;
pub mod store;

use std::sync::Arc;

use credmesh_auth::{Access, AccessPolicy};
use credmesh_proto::certificate::v1::certificate_service_server::CertificateServiceServer;
use credmesh_runtime::{Clock, ServerConfig, ServiceParts};
use credmesh_store::{Db, ServiceMigrations};
use tonic::transport::Channel;

pub use config::CertificateConfig;
pub use credit::{ConfigCreditGrades, CreditGrade, CreditGrades};
pub use keys::{GrpcRegistrar, KeyRegistrar, KeyRegistration, KeyState};
pub use license::{GrpcLicenseCheck, LicenseCheck};
pub use service::Certificates;

/// The full gRPC service name.
pub const GRPC_NAME: &str = "credmesh.certificate.v1.CertificateService";
/// Register certificate types.
pub const SCOPE_ADMIN: &str = "certificate.admin";
/// Issue and change certificates; answer disputes.
pub const SCOPE_ISSUE: &str = "certificate.issue";
/// Read certificates, types and disputes.
pub const SCOPE_READ: &str = "certificate.read";
/// Apply on commitment.
pub const SCOPE_COMMIT: &str = "certificate.commit";
/// File disputes.
pub const SCOPE_DISPUTE: &str = "certificate.dispute";

/// The certificate service's migrations for both backends.
pub fn migrations() -> ServiceMigrations {
    ServiceMigrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Which RPC needs what. Who may act on which certificate (issuing department, holder)
/// is decided by the service on the principal's organisation.
pub fn access_policy() -> AccessPolicy {
    let m = |name: &str| format!("/{GRPC_NAME}/{name}");
    let read = Access::AnyScope(&[SCOPE_READ, SCOPE_ISSUE, SCOPE_DISPUTE]);
    AccessPolicy::new()
        .rule(&m("RegisterCertificateType"), Access::Scope(SCOPE_ADMIN))
        .rule(&m("ListCertificateTypes"), read.clone())
        .rule(&m("IssueCertificate"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("IssueOnCommitment"), Access::Scope(SCOPE_COMMIT))
        .rule(&m("RecordFollowUp"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("SuspendCertificate"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("ReinstateCertificate"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("RevokeCertificate"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("RenewCertificate"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("GetCertificate"), read.clone())
        .rule(&m("ListCertificates"), read.clone())
        .rule(&m("FileDispute"), Access::Scope(SCOPE_DISPUTE))
        .rule(&m("AcceptDispute"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("ResolveDispute"), Access::Scope(SCOPE_ISSUE))
        .rule(&m("ListDisputes"), read)
        .rule(&m("GetStatusList"), Access::Public)
}

/// A built certificate service's pieces.
#[derive(Debug)]
pub struct Built {
    /// The service, for in-process callers (`credmesh dev` seeding, tests).
    pub certificates: Arc<Certificates>,
    /// What the runtime serves.
    pub parts: ServiceParts,
    /// The signing key's registration with identity.
    pub registration: Arc<KeyRegistration>,
}

/// Credit grades for the commitment path: the inspection service over `inspection`
/// (with `inspection.credit` tokens from identity) when `CREDMESH_INSPECTION_URL` is set,
/// otherwise `CREDMESH_CREDIT_GRADE_SOURCE`.
pub fn credit_grades(
    config: &CertificateConfig,
    identity: Channel,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn credit::CreditGrades>> {
    let Some(url) = &config.inspection_url else {
        return Ok(Arc::new(config.credit_grades.clone()));
    };
    let tokens = config
        .client()
        .tokens(identity, "inspection.credit", clock)?;
    Ok(Arc::new(credit::InspectionCreditGrades::new(
        credmesh_runtime::client::service_channel(url)?,
        tokens,
    )))
}

/// The license check for production: the license service over `license` with
/// `license.read` tokens from identity, and identity's trust list over `identity`.
pub fn grpc_license_check(
    config: &CertificateConfig,
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

/// Builds the service on a migrated database, seeds the built-in types (unless
/// configured off) and starts registering its key through `registrar`.
pub async fn build(
    config: &CertificateConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    server: &ServerConfig,
    registrar: Arc<dyn KeyRegistrar>,
    license: Arc<dyn LicenseCheck>,
    credit: Arc<dyn CreditGrades>,
) -> anyhow::Result<Built> {
    let key = keys::load_signing_key(&config.signing_key_file, config.region)?;
    let registration = KeyRegistration::new(key.kid());
    keys::spawn_registration(registrar, &key, config.region, registration.clone());
    let certificates = Arc::new(Certificates::new(
        store::for_db(&db),
        service::Parts {
            region: config.region,
            signer: service::Signer::new(config.region, key, &config.public_url),
            clock,
            registration: registration.clone(),
            license,
            credit,
            calendar: config.calendar.clone(),
            public_url: config.public_url.clone(),
            status_refresh_secs: config.status_refresh_secs,
        },
    ));
    if config.seed_types {
        certificates
            .seed_types()
            .await
            .map_err(|e| anyhow::anyhow!("seeding certificate types: {e}"))?;
    }
    let api = api::grpc::CertificateApi::new(certificates.clone());
    let max = server.max_message_bytes;
    let parts = ServiceParts {
        name: "certificate",
        grpc_names: vec![GRPC_NAME],
        mount: Box::new(move |routes| {
            routes.add_service(
                CertificateServiceServer::new(api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            );
        }),
        http: api::http::routes(certificates.clone()),
        policy: access_policy(),
        readiness: vec![
            Arc::new(credmesh_runtime::server::DbReady(db)),
            Arc::new(keys::KeyReady(registration.clone())),
        ],
    };
    Ok(Built {
        certificates,
        parts,
        registration,
    })
}
