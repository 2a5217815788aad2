//! `credmesh entcode …`: enterprise codes and scenario presentations.
//!
//! `show` and `qr` read a code (an enterprise reads its own; operators and departments
//! any, with `entcode.read`); `present` is for the enterprise itself (`entcode.present`);
//! `verify` checks a presentation as a relying party (`verify`) and uses it up.
//! `scenario put | show | list | history | retire` defines and reads scenarios;
//! `put` and `retire` are for operators (`entcode.scenarios.write`).

use std::io::Read as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use credmesh_proto::entcode::v1::{
    self as pb, enterprise_code_service_client::EnterpriseCodeServiceClient,
};

use super::{
    ClientOpts, rfc3339,
    session::{Session, explain},
};

/// `credmesh entcode` arguments.
#[derive(Debug, Args)]
pub struct EntcodeArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: EntcodeCommand,
}

#[derive(Debug, Subcommand)]
enum EntcodeCommand {
    /// Show an enterprise's stable code (经营主体身份码).
    Show {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// Print only the QR text.
        #[arg(long)]
        qr: bool,
    },
    /// Write an enterprise's code as a printable QR image: SVG, or PNG when `--out`
    /// ends in `.png`.
    Qr {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// Where to write the SVG.
        #[arg(long, default_value = "entcode.svg")]
        out: std::path::PathBuf,
    },
    /// List the scenarios and the fields each discloses (same as `scenario list`).
    #[command(hide = true)]
    Scenarios,
    /// Define, change, retire and read scenarios.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Make a presentation of one scenario (as the enterprise itself).
    Present {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// The scenario: basic, bank-loan, bidding, inspection, or one operators defined.
        #[arg(long, default_value = "basic")]
        scenario: String,
        /// Print only the QR text.
        #[arg(long)]
        qr: bool,
    },
    /// Verify a presentation's QR text (`-` reads standard input); uses it up.
    ///
    /// Exit status: 0 only when the presentation is valid.
    Verify {
        /// The QR text, or `-`.
        qr_text: String,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Create a scenario or make its next version (operators).
    Put {
        /// The scenario's name: lowercase letters, digits and hyphens.
        name: String,
        /// A one-line description.
        #[arg(long)]
        description: String,
        /// The fields it discloses, in display order, comma-separated (license fields:
        /// name, uscc, entity_type, legal_representative, registered_capital,
        /// establishment_date, business_term, domicile, business_scope,
        /// registration_authority, registration_authority_uscc, issue_date; and permits,
        /// credit_grade from the certificate and inspection services).
        #[arg(long, value_delimiter = ',', required = true)]
        fields: Vec<String>,
        /// Why, for the history.
        #[arg(long)]
        reason: String,
        /// Change only if this is still the current version (0: only create).
        #[arg(long)]
        expected_version: Option<u32>,
        /// Idempotency key, so a retried command makes one version.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Show a scenario: its current version, or `--version N`.
    Show {
        /// The scenario's name.
        name: String,
        /// The version (default: current).
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// List the scenarios and the fields each discloses.
    List,
    /// Every version of a scenario: who, when, why and what changed.
    History {
        /// The scenario's name.
        name: String,
    },
    /// Retire a scenario: no new presentations of it (operators).
    Retire {
        /// The scenario's name.
        name: String,
        /// Why, for the history.
        #[arg(long)]
        reason: String,
        /// Retire only if this is still the current version.
        #[arg(long)]
        expected_version: Option<u32>,
        /// Idempotency key, so a retried command retires once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
}

fn print_scenario(s: &pb::Scenario) {
    println!(
        "{:<12} v{}{}  {}\n  {}",
        s.name,
        s.version,
        if s.retired { " (retired)" } else { "" },
        s.description,
        s.fields.join(", ")
    );
}

async fn list_scenarios(
    session: &mut Session,
    client: &mut EnterpriseCodeServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<()> {
    let mut page_token = String::new();
    loop {
        let req = session
            .authed(pb::ListScenariosRequest {
                page_size: 0,
                page_token,
            })
            .await?;
        let r = client
            .list_scenarios(req)
            .await
            .map_err(explain)?
            .into_inner();
        for s in &r.scenarios {
            println!(
                "{:<12} v{}{}  {}",
                s.name,
                s.version,
                if s.retired { " (retired)" } else { "" },
                s.fields.join(", ")
            );
        }
        if r.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = r.next_page_token;
    }
}

async fn scenario(
    command: ScenarioCommand,
    session: &mut Session,
    client: &mut EnterpriseCodeServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<()> {
    match command {
        ScenarioCommand::Put {
            name,
            description,
            fields,
            reason,
            expected_version,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::PutScenarioRequest {
                    name,
                    description,
                    fields,
                    reason,
                    expected_version,
                    idempotency_key,
                })
                .await?;
            let r = client
                .put_scenario(req)
                .await
                .map_err(explain)?
                .into_inner();
            if !r.changed {
                println!("unchanged:");
            }
            print_scenario(&r.scenario.unwrap_or_default());
        }
        ScenarioCommand::Show { name, version } => {
            let req = session
                .authed(pb::GetScenarioRequest { name, version })
                .await?;
            let r = client
                .get_scenario(req)
                .await
                .map_err(explain)?
                .into_inner();
            print_scenario(&r.scenario.unwrap_or_default());
            println!("  current version: {}", r.current_version);
        }
        ScenarioCommand::List => list_scenarios(session, client).await?,
        ScenarioCommand::History { name } => {
            let mut page_token = String::new();
            loop {
                let req = session
                    .authed(pb::ListScenarioHistoryRequest {
                        name: name.clone(),
                        page_size: 0,
                        page_token,
                    })
                    .await?;
                let r = client
                    .list_scenario_history(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                for c in &r.changes {
                    let s = c.scenario.clone().unwrap_or_default();
                    let mut what = Vec::new();
                    if !c.fields_added.is_empty() {
                        what.push(format!("+{}", c.fields_added.join(" +")));
                    }
                    if !c.fields_removed.is_empty() {
                        what.push(format!("-{}", c.fields_removed.join(" -")));
                    }
                    if c.description_changed && s.version > 1 {
                        what.push("description".into());
                    }
                    if c.order_changed {
                        what.push("order".into());
                    }
                    if c.retired_changed {
                        what.push(
                            if s.retired {
                                "retired"
                            } else {
                                "current again"
                            }
                            .into(),
                        );
                    }
                    println!(
                        "v{:<3} {}  {} ({})  {}\n      why: {}\n      fields: {}",
                        s.version,
                        rfc3339(c.changed_at),
                        c.changed_by,
                        c.changed_by_kind,
                        what.join(", "),
                        c.reason,
                        s.fields.join(", ")
                    );
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
        }
        ScenarioCommand::Retire {
            name,
            reason,
            expected_version,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::RetireScenarioRequest {
                    name,
                    reason,
                    expected_version,
                    idempotency_key,
                })
                .await?;
            let r = client
                .retire_scenario(req)
                .await
                .map_err(explain)?
                .into_inner();
            print_scenario(&r.scenario.unwrap_or_default());
        }
    }
    Ok(())
}

/// The scan page as the service names it: its full URL where the deployment has a public
/// URL, the path otherwise.
fn scan_page<'a>(url: &'a str, path: &'a str) -> &'a str {
    if url.is_empty() { path } else { url }
}

/// The scheme and host of `url`: `https://verify.sh.example.gov.cn/v/…` →
/// `https://verify.sh.example.gov.cn`.
fn host_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |end| &url[..after_scheme + end])
}

/// Runs `credmesh entcode`.
pub async fn run(args: EntcodeArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.opts).await?;
    let mut client = EnterpriseCodeServiceClient::new(session.channel());
    match args.command {
        EntcodeCommand::Show { uscc, qr } => {
            let req = session
                .authed(pb::GetEnterpriseCodeRequest { uscc })
                .await?;
            let r = client
                .get_enterprise_code(req)
                .await
                .map_err(explain)?
                .into_inner();
            let code = r.code.unwrap_or_default();
            if qr {
                println!("{}", code.qr_text);
            } else {
                let permits = if r.permits_unavailable {
                    "permits: could not be loaded".to_string()
                } else if r.permits.is_empty() {
                    "permits: none".to_string()
                } else {
                    let mut out = String::from("permits:");
                    for p in &r.permits {
                        let state = match p.state() {
                            pb::PermitState::Valid => "valid",
                            pb::PermitState::Suspended => "suspended",
                            pb::PermitState::Revoked => "revoked",
                            pb::PermitState::Expired => "expired",
                            pb::PermitState::Unspecified => "unknown",
                        };
                        out.push_str(&format!(
                            "\n  {} {} {state}, {}, until {}",
                            p.type_name,
                            p.serial,
                            if p.department_name.is_empty() {
                                &p.department
                            } else {
                                &p.department_name
                            },
                            p.valid_until
                        ));
                    }
                    out
                };
                println!(
                    "{}\n{}\nscan page: {}\n{permits}\n\n{}",
                    r.name,
                    code.id,
                    scan_page(&r.scan_url, &r.scan_path),
                    code.qr_text
                );
            }
        }
        EntcodeCommand::Qr { uscc, out } => {
            let req = session
                .authed(pb::GetEnterpriseCodeRequest { uscc })
                .await?;
            let r = client
                .get_enterprise_code(req)
                .await
                .map_err(explain)?
                .into_inner();
            let code = r.code.unwrap_or_default();
            let png = out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"));
            let bytes = if png {
                code.qr_png
            } else {
                code.qr_svg.into_bytes()
            };
            std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
            if r.scan_url.is_empty() {
                println!(
                    "wrote {}: the bare QR text, which only credmesh-aware scanners read \
                     (with CREDMESH_PUBLIC_URL set, the entcode service makes codes a phone \
                     camera opens)",
                    out.display()
                );
            } else {
                println!(
                    "wrote {}: a phone camera opens the scan page on {}",
                    out.display(),
                    host_of(&r.scan_url)
                );
            }
        }
        EntcodeCommand::Scenarios => list_scenarios(&mut session, &mut client).await?,
        EntcodeCommand::Scenario { command } => {
            scenario(command, &mut session, &mut client).await?
        }
        EntcodeCommand::Present { uscc, scenario, qr } => {
            let req = session
                .authed(pb::CreatePresentationRequest { uscc, scenario })
                .await?;
            let r = client
                .create_presentation(req)
                .await
                .map_err(explain)?
                .into_inner();
            let text = r.presentation.unwrap_or_default().qr_text;
            if qr {
                println!("{text}");
            } else {
                println!(
                    "scenario {} v{} (single use, expires at {})",
                    r.scenario,
                    r.scenario_version,
                    rfc3339(r.expires_at)
                );
                for d in r.disclosed {
                    println!("  {:<24} {}", d.name, d.value);
                }
                println!(
                    "scan page: {}\n\n{text}",
                    scan_page(&r.scan_url, &r.scan_path)
                );
            }
        }
        EntcodeCommand::Verify { qr_text } => {
            let qr_text = if qr_text == "-" {
                let mut buf = String::new();
                std::io::stdin().read_to_string(&mut buf)?;
                buf.trim().to_string()
            } else {
                qr_text
            };
            let req = session
                .authed(pb::VerifyPresentationRequest { qr_text })
                .await?;
            let r = client
                .verify_presentation(req)
                .await
                .map_err(explain)?
                .into_inner();
            println!("{}: {}", r.reason, r.detail);
            if !r.uscc.is_empty() {
                println!(
                    "enterprise {}  scenario {} v{}",
                    r.uscc, r.scenario, r.scenario_version
                );
            }
            for d in r.disclosed {
                println!("  {:<24} {}", d.name, d.value);
            }
            // As `credmesh verify`: 0 only for valid, so scripts can rely on it.
            if r.outcome != pb::PresentationOutcome::Valid as i32 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_page_is_named_by_its_url_where_there_is_one() {
        assert_eq!(scan_page("", "/v/CM1:A"), "/v/CM1:A");
        assert_eq!(
            scan_page("https://verify.sh.example.gov.cn/v/CM1:A", "/v/CM1:A"),
            "https://verify.sh.example.gov.cn/v/CM1:A"
        );
        assert_eq!(
            host_of("https://verify.sh.example.gov.cn/v/CM1:A"),
            "https://verify.sh.example.gov.cn"
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/v/CM1:A"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(host_of("https://host"), "https://host");
    }
}
