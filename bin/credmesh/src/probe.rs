//! `credmesh probe`: a grpc.health.v1 check of a local port for exec probes.
//!
//! Kubernetes' native gRPC probes speak plaintext only. When the pod serves TLS (the
//! `CREDMESH_TLS_*` environment), the chart runs this instead: it dials `--addr` with
//! the same environment the service reads, trusting `CREDMESH_TLS_CA_FILE` (and the
//! system's roots), checking the server's certificate names `--server-name` (the
//! Service's DNS name) and showing the pod's own certificate, so mutual TLS admits it.
//! It exits 0 only on SERVING; otherwise it prints one line on stderr and exits 1.

use std::{collections::HashMap, time::Duration};

use credmesh_runtime::{
    ClientOptions,
    client::channel_with,
    tls::{ClientTls, TlsFiles},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// `credmesh probe` options.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The gRPC address to check (the pod's own port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// The health service to ask: "" is the process (liveness), a full gRPC service name
    /// its readiness (NOT_SERVING while its database or cache is unreachable).
    #[arg(long, default_value = "")]
    pub service: String,
    /// With TLS: the name the server's certificate must carry (the Service's DNS name).
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// How long connecting and the call may take together.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
}

/// Checks once; `Ok` only when the service answers SERVING. The error is one line.
pub async fn run(args: &ProbeArgs, env: &HashMap<String, String>) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let files = TlsFiles::from_env(env)?;
    let (url, tls) = if files.identity.is_some() {
        (
            format!("https://{}", args.addr),
            files.client()?.for_server_name(&args.server_name),
        )
    } else {
        // Plaintext: the TLS settings are not used, only passed along.
        (
            format!("http://{}", args.addr),
            ClientTls::installed().clone(),
        )
    };
    let options = ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
    };
    let channel = channel_with(&url, &options, &tls)?;
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest {
        service: args.service.clone(),
    });
    let what = if args.service.is_empty() {
        format!("{url} (liveness)")
    } else {
        format!("{url} service {}", args.service)
    };
    let answer = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {} ms", args.timeout_ms))?
        .map_err(|status| anyhow::anyhow!("{what}: {}", describe(&status)))?;
    match answer.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => anyhow::bail!("{what}: {}", other.as_str_name()),
    }
}

/// A status in one line: its code, message and the transport error's causes.
fn describe(status: &tonic::Status) -> String {
    let mut out = format!("{:?}", status.code());
    if !status.message().is_empty() {
        out.push_str(": ");
        out.push_str(status.message());
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// One line for stderr, whatever the error holds.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("credmesh probe: {error:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_one_line() {
        let e = anyhow::anyhow!("a\nb").context("c");
        assert_eq!(one_line(&e), "credmesh probe: c: a b");
    }
}
