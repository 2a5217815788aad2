//! `credmesh license …`: the registration authority's CLI for the enterprise register
//! and e-licenses.

use clap::{Args, Subcommand};
use credmesh_proto::license::v1::{self as pb, license_service_client::LicenseServiceClient};
use tonic::transport::Channel;

use super::{
    ClientOpts, rfc3339,
    session::{Session, explain},
};

/// `credmesh license` arguments.
#[derive(Debug, Args)]
pub struct LicenseArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: LicenseCommand,
}

/// The registered capital and business term flags shared by establish and amend.
#[derive(Debug, Args)]
struct TermAndCapital {
    /// Registered capital, a decimal amount (e.g. 500000.00).
    #[arg(long)]
    capital: Option<String>,
    /// The capital's ISO 4217 currency.
    #[arg(long, default_value = "CNY")]
    currency: String,
    /// First day of the business term (default: the establishment date).
    #[arg(long, default_value = "")]
    term_start: String,
    /// Last day of the business term.
    #[arg(long, conflicts_with = "long_term")]
    term_end: Option<String>,
    /// The business term has no end (长期).
    #[arg(long)]
    long_term: bool,
}

impl TermAndCapital {
    fn capital(&self) -> Option<pb::Money> {
        self.capital.as_ref().map(|amount| pb::Money {
            amount: amount.clone(),
            currency_code: self.currency.clone(),
        })
    }

    fn term(&self) -> Option<pb::BusinessTerm> {
        (self.long_term || self.term_end.is_some()).then(|| pb::BusinessTerm {
            start_date: self.term_start.clone(),
            end_date: self.term_end.clone().unwrap_or_default(),
            long_term: self.long_term,
        })
    }
}

#[derive(Debug, Subcommand)]
enum LicenseCommand {
    /// Establish an enterprise (设立登记) and issue version 1 of its license.
    Establish {
        /// The enterprise's unified social credit code (as every license command takes it).
        #[arg(required_unless_present = "uscc_flag", conflicts_with = "uscc_flag")]
        uscc: Option<String>,
        /// The same as `--uscc`, as earlier versions took it.
        #[arg(long = "uscc", id = "uscc_flag", hide = true)]
        uscc_flag: Option<String>,
        /// Registered name.
        #[arg(long)]
        name: String,
        /// Entity type, e.g. 有限责任公司（自然人投资或控股）.
        #[arg(long)]
        entity_type: String,
        /// Legal representative's name.
        #[arg(long)]
        legal_representative: String,
        /// Legal representative's resident ID number (kept only as a salted hash).
        #[arg(long, default_value = "")]
        legal_representative_id: String,
        #[command(flatten)]
        money_and_term: TermAndCapital,
        /// Date of establishment (YYYY-MM-DD).
        #[arg(long)]
        established: String,
        /// Domicile (住所).
        #[arg(long)]
        domicile: String,
        /// Business scope (经营范围).
        #[arg(long)]
        scope: String,
        /// The registration authority's unified social credit code.
        #[arg(long)]
        authority: String,
        /// Issue date (default today).
        #[arg(long, default_value = "")]
        issue_date: String,
        /// Idempotency key, so a retried command establishes once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Amend a license (变更登记): the next version with the given fields changed.
    Amend {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// Refuse unless this is the current version.
        #[arg(long, default_value_t = 0)]
        expected_version: u32,
        /// New registered name.
        #[arg(long)]
        name: Option<String>,
        /// New entity type.
        #[arg(long)]
        entity_type: Option<String>,
        /// New legal representative.
        #[arg(long)]
        legal_representative: Option<String>,
        /// The (new) representative's resident ID number.
        #[arg(long)]
        legal_representative_id: Option<String>,
        #[command(flatten)]
        money_and_term: TermAndCapital,
        /// New domicile.
        #[arg(long)]
        domicile: Option<String>,
        /// New business scope.
        #[arg(long)]
        scope: Option<String>,
        /// Issue date of the new version (default today).
        #[arg(long, default_value = "")]
        issue_date: String,
        /// What the amendment is for (audited).
        #[arg(long, default_value = "")]
        reason: String,
        /// Idempotency key, so a retried command amends once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Revoke a license (吊销) as a sanction.
    Revoke {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// Why: the penalty decision (audited).
        #[arg(long)]
        reason: String,
        /// Refuse unless this is the current version.
        #[arg(long, default_value_t = 0)]
        expected_version: u32,
        /// Idempotency key.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Deregister an enterprise (注销).
    Deregister {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
        /// Refuse unless this is the current version.
        #[arg(long, default_value_t = 0)]
        expected_version: u32,
        /// Idempotency key.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Show an enterprise's current license (or one version) with its signed forms.
    Show {
        /// The enterprise's unified social credit code.
        uscc: String,
        /// A past version instead of the current one.
        #[arg(long)]
        version: Option<u32>,
        /// Print only the QR text (for a QR code generator).
        #[arg(long, conflicts_with = "vc_jwt")]
        qr: bool,
        /// Print only the VC-JWT.
        #[arg(long)]
        vc_jwt: bool,
    },
    /// Show an enterprise's history: who changed what, when.
    History {
        /// The enterprise's unified social credit code.
        uscc: String,
    },
    /// List the register.
    List {
        /// Only enterprises of this registration authority.
        #[arg(long, default_value = "")]
        authority: String,
    },
}

fn state_name(s: i32) -> &'static str {
    match pb::EnterpriseState::try_from(s) {
        Ok(pb::EnterpriseState::Active) => "active",
        Ok(pb::EnterpriseState::Deregistered) => "deregistered",
        Ok(pb::EnterpriseState::Revoked) => "revoked",
        _ => "?",
    }
}

fn version_status(s: i32) -> &'static str {
    match pb::VersionStatus::try_from(s) {
        Ok(pb::VersionStatus::Current) => "current",
        Ok(pb::VersionStatus::Superseded) => "superseded",
        Ok(pb::VersionStatus::Revoked) => "revoked",
        _ => "?",
    }
}

fn print_license(e: Option<&pb::Enterprise>, v: &pb::LicenseVersion, json: bool) {
    let c = v.content.clone().unwrap_or_default();
    let capital = c.registered_capital.clone().unwrap_or_default();
    let term = c.business_term.clone().unwrap_or_default();
    let term_text = if term.long_term {
        format!("{} – long-term", term.start_date)
    } else {
        format!("{} – {}", term.start_date, term.end_date)
    };
    let status = v.status_reference.clone().unwrap_or_default();
    let signed = v.credential.clone().unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "uscc": v.uscc,
                "state": e.map(|e| state_name(e.state)),
                "version": v.version,
                "license_id": v.license_id,
                "status": version_status(v.status),
                "name": c.name,
                "entity_type": c.entity_type,
                "legal_representative": c.legal_representative,
                "registered_capital": format!("{} {}", capital.amount, capital.currency_code),
                "establishment_date": c.establishment_date,
                "business_term": {"start": term.start_date, "end": term.end_date, "long_term": term.long_term},
                "domicile": c.domicile,
                "business_scope": c.business_scope,
                "registration_authority": c.registration_authority,
                "registration_authority_name": c.registration_authority_name,
                "issue_date": c.issue_date,
                "status_list": status.list_id,
                "status_index": status.index,
                "kid": v.kid,
                "qr": signed.qr_text,
                "scan_url": signed.scan_url,
                "vc_jwt": signed.vc_jwt,
            })
        );
        return;
    }
    println!(
        "{}  version {}  {}{}",
        v.license_id,
        v.version,
        version_status(v.status),
        e.map(|e| format!("  (enterprise {})", state_name(e.state)))
            .unwrap_or_default()
    );
    let capital = format!("{} {}", capital.amount, capital.currency_code);
    let status = format!("{} #{}", status.list_id, status.index);
    let mut rows = vec![
        ("名称 name", c.name.as_str()),
        ("统一社会信用代码 USCC", v.uscc.as_str()),
        ("类型 type", c.entity_type.as_str()),
        ("法定代表人 representative", c.legal_representative.as_str()),
        ("注册资本 capital", capital.as_str()),
        ("成立日期 established", c.establishment_date.as_str()),
        ("营业期限 term", term_text.as_str()),
        ("住所 domicile", c.domicile.as_str()),
        ("经营范围 scope", c.business_scope.as_str()),
        ("登记机关 authority", c.registration_authority_name.as_str()),
        ("发照日期 issued", c.issue_date.as_str()),
        ("status", status.as_str()),
        ("kid", v.kid.as_str()),
    ];
    if let Some(e) = e
        && !e.state_reason.is_empty()
    {
        rows.push(("reason", e.state_reason.as_str()));
    }
    if !signed.qr_text.is_empty() {
        rows.push(("QR", signed.qr_text.as_str()));
    }
    if !signed.scan_url.is_empty() {
        rows.push(("扫码核验 scan page", signed.scan_url.as_str()));
    }
    super::print_rows(&rows);
}

/// One history entry's detail as a person reads it: the version written, each field
/// changed (from → to) and the reason; the recorded JSON when it is none of those.
fn history_summary(detail_json: &str) -> String {
    let Ok(detail) = serde_json::from_str::<serde_json::Value>(detail_json) else {
        return detail_json.to_owned();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".to_owned(),
        other => other.to_string(),
    };
    let mut parts = Vec::new();
    if let Some(version) = detail.get("version") {
        parts.push(format!("version {}", text(version)));
    }
    let changes: Vec<String> = detail
        .get("changes")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {} → {}",
                text(&c["field"]),
                text(&c["from"]),
                text(&c["to"])
            )
        })
        .collect();
    if !changes.is_empty() {
        parts.push(changes.join("; "));
    }
    if let Some(reason) = detail.get("reason").filter(|r| !r.is_null()) {
        parts.push(format!("reason: {}", text(reason)));
    }
    if parts.is_empty() {
        detail_json.to_owned()
    } else {
        parts.join(", ")
    }
}

/// Runs `credmesh license …`.
pub async fn run(args: LicenseArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.opts).await?;
    let mut client = LicenseServiceClient::<Channel>::new(session.channel());
    let json = session.json;
    match args.command {
        LicenseCommand::Establish {
            uscc,
            uscc_flag,
            name,
            entity_type,
            legal_representative,
            legal_representative_id,
            money_and_term,
            established,
            domicile,
            scope,
            authority,
            issue_date,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::EstablishEnterpriseRequest {
                    uscc: uscc.or(uscc_flag).unwrap_or_default(),
                    name,
                    entity_type,
                    legal_representative,
                    legal_representative_id_number: legal_representative_id,
                    registered_capital: money_and_term.capital(),
                    establishment_date: established,
                    business_term: money_and_term.term(),
                    domicile,
                    business_scope: scope,
                    registration_authority: authority,
                    issue_date,
                    idempotency_key,
                })
                .await?;
            let r = client
                .establish_enterprise(req)
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(v) = &r.license {
                print_license(r.enterprise.as_ref(), v, json);
            }
        }
        LicenseCommand::Amend {
            uscc,
            expected_version,
            name,
            entity_type,
            legal_representative,
            legal_representative_id,
            money_and_term,
            domicile,
            scope,
            issue_date,
            reason,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::AmendLicenseRequest {
                    uscc,
                    expected_version,
                    name,
                    entity_type,
                    legal_representative,
                    legal_representative_id_number: legal_representative_id,
                    registered_capital: money_and_term.capital(),
                    business_term: money_and_term.term(),
                    domicile,
                    business_scope: scope,
                    issue_date,
                    reason,
                    idempotency_key,
                })
                .await?;
            let r = client
                .amend_license(req)
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(v) = &r.license {
                print_license(r.enterprise.as_ref(), v, json);
            }
            if !json {
                println!("version {} is superseded", r.superseded_version);
            }
        }
        LicenseCommand::Revoke {
            uscc,
            reason,
            expected_version,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::RevokeLicenseRequest {
                    uscc,
                    reason,
                    expected_version,
                    idempotency_key,
                })
                .await?;
            let r = client
                .revoke_license(req)
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(v) = &r.license {
                print_license(r.enterprise.as_ref(), v, json);
            }
        }
        LicenseCommand::Deregister {
            uscc,
            reason,
            expected_version,
            idempotency_key,
        } => {
            let req = session
                .authed(pb::DeregisterEnterpriseRequest {
                    uscc,
                    reason,
                    expected_version,
                    idempotency_key,
                })
                .await?;
            let r = client
                .deregister_enterprise(req)
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(v) = &r.license {
                print_license(r.enterprise.as_ref(), v, json);
            }
        }
        LicenseCommand::Show {
            uscc,
            version,
            qr,
            vc_jwt,
        } => {
            let (enterprise, license) = match version {
                None => {
                    let req = session.authed(pb::GetLicenseRequest { uscc }).await?;
                    let r = client.get_license(req).await.map_err(explain)?.into_inner();
                    (r.enterprise, r.license)
                }
                Some(version) => {
                    let req = session
                        .authed(pb::GetLicenseVersionRequest { uscc, version })
                        .await?;
                    let r = client
                        .get_license_version(req)
                        .await
                        .map_err(explain)?
                        .into_inner();
                    (None, r.license)
                }
            };
            let Some(v) = license else {
                anyhow::bail!("the answer carried no license");
            };
            let signed = v.credential.clone().unwrap_or_default();
            if qr {
                println!("{}", signed.qr_text);
            } else if vc_jwt {
                println!("{}", signed.vc_jwt);
            } else {
                print_license(enterprise.as_ref(), &v, json);
            }
        }
        LicenseCommand::History { uscc } => {
            let mut token = String::new();
            loop {
                let req = session
                    .authed(pb::GetEnterpriseHistoryRequest {
                        uscc: uscc.clone(),
                        page_size: 0,
                        page_token: token.clone(),
                    })
                    .await?;
                let page = client
                    .get_enterprise_history(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                for h in &page.entries {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "id": h.id, "at": h.at, "actor": h.actor,
                                "actor_kind": h.actor_kind, "action": h.action,
                                "detail": serde_json::from_str::<serde_json::Value>(&h.detail_json).unwrap_or_default(),
                            })
                        );
                    } else {
                        println!(
                            "{:>6} {} {:<20} {:<12} {:<20} {}",
                            h.id,
                            rfc3339(h.at),
                            h.actor,
                            h.actor_kind,
                            h.action,
                            history_summary(&h.detail_json)
                        );
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        LicenseCommand::List { authority } => {
            let mut token = String::new();
            let mut shown = 0;
            loop {
                let req = session
                    .authed(pb::ListEnterprisesRequest {
                        page_size: 0,
                        page_token: token.clone(),
                        state: 0,
                        registration_authority: authority.clone(),
                    })
                    .await?;
                let page = client
                    .list_enterprises(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                shown += page.enterprises.len();
                for e in &page.enterprises {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "uscc": e.uscc, "name": e.name, "state": state_name(e.state),
                                "current_version": e.current_version, "license_id": e.license_id,
                                "registration_authority": e.registration_authority,
                            })
                        );
                    } else {
                        println!(
                            "{} {:<13} v{:<3} {}",
                            e.uscc,
                            state_name(e.state),
                            e.current_version,
                            e.name
                        );
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if shown == 0 && !json {
                eprintln!("no enterprises match");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::history_summary;

    #[test]
    fn a_history_entry_reads_as_what_changed_and_why() {
        let amend = r#"{"version":2,"license_id":"1.2.156","changes":[{"field":"domicile","from":"南京西路1266号","to":"南京西路1268号"}],"reason":"门牌号核实"}"#;
        assert_eq!(
            history_summary(amend),
            "version 2, domicile: 南京西路1266号 → 南京西路1268号, reason: 门牌号核实"
        );
        assert_eq!(
            history_summary(r#"{"reason":"沪市监处〔2026〕2号","state":"revoked"}"#),
            "reason: 沪市监处〔2026〕2号"
        );
        assert_eq!(history_summary(r#"{"other":1}"#), r#"{"other":1}"#);
        assert_eq!(history_summary("not json"), "not json");
    }
}
