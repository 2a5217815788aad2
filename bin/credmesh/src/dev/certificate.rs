//! The certificate service inside `credmesh dev`: its keys under `data/keys/`, its
//! identity client (scopes `identity.keys`, `license.read` and `inspection.credit`)
//! registered in-process, credit grades asked of the inspection service,
//! its key registered and licenses read and verified over the loopback gRPC address, as
//! in production; the built-in types are seeded, and the demo enterprise gets a food
//! business permit once.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_certificate::{Certificates, service::Caller};
use credmesh_identity::Identity;
use credmesh_proto::{credential::v1::Envelope, prost::Message as _};
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions, idempotency::Outcome};

/// Builds the certificate service for `credmesh dev`.
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
) -> anyhow::Result<credmesh_certificate::Built> {
    let mut env = super::IssuingService {
        name: "certificate",
        display_name: "Certificate service",
        scopes: &["identity.keys", "license.read", "inspection.credit"],
    }
    .prepare(data, keys, region, identity, grpc)
    .await?;
    env.extend([
        ("CREDMESH_LICENSE_URL".into(), format!("http://{grpc}")),
        // Credit grades for the commitment path come from the inspection service.
        ("CREDMESH_INSPECTION_URL".into(), format!("http://{grpc}")),
        ("CREDMESH_PUBLIC_URL".into(), format!("http://{http}")),
    ]);
    let config = credmesh_certificate::CertificateConfig::from_env(&env)?;
    let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_certificate::migrations()).await?;
    let identity_channel = credmesh_runtime::client::service_channel(&config.identity_url)?;
    let license_channel = credmesh_runtime::client::service_channel(&config.license_url)?;
    let registrar = config
        .client()
        .registrar(identity_channel.clone(), clock.clone())?;
    let credit =
        credmesh_certificate::credit_grades(&config, identity_channel.clone(), clock.clone())?;
    let license = credmesh_certificate::grpc_license_check(
        &config,
        identity_channel,
        license_channel,
        clock.clone(),
    )?;
    credmesh_certificate::build(&config, db, clock, server, registrar, license, credit).await
}

/// Issues the demo enterprise's food business permit (once: the idempotency key makes a
/// restart answer the same permit) and returns its serial and QR text.
pub async fn seed(
    certificates: &Certificates,
    registration: &credmesh_certificate::KeyRegistration,
    uscc: &str,
) -> anyhow::Result<(String, String)> {
    if !registration.wait(Duration::from_secs(30)).await {
        anyhow::bail!(
            "the certificate signing key was not registered with identity: {:?}",
            registration.state()
        );
    }
    let department = credmesh_certificate::domain::types::SH_MUNICIPAL_MARKET;
    let principal = Principal {
        client_id: "credmesh-dev".into(),
        kind: PrincipalKind::Department,
        scopes: vec![credmesh_certificate::SCOPE_ISSUE.into()],
        organization: Some(department.into()),
        region: certificates.region().code().into(),
        token_id: String::new(),
        expires_at: 0,
        enforcement_certificate: None,
    };
    let fields: Vec<(String, String)> = [
        ("operator_name", "上海静安面馆有限公司"),
        ("legal_representative", "王小明"),
        ("address", "上海市静安区南京西路1266号"),
        ("main_business", "餐饮服务经营者"),
        ("business_items", "热食类食品制售；冷食类食品制售"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let key = credmesh_store::idempotency::IdempotencyKey::new(
        "certificate.IssueCertificate",
        "credmesh-dev",
        "dev-demo-food-permit",
        uscc.as_bytes(),
    )?;
    let serial = |bytes: &[u8]| {
        credmesh_proto::certificate::v1::IssueCertificateResponse::decode(bytes)
            .ok()
            .and_then(|r| r.certificate)
            .map(|c| c.serial)
            .unwrap_or_default()
    };
    let outcome = certificates
        .issue(
            Caller {
                principal: &principal,
                trace_id: "",
            },
            uscc,
            credmesh_certificate::domain::types::FOOD_BUSINESS,
            &fields,
            "",
            0,
            key.as_ref(),
            &|c| {
                credmesh_certificate::api::grpc::certificate_to_proto(certificates, c, true)
                    .map(|p| {
                        credmesh_proto::certificate::v1::IssueCertificateResponse {
                            certificate: Some(p),
                        }
                        .encode_to_vec()
                    })
                    .unwrap_or_default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let serial = match outcome {
        Outcome::Done(c) => c.serial,
        Outcome::Replayed(bytes) => serial(&bytes),
    };
    let cert = certificates
        .store()
        .certificate(&serial)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("the demo permit {serial} is missing"))?;
    let envelope = Envelope::decode(cert.version.envelope.as_slice())?;
    Ok((serial, credmesh_credential::qr::to_qr(&envelope)))
}
