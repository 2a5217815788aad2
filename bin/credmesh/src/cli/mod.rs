//! Command-line arguments and dispatch.

mod cert;
mod entcode;
mod identity;
mod inspect;
mod license;
mod region;
mod session;
mod verify;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

/// credmesh: signed credentials for business-environment reform.
#[derive(Debug, Parser)]
#[command(name = "credmesh", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process with local defaults (SQLite, in-process cache,
    /// generated keys, a ready operator profile).
    Dev(DevArgs),
    /// Run one service from environment configuration (production).
    Serve {
        /// The service to run.
        #[arg(value_enum)]
        service: Service,
    },
    /// Apply a service's database migrations and exit (the Helm pre-install hook).
    Migrate {
        /// The service whose database to migrate.
        #[arg(value_enum)]
        service: Service,
    },
    /// Ask a local port's grpc.health.v1 once, over TLS when `CREDMESH_TLS_CERT_FILE` is
    /// set (the exec probe of a TLS deployment); exits 0 only on SERVING.
    Probe(crate::probe::ProbeArgs),
    /// Generate an Ed25519 key (PKCS#8 PEM) and print its public key.
    Keygen {
        /// Where to write the private key (created owner-readable only).
        #[arg(long)]
        out: PathBuf,
    },
    /// Identity and trust: clients, tokens, issuer keys, trust lists, partner anchors.
    Identity(identity::IdentityArgs),
    /// Electronic business licenses: establish, amend, revoke, deregister, show, history.
    License(license::LicenseArgs),
    /// Inspection codes: plan, join, scan, record, evaluate, stats, policy import.
    Inspect(inspect::InspectArgs),
    /// Enterprise codes and scenario presentations: show, qr, scenarios, present, verify.
    Entcode(entcode::EntcodeArgs),
    /// E-certificates (permits): types, issue, commit, suspend, reinstate, revoke,
    /// renew, follow-up, show, list.
    Cert(cert::CertArgs),
    /// Data disputes about e-certificates: file, accept, resolve, list.
    Dispute(cert::DisputeArgs),
    /// Verify a credential file offline from a trust bundle (`--fetch URL` gets one);
    /// `verify audit` reads the gateway's audit of what partners verified.
    Verify(verify::VerifyArgs),
    /// Federation: this region's anchor and the lines partners pin it with.
    Region(region::RegionArgs),
}

/// The services `serve` and `migrate` know.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Service {
    /// The identity and trust service.
    Identity,
    /// The electronic business license service.
    License,
    /// The enterprise-code service.
    Entcode,
    /// The inspection code service.
    Inspection,
    /// The partner-facing verify gateway.
    Verify,
    /// The e-certificate service (permits, commitments, data disputes).
    Certificate,
}

/// `credmesh dev` options.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where data, keys and the CLI profile live; kept across restarts.
    #[arg(long, default_value = "./data", env = "CREDMESH_DATA_DIR")]
    pub data: PathBuf,
    /// The gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051", env = "CREDMESH_GRPC_ADDR")]
    pub grpc: SocketAddr,
    /// The HTTP address (JWKS, trust list, /metrics).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CREDMESH_HTTP_ADDR")]
    pub http: SocketAddr,
    /// The region this deployment plays.
    #[arg(long, default_value = "SH", env = "CREDMESH_REGION")]
    pub region: String,
}

/// Options every client subcommand shares.
#[derive(Debug, clap::Args)]
pub struct ClientOpts {
    /// The CLI profile (endpoint, client id, key file).
    #[arg(
        long,
        global = true,
        default_value = "./data/cli-profile.toml",
        env = "CREDMESH_PROFILE"
    )]
    pub profile: PathBuf,
    /// Override the profile's gRPC endpoint.
    #[arg(long, global = true, env = "CREDMESH_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Override the profile's identity endpoint (tokens and `identity` commands), where
    /// identity runs apart from the service called.
    #[arg(long, global = true, env = "CREDMESH_IDENTITY_ENDPOINT")]
    pub identity_endpoint: Option<String>,
    /// Print answers as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Runs the chosen command.
pub async fn run(cli: Cli, env: HashMap<String, String>) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => crate::dev::run(args, env).await,
        Command::Serve { service } => crate::serve::run(service, env).await,
        Command::Migrate { service } => crate::serve::migrate(service, env).await,
        Command::Probe(args) => {
            if let Err(error) = crate::probe::run(&args, &env).await {
                eprintln!("{}", crate::probe::one_line(&error));
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Keygen { out } => {
            if out.exists() {
                anyhow::bail!(
                    "{} exists already; refusing to overwrite a key",
                    out.display()
                );
            }
            let key = credmesh_credential::keys::IssuerKey::generate("local")?;
            crate::keyfile::write_private(&out, &key.to_pkcs8_pem())?;
            use base64::Engine as _;
            println!(
                "{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key_bytes())
            );
            Ok(())
        }
        Command::Identity(args) => identity::run(args).await,
        Command::License(args) => license::run(args).await,
        Command::Entcode(args) => entcode::run(args).await,
        Command::Cert(args) => cert::run(args).await,
        Command::Dispute(args) => cert::run_dispute(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Region(args) => region::run(args).await,
    }
}

/// A Unix time as every command shows it to people: RFC 3339 UTC, or the number when out
/// of range. JSON output (`--json`) keeps the numbers.
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Prints labelled values, indented, the values in one column: each label padded to the
/// widest by the columns a terminal draws it in (see [`columns`]). A label wider than
/// [`LABEL_COLUMNS`] is not padded to, so one long label does not push every value right.
pub(crate) fn print_rows<L: AsRef<str>, V: AsRef<str>>(rows: &[(L, V)]) {
    let width = rows
        .iter()
        .map(|(l, _)| columns(l.as_ref()))
        .filter(|&w| w <= LABEL_COLUMNS)
        .max()
        .unwrap_or(0);
    for (label, value) in rows {
        let (label, value) = (label.as_ref(), value.as_ref());
        let pad = " ".repeat(width.saturating_sub(columns(label)));
        println!("  {label}{pad}  {value}");
    }
}

/// The widest label [`print_rows`] lines the values up after.
const LABEL_COLUMNS: usize = 28;

/// How many terminal columns `text` takes: two for each CJK character, as a terminal
/// draws them, so Chinese and English labels line up.
fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::columns;

    #[test]
    fn cjk_labels_take_two_columns_a_character() {
        assert_eq!(columns("kid"), 3);
        assert_eq!(columns("名称 name"), 9);
        assert_eq!(columns("统一社会信用代码 USCC"), 21);
        assert_eq!(columns("（）"), 4);
    }
}
