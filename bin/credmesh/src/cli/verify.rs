//! `credmesh verify`: verify a credential offline from a trust bundle, and fetch a
//! gateway's bundle.

use std::{io::Read as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use credmesh_proto::{prost::Message as _, verify::v1::TrustBundle};
use credmesh_verify::offline::{Offline, input_from_bytes};

/// `credmesh verify` options.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The credential: a file with QR text, a VC-JWT or native envelope bytes; `-` reads
    /// standard input.
    pub file: Option<String>,
    /// The trust bundle to verify against (offline; its anchor keys are the trust root).
    #[arg(
        long,
        default_value = "./trust-bundle.pb",
        env = "CREDMESH_TRUST_BUNDLE"
    )]
    pub bundle: PathBuf,
    /// Instead of verifying: fetch the bundle from a verify gateway's HTTP base URL
    /// (`http://127.0.0.1:8080`) into `--bundle`.
    #[arg(long, value_name = "URL")]
    pub fetch: Option<String>,
    /// Status data older than this never answers valid.
    #[arg(long, default_value_t = 600)]
    pub max_staleness_seconds: u64,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

fn now() -> i64 {
    use credmesh_runtime::Clock as _;
    credmesh_runtime::SystemClock.now()
}

/// Runs `credmesh verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(base) = &args.fetch {
        let url = format!("{}/v1/verify/bundle", base.trim_end_matches('/'));
        let (code, body) =
            credmesh_verify::fetch::get(&url, "application/x-protobuf", Duration::from_secs(10))
                .await?;
        if !code.is_success() {
            bail!("{url} answered {code}");
        }
        let bundle =
            TrustBundle::decode(body.as_ref()).context("the answer is not a trust bundle")?;
        Offline::from_bundle(&bundle).context("the fetched bundle does not verify")?;
        std::fs::write(&args.bundle, &body)
            .with_context(|| format!("writing {}", args.bundle.display()))?;
        println!(
            "wrote {} ({} regions, {} status lists)",
            args.bundle.display(),
            bundle.regions.len(),
            bundle.status_lists.len()
        );
        return Ok(());
    }
    let file = args
        .file
        .as_deref()
        .context("name the credential file (or - for standard input)")?;
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))?
    };
    let bundle_bytes = std::fs::read(&args.bundle).with_context(|| {
        format!(
            "reading the trust bundle {} (fetch one with --fetch URL)",
            args.bundle.display()
        )
    })?;
    let bundle = TrustBundle::decode(bundle_bytes.as_slice()).context("not a trust bundle")?;
    let offline = Offline::from_bundle(&bundle)?;
    for w in &offline.warnings {
        eprintln!("warning: {w}");
    }
    let result = offline.verify(
        &input_from_bytes(bytes),
        now(),
        Duration::from_secs(args.max_staleness_seconds),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&credmesh_verify::api::http::result_json(&result))?
        );
    } else {
        let json = credmesh_verify::api::http::result_json(&result);
        println!(
            "{}  {}",
            json["outcome"].as_str().unwrap_or("?").to_uppercase(),
            result.reason
        );
        println!("{}", result.detail);
        if result.disputed {
            println!(
                "DISPUTED (数据异议) — contested fields: {}",
                result.disputed_fields.join(", ")
            );
        }
        if !result.credential_id.is_empty() {
            println!("id       {}", result.credential_id);
            println!("kind     {}", json["kind"].as_str().unwrap_or("?"));
            println!("issuer   {} ({})", result.issuer, result.region);
            println!("subject  {}", result.subject);
            for c in &result.disclosed {
                println!("  {:<24} {}", c.name, c.value);
            }
        }
        if let Some(s) = result.status.filter(|s| s.consulted) {
            println!(
                "status data {} s old{}",
                s.age_seconds,
                if s.stale { " (stale)" } else { "" }
            );
        }
    }
    // Exit status: 0 only for valid, so scripts can rely on it.
    if result.outcome != credmesh_proto::credential::v1::VerificationOutcome::Valid as i32 {
        std::process::exit(1);
    }
    Ok(())
}
