//! `credmesh entcode …`: enterprise codes and scenario presentations.
//!
//! `show` and `qr` read a code (an enterprise reads its own; operators and departments
//! any, with `entcode.read`); `present` is for the enterprise itself (`entcode.present`);
//! `verify` checks a presentation as a relying party (`verify`) and uses it up.

use std::io::Read as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use credmesh_proto::entcode::v1::{
    self as pb, enterprise_code_service_client::EnterpriseCodeServiceClient,
};

use super::{
    ClientOpts,
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
    /// List the scenarios and the fields each discloses.
    Scenarios,
    /// Make a presentation of one scenario (as the enterprise itself).
    Present {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// The scenario: basic, bank-loan, bidding, inspection.
        #[arg(long, default_value = "basic")]
        scenario: String,
        /// Print only the QR text.
        #[arg(long)]
        qr: bool,
    },
    /// Verify a presentation's QR text (`-` reads standard input); uses it up.
    Verify {
        /// The QR text, or `-`.
        qr_text: String,
    },
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
                println!(
                    "{}\n{}\nscan page: {}\n\n{}",
                    r.name, code.id, r.scan_path, code.qr_text
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
            println!("wrote {}", out.display());
        }
        EntcodeCommand::Scenarios => {
            let req = session.authed(pb::ListScenariosRequest {}).await?;
            let r = client
                .list_scenarios(req)
                .await
                .map_err(explain)?
                .into_inner();
            for s in r.scenarios {
                println!("{:<12} v{}  {}", s.name, s.version, s.fields.join(", "));
            }
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
                    "scenario {} (expires at {} UTC seconds)",
                    r.scenario, r.expires_at
                );
                for d in r.disclosed {
                    println!("  {:<24} {}", d.name, d.value);
                }
                println!("scan page: {}\n\n{text}", r.scan_path);
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
                println!("enterprise {}  scenario {}", r.uscc, r.scenario);
            }
            for d in r.disclosed {
                println!("  {:<24} {}", d.name, d.value);
            }
        }
    }
    Ok(())
}
