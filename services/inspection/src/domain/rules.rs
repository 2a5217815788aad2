//! The inspection rules 1–5 of DOMAIN.md as pure functions: a plan and the facts the
//! store read (inside the enterprise's locked transaction) in, a decision out. Every
//! rule is a [`Policy`] setting with DOMAIN.md's default; no I/O here, so each rule is
//! tested as a table with plain numbers for time.

use std::fmt;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The inspection type a department plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Routine (scheduled): plan number; capped by credit grade.
    Routine,
    /// Special (campaign): plan number.
    Special,
    /// Triggered: trigger and reason; passes the "two no" lists.
    Triggered,
    /// Follow-up of earlier findings: plan number.
    FollowUp,
}

impl Kind {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Routine => "routine",
            Kind::Special => "special",
            Kind::Triggered => "triggered",
            Kind::FollowUp => "follow_up",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Routine,
            Kind::Special,
            Kind::Triggered,
            Kind::FollowUp,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What caused a triggered inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A complaint or report.
    Complaint,
    /// A referral from another authority.
    Referral,
    /// A monitoring alert.
    MonitoringAlert,
}

impl Trigger {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Complaint => "complaint",
            Trigger::Referral => "referral",
            Trigger::MonitoringAlert => "monitoring_alert",
        }
    }

    /// The trigger of a stored name.
    pub fn parse(s: &str) -> Option<Trigger> {
        [
            Trigger::Complaint,
            Trigger::Referral,
            Trigger::MonitoringAlert,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A credit grade, A the lowest risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    /// A.
    A,
    /// B.
    B,
    /// C.
    C,
    /// D.
    D,
}

impl Grade {
    /// The stored letter.
    pub fn as_str(&self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
        }
    }

    /// The grade of a letter.
    pub fn parse(s: &str) -> Option<Grade> {
        match s.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Grade::A),
            "B" => Some(Grade::B),
            "C" => Some(Grade::C),
            "D" => Some(Grade::D),
            _ => None,
        }
    }

    fn index(&self) -> usize {
        *self as usize
    }
}

/// The rule behind a refusal (numbered as in DOMAIN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// 1: plan number or trigger and reason.
    PlanBasis,
    /// 2: monitoring list and do-not-disturb items.
    TwoNoLists,
    /// 3: routine inspections per 12 months by credit grade.
    Frequency,
    /// 3: an inspector's repeated no-finding inspections.
    InspectorBlock,
    /// 4: no multi-head inspection.
    MultiHead,
    /// 5: non-site checks first.
    NonSiteFirst,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::PlanBasis => "rule 1 (plan basis)",
            Rule::TwoNoLists => "rule 2 (the \"two no\" lists)",
            Rule::Frequency => "rule 3 (frequency by credit grade)",
            Rule::InspectorBlock => "rule 3 (inspector block)",
            Rule::MultiHead => "rule 4 (no multi-head inspection)",
            Rule::NonSiteFirst => "rule 5 (non-site first)",
        })
    }
}

/// The rule settings. Every one is configurable (`CREDMESH_INSPECTION_*`, see
/// `config.rs`); [`Policy::default`] holds DOMAIN.md's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Rule 1: planned types must cite a plan number, triggered ones a trigger and reason.
    pub require_basis: bool,
    /// Rule 2: apply the "two no" lists to routine and special inspections.
    pub two_no_lists: bool,
    /// Rule 3: routine inspections per rolling window by grade A, B, C, D; `None` is no cap.
    pub caps: [Option<u32>; 4],
    /// Rule 3: the rolling window of the caps, in days.
    pub cap_window_days: i64,
    /// Rule 3: the grade of an enterprise with none imported.
    pub default_grade: Grade,
    /// Rule 3: more on-site inspections than these in a day, a week (7 days) and a
    /// month (30 days) raise an alert.
    pub alert_limits: [u32; 3],
    /// Rule 3: no-finding inspections of one enterprise by one inspector within
    /// `block_window_days` after which a further routine one is refused; 0 disables.
    pub block_after: u32,
    /// Rule 3: the inspector block's window, in days.
    pub block_window_days: i64,
    /// Rule 4: other departments' inspections this many days either side conflict.
    pub conflict_days: i64,
    /// Rule 5: a clean non-site check of an item this recent refuses a routine on-site
    /// one; 0 disables.
    pub non_site_days: i64,
    /// Rule 7: days after completion in which the enterprise may evaluate.
    pub evaluation_days: i64,
    /// Longest window of a code, in days.
    pub max_window_days: i64,
    /// Rule 7: fewer evaluations than this are shown to a department only as a count,
    /// so an aggregate cannot tell it who rated what.
    pub min_evaluations: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_basis: true,
            two_no_lists: true,
            caps: [Some(1), Some(2), Some(4), None],
            cap_window_days: 365,
            default_grade: Grade::B,
            alert_limits: [1, 2, 3],
            block_after: 3,
            block_window_days: 365,
            conflict_days: 30,
            non_site_days: 90,
            evaluation_days: 15,
            max_window_days: 30,
            min_evaluations: 3,
        }
    }
}

impl Policy {
    /// The cap of `grade`.
    pub fn cap(&self, grade: Grade) -> Option<u32> {
        self.caps[grade.index()]
    }
}

/// A department's basis for inspecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Basis {
    /// The type.
    pub kind: Kind,
    /// The filed plan number, for planned types.
    pub plan_number: String,
    /// The trigger, for triggered ones.
    pub trigger: Option<Trigger>,
    /// The trigger's reason.
    pub trigger_reason: String,
}

/// A plan as the rules see it.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    /// The basis.
    pub basis: &'a Basis,
    /// Item codes.
    pub items: &'a [String],
    /// Inspector client ids.
    pub inspectors: &'a [String],
    /// Window start.
    pub start: i64,
    /// Set when the planner overrides conflicts.
    pub override_reason: &'a str,
}

/// What the store read about the enterprise, inside its locked transaction.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The imported grade, if any.
    pub grade: Option<Grade>,
    /// Whether the enterprise is on the monitoring list.
    pub monitored: bool,
    /// Planned items on the do-not-disturb list.
    pub do_not_disturb: Vec<String>,
    /// Window starts of routine inspections of the enterprise within one cap window
    /// either side of the plan's start (a joint inspection is one start).
    pub routine_starts: Vec<i64>,
    /// Window starts of every on-site inspection within 30 days either side.
    pub onsite_starts: Vec<i64>,
    /// Per named inspector: no-finding inspections of this enterprise in the block window.
    pub no_findings: Vec<(String, u32)>,
    /// Planned items with a clean non-site check in the window, and when.
    pub clean_non_site: Vec<(String, i64)>,
    /// Ids of other departments' planned or active inspections within the conflict period.
    pub conflicts: Vec<String>,
}

/// A refusal: the rule, a stable reason, a sentence and the facts used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The rule.
    pub rule: Rule,
    /// Stable reason, `SCREAMING_CASE`.
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// Facts used, name and value.
    pub facts: Vec<(String, String)>,
}

impl Refusal {
    /// The refusal as answered to a person: the rule, then its message.
    pub fn sentence(&self) -> String {
        format!("refused under {}: {}", self.rule, self.message)
    }
}

/// An on-site frequency alert (rule 3).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// `day`, `week` or `month`.
    pub period: String,
    /// On-site inspections in the period, the new one included.
    pub count: u32,
    /// The limit exceeded.
    pub limit: u32,
}

/// The decision on a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Issue the code, with any alerts raised.
    Issue {
        /// Frequency alerts.
        alerts: Vec<Alert>,
        /// Whether an override of conflicts makes it multi-head.
        multi_head: bool,
    },
    /// Other departments' inspections to join.
    Conflict(Vec<String>),
    /// A rule refused.
    Refuse(Refusal),
}

fn fact(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Rule 1: a planned inspection cites its plan number; a triggered one its trigger and
/// reason.
pub fn check_basis(policy: &Policy, basis: &Basis) -> Result<(), Refusal> {
    if !policy.require_basis {
        return Ok(());
    }
    let refuse = |reason, message: &str| Refusal {
        rule: Rule::PlanBasis,
        reason,
        message: message.to_string(),
        facts: vec![
            fact("type", basis.kind.as_str()),
            fact("plan_number", &basis.plan_number),
            fact(
                "trigger",
                basis.trigger.map(|t| t.as_str()).unwrap_or_default(),
            ),
            fact("trigger_reason", &basis.trigger_reason),
        ],
    };
    match basis.kind {
        Kind::Triggered if basis.trigger.is_none() => Err(refuse(
            "TRIGGER_REQUIRED",
            "a triggered inspection must cite its trigger (complaint, referral or monitoring alert) and the reason; the trigger is missing",
        )),
        Kind::Triggered if basis.trigger_reason.trim().is_empty() => Err(refuse(
            "TRIGGER_REQUIRED",
            "a triggered inspection must cite its trigger (complaint, referral or monitoring alert) and the reason; the reason is missing",
        )),
        Kind::Routine | Kind::Special | Kind::FollowUp if basis.plan_number.trim().is_empty() => {
            Err(refuse(
                "PLAN_NUMBER_REQUIRED",
                "a planned inspection must cite its filed plan number",
            ))
        }
        _ => Ok(()),
    }
}

/// The largest number of `points` inside any window `[s, s + len)` that contains `t`,
/// plus one for `t` itself. A window holding the most points can be slid right until
/// its start meets a point or `t`, so those starts are the only candidates: whether adding `t` breaks "at most N in any rolling
/// period" is `rolling_count(..) > N`.
pub fn rolling_count(points: &[i64], t: i64, len: i64) -> u32 {
    let candidates = points
        .iter()
        .copied()
        .filter(|p| *p > t - len && *p <= t)
        .chain(std::iter::once(t));
    candidates
        .map(|s| points.iter().filter(|p| **p >= s && **p < s + len).count() as u32)
        .max()
        .unwrap_or(0)
        + 1
}

/// Decides a plan: rules 1, 2, 5, the inspector block, 4, then the caps, in that order; the first
/// refusal is the answer. Alerts (rule 3) never refuse.
pub fn decide(policy: &Policy, plan: &Plan<'_>, facts: &Facts) -> Decision {
    match decide_inner(policy, plan, facts) {
        Ok(d) => d,
        Err(r) => Decision::Refuse(r),
    }
}

fn decide_inner(policy: &Policy, plan: &Plan<'_>, facts: &Facts) -> Result<Decision, Refusal> {
    let kind = plan.basis.kind;
    check_basis(policy, plan.basis)?;

    // Rule 2.
    if policy.two_no_lists && matches!(kind, Kind::Routine | Kind::Special) {
        if facts.monitored {
            return Err(Refusal {
                rule: Rule::TwoNoLists,
                reason: "ENTERPRISE_ON_MONITORING_LIST",
                message: format!(
                    "the enterprise is on the monitoring list, so {} inspections are refused; a triggered inspection is allowed",
                    kind.as_str()
                ),
                facts: vec![fact("monitoring_list", true), fact("type", kind.as_str())],
            });
        }
        if !facts.do_not_disturb.is_empty() {
            return Err(Refusal {
                rule: Rule::TwoNoLists,
                reason: "ITEM_DO_NOT_DISTURB",
                message: format!(
                    "the items {} are on the do-not-disturb list, so {} inspections of them are refused",
                    facts.do_not_disturb.join(", "),
                    kind.as_str()
                ),
                facts: vec![
                    fact("do_not_disturb_items", facts.do_not_disturb.join(",")),
                    fact("type", kind.as_str()),
                ],
            });
        }
    }

    // Rule 5.
    if policy.non_site_days > 0 && kind == Kind::Routine && !facts.clean_non_site.is_empty() {
        let items: Vec<&str> = facts
            .clean_non_site
            .iter()
            .map(|(i, _)| i.as_str())
            .collect();
        return Err(Refusal {
            rule: Rule::NonSiteFirst,
            reason: "CLEAN_NON_SITE_CHECK",
            message: format!(
                "a clean non-site check of {} in the last {} days makes a routine on-site inspection of it unnecessary",
                items.join(", "),
                policy.non_site_days
            ),
            facts: facts
                .clean_non_site
                .iter()
                .map(|(i, at)| fact(&format!("non_site_check.{i}"), at))
                .collect(),
        });
    }

    // Rule 3, inspector block.
    if policy.block_after > 0
        && kind == Kind::Routine
        && let Some((inspector, n)) = facts
            .no_findings
            .iter()
            .find(|(i, n)| *n >= policy.block_after && plan.inspectors.contains(i))
    {
        return Err(Refusal {
            rule: Rule::InspectorBlock,
            reason: "INSPECTOR_BLOCKED",
            message: format!(
                "inspector {inspector} made {n} inspections of this enterprise without findings in the last {} days and may not make another routine one",
                policy.block_window_days
            ),
            facts: vec![
                fact("inspector", inspector),
                fact("no_finding_inspections", n),
                fact("limit", policy.block_after),
            ],
        });
    }

    // Rule 4, before the caps: joining adds no visit, so a department that would pass
    // no cap is still offered the join.
    let multi_head = !facts.conflicts.is_empty();
    if multi_head && plan.override_reason.trim().is_empty() {
        return Ok(Decision::Conflict(facts.conflicts.clone()));
    }

    // Rule 3, frequency by grade.
    if kind == Kind::Routine {
        let grade = facts.grade.unwrap_or(policy.default_grade);
        if let Some(cap) = policy.cap(grade) {
            let count = rolling_count(
                &facts.routine_starts,
                plan.start,
                policy.cap_window_days * DAY,
            );
            if count > cap {
                return Err(Refusal {
                    rule: Rule::Frequency,
                    reason: "FREQUENCY_CAP_REACHED",
                    message: format!(
                        "the enterprise has credit grade {} and already has {} routine inspection(s) within {} days; grade {} allows {cap}",
                        grade.as_str(),
                        count - 1,
                        policy.cap_window_days,
                        grade.as_str()
                    ),
                    facts: vec![
                        fact("credit_grade", grade.as_str()),
                        fact("grade_imported", facts.grade.is_some()),
                        fact("routine_inspections_in_window", count - 1),
                        fact("cap", cap),
                        fact("window_days", policy.cap_window_days),
                    ],
                });
            }
        }
    }

    Ok(Decision::Issue {
        alerts: alerts(policy, &facts.onsite_starts, plan.start),
        multi_head,
    })
}

/// Rule 3's alerts: on-site inspections in a day, a week or a month above the limits.
pub fn alerts(policy: &Policy, onsite_starts: &[i64], start: i64) -> Vec<Alert> {
    [("day", DAY), ("week", 7 * DAY), ("month", 30 * DAY)]
        .into_iter()
        .zip(policy.alert_limits)
        .filter_map(|((period, len), limit)| {
            let count = rolling_count(onsite_starts, start, len);
            (count > limit).then(|| Alert {
                period: period.to_string(),
                count,
                limit,
            })
        })
        .collect()
}

/// Why a result cannot be recorded (rule 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultRefused {
    /// The caller is not an inspector the code names.
    NotNamed,
    /// The code was never shown.
    NotShown,
    /// Outside the window.
    OutsideWindow,
    /// Already recorded.
    AlreadyCompleted,
}

/// Rule 6: a result only from a named inspector, for a shown code, inside its window.
pub fn check_result(
    named: bool,
    shown_at: i64,
    completed: bool,
    window: (i64, i64),
    now: i64,
) -> Result<(), ResultRefused> {
    if completed {
        return Err(ResultRefused::AlreadyCompleted);
    }
    if !named {
        return Err(ResultRefused::NotNamed);
    }
    if shown_at == 0 {
        return Err(ResultRefused::NotShown);
    }
    if now < window.0 || now > window.1 {
        return Err(ResultRefused::OutsideWindow);
    }
    Ok(())
}

/// Why an evaluation is refused (rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvaluationRefused {
    /// Not completed yet.
    NotCompleted,
    /// The period after completion has passed.
    PeriodOver,
    /// Evaluated already; evaluations are immutable.
    AlreadyEvaluated,
}

/// Rule 7: once, after completion, within the evaluation period.
pub fn check_evaluation(
    policy: &Policy,
    completed_at: i64,
    evaluated: bool,
    now: i64,
) -> Result<(), EvaluationRefused> {
    if evaluated {
        return Err(EvaluationRefused::AlreadyEvaluated);
    }
    if completed_at == 0 {
        return Err(EvaluationRefused::NotCompleted);
    }
    if now > completed_at + policy.evaluation_days * DAY {
        return Err(EvaluationRefused::PeriodOver);
    }
    Ok(())
}

/// The evaluation tags an enterprise may give.
pub const TAGS: &[&str] = &[
    "code_shown",
    "code_not_shown",
    "professional",
    "unprofessional",
    "excessive_document_requests",
    "improper_requests",
    "efficient",
    "disruptive",
];

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    const T: i64 = 1_790_000_000;

    fn basis(kind: Kind) -> Basis {
        Basis {
            kind,
            plan_number: if kind == Kind::Triggered {
                String::new()
            } else {
                "沪市监检〔2026〕12号".into()
            },
            trigger: (kind == Kind::Triggered).then_some(Trigger::Complaint),
            trigger_reason: if kind == Kind::Triggered {
                "complaint 2026-118".into()
            } else {
                String::new()
            },
        }
    }

    fn decide_with(kind: Kind, facts: &Facts, override_reason: &str) -> Decision {
        let b = basis(kind);
        let items = vec!["food-safety".to_string()];
        let inspectors = vec!["insp-1".to_string()];
        decide(
            &Policy::default(),
            &Plan {
                basis: &b,
                items: &items,
                inspectors: &inspectors,
                start: T,
                override_reason,
            },
            facts,
        )
    }

    fn refused_by(d: &Decision) -> Option<(Rule, &'static str)> {
        match d {
            Decision::Refuse(r) => Some((r.rule, r.reason)),
            _ => None,
        }
    }

    #[test]
    fn rule_1_plan_basis_table() {
        let p = Policy::default();
        let cases: &[(Kind, &str, Option<Trigger>, &str, Option<&str>)] = &[
            (Kind::Routine, "P-1", None, "", None),
            (Kind::Routine, "", None, "", Some("PLAN_NUMBER_REQUIRED")),
            (Kind::Special, " ", None, "", Some("PLAN_NUMBER_REQUIRED")),
            (Kind::FollowUp, "", None, "", Some("PLAN_NUMBER_REQUIRED")),
            (Kind::Triggered, "", Some(Trigger::Complaint), "c-1", None),
            (
                Kind::Triggered,
                "P-1",
                None,
                "c-1",
                Some("TRIGGER_REQUIRED"),
            ),
            (
                Kind::Triggered,
                "",
                Some(Trigger::Referral),
                "",
                Some("TRIGGER_REQUIRED"),
            ),
        ];
        for (kind, plan, trigger, reason, want) in cases {
            let b = Basis {
                kind: *kind,
                plan_number: plan.to_string(),
                trigger: *trigger,
                trigger_reason: reason.to_string(),
            };
            let got = check_basis(&p, &b).err().map(|r| r.reason);
            assert_eq!(got, *want, "{kind:?} {plan:?} {trigger:?} {reason:?}");
        }
        let off = Policy {
            require_basis: false,
            ..Policy::default()
        };
        assert!(
            check_basis(
                &off,
                &Basis {
                    plan_number: String::new(),
                    ..basis(Kind::Routine)
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn rule_2_two_no_lists_table() {
        let monitored = Facts {
            monitored: true,
            ..Facts::default()
        };
        let dnd = Facts {
            do_not_disturb: vec!["food-safety".into()],
            ..Facts::default()
        };
        let cases: &[(Kind, &Facts, Option<&str>)] = &[
            (
                Kind::Routine,
                &monitored,
                Some("ENTERPRISE_ON_MONITORING_LIST"),
            ),
            (
                Kind::Special,
                &monitored,
                Some("ENTERPRISE_ON_MONITORING_LIST"),
            ),
            (Kind::Triggered, &monitored, None),
            (Kind::FollowUp, &monitored, None),
            (Kind::Routine, &dnd, Some("ITEM_DO_NOT_DISTURB")),
            (Kind::Triggered, &dnd, None),
        ];
        for (kind, facts, want) in cases {
            let d = decide_with(*kind, facts, "");
            assert_eq!(refused_by(&d).map(|r| r.1), *want, "{kind:?}");
            if want.is_some() {
                assert_eq!(refused_by(&d).unwrap().0, Rule::TwoNoLists);
            }
        }
    }

    #[test]
    fn rule_3_frequency_by_grade_table() {
        let year = 365 * DAY;
        // (grade, routine starts relative to T, refused?)
        let cases: &[(Option<Grade>, &[i64], bool)] = &[
            (Some(Grade::A), &[], false),
            (Some(Grade::A), &[-100 * DAY], true),
            (Some(Grade::A), &[-year], false),
            (Some(Grade::A), &[200 * DAY], true),
            (Some(Grade::B), &[-100 * DAY], false),
            (Some(Grade::B), &[-100 * DAY, -10 * DAY], true),
            // Two inspections 11 months apart either side: no 12-month window holds both
            // and the new one… except the ones containing T and one of them.
            (Some(Grade::B), &[-300 * DAY, 300 * DAY], false),
            (Some(Grade::C), &[-1, -2, -3], false),
            (Some(Grade::C), &[-1, -2, -3, -4], true),
            (Some(Grade::D), &[-1, -2, -3, -4, -5, -6], false),
            (None, &[-1], false),
            (None, &[-1, -2], true),
        ];
        for (grade, starts, refused) in cases {
            let facts = Facts {
                grade: *grade,
                routine_starts: starts.iter().map(|s| T + s).collect(),
                ..Facts::default()
            };
            let d = decide_with(Kind::Routine, &facts, "");
            assert_eq!(
                refused_by(&d),
                refused.then_some((Rule::Frequency, "FREQUENCY_CAP_REACHED")),
                "{grade:?} {starts:?}"
            );
            // Triggered inspections are never capped.
            let d = decide_with(Kind::Triggered, &facts, "");
            assert!(refused_by(&d).is_none());
        }
    }

    #[test]
    fn rule_3_refusal_names_grade_and_count() {
        let facts = Facts {
            grade: Some(Grade::A),
            routine_starts: vec![T - DAY],
            ..Facts::default()
        };
        let Decision::Refuse(r) = decide_with(Kind::Routine, &facts, "") else {
            panic!("refused expected");
        };
        assert!(r.message.contains("grade A"), "{}", r.message);
        assert!(
            r.facts
                .contains(&("routine_inspections_in_window".into(), "1".into()))
        );
        assert!(r.facts.contains(&("cap".into(), "1".into())));
    }

    #[test]
    fn rule_3_alerts_table() {
        // (on-site starts relative to T, expected alert periods)
        let cases: &[(&[i64], &[&str])] = &[
            (&[], &[]),
            (&[-3600], &["day"]),
            (&[-2 * DAY], &[]),
            (&[-2 * DAY, -3 * DAY], &["week"]),
            (&[-10 * DAY, -20 * DAY, -25 * DAY], &["month"]),
            (&[-1, -2, -3], &["day", "week", "month"]),
        ];
        for (starts, want) in cases {
            let starts: Vec<i64> = starts.iter().map(|s| T + s).collect();
            let got: Vec<String> = alerts(&Policy::default(), &starts, T)
                .into_iter()
                .map(|a| a.period)
                .collect();
            assert_eq!(got, *want, "{starts:?}");
        }
    }

    #[test]
    fn rule_3_inspector_block_table() {
        let cases: &[(Kind, &str, u32, bool)] = &[
            (Kind::Routine, "insp-1", 2, false),
            (Kind::Routine, "insp-1", 3, true),
            (Kind::Routine, "insp-2", 5, false),
            (Kind::Triggered, "insp-1", 3, false),
        ];
        for (kind, inspector, n, refused) in cases {
            let facts = Facts {
                no_findings: vec![(inspector.to_string(), *n)],
                ..Facts::default()
            };
            let d = decide_with(*kind, &facts, "");
            assert_eq!(
                refused_by(&d),
                refused.then_some((Rule::InspectorBlock, "INSPECTOR_BLOCKED")),
                "{kind:?} {inspector} {n}"
            );
        }
    }

    #[test]
    fn rule_4_conflicts_table() {
        let facts = Facts {
            conflicts: vec!["INS-1".into()],
            ..Facts::default()
        };
        assert_eq!(
            decide_with(Kind::Routine, &facts, ""),
            Decision::Conflict(vec!["INS-1".into()])
        );
        assert_eq!(
            decide_with(Kind::Triggered, &facts, ""),
            Decision::Conflict(vec!["INS-1".into()])
        );
        assert_eq!(
            decide_with(Kind::Routine, &facts, "urgent food poisoning follow-up"),
            Decision::Issue {
                alerts: vec![],
                multi_head: true
            }
        );
        assert_eq!(
            decide_with(Kind::Routine, &Facts::default(), ""),
            Decision::Issue {
                alerts: vec![],
                multi_head: false
            }
        );
    }

    #[test]
    fn rule_5_non_site_first_table() {
        let facts = Facts {
            clean_non_site: vec![("food-safety".into(), T - 30 * DAY)],
            ..Facts::default()
        };
        let cases: &[(Kind, bool)] = &[
            (Kind::Routine, true),
            (Kind::Special, false),
            (Kind::Triggered, false),
        ];
        for (kind, refused) in cases {
            assert_eq!(
                refused_by(&decide_with(*kind, &facts, "")),
                refused.then_some((Rule::NonSiteFirst, "CLEAN_NON_SITE_CHECK")),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn rule_6_results_table() {
        let w = (T, T + 10 * DAY);
        let cases: &[(bool, i64, bool, i64, Result<(), ResultRefused>)] = &[
            (true, T + 1, false, T + 2, Ok(())),
            (false, T + 1, false, T + 2, Err(ResultRefused::NotNamed)),
            (true, 0, false, T + 2, Err(ResultRefused::NotShown)),
            (
                true,
                T + 1,
                false,
                T + 11 * DAY,
                Err(ResultRefused::OutsideWindow),
            ),
            (
                true,
                T + 1,
                true,
                T + 2,
                Err(ResultRefused::AlreadyCompleted),
            ),
        ];
        for (named, shown, done, now, want) in cases {
            assert_eq!(check_result(*named, *shown, *done, w, *now), *want);
        }
    }

    #[test]
    fn rule_7_evaluation_table() {
        let p = Policy::default();
        let cases: &[(i64, bool, i64, Result<(), EvaluationRefused>)] = &[
            (T, false, T + DAY, Ok(())),
            (T, false, T + 15 * DAY, Ok(())),
            (
                T,
                false,
                T + 15 * DAY + 1,
                Err(EvaluationRefused::PeriodOver),
            ),
            (0, false, T, Err(EvaluationRefused::NotCompleted)),
            (T, true, T + 1, Err(EvaluationRefused::AlreadyEvaluated)),
        ];
        for (completed, evaluated, now, want) in cases {
            assert_eq!(check_evaluation(&p, *completed, *evaluated, *now), *want);
        }
    }

    #[test]
    fn a_conflict_is_offered_before_the_cap_and_an_override_meets_the_cap() {
        let facts = Facts {
            grade: Some(Grade::A),
            routine_starts: vec![T - DAY],
            conflicts: vec!["INS-1".into()],
            ..Facts::default()
        };
        assert_eq!(
            decide_with(Kind::Routine, &facts, ""),
            Decision::Conflict(vec!["INS-1".into()])
        );
        assert_eq!(
            refused_by(&decide_with(Kind::Routine, &facts, "separate visit needed")),
            Some((Rule::Frequency, "FREQUENCY_CAP_REACHED"))
        );
    }

    #[test]
    fn rules_are_checked_in_order_and_the_first_refusal_answers() {
        let facts = Facts {
            monitored: true,
            grade: Some(Grade::A),
            routine_starts: vec![T - 1],
            conflicts: vec!["INS-9".into()],
            ..Facts::default()
        };
        assert_eq!(
            refused_by(&decide_with(Kind::Routine, &facts, "")).map(|r| r.0),
            Some(Rule::TwoNoLists)
        );
    }
}
