//! `credmesh cert …` and `credmesh dispute …`: the issuing department's and the
//! enterprise's CLI for e-certificates and data disputes. Which of them may do what is
//! decided by the service from the profile client's kind and organisation.

use clap::{Args, Subcommand};
use credmesh_proto::certificate::v1::{
    self as pb, certificate_service_client::CertificateServiceClient,
};
use tonic::transport::Channel;

use super::{
    ClientOpts,
    session::{Session, explain},
};

/// `credmesh cert` arguments.
#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: CertCommand,
}

/// A `name=value` field.
fn field(s: &str) -> Result<pb::Field, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not name=value"))?;
    Ok(pb::Field {
        name: name.trim().into(),
        value: value.into(),
    })
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// List the certificate types, with their field schemas.
    Types,
    /// Issue a certificate (the type's competent department).
    Issue {
        /// The holder's unified social credit code.
        #[arg(long)]
        holder: String,
        /// The certificate type code.
        #[arg(long = "type")]
        type_code: String,
        /// A field value, `name=value`; repeat for each field.
        #[arg(long = "field", value_parser = field)]
        fields: Vec<pb::Field>,
        /// First day of validity (default today).
        #[arg(long, default_value = "")]
        valid_from: String,
        /// Validity in days (default: the type's).
        #[arg(long, default_value_t = 0)]
        validity_days: u32,
        /// Idempotency key, so a retried command issues once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Apply for a certificate on commitment (告知承诺), as the enterprise itself.
    Commit {
        /// The holder's (your) unified social credit code.
        #[arg(long)]
        holder: String,
        /// The certificate type code.
        #[arg(long = "type")]
        type_code: String,
        /// A field value, `name=value`; repeat for each field.
        #[arg(long = "field", value_parser = field)]
        fields: Vec<pb::Field>,
        /// The commitment statement you make.
        #[arg(long)]
        statement: String,
        /// Idempotency key, so a retried command issues once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Suspend a certificate.
    Suspend {
        /// The certificate's serial.
        serial: String,
        /// Why (audited, shown to the holder).
        #[arg(long)]
        reason: String,
    },
    /// Lift a suspension.
    Reinstate {
        /// The certificate's serial.
        serial: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
    /// Revoke a certificate permanently.
    Revoke {
        /// The certificate's serial.
        serial: String,
        /// Why (audited, shown to the holder).
        #[arg(long)]
        reason: String,
    },
    /// Renew: a new version valid from today.
    Renew {
        /// The certificate's serial.
        serial: String,
        /// Validity in days (default: the type's).
        #[arg(long, default_value_t = 0)]
        validity_days: u32,
    },
    /// Record a commitment certificate's follow-up check; `--broken` revokes it.
    FollowUp {
        /// The certificate's serial.
        serial: String,
        /// The commitment was not kept.
        #[arg(long)]
        broken: bool,
        /// What the check found.
        #[arg(long)]
        finding: String,
    },
    /// Show a certificate with its QR text.
    Show {
        /// The certificate's serial.
        serial: String,
    },
    /// List certificates.
    List {
        /// Only this holder's.
        #[arg(long, default_value = "")]
        holder: String,
    },
}

/// `credmesh dispute` arguments.
#[derive(Debug, Args)]
pub struct DisputeArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: DisputeCommand,
}

#[derive(Debug, Subcommand)]
enum DisputeCommand {
    /// File a data dispute about your certificate (the holder).
    File {
        /// The certificate's serial.
        serial: String,
        /// A disputed field and the value you claim, `name=value`; repeat for more.
        #[arg(long = "field", value_parser = field)]
        fields: Vec<pb::Field>,
        /// SHA-256 (hex) of an evidence attachment; repeat for more.
        #[arg(long = "evidence")]
        evidence: Vec<String>,
        /// Your explanation.
        #[arg(long, default_value = "")]
        explanation: String,
        /// Idempotency key, so a retried command files once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Accept a filed dispute (the issuing department; due within 1 working day).
    Accept {
        /// The dispute id.
        id: String,
    },
    /// Resolve an accepted dispute: `--corrected` issues a corrected version,
    /// otherwise it is rejected with `--reason`.
    Resolve {
        /// The dispute id.
        id: String,
        /// The claim is right: issue a corrected version.
        #[arg(long)]
        corrected: bool,
        /// The reason (required for a rejection) or a note.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the disputes you can see, with the overdue count (with `--json`, one object
    /// per dispute and a last line `{"overdue_count": N}`).
    List {
        /// Only filed or accepted ones.
        #[arg(long)]
        open: bool,
        /// Only those past their deadline.
        #[arg(long)]
        overdue: bool,
    },
}

fn state_name(s: i32) -> &'static str {
    match pb::CertificateState::try_from(s) {
        Ok(pb::CertificateState::Active) => "active",
        Ok(pb::CertificateState::Suspended) => "suspended",
        Ok(pb::CertificateState::Revoked) => "revoked",
        Ok(pb::CertificateState::Expired) => "expired",
        _ => "?",
    }
}

fn print_certificate(c: &pb::Certificate, types: &[pb::CertificateType], json: bool) {
    let signed = c.credential.clone().unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "serial": c.serial,
                "certificate_id": c.certificate_id,
                "holder": c.holder,
                "holder_name": c.holder_name,
                "type_code": c.type_code,
                "department": c.department,
                "state": state_name(c.state),
                "state_reason": c.state_reason,
                "version": c.version,
                "fields": c.fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "disputed_fields": c.disputed_fields,
                "qr": signed.qr_text,
                "scan_url": signed.scan_url,
                "vc_jwt": signed.vc_jwt,
            })
        );
        return;
    }
    println!(
        "{}  serial {}  version {}  {}",
        c.certificate_id,
        c.serial,
        c.version,
        state_name(c.state)
    );
    let kind = types.iter().find(|t| t.type_code == c.type_code);
    let named = |name: &str, code: &str| {
        if name.is_empty() {
            code.to_owned()
        } else {
            format!("{name} ({code})")
        }
    };
    let mut rows: Vec<(String, String)> = vec![
        ("持证主体 holder".into(), named(&c.holder_name, &c.holder)),
        (
            "证照类型 type".into(),
            named(kind.map_or("", |t| t.name.as_str()), &c.type_code),
        ),
        (
            "发证机关 department".into(),
            named(
                kind.map_or("", |t| t.department_name.as_str()),
                &c.department,
            ),
        ),
        (
            "有效期 valid".into(),
            format!("{} – {}", c.valid_from, c.valid_until),
        ),
    ];
    for f in &c.fields {
        let label = kind
            .and_then(|t| t.fields.iter().find(|spec| spec.name == f.name))
            .filter(|spec| !spec.label.is_empty())
            .map_or_else(
                || f.name.clone(),
                |spec| format!("{} {}", spec.label, f.name),
            );
        rows.push((label, f.value.clone()));
    }
    if !c.disputed_fields.is_empty() {
        rows.push(("DISPUTED".into(), c.disputed_fields.join(", ")));
    }
    if !c.state_reason.is_empty() {
        rows.push(("reason".into(), c.state_reason.clone()));
    }
    if !signed.qr_text.is_empty() {
        rows.push(("QR".into(), signed.qr_text.clone()));
    }
    if !signed.scan_url.is_empty() {
        rows.push(("扫码核验 scan page".into(), signed.scan_url.clone()));
    }
    super::print_rows(&rows);
}

/// The registered certificate types, to name a certificate's type, department and
/// fields for people. None for `--json`, which carries the codes, nor when the caller
/// may not list the types: the codes are shown then.
async fn types_for_people(
    session: &mut Session,
    client: &mut CertificateServiceClient<Channel>,
) -> Vec<pb::CertificateType> {
    if session.json {
        return Vec::new();
    }
    let Ok(request) = session
        .authed(pb::ListCertificateTypesRequest::default())
        .await
    else {
        return Vec::new();
    };
    client
        .list_certificate_types(request)
        .await
        .map(|r| r.into_inner().types)
        .unwrap_or_default()
}

fn print_dispute(d: &pb::Dispute, json: bool) {
    let state = match pb::DisputeState::try_from(d.state) {
        Ok(pb::DisputeState::Filed) => "filed",
        Ok(pb::DisputeState::Accepted) => "accepted",
        Ok(pb::DisputeState::Corrected) => "corrected",
        Ok(pb::DisputeState::Rejected) => "rejected",
        _ => "?",
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "dispute_id": d.dispute_id,
                "serial": d.serial,
                "state": state,
                "fields": d.fields.iter().map(|f| serde_json::json!({
                    "name": f.name, "recorded": f.recorded_value, "claimed": f.claimed_value,
                })).collect::<Vec<_>>(),
                "accept_by": d.accept_by,
                "resolve_by": d.resolve_by,
                "overdue": d.overdue,
                "resolution": d.resolution,
            })
        );
        return;
    }
    let fields: Vec<String> = d
        .fields
        .iter()
        .map(|f| format!("{}: '{}' → '{}'", f.name, f.recorded_value, f.claimed_value))
        .collect();
    println!(
        "{}  certificate {}  {}{}  {}",
        d.dispute_id,
        d.serial,
        state,
        if d.overdue { " OVERDUE" } else { "" },
        fields.join("; ")
    );
    if !d.resolution.is_empty() {
        println!("  resolution: {}", d.resolution);
    }
}

/// Runs `credmesh cert …`.
pub async fn run(args: CertArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.opts).await?;
    let mut client = CertificateServiceClient::<Channel>::new(session.channel());
    let json = session.json;
    let cert = match args.command {
        CertCommand::Types => {
            let types = client
                .list_certificate_types(
                    session
                        .authed(pb::ListCertificateTypesRequest::default())
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .types;
            for t in types {
                let fields: Vec<String> = t
                    .fields
                    .iter()
                    .map(|f| format!("{}{}", f.name, if f.required { "*" } else { "" }))
                    .collect();
                println!(
                    "{}  {}  ({}, {} days)\n  fields: {}",
                    t.type_code,
                    t.name,
                    t.department_name,
                    t.default_validity_days,
                    fields.join(", ")
                );
                if !t.bundles.is_empty() {
                    println!("  bundles ({}): {}", t.industry, t.bundles.join(", "));
                }
            }
            return Ok(());
        }
        CertCommand::Issue {
            holder,
            type_code,
            fields,
            valid_from,
            validity_days,
            idempotency_key,
        } => {
            client
                .issue_certificate(
                    session
                        .authed(pb::IssueCertificateRequest {
                            holder,
                            type_code,
                            fields,
                            valid_from,
                            validity_days,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Commit {
            holder,
            type_code,
            fields,
            statement,
            idempotency_key,
        } => {
            client
                .issue_on_commitment(
                    session
                        .authed(pb::IssueOnCommitmentRequest {
                            holder,
                            type_code,
                            fields,
                            statement,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Suspend { serial, reason } => {
            client
                .suspend_certificate(
                    session
                        .authed(pb::SuspendCertificateRequest {
                            serial,
                            reason,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Reinstate { serial, reason } => {
            client
                .reinstate_certificate(
                    session
                        .authed(pb::ReinstateCertificateRequest {
                            serial,
                            reason,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Revoke { serial, reason } => {
            client
                .revoke_certificate(
                    session
                        .authed(pb::RevokeCertificateRequest {
                            serial,
                            reason,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Renew {
            serial,
            validity_days,
        } => {
            client
                .renew_certificate(
                    session
                        .authed(pb::RenewCertificateRequest {
                            serial,
                            validity_days,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::FollowUp {
            serial,
            broken,
            finding,
        } => {
            client
                .record_follow_up(
                    session
                        .authed(pb::RecordFollowUpRequest {
                            serial,
                            compliant: !broken,
                            finding,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::Show { serial } => {
            client
                .get_certificate(session.authed(pb::GetCertificateRequest { serial }).await?)
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
        }
        CertCommand::List { holder } => {
            let types = types_for_people(&mut session, &mut client).await;
            let mut page_token = String::new();
            let mut shown = 0;
            loop {
                let r = client
                    .list_certificates(
                        session
                            .authed(pb::ListCertificatesRequest {
                                holder: holder.clone(),
                                page_size: 0,
                                page_token,
                            })
                            .await?,
                    )
                    .await
                    .map_err(explain)?
                    .into_inner();
                shown += r.certificates.len();
                for c in &r.certificates {
                    print_certificate(c, &types, json);
                }
                if r.next_page_token.is_empty() {
                    if shown == 0 && !json {
                        eprintln!("no certificates match");
                    }
                    return Ok(());
                }
                page_token = r.next_page_token;
            }
        }
    };
    if let Some(c) = cert {
        let types = types_for_people(&mut session, &mut client).await;
        print_certificate(&c, &types, json);
    }
    Ok(())
}

/// Runs `credmesh dispute …`.
pub async fn run_dispute(args: DisputeArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.opts).await?;
    let mut client = CertificateServiceClient::<Channel>::new(session.channel());
    let json = session.json;
    match args.command {
        DisputeCommand::File {
            serial,
            fields,
            evidence,
            explanation,
            idempotency_key,
        } => {
            let fields = fields
                .into_iter()
                .map(|f| pb::DisputedField {
                    name: f.name,
                    recorded_value: String::new(),
                    claimed_value: f.value,
                })
                .collect();
            let r = client
                .file_dispute(
                    session
                        .authed(pb::FileDisputeRequest {
                            serial,
                            fields,
                            evidence_sha256: evidence,
                            explanation,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(d) = r.dispute {
                print_dispute(&d, json);
            }
        }
        DisputeCommand::Accept { id } => {
            let r = client
                .accept_dispute(
                    session
                        .authed(pb::AcceptDisputeRequest {
                            dispute_id: id,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(d) = r.dispute {
                print_dispute(&d, json);
            }
        }
        DisputeCommand::Resolve {
            id,
            corrected,
            reason,
        } => {
            let resolution = if corrected {
                pb::Resolution::Corrected
            } else {
                pb::Resolution::Rejected
            };
            let r = client
                .resolve_dispute(
                    session
                        .authed(pb::ResolveDisputeRequest {
                            dispute_id: id,
                            resolution: resolution as i32,
                            reason,
                            idempotency_key: String::new(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(d) = r.dispute {
                print_dispute(&d, json);
            }
            if let Some(c) = r.certificate {
                let types = types_for_people(&mut session, &mut client).await;
                print_certificate(&c, &types, json);
            }
        }
        DisputeCommand::List { open, overdue } => {
            let mut page_token = String::new();
            loop {
                let r = client
                    .list_disputes(
                        session
                            .authed(pb::ListDisputesRequest {
                                open_only: open,
                                overdue_only: overdue,
                                page_size: 0,
                                page_token,
                            })
                            .await?,
                    )
                    .await
                    .map_err(explain)?
                    .into_inner();
                for d in &r.disputes {
                    print_dispute(d, json);
                }
                if r.next_page_token.is_empty() {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({ "overdue_count": r.overdue_count })
                        );
                    } else {
                        println!("overdue: {}", r.overdue_count);
                    }
                    break;
                }
                page_token = r.next_page_token;
            }
        }
    }
    Ok(())
}
