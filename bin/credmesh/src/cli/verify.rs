//! `credmesh verify`: verify a credential offline from a trust bundle, fetch a
//! gateway's bundle, and read the gateway's verification audit (`credmesh verify audit`).

use std::{io::Read as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use credmesh_proto::{
    prost::Message as _,
    verify::v1::{
        ListVerificationAuditRequest, TrustBundle, verify_service_client::VerifyServiceClient,
    },
};
use credmesh_verify::offline::{Offline, input_from_bytes};

use super::{
    ClientOpts, rfc3339,
    session::{Session, explain},
};

/// `credmesh verify` options.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VerifyArgs {
    /// Instead of verifying a file: a gateway operation.
    #[command(subcommand)]
    pub command: Option<VerifyCommand>,
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

/// `credmesh verify` operations against a running gateway. (A credential file named
/// like one of them is verified as `./audit`.)
#[derive(Debug, clap::Subcommand)]
pub enum VerifyCommand {
    /// The gateway's audit of what partners verified, newest first: your own entries,
    /// or any partner's with scope verify.audit.read (operators).
    Audit(AuditArgs),
}

/// `credmesh verify audit` options.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    opts: ClientOpts,
    /// Only this partner's entries (client id); default: every partner for operators,
    /// yourself otherwise.
    #[arg(long)]
    partner: Option<String>,
    /// Only entries at or after this time: RFC 3339 (2026-09-21T08:00:00+08:00), Unix
    /// seconds, or an age back from now (90s, 30m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only entries before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this outcome: valid, revoked, suspended, expired, not_yet_valid,
    /// unknown_issuer, bad_signature, malformed, status_unknown.
    #[arg(long)]
    outcome: Option<String>,
    /// Only this credential kind: business_license, enterprise_code, presentation,
    /// certificate, inspection_code.
    #[arg(long)]
    kind: Option<String>,
    /// Show at most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// A time given on the command line as Unix seconds, RFC 3339 or an age back from `now`.
fn parse_time(text: &str, now: i64) -> anyhow::Result<i64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(at) = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(last) = t.chars().last()
        && let Some(mult) = unit(last)
        && let Ok(n) = t[..t.len() - 1].parse::<i64>()
        && n >= 0
    {
        return Ok(now - n * mult);
    }
    bail!(
        "'{t}' is not a time: use RFC 3339 (2026-09-21T08:00:00+08:00), Unix seconds or an age such as 24h or 7d"
    )
}

/// Runs `credmesh verify audit`.
async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let now = now();
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now).context("--since"))
        .transpose()?
        .unwrap_or_default();
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now).context("--until"))
        .transpose()?
        .unwrap_or_default();
    let outcome = match args.outcome.as_deref() {
        None => 0,
        Some(name) => credmesh_verify::audit::outcome_from_name(name)
            .with_context(|| format!("--outcome: '{name}' is not an outcome (valid, revoked, suspended, expired, not_yet_valid, unknown_issuer, bad_signature, malformed, status_unknown)"))?
            as i32,
    };
    let kind = match args.kind.as_deref() {
        None => 0,
        Some(name) => credmesh_verify::audit::kind_from_name(name)
            .with_context(|| format!("--kind: '{name}' is not a credential kind (business_license, enterprise_code, presentation, certificate, inspection_code)"))?
            as i32,
    };
    let mut session = Session::open(&args.opts).await?;
    let mut client = VerifyServiceClient::new(session.channel());
    let mut token = String::new();
    let mut shown = 0;
    loop {
        let request = ListVerificationAuditRequest {
            client_id: args.partner.clone().unwrap_or_default(),
            since,
            until,
            outcome,
            kind,
            page_size: args.limit.saturating_sub(shown).clamp(1, 500),
            page_token: token.clone(),
        };
        let page = client
            .list_verification_audit(session.authed(request).await?)
            .await
            .map_err(explain)?
            .into_inner();
        for e in &page.entries {
            if shown >= args.limit {
                break;
            }
            shown += 1;
            let json = credmesh_verify::api::http::audit_entry_json(e);
            if session.json {
                println!("{json}");
            } else {
                let times = if e.count > 1 {
                    format!(" ×{}", e.count)
                } else {
                    String::new()
                };
                println!(
                    "{}  {:<20} {:<15} {:<18} {:<17} {:<14} {}{times}",
                    rfc3339(e.verified_at),
                    e.client_id,
                    json["outcome"].as_str().unwrap_or("?"),
                    e.reason,
                    json["kind"].as_str().unwrap_or("?"),
                    if e.issuer.is_empty() { "-" } else { &e.issuer },
                    e.credential_id
                );
            }
        }
        if page.next_page_token.is_empty() || shown >= args.limit {
            break;
        }
        token = page.next_page_token;
    }
    if shown == 0 && !session.json {
        eprintln!("no audit entries match");
    }
    Ok(())
}

fn now() -> i64 {
    use credmesh_runtime::Clock as _;
    credmesh_runtime::SystemClock.now()
}

/// Runs `credmesh verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(VerifyCommand::Audit(audit_args)) = args.command {
        return audit(audit_args).await;
    }
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
            "wrote {} (regions: {}, status lists: {})",
            args.bundle.display(),
            bundle.regions.len(),
            bundle.status_lists.len()
        );
        if bundle.status_lists.is_empty() {
            eprintln!(
                "note: the bundle holds no status lists (the gateway could not fetch any from \
                 the issuers), so offline answers will be STATUS_UNKNOWN; fetch again later"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_seconds_rfc3339_or_an_age() {
        let now = 1_790_000_000;
        assert_eq!(parse_time("1789999000", now).unwrap(), 1_789_999_000);
        assert_eq!(
            parse_time("2026-09-21T08:00:00+08:00", now).unwrap(),
            parse_time("2026-09-21T00:00:00Z", now).unwrap()
        );
        assert_eq!(parse_time("24h", now).unwrap(), now - 86_400);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400);
        assert!(parse_time("yesterday", now).is_err());
    }
}
