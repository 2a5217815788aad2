//! `credmesh serve <service>` and `credmesh migrate <service>`: production roles,
//! configured by the environment only.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use credmesh_runtime::{Server, ServerConfig, SystemClock};
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
    };
    let _telemetry = credmesh_telemetry::init(name, &env)?;
    let server_config = ServerConfig::from_env(&env)?;
    let grpc: std::net::SocketAddr = env_or(&env, "CREDMESH_GRPC_ADDR", "127.0.0.1:50051")
        .parse()
        .context("CREDMESH_GRPC_ADDR must be host:port")?;
    let http: std::net::SocketAddr = env_or(&env, "CREDMESH_HTTP_ADDR", "127.0.0.1:8080")
        .parse()
        .context("CREDMESH_HTTP_ADDR must be host:port")?;
    let migrate = env_or(&env, "CREDMESH_MIGRATE", "true") != "false";
    match service {
        Service::Identity => {
            let config = credmesh_identity::IdentityConfig::from_env(&env)?;
            let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
            if migrate {
                db.migrate(credmesh_identity::migrations()).await?;
            }
            let built =
                credmesh_identity::build(&config, db, Arc::new(SystemClock), &server_config)
                    .await?;
            let metrics = Metrics::new();
            let server =
                Server::new(server_config, metrics, built.validator).with_service(built.parts);
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
    }
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
    }
    Ok(())
}
