//! `credmesh inspect …`: the inspection code CLI for departments (plan, join, list,
//! stats, policy import and history), inspectors (record) and enterprises (scan, evaluate).

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use credmesh_proto::inspection::v1::{
    self as pb, inspection_service_client::InspectionServiceClient,
    plan_inspection_response::Decision,
};

use super::{
    ClientOpts, rfc3339,
    session::{Session, explain},
};

/// `credmesh inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: InspectCommand,
}

/// Inspection types, as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    Routine,
    Special,
    Triggered,
    FollowUp,
}

/// Triggers, as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TriggerArg {
    Complaint,
    Referral,
    MonitoringAlert,
}

/// A department's basis and inspectors, shared by plan and join.
#[derive(Debug, Args)]
struct Basis {
    /// Inspection items (item codes), repeatable.
    #[arg(long = "item", required = true)]
    items: Vec<String>,
    /// The inspection type.
    #[arg(long = "type", value_enum, default_value = "routine")]
    kind: TypeArg,
    /// The filed plan number (routine, special, follow-up).
    #[arg(long, default_value = "")]
    plan_number: String,
    /// The trigger (triggered inspections).
    #[arg(long, value_enum)]
    trigger: Option<TriggerArg>,
    /// The trigger's reason.
    #[arg(long, default_value = "")]
    reason: String,
    /// Inspectors as CLIENT_ID=CERTIFICATE_NUMBER, repeatable.
    #[arg(long = "inspector", required = true)]
    inspectors: Vec<String>,
    /// The department (operators only; departments plan for themselves).
    #[arg(long, default_value = "")]
    department: String,
    /// Idempotency key, so a retried command acts once.
    #[arg(long, default_value = "")]
    idempotency_key: String,
}

impl Basis {
    fn kind(&self) -> i32 {
        (match self.kind {
            TypeArg::Routine => pb::InspectionType::Routine,
            TypeArg::Special => pb::InspectionType::Special,
            TypeArg::Triggered => pb::InspectionType::Triggered,
            TypeArg::FollowUp => pb::InspectionType::FollowUp,
        }) as i32
    }

    fn trigger(&self) -> i32 {
        (match self.trigger {
            None => pb::Trigger::Unspecified,
            Some(TriggerArg::Complaint) => pb::Trigger::Complaint,
            Some(TriggerArg::Referral) => pb::Trigger::Referral,
            Some(TriggerArg::MonitoringAlert) => pb::Trigger::MonitoringAlert,
        }) as i32
    }

    fn inspectors(&self) -> anyhow::Result<Vec<pb::Inspector>> {
        self.inspectors
            .iter()
            .map(|s| {
                let (id, cert) = s
                    .split_once('=')
                    .with_context(|| format!("--inspector '{s}' is not CLIENT_ID=CERTIFICATE"))?;
                Ok(pb::Inspector {
                    client_id: id.trim().to_string(),
                    enforcement_certificate: cert.trim().to_string(),
                    department: String::new(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Subcommand)]
enum InspectCommand {
    /// Plan an inspection: the answer is a code, a conflict to join, or a refusal.
    ///
    /// Exit status: 0 when a code is issued, 3 on a conflict to join, 4 on a refusal by
    /// a rule, 1 on an error.
    Plan {
        /// The enterprise's unified social credit code.
        uscc: String,
        #[command(flatten)]
        basis: Basis,
        /// First day of the window (YYYY-MM-DD, China Standard Time) or Unix seconds.
        #[arg(long)]
        start: String,
        /// Length of the window in days.
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Go ahead despite other departments' inspections, with this recorded reason.
        #[arg(long, default_value = "")]
        override_reason: String,
    },
    /// Join another department's inspection: one code, several departments.
    Join {
        /// The inspection id.
        inspection_id: String,
        #[command(flatten)]
        basis: Basis,
    },
    /// Show one inspection and its code.
    Show {
        /// The inspection id.
        inspection_id: String,
    },
    /// Write an inspection's code as a QR image to show on site: SVG, or PNG when
    /// `--out` ends in `.png`. Where the deployment has a public URL it links to the scan
    /// page, so the enterprise can check it with any phone camera.
    Qr {
        /// The inspection id.
        inspection_id: String,
        /// Where to write the image.
        #[arg(long, default_value = "inspection-code.svg")]
        out: std::path::PathBuf,
    },
    /// List inspections of an enterprise or a department, newest first.
    List {
        /// The department.
        #[arg(long, default_value = "", conflicts_with = "enterprise")]
        department: String,
        /// The enterprise.
        #[arg(long, default_value = "")]
        enterprise: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The history of policy changes (credit grades, "two no" lists, non-site checks).
    History {
        /// Only this enterprise.
        #[arg(long, default_value = "")]
        enterprise: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Scan a code on site (enterprises): QR text or VC-JWT, `-` reads stdin.
    Scan {
        /// The scanned code.
        code: String,
    },
    /// Record an inspection's result (the inspectors the code names).
    Record {
        /// The inspection id.
        inspection_id: String,
        /// Something was found.
        #[arg(long)]
        findings: bool,
        /// What was found, or a note.
        #[arg(long, default_value = "")]
        summary: String,
        /// Idempotency key.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Evaluate a completed inspection (the inspected enterprise, once).
    Evaluate {
        /// The inspection id.
        inspection_id: String,
        /// 1 (worst) to 5 (best).
        #[arg(long)]
        score: u32,
        /// Tags (code_shown, professional, excessive_document_requests, …), repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
        /// Idempotency key.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
    /// Statistics of a department or an enterprise over the last year.
    Stats {
        /// The department.
        #[arg(long, default_value = "", conflicts_with = "enterprise")]
        department: String,
        /// The enterprise.
        #[arg(long, default_value = "")]
        enterprise: String,
    },
    /// An enterprise's credit grade.
    Grade {
        /// The enterprise's unified social credit code.
        uscc: String,
    },
    /// Import policy data from a CSV file, all or nothing. Columns:
    /// kind,enterprise_uscc,item,grade,clean,checked_at,removed,note; kind is
    /// credit_grade, monitoring_list, do_not_disturb or non_site_check; checked_at is
    /// YYYY-MM-DD or Unix seconds; a first line starting with "kind" is a header.
    Import {
        /// The CSV file, `-` for stdin.
        file: String,
        /// Idempotency key.
        #[arg(long, default_value = "")]
        idempotency_key: String,
    },
}

/// Unix seconds of `YYYY-MM-DD` at midnight China Standard Time, or of a number.
fn unix_of(text: &str) -> anyhow::Result<i64> {
    if let Ok(n) = text.trim().parse::<i64>() {
        return Ok(n);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    // The parse error's own cause repeats it, so it is told once, in the sentence.
    let date = time::Date::parse(text.trim(), &format)
        .map_err(|e| anyhow::anyhow!("'{text}' is neither YYYY-MM-DD nor Unix seconds ({e})"))?;
    let cst = time::UtcOffset::from_hms(8, 0, 0)?;
    Ok(date.midnight().assume_offset(cst).unix_timestamp())
}

fn read_input(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else if std::path::Path::new(arg).exists() {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))
    } else {
        Ok(arg.to_string())
    }
}

/// Parses the policy CSV.
fn policy_entries(text: &str) -> anyhow::Result<Vec<pb::PolicyEntry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("kind")) {
            continue;
        }
        let f: Vec<&str> = line.splitn(8, ',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or_default();
        let kind = match get(0) {
            "credit_grade" => pb::PolicyKind::CreditGrade,
            "monitoring_list" => pb::PolicyKind::MonitoringList,
            "do_not_disturb" => pb::PolicyKind::DoNotDisturb,
            "non_site_check" => pb::PolicyKind::NonSiteCheck,
            other => anyhow::bail!("line {}: unknown kind '{other}'", n + 1),
        };
        let grade = match get(3).to_ascii_uppercase().as_str() {
            "A" => pb::CreditGrade::A,
            "B" => pb::CreditGrade::B,
            "C" => pb::CreditGrade::C,
            "D" => pb::CreditGrade::D,
            _ => pb::CreditGrade::Unspecified,
        };
        let flag = |s: &str| matches!(s, "true" | "yes" | "1");
        out.push(pb::PolicyEntry {
            kind: kind as i32,
            enterprise_uscc: get(1).to_string(),
            item: get(2).to_string(),
            grade: grade as i32,
            clean: flag(get(4)),
            checked_at: if get(5).is_empty() {
                0
            } else {
                unix_of(get(5)).with_context(|| format!("line {}", n + 1))?
            },
            removed: flag(get(6)),
            note: get(7).to_string(),
        });
    }
    Ok(out)
}

fn print_inspection(i: &pb::Inspection, json: bool) {
    let code = i.code.as_ref();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": i.id,
                "enterprise": i.enterprise_uscc,
                "enterprise_name": i.enterprise_name,
                "departments": i.participants.iter().map(|p| &p.department).collect::<Vec<_>>(),
                "inspectors": i.inspectors.iter().map(|p| &p.client_id).collect::<Vec<_>>(),
                "window": [i.window_start, i.window_end],
                "state": pb::InspectionState::try_from(i.state).map(|s| s.as_str_name()).unwrap_or("?"),
                "multi_head": i.multi_head,
                "shown_at": i.shown_at,
                "has_findings": i.result.as_ref().map(|r| r.has_findings),
                "alerts": i.alerts.iter().map(|a| &a.message).collect::<Vec<_>>(),
                "code_version": code.map(|c| c.version),
                "qr_text": code.map(|c| &c.qr_text),
                "scan_url": code.map(|c| &c.scan_url).filter(|u| !u.is_empty()),
                "vc_jwt": code.map(|c| &c.vc_jwt),
            })
        );
        return;
    }
    println!("inspection   {}", i.id);
    println!("enterprise   {} {}", i.enterprise_uscc, i.enterprise_name);
    for p in &i.participants {
        println!(
            "department   {} ({}; items {})",
            p.department,
            type_name(p.r#type),
            p.items.join(", ")
        );
    }
    for n in &i.inspectors {
        println!(
            "inspector    {} (certificate {})",
            n.client_id, n.enforcement_certificate
        );
    }
    println!(
        "window       {} – {}",
        rfc3339(i.window_start),
        rfc3339(i.window_end)
    );
    println!("state        {}", state_name(i.state));
    if i.shown_at != 0 {
        println!("shown        {}", rfc3339(i.shown_at));
    }
    if let Some(r) = &i.result {
        println!(
            "result       {}: {} (recorded by {} at {})",
            if r.has_findings {
                "findings"
            } else {
                "no findings"
            },
            r.summary,
            r.recorded_by,
            rfc3339(r.recorded_at)
        );
    }
    for a in &i.alerts {
        println!("alert        {}", a.message);
    }
    if let Some(c) = code {
        println!("code         version {}", c.version);
        println!("QR text      {}", c.qr_text);
        if !c.scan_url.is_empty() {
            println!("scan page    {}", c.scan_url);
        }
    }
}

/// Exit status of `plan` on a conflict to join.
const EXIT_CONFLICT: i32 = 3;
/// Exit status of `plan` on a refusal by a rule.
const EXIT_REFUSED: i32 = 4;

/// An inspection type as people say it.
fn type_name(t: i32) -> &'static str {
    match pb::InspectionType::try_from(t) {
        Ok(pb::InspectionType::Routine) => "routine",
        Ok(pb::InspectionType::Special) => "special",
        Ok(pb::InspectionType::Triggered) => "triggered",
        Ok(pb::InspectionType::FollowUp) => "follow-up",
        _ => "?",
    }
}

/// An inspection's state as people say it.
fn state_name(s: i32) -> &'static str {
    match pb::InspectionState::try_from(s) {
        Ok(pb::InspectionState::Issued) => "issued (planned)",
        Ok(pb::InspectionState::Shown) => "shown (on site)",
        Ok(pb::InspectionState::Completed) => "completed",
        _ => "?",
    }
}

/// Runs an inspect subcommand.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let mut session = Session::open(&args.opts).await?;
    let mut client = InspectionServiceClient::new(session.channel());
    let json = session.json;
    match args.command {
        InspectCommand::Plan {
            uscc,
            basis,
            start,
            days,
            override_reason,
        } => {
            let start = unix_of(&start)?;
            let req = pb::PlanInspectionRequest {
                enterprise_uscc: uscc,
                items: basis.items.clone(),
                r#type: basis.kind(),
                plan_number: basis.plan_number.clone(),
                trigger: basis.trigger(),
                trigger_reason: basis.reason.clone(),
                inspectors: basis.inspectors()?,
                window_start: start,
                window_end: start + days * 86_400,
                department: basis.department.clone(),
                override_reason,
                idempotency_key: basis.idempotency_key.clone(),
            };
            let answer = client
                .plan_inspection(session.authed(req).await?)
                .await
                .map_err(explain)?
                .into_inner();
            let status = match &answer.decision {
                Some(Decision::Conflict(_)) => Some(EXIT_CONFLICT),
                Some(Decision::Refused(_)) => Some(EXIT_REFUSED),
                _ => None,
            };
            match answer.decision {
                Some(Decision::Issued(i)) => {
                    if !json {
                        println!("issued");
                    }
                    print_inspection(&i, json);
                }
                Some(Decision::Conflict(c)) if json => {
                    println!(
                        "{}",
                        serde_json::json!({
                            "decision": "conflict",
                            "message": c.message,
                            "inspections": c.inspections.iter().map(|i| serde_json::json!({
                                "id": i.id,
                                "departments": i.participants.iter().map(|p| &p.department).collect::<Vec<_>>(),
                                "window": [i.window_start, i.window_end],
                            })).collect::<Vec<_>>(),
                        })
                    );
                }
                Some(Decision::Refused(r)) if json => {
                    println!(
                        "{}",
                        serde_json::json!({
                            "decision": "refused",
                            "rule": pb::Rule::try_from(r.rule).map(|r| r.as_str_name()).unwrap_or("?"),
                            "reason": r.reason,
                            "message": r.message,
                            "facts": r.facts.iter().map(|f| (f.name.clone(), f.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                        })
                    );
                }
                Some(Decision::Conflict(c)) => {
                    println!("conflict: {}", c.message);
                    for i in &c.inspections {
                        println!(
                            "  {} by {} (join: credmesh inspect join {} …)",
                            i.id,
                            i.participants
                                .iter()
                                .map(|p| p.department.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            i.id
                        );
                    }
                }
                Some(Decision::Refused(r)) => {
                    println!("refused [{}]: {}", r.reason, r.message);
                    for f in &r.facts {
                        println!("  {} = {}", f.name, f.value);
                    }
                }
                None => anyhow::bail!("the service answered no decision"),
            }
            // Only an issued code is success, so scripts can rely on the status.
            if let Some(code) = status {
                std::process::exit(code);
            }
        }
        InspectCommand::Join {
            inspection_id,
            basis,
        } => {
            let req = pb::JoinInspectionRequest {
                inspection_id,
                items: basis.items.clone(),
                r#type: basis.kind(),
                plan_number: basis.plan_number.clone(),
                trigger: basis.trigger(),
                trigger_reason: basis.reason.clone(),
                inspectors: basis.inspectors()?,
                department: basis.department.clone(),
                idempotency_key: basis.idempotency_key.clone(),
            };
            let r = client
                .join_inspection(session.authed(req).await?)
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(i) = r.inspection {
                print_inspection(&i, json);
            }
        }
        InspectCommand::Qr { inspection_id, out } => {
            let r = client
                .get_inspection(
                    session
                        .authed(pb::GetInspectionRequest {
                            inspection_id: inspection_id.clone(),
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            let code = r
                .inspection
                .and_then(|i| i.code)
                .with_context(|| format!("inspection {inspection_id} has no code to show"))?;
            let text = if code.scan_url.is_empty() {
                &code.qr_text
            } else {
                &code.scan_url
            };
            let png = out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"));
            let bytes = if png {
                credmesh_entcode::api::http::qr_png(text, 6)
            } else {
                credmesh_entcode::api::http::qr_svg(text).map(String::into_bytes)
            }
            .context("the code is too long for a QR image")?;
            std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
            if code.scan_url.is_empty() {
                println!(
                    "wrote {}: the bare QR text, which only credmesh-aware scanners read \
                     (with CREDMESH_PUBLIC_URL set, the inspection service links codes to \
                     the scan page)",
                    out.display()
                );
            } else {
                println!(
                    "wrote {}: a phone camera opens the scan page, which shows the code verified",
                    out.display()
                );
            }
        }
        InspectCommand::Show { inspection_id } => {
            let r = client
                .get_inspection(
                    session
                        .authed(pb::GetInspectionRequest { inspection_id })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(i) = r.inspection {
                print_inspection(&i, json);
            }
        }
        InspectCommand::List {
            department,
            enterprise,
            limit,
        } => {
            let mut token = String::new();
            let mut shown = 0;
            loop {
                let page = client
                    .list_inspections(
                        session
                            .authed(pb::ListInspectionsRequest {
                                enterprise_uscc: enterprise.clone(),
                                department: department.clone(),
                                page_size: limit.min(500),
                                page_token: token.clone(),
                            })
                            .await?,
                    )
                    .await
                    .map_err(explain)?
                    .into_inner();
                for i in &page.inspections {
                    if shown >= limit {
                        break;
                    }
                    shown += 1;
                    if json {
                        print_inspection(i, true);
                    } else {
                        println!(
                            "{}  {}  {}  {}  {}",
                            i.id,
                            i.enterprise_uscc,
                            rfc3339(i.window_start),
                            state_name(i.state),
                            i.participants
                                .iter()
                                .map(|p| p.department.as_str())
                                .collect::<Vec<_>>()
                                .join(",")
                        );
                    }
                }
                if page.next_page_token.is_empty() || shown >= limit {
                    break;
                }
                token = page.next_page_token;
            }
            if shown == 0 && !json {
                eprintln!("no inspections match");
            }
        }
        InspectCommand::History { enterprise, limit } => {
            let r = client
                .list_policy_history(
                    session
                        .authed(pb::ListPolicyHistoryRequest {
                            enterprise_uscc: enterprise,
                            page_size: limit.min(500),
                            ..Default::default()
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            for c in r.changes {
                let e = c.entry.unwrap_or_default();
                let kind = pb::PolicyKind::try_from(e.kind)
                    .map(|k| k.as_str_name().trim_start_matches("POLICY_KIND_"))
                    .unwrap_or("?");
                println!(
                    "{}  {}  {}  {} {} {}{}  by {} at {}",
                    c.id,
                    kind,
                    e.enterprise_uscc,
                    e.item,
                    pb::CreditGrade::try_from(e.grade)
                        .map(|g| g.as_str_name().trim_start_matches("CREDIT_GRADE_"))
                        .unwrap_or(""),
                    if e.removed { "removed" } else { "" },
                    if e.note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", e.note)
                    },
                    c.changed_by,
                    rfc3339(c.changed_at)
                );
            }
        }
        InspectCommand::Scan { code } => {
            let code = read_input(&code)?.trim().to_string();
            let r = client
                .scan_code(session.authed(pb::ScanCodeRequest { code }).await?)
                .await
                .map_err(explain)?
                .into_inner();
            if !json {
                println!(
                    "{}",
                    if r.first_shown {
                        "shown: the code verified and is recorded as shown"
                    } else {
                        "the code verified; it was shown before"
                    }
                );
            }
            if let Some(i) = r.inspection {
                print_inspection(&i, json);
            }
        }
        InspectCommand::Record {
            inspection_id,
            findings,
            summary,
            idempotency_key,
        } => {
            let r = client
                .record_result(
                    session
                        .authed(pb::RecordResultRequest {
                            inspection_id,
                            has_findings: findings,
                            summary,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if let Some(i) = r.inspection {
                print_inspection(&i, json);
            }
        }
        InspectCommand::Evaluate {
            inspection_id,
            score,
            tags,
            comment,
            idempotency_key,
        } => {
            let r = client
                .evaluate_inspection(
                    session
                        .authed(pb::EvaluateInspectionRequest {
                            inspection_id,
                            score,
                            tags,
                            comment,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"inspection_id": r.inspection_id, "evaluated_at": r.evaluated_at})
                );
            } else {
                println!(
                    "evaluated {} at {}",
                    r.inspection_id,
                    rfc3339(r.evaluated_at)
                );
            }
        }
        InspectCommand::Stats {
            department,
            enterprise,
        } => {
            let r = client
                .get_statistics(
                    session
                        .authed(pb::GetStatisticsRequest {
                            department,
                            enterprise_uscc: enterprise,
                            ..Default::default()
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            let s = r.statistics.unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "from": r.from, "to": r.to,
                        "inspections": s.inspections,
                        "routine_inspections": s.routine_inspections,
                        "enterprises": s.enterprises,
                        "repeat_inspections": s.repeat_inspections,
                        "repeat_rate": s.repeat_rate,
                        "multi_head_inspections": s.multi_head_inspections,
                        "multi_head_rate": s.multi_head_rate,
                        "joint_inspections": s.joint_inspections,
                        "joint_share": s.joint_share,
                        "completed": s.completed,
                        "evaluations": s.evaluations,
                        "mean_score": s.mean_score,
                        "score_counts": s.score_counts,
                        "tags": s.tags.iter().map(|t| (t.tag.clone(), t.count)).collect::<std::collections::BTreeMap<_, _>>(),
                        "alerts": s.alerts,
                        "scores_withheld": s.scores_withheld,
                    })
                );
            } else {
                println!(
                    "inspections      {} ({} routine, of {} {})",
                    s.inspections,
                    s.routine_inspections,
                    s.enterprises,
                    if s.enterprises == 1 {
                        "enterprise"
                    } else {
                        "enterprises"
                    }
                );
                println!("repeat rate      {:.3}", s.repeat_rate);
                println!("multi-head rate  {:.3}", s.multi_head_rate);
                println!("joint share      {:.3}", s.joint_share);
                println!("completed        {}", s.completed);
                if s.scores_withheld {
                    println!(
                        "evaluations      {} (scores withheld: too few to show without telling who rated what)",
                        s.evaluations
                    );
                } else {
                    println!(
                        "evaluations      {} (mean {:.2}, per score 1-5 {:?})",
                        s.evaluations, s.mean_score, s.score_counts
                    );
                }
                for t in &s.tags {
                    println!("  tag {} × {}", t.tag, t.count);
                }
                println!("alerts raised    {}", s.alerts);
            }
        }
        InspectCommand::Grade { uscc } => {
            let r = client
                .get_credit_grade(session.authed(pb::GetCreditGradeRequest { uscc }).await?)
                .await
                .map_err(explain)?
                .into_inner();
            let grade = pb::CreditGrade::try_from(r.grade)
                .map(|g| g.as_str_name().trim_start_matches("CREDIT_GRADE_"))
                .unwrap_or("?");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"uscc": r.uscc, "grade": grade, "updated_at": r.updated_at})
                );
            } else if r.updated_at == 0 {
                println!("{} grade {} (default: none imported)", r.uscc, grade);
            } else {
                println!(
                    "{} grade {} (set at {})",
                    r.uscc,
                    grade,
                    rfc3339(r.updated_at)
                );
            }
        }
        InspectCommand::Import {
            file,
            idempotency_key,
        } => {
            let entries = policy_entries(&read_input(&file)?)?;
            let r = client
                .import_policy_data(
                    session
                        .authed(pb::ImportPolicyDataRequest {
                            entries,
                            idempotency_key,
                        })
                        .await?,
                )
                .await
                .map_err(explain)?
                .into_inner();
            if json {
                println!("{}", serde_json::json!({"imported": r.imported}));
            } else {
                println!("imported {} entries", r.imported);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_csv_with_header_dates_and_flags_parses() {
        let e = policy_entries(
            "kind,enterprise_uscc,item,grade,clean,checked_at,removed,note\n\
             credit_grade,91310106MA1FL3Q19D,,A,,,,\n\
             non_site_check,91310106MA1FL3Q19D,food-safety,,true,2026-11-01,,remote check, clean\n",
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].grade, pb::CreditGrade::A as i32);
        assert!(e[1].clean);
        assert_eq!(e[1].checked_at, 1_793_462_400);
        assert_eq!(e[1].note, "remote check, clean");
        assert!(policy_entries("bogus,x").is_err());
    }
}
