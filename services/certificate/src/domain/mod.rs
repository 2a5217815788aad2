//! The certificate service's rules, without I/O: certificate types and their field
//! schemas, the working-day calendar, certificate credentials and disputes.

pub mod calendar;
pub mod credential;
pub mod dispute;
pub mod types;

use credmesh_proto::status::FieldViolation;

/// A request that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The stable reason of the first violation (e.g. `FIELD_REQUIRED`).
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// Every offending field.
    pub violations: Vec<FieldViolation>,
}

/// Collects violations in check order; the first one names the reason.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    first: Option<(&'static str, String)>,
    violations: Vec<FieldViolation>,
}

impl Checks {
    pub(crate) fn fail(
        &mut self,
        reason: &'static str,
        field: &str,
        description: impl Into<String>,
    ) {
        let description = description.into();
        if self.first.is_none() {
            self.first = Some((reason, description.clone()));
        }
        self.violations
            .push(FieldViolation::new(field, description));
    }

    pub(crate) fn finish(self) -> Result<(), Invalid> {
        match self.first {
            None => Ok(()),
            Some((reason, first)) => {
                let n = self.violations.len();
                let message = if n == 1 {
                    first
                } else {
                    format!("{first} (and {} more invalid field(s))", n - 1)
                };
                Err(Invalid {
                    reason,
                    message,
                    violations: self.violations,
                })
            }
        }
    }
}

/// A single-field refusal.
pub fn invalid(reason: &'static str, field: &str, message: impl Into<String>) -> Invalid {
    let message = message.into();
    Invalid {
        reason,
        violations: vec![FieldViolation::new(field, message.clone())],
        message,
    }
}

/// A required free-text reason: trimmed, 1–500 characters.
pub fn reason(text: &str, field: &str) -> Result<String, Invalid> {
    let t = text.trim();
    if t.is_empty() {
        return Err(invalid(
            "REASON_REQUIRED",
            field,
            format!("{field} is required"),
        ));
    }
    if t.chars().count() > 500 {
        return Err(invalid(
            "REASON_TOO_LONG",
            field,
            format!("{field} is longer than 500 characters"),
        ));
    }
    Ok(t.to_string())
}
