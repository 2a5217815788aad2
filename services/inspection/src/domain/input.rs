//! Request validation: what every plan, join, result and evaluation must look like
//! before any rule is asked. Every offending field is listed.

use credmesh_proto::status::FieldViolation;
use credmesh_uscc::Uscc;

use super::rules::{Basis, DAY, Kind, Policy, TAGS, Trigger};

/// An invalid request: a stable reason, a sentence and the fields.
#[derive(Clone, Debug)]
pub struct Invalid {
    /// Stable reason of the first violation.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
    /// The fields.
    pub violations: Vec<FieldViolation>,
}

/// Collects violations; the first one names the reason.
#[derive(Debug, Default)]
pub struct Check {
    first: Option<(&'static str, String)>,
    violations: Vec<FieldViolation>,
}

impl Check {
    /// Records a violation of `field`.
    pub fn fail(&mut self, reason: &'static str, field: &str, description: impl Into<String>) {
        let d = description.into();
        if self.first.is_none() {
            self.first = Some((reason, format!("{field}: {d}")));
        }
        self.violations.push(FieldViolation::new(field, d));
    }

    /// Ok, or every violation.
    pub fn finish(self) -> Result<(), Invalid> {
        match self.first {
            None => Ok(()),
            Some((reason, message)) => Err(Invalid {
                reason,
                message: format!("the request is invalid: {message}"),
                violations: self.violations,
            }),
        }
    }
}

/// Parses a unified social credit code in `field`.
pub fn uscc(check: &mut Check, field: &str, value: &str) -> Option<Uscc> {
    match Uscc::parse(value) {
        Ok(u) => Some(u),
        Err(e) => {
            check.fail(
                e.reason(),
                field,
                format!("not a valid unified social credit code: {e}"),
            );
            None
        }
    }
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_control())
}

/// Validates item codes (1–50, each 1–64 printable characters, no commas), deduplicated.
pub fn items(check: &mut Check, items: &[String]) -> Vec<String> {
    if items.is_empty() || items.len() > 50 {
        check.fail(
            "ITEMS_INVALID",
            "items",
            "between 1 and 50 inspection items",
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let t = item.trim();
        if !printable(t) || t.chars().count() > 64 || t.contains(',') {
            check.fail(
                "ITEMS_INVALID",
                &format!("items[{i}]"),
                "an item code of 1-64 printable characters without commas",
            );
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// An inspector as named in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedInspector {
    /// Client id.
    pub client_id: String,
    /// Certificate number.
    pub certificate: String,
}

/// Validates 1–10 inspectors with client id and certificate number.
pub fn inspectors(check: &mut Check, given: &[(String, String)]) -> Vec<NamedInspector> {
    if given.is_empty() || given.len() > 10 {
        check.fail(
            "INSPECTORS_INVALID",
            "inspectors",
            "between 1 and 10 inspectors",
        );
    }
    let mut out: Vec<NamedInspector> = Vec::new();
    for (i, (id, cert)) in given.iter().enumerate() {
        let (id, cert) = (id.trim(), cert.trim());
        if !printable(id) || id.len() > 128 {
            check.fail(
                "INSPECTORS_INVALID",
                &format!("inspectors[{i}].client_id"),
                "the inspector's client id",
            );
        }
        if !printable(cert) || cert.chars().count() > 64 {
            check.fail(
                "INSPECTORS_INVALID",
                &format!("inspectors[{i}].enforcement_certificate"),
                "the inspector's law-enforcement certificate number",
            );
        }
        if !out.iter().any(|o| o.client_id == id) {
            out.push(NamedInspector {
                client_id: id.to_string(),
                certificate: cert.to_string(),
            });
        }
    }
    out
}

/// Builds a basis; the type must be set, a trigger must be known. Whether plan number
/// or trigger are present is rule 1's question, answered as a refusal.
pub fn basis(
    check: &mut Check,
    kind: Option<Kind>,
    plan_number: &str,
    trigger: Option<Option<Trigger>>,
    trigger_reason: &str,
) -> Basis {
    if kind.is_none() {
        check.fail(
            "TYPE_REQUIRED",
            "type",
            "routine, special, triggered or follow-up",
        );
    }
    let trigger = match trigger {
        Some(t) => t,
        None => {
            check.fail(
                "TRIGGER_INVALID",
                "trigger",
                "complaint, referral or monitoring alert",
            );
            None
        }
    };
    if plan_number.chars().count() > 100 {
        check.fail(
            "PLAN_NUMBER_INVALID",
            "plan_number",
            "at most 100 characters",
        );
    }
    if trigger_reason.chars().count() > 500 {
        check.fail(
            "TRIGGER_REASON_INVALID",
            "trigger_reason",
            "at most 500 characters",
        );
    }
    Basis {
        kind: kind.unwrap_or(Kind::Routine),
        plan_number: plan_number.trim().to_string(),
        trigger,
        trigger_reason: trigger_reason.trim().to_string(),
    }
}

/// Validates a window: start before end, at most the configured length, not over.
pub fn window(check: &mut Check, policy: &Policy, start: i64, end: i64, now: i64) {
    if start <= 0 || end <= start {
        check.fail(
            "WINDOW_INVALID",
            "window_end",
            "the window must end after it starts",
        );
    } else if end - start > policy.max_window_days * DAY {
        check.fail(
            "WINDOW_INVALID",
            "window_end",
            format!("a window of at most {} days", policy.max_window_days),
        );
    } else if end <= now {
        check.fail("WINDOW_INVALID", "window_end", "the window is already over");
    }
}

/// Validates an evaluation: score 1–5, known tags, comment at most 500 characters.
pub fn evaluation(check: &mut Check, score: u32, tags: &[String], comment: &str) -> Vec<String> {
    if !(1..=5).contains(&score) {
        check.fail("SCORE_INVALID", "score", "a score from 1 to 5");
    }
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        if !TAGS.contains(&t.as_str()) {
            check.fail(
                "TAG_INVALID",
                &format!("tags[{i}]"),
                format!("one of {}", TAGS.join(", ")),
            );
        } else if !out.contains(&t) {
            out.push(t);
        }
    }
    if comment.chars().count() > 500 {
        check.fail("COMMENT_TOO_LONG", "comment", "at most 500 characters");
    }
    out
}
