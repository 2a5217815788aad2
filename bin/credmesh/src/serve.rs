//! `credmesh serve <service>` and `credmesh migrate <service>`: production roles,
//! configured by the environment only.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use credmesh_runtime::{Clock, Server, ServerConfig, SystemClock};
use credmesh_store::{Db, DbOptions};
use credmesh_telemetry::metrics::Metrics;
use tokio::net::TcpListener;

use crate::cli::Service;

fn env_or<'a>(env: &'a HashMap<String, String>, key: &str, default: &'a str) -> &'a str {
    env.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

/// Runs one service until SIGTERM.
pub async fn run(service: Service, env: HashMap<String, String>) -> anyhow::Result<()> {
    let name = match service {
        Service::Identity => "identity",
        Service::License => "license",
        Service::Entcode => "entcode",
        Service::Inspection => "inspection",
        Service::Verify => "verify",
        Service::Certificate => "certificate",
    };
    let _telemetry = credmesh_telemetry::init(name, &env)?;
    let server_config = ServerConfig::from_env(&env)?;
    // Before any channel is made: `https://` service URLs use these roots and certificate.
    credmesh_runtime::tls::TlsFiles::from_env(&env)?
        .client()?
        .install()?;
    if let Some(tls) = &server_config.tls {
        tracing::info!(mutual = tls.is_mutual(), "serving TLS");
    }
    let grpc: std::net::SocketAddr = env_or(&env, "CREDMESH_GRPC_ADDR", "127.0.0.1:50051")
        .parse()
        .context("CREDMESH_GRPC_ADDR must be host:port")?;
    let http: std::net::SocketAddr = env_or(&env, "CREDMESH_HTTP_ADDR", "127.0.0.1:8080")
        .parse()
        .context("CREDMESH_HTTP_ADDR must be host:port")?;
    let migrate = env_or(&env, "CREDMESH_MIGRATE", "true") != "false";
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Metrics::new();
    let (validator, parts) = match service {
        Service::Identity => {
            let config = credmesh_identity::IdentityConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_identity::migrations()).await?;
            }
            let built = credmesh_identity::build(&config, db, clock, &server_config).await?;
            (built.validator, built.parts)
        }
        Service::License => {
            let config = credmesh_license::LicenseConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_license::migrations()).await?;
            }
            let identity = credmesh_runtime::client::service_channel(&config.identity_url)?;
            let registrar = config.client().registrar(identity.clone(), clock.clone())?;
            let validator = config.client().validator(identity);
            let built =
                credmesh_license::build(&config, db, clock, &server_config, registrar).await?;
            built.license.export_metrics(&metrics);
            (validator, built.parts)
        }
        Service::Entcode => {
            // Its database holds scenarios only: codes are deterministic and used
            // nonces live in the cache.
            let config = credmesh_entcode::EntcodeConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_entcode::migrations()).await?;
            }
            let identity = credmesh_runtime::client::service_channel(&config.identity_url)?;
            let license = credmesh_runtime::client::service_channel(&config.license_url)?;
            let registrar = config.client().registrar(identity.clone(), clock.clone())?;
            let licenses =
                credmesh_entcode::grpc_license(&config, identity.clone(), license, clock.clone())?;
            let validator = config.client().validator(identity);
            let built =
                credmesh_entcode::build(&config, db, clock, &server_config, registrar, licenses)
                    .await?;
            built.entcode.export_metrics(&metrics);
            (validator, built.parts)
        }
        Service::Certificate => {
            let config = credmesh_certificate::CertificateConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_certificate::migrations()).await?;
            }
            let identity = credmesh_runtime::client::service_channel(&config.identity_url)?;
            let license = credmesh_runtime::client::service_channel(&config.license_url)?;
            let registrar = config.client().registrar(identity.clone(), clock.clone())?;
            let licenses = credmesh_certificate::grpc_license_check(
                &config,
                identity.clone(),
                license,
                clock.clone(),
            )?;
            let credit =
                credmesh_certificate::credit_grades(&config, identity.clone(), clock.clone())?;
            let validator = config.client().validator(identity);
            let built = credmesh_certificate::build(
                &config,
                db,
                clock,
                &server_config,
                registrar,
                licenses,
                credit,
            )
            .await?;
            built.certificates.export_metrics(&metrics);
            (validator, built.parts)
        }
        Service::Inspection => {
            let config = credmesh_inspection::InspectionConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_inspection::migrations()).await?;
            }
            let identity = credmesh_runtime::client::service_channel(&config.identity_url)?;
            let license = credmesh_runtime::client::service_channel(&config.license_url)?;
            let registrar = config.client().registrar(identity.clone(), clock.clone())?;
            let licenses = credmesh_inspection::grpc_license(
                &config,
                identity.clone(),
                license,
                clock.clone(),
            )?;
            let validator = config.client().validator(identity);
            let built =
                credmesh_inspection::build(&config, db, clock, &server_config, registrar, licenses)
                    .await?;
            built.inspection.export_metrics(&metrics);
            (validator, built.parts)
        }
        Service::Verify => {
            let config = credmesh_verify::VerifyConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_verify::migrations()).await?;
            }
            let validator = credmesh_verify::validator(&config)?;
            let built =
                credmesh_verify::build(&config, db, clock, &server_config, validator.clone())
                    .await?;
            built.gateway.export_metrics(&metrics);
            (validator, built.parts)
        }
    };
    let server = Server::new(server_config, metrics, validator).with_service(parts);
    let mut listeners = vec![
        TcpListener::bind(grpc)
            .await
            .with_context(|| format!("binding {grpc}"))?,
    ];
    if http != grpc {
        listeners.push(
            TcpListener::bind(http)
                .await
                .with_context(|| format!("binding {http}"))?,
        );
    }
    server
        .serve(listeners, credmesh_runtime::shutdown::signal())
        .await
}

/// Applies a service's migrations and exits.
pub async fn migrate(service: Service, env: HashMap<String, String>) -> anyhow::Result<()> {
    let _telemetry = credmesh_telemetry::init("migrate", &env)?;
    match service {
        Service::Identity => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/identity.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_identity::migrations()).await?;
            tracing::info!(service = "identity", "migrations applied");
        }
        Service::License => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/license.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_license::migrations()).await?;
            tracing::info!(service = "license", "migrations applied");
        }
        Service::Entcode => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/entcode.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_entcode::migrations()).await?;
            tracing::info!(service = "entcode", "migrations applied");
        }
        Service::Certificate => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/certificate.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_certificate::migrations()).await?;
            tracing::info!(service = "certificate", "migrations applied");
        }
        Service::Inspection => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/inspection.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_inspection::migrations()).await?;
            tracing::info!(service = "inspection", "migrations applied");
        }
        Service::Verify => {
            let url = env_or(&env, "DATABASE_URL", "sqlite://data/verify.db");
            let db = Db::connect(url, &DbOptions::default()).await?;
            db.migrate(credmesh_verify::migrations()).await?;
            tracing::info!(service = "verify", "migrations applied");
        }
    }
    Ok(())
}
