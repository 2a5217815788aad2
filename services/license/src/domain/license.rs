//! What a valid license is: every field checked once, on receipt, with every violation
//! reported (so a clerk fixes a form in one go) and a stable reason for the first one.
//!
//! Text fields are full Unicode, counted in characters, trimmed, and refused when they
//! carry control characters or the invisible formatting characters (bidirectional
//! overrides, zero-width marks) that make two different names look alike. Dates are
//! ISO 8601 calendar dates in China Standard Time.

use credmesh_proto::status::FieldViolation;
use credmesh_uscc::{Region, Uscc};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};

use super::{
    authority::Authorities,
    id_number::{IdHash, IdNumber},
};

/// Registered name length, in characters.
pub const NAME_CHARS: (usize, usize) = (2, 100);
/// Entity type length.
pub const ENTITY_TYPE_CHARS: (usize, usize) = (2, 100);
/// Legal representative name length.
pub const REPRESENTATIVE_CHARS: (usize, usize) = (1, 50);
/// Domicile length.
pub const DOMICILE_CHARS: (usize, usize) = (5, 200);
/// Business scope length.
pub const SCOPE_CHARS: (usize, usize) = (2, 2000);
/// Reason length (amendments, deregistrations, revocations).
pub const REASON_CHARS: usize = 500;
/// Integer digits of an amount.
const AMOUNT_INTEGER_DIGITS: usize = 18;
/// Fraction digits of an amount.
const AMOUNT_FRACTION_DIGITS: usize = 6;

const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// An amount of money: a canonical decimal (no leading zeros) and an ISO 4217 code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    /// Canonical decimal text, e.g. `1000000.00`.
    pub amount: String,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
}

impl Money {
    /// The text of the `registered_capital` claim: `1000000.00 CNY`.
    pub fn display(&self) -> String {
        format!("{} {}", self.amount, self.currency)
    }
}

/// The validated content of one license version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// Registered name.
    pub name: String,
    /// Entity type.
    pub entity_type: String,
    /// Legal representative's name.
    pub legal_representative: String,
    /// Salted hash of the representative's ID number, if one was given.
    pub representative_id: Option<IdHash>,
    /// Registered capital.
    pub capital: Money,
    /// Date of establishment.
    pub established: Date,
    /// First day of the business term.
    pub term_start: Date,
    /// Last day of the business term; `None` for long-term.
    pub term_end: Option<Date>,
    /// Domicile.
    pub domicile: String,
    /// Business scope.
    pub scope: String,
    /// Registration authority.
    pub authority: Uscc,
    /// Issue date of this version.
    pub issue_date: Date,
}

impl Content {
    /// The `business_term` claim: an ISO 8601 interval, `start/end`, or `start/..` for a
    /// long-term (open-ended) term (ISO 8601-2).
    pub fn term_display(&self) -> String {
        match self.term_end {
            Some(end) => format!("{}/{}", iso(self.term_start), iso(end)),
            None => format!("{}/..", iso(self.term_start)),
        }
    }
}

/// ISO 8601 text of a date.
pub fn iso(date: Date) -> String {
    date.format(DATE).unwrap_or_default()
}

/// Parses an ISO 8601 calendar date (`2025-03-01`).
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text.trim(), DATE).ok()
}

/// A request that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The stable reason of the first violation (e.g. `USCC_CHECK_DIGIT`).
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// Every offending field.
    pub violations: Vec<FieldViolation>,
}

/// Collects violations in check order; the first one names the reason.
#[derive(Default)]
struct Checks {
    first: Option<(&'static str, String)>,
    violations: Vec<FieldViolation>,
}

impl Checks {
    fn fail(&mut self, reason: &'static str, field: &str, description: impl Into<String>) {
        let description = description.into();
        if self.first.is_none() {
            self.first = Some((reason, description.clone()));
        }
        self.violations
            .push(FieldViolation::new(field, description));
    }

    fn finish(self) -> Result<(), Invalid> {
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

/// Characters that render as nothing or reorder text: refused so that two names that
/// look the same are the same.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks a text field: trimmed length within `(min, max)` characters, no control or
/// invisible formatting characters (newlines allowed where `multiline`).
fn text(
    checks: &mut Checks,
    field: &str,
    value: &str,
    (min, max): (usize, usize),
    multiline: bool,
) -> String {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        checks.fail(
            "FIELD_LENGTH",
            field,
            format!("{field} must be {min} to {max} characters, not {n}"),
        );
    } else if v
        .chars()
        .any(|c| (c.is_control() && !(multiline && c == '\n')) || invisible(c))
    {
        checks.fail(
            "FIELD_CHARACTERS",
            field,
            format!("{field} may not contain control or invisible formatting characters"),
        );
    }
    v.to_string()
}

/// A money amount as it arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct MoneyInput<'a> {
    /// Decimal text.
    pub amount: &'a str,
    /// Currency code.
    pub currency: &'a str,
}

fn money(checks: &mut Checks, field: &str, m: MoneyInput<'_>) -> Money {
    let amount = m.amount.trim();
    let (int, frac) = match amount.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (amount, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_trimmed = int.trim_start_matches('0');
    let ok = digits(int)
        && int_trimmed.len() <= AMOUNT_INTEGER_DIGITS
        && frac.is_none_or(|f| digits(f) && f.len() <= AMOUNT_FRACTION_DIGITS);
    if !ok {
        checks.fail(
            "MONEY_INVALID",
            &format!("{field}.amount"),
            format!(
                "an amount is a non-negative decimal such as 1000000.00, with at most \
                 {AMOUNT_INTEGER_DIGITS} integer and {AMOUNT_FRACTION_DIGITS} fraction digits"
            ),
        );
    }
    let currency = m.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        checks.fail(
            "MONEY_INVALID",
            &format!("{field}.currency_code"),
            "a currency is a three-letter ISO 4217 code such as CNY",
        );
    }
    let int = if int_trimmed.is_empty() {
        "0"
    } else {
        int_trimmed
    };
    Money {
        amount: match frac {
            Some(f) => format!("{int}.{f}"),
            None => int.to_string(),
        },
        currency,
    }
}

fn date(checks: &mut Checks, field: &str, value: &str) -> Option<Date> {
    let d = parse_date(value);
    if d.is_none() {
        checks.fail(
            "DATE_INVALID",
            field,
            format!("{field} must be an ISO 8601 date such as 2025-03-01"),
        );
    }
    d
}

/// A business term as it arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct TermInput<'a> {
    /// First day; empty for the establishment date.
    pub start: &'a str,
    /// Last day; empty when long-term.
    pub end: &'a str,
    /// No end.
    pub long_term: bool,
}

/// The deployment facts validation needs.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// This deployment's region.
    pub region: Region,
    /// The known registration authorities.
    pub authorities: &'a Authorities,
    /// Today in China Standard Time.
    pub today: Date,
}

/// An establishment as it arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct EstablishInput<'a> {
    /// The enterprise's code.
    pub uscc: &'a str,
    /// Registered name.
    pub name: &'a str,
    /// Entity type.
    pub entity_type: &'a str,
    /// Legal representative.
    pub legal_representative: &'a str,
    /// Their ID number, or empty.
    pub legal_representative_id_number: &'a str,
    /// Registered capital, if given.
    pub capital: Option<MoneyInput<'a>>,
    /// Date of establishment.
    pub establishment_date: &'a str,
    /// Business term, if given.
    pub term: Option<TermInput<'a>>,
    /// Domicile.
    pub domicile: &'a str,
    /// Business scope.
    pub business_scope: &'a str,
    /// Registration authority's code.
    pub registration_authority: &'a str,
    /// Issue date, or empty for today.
    pub issue_date: &'a str,
}

/// Validates an establishment: the enterprise's code, its authority, then every field.
pub fn validate_establishment(
    input: &EstablishInput<'_>,
    rules: &Rules<'_>,
) -> Result<(Uscc, Content), Invalid> {
    let mut c = Checks::default();
    let uscc = match Uscc::parse(input.uscc) {
        Ok(u) => Some(u),
        Err(e) => {
            c.fail(
                e.reason(),
                "uscc",
                format!("the unified social credit code is invalid: {e}"),
            );
            None
        }
    };
    if let Some(u) = &uscc
        && u.registration_department() != '9'
    {
        c.fail(
            "USCC_NOT_MARKET_ENTITY",
            "uscc",
            format!(
                "code {u} was assigned by registering department {:?}; market-regulation \
                 authorities register market entities, whose codes begin with 9 (GB 32100-2015)",
                u.registration_department()
            ),
        );
    }
    let authority = match Uscc::parse(input.registration_authority) {
        Err(e) => {
            c.fail(
                "AUTHORITY_UNKNOWN",
                "registration_authority",
                format!("the registration authority's code is invalid: {e}"),
            );
            None
        }
        Ok(a) => match rules.authorities.get(a.as_str()) {
            None => {
                c.fail(
                    "AUTHORITY_UNKNOWN",
                    "registration_authority",
                    format!("{a} is not a registration authority known to this deployment"),
                );
                None
            }
            Some(known) => Some(known.uscc.clone()),
        },
    };
    if let (Some(u), Some(a)) = (&uscc, &authority)
        && u.region() != a.region()
    {
        c.fail(
            "USCC_REGION_MISMATCH",
            "uscc",
            format!(
                "code {u} belongs to division {} ({}), but the registration authority {a} \
                 registers in {}",
                u.division(),
                u.region().name_en(),
                a.region().name_en()
            ),
        );
    }
    let name = text(&mut c, "name", input.name, NAME_CHARS, false);
    let entity_type = text(
        &mut c,
        "entity_type",
        input.entity_type,
        ENTITY_TYPE_CHARS,
        false,
    );
    let legal_representative = text(
        &mut c,
        "legal_representative",
        input.legal_representative,
        REPRESENTATIVE_CHARS,
        false,
    );
    let representative_id = id_number(
        &mut c,
        "legal_representative_id_number",
        input.legal_representative_id_number,
        rules.today,
    )
    .map(|n| n.hash());
    let capital = match input.capital {
        Some(m) => money(&mut c, "registered_capital", m),
        None => {
            c.fail(
                "MONEY_INVALID",
                "registered_capital",
                "the registered capital is required",
            );
            Money {
                amount: String::new(),
                currency: String::new(),
            }
        }
    };
    let domicile = text(&mut c, "domicile", input.domicile, DOMICILE_CHARS, false);
    let scope = text(
        &mut c,
        "business_scope",
        input.business_scope,
        SCOPE_CHARS,
        true,
    );
    let established = date(&mut c, "establishment_date", input.establishment_date);
    let issue_date = if input.issue_date.trim().is_empty() {
        Some(rules.today)
    } else {
        date(&mut c, "issue_date", input.issue_date)
    };
    let term = match input.term {
        Some(t) => term(&mut c, t),
        None => {
            c.fail(
                "DATE_INVALID",
                "business_term",
                "the business term is required: an end date, or long_term",
            );
            None
        }
    };
    if let Some(e) = established {
        if e > rules.today {
            c.fail(
                "DATES_INCONSISTENT",
                "establishment_date",
                format!(
                    "the establishment date {} is in the future (today is {})",
                    iso(e),
                    iso(rules.today)
                ),
            );
        }
        if let Some(i) = issue_date {
            check_issue_date(&mut c, i, e, None, rules.today);
        }
        if let Some((start, end)) = term {
            check_term(&mut c, start.unwrap_or(e), end, e);
        }
    }
    c.finish()?;
    // Every Option is Some once no check failed.
    match (uscc, authority, established, issue_date, term) {
        (Some(uscc), Some(authority), Some(established), Some(issue_date), Some((start, end))) => {
            Ok((
                uscc,
                Content {
                    name,
                    entity_type,
                    legal_representative,
                    representative_id,
                    capital,
                    established,
                    term_start: start.unwrap_or(established),
                    term_end: end,
                    domicile,
                    scope,
                    authority,
                    issue_date,
                },
            ))
        }
        _ => Err(Invalid {
            reason: "LICENSE_INVALID",
            message: "the license is incomplete".into(),
            violations: Vec::new(),
        }),
    }
}

fn id_number(c: &mut Checks, field: &str, value: &str, today: Date) -> Option<IdNumber> {
    if value.trim().is_empty() {
        return None;
    }
    match IdNumber::parse(value, today) {
        Ok(n) => Some(n),
        Err(e) => {
            // Never echo the number.
            c.fail("ID_NUMBER_INVALID", field, e.to_string());
            None
        }
    }
}

/// A business term: `(start or None for the establishment date, end or None for long-term)`.
type Term = (Option<Date>, Option<Date>);

fn term(c: &mut Checks, t: TermInput<'_>) -> Option<Term> {
    let start = if t.start.trim().is_empty() {
        Some(None)
    } else {
        date(c, "business_term.start_date", t.start).map(Some)
    };
    let end = match (t.long_term, t.end.trim().is_empty()) {
        (true, true) => Some(None),
        (false, false) => date(c, "business_term.end_date", t.end).map(Some),
        (true, false) => {
            c.fail(
                "DATES_INCONSISTENT",
                "business_term",
                "a long-term business term has no end date",
            );
            None
        }
        (false, true) => {
            c.fail(
                "DATES_INCONSISTENT",
                "business_term.end_date",
                "the business term needs an end date, or long_term",
            );
            None
        }
    };
    Some((start?, end?))
}

fn check_term(c: &mut Checks, start: Date, end: Option<Date>, established: Date) {
    if start < established {
        c.fail(
            "DATES_INCONSISTENT",
            "business_term.start_date",
            format!(
                "the business term starts {}, before the establishment date {}",
                iso(start),
                iso(established)
            ),
        );
    }
    if let Some(end) = end
        && (end <= start || end <= established)
    {
        c.fail(
            "DATES_INCONSISTENT",
            "business_term.end_date",
            format!(
                "the business term ends {}, not after its start {} and the establishment date {}",
                iso(end),
                iso(start),
                iso(established)
            ),
        );
    }
}

fn check_issue_date(
    c: &mut Checks,
    issue: Date,
    established: Date,
    previous: Option<Date>,
    today: Date,
) {
    if issue < established {
        c.fail(
            "DATES_INCONSISTENT",
            "issue_date",
            format!(
                "the issue date {} is before the establishment date {}",
                iso(issue),
                iso(established)
            ),
        );
    } else if let Some(p) = previous
        && issue < p
    {
        c.fail(
            "DATES_INCONSISTENT",
            "issue_date",
            format!(
                "the issue date {} is before the current version's issue date {}",
                iso(issue),
                iso(p)
            ),
        );
    }
    if issue > today {
        c.fail(
            "DATES_INCONSISTENT",
            "issue_date",
            format!(
                "the issue date {} is in the future (today is {})",
                iso(issue),
                iso(today)
            ),
        );
    }
}

/// An amendment as it arrives: `None` leaves a field unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct AmendInput<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New entity type.
    pub entity_type: Option<&'a str>,
    /// New legal representative.
    pub legal_representative: Option<&'a str>,
    /// The (new) representative's ID number.
    pub legal_representative_id_number: Option<&'a str>,
    /// New registered capital.
    pub capital: Option<MoneyInput<'a>>,
    /// New business term.
    pub term: Option<TermInput<'a>>,
    /// New domicile.
    pub domicile: Option<&'a str>,
    /// New business scope.
    pub business_scope: Option<&'a str>,
    /// Issue date of the new version, or empty for today.
    pub issue_date: &'a str,
}

/// One changed field, for the audit history.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The field.
    pub field: &'static str,
    /// The old value (JSON null for the representative's ID, never shown).
    pub from: serde_json::Value,
    /// The new value.
    pub to: serde_json::Value,
}

/// The next version's content and what changed.
#[derive(Clone, Debug)]
pub struct Amended {
    /// The new content.
    pub content: Content,
    /// The changed fields, in claim order.
    pub changes: Vec<Change>,
}

/// Applies an amendment to the current content. Refuses an amendment that changes
/// nothing (`AMENDMENT_EMPTY`), and checks every given field and the dates again.
pub fn amend(
    current: &Content,
    input: &AmendInput<'_>,
    rules: &Rules<'_>,
) -> Result<Amended, Invalid> {
    let mut c = Checks::default();
    let mut next = current.clone();
    let mut changes = Vec::new();
    let mut note = |field: &'static str, from: String, to: &str| {
        if from != to {
            changes.push(Change {
                field,
                from: from.into(),
                to: to.into(),
            });
        }
    };
    if let Some(v) = input.name {
        next.name = text(&mut c, "name", v, NAME_CHARS, false);
        note("name", current.name.clone(), &next.name);
    }
    if let Some(v) = input.entity_type {
        next.entity_type = text(&mut c, "entity_type", v, ENTITY_TYPE_CHARS, false);
        note(
            "entity_type",
            current.entity_type.clone(),
            &next.entity_type,
        );
    }
    if let Some(v) = input.legal_representative {
        next.legal_representative = text(
            &mut c,
            "legal_representative",
            v,
            REPRESENTATIVE_CHARS,
            false,
        );
        note(
            "legal_representative",
            current.legal_representative.clone(),
            &next.legal_representative,
        );
    }
    if let Some(m) = input.capital {
        next.capital = money(&mut c, "registered_capital", m);
        note(
            "registered_capital",
            current.capital.display(),
            &next.capital.display(),
        );
    }
    if let Some(v) = input.domicile {
        next.domicile = text(&mut c, "domicile", v, DOMICILE_CHARS, false);
        note("domicile", current.domicile.clone(), &next.domicile);
    }
    if let Some(v) = input.business_scope {
        next.scope = text(&mut c, "business_scope", v, SCOPE_CHARS, true);
        note("business_scope", current.scope.clone(), &next.scope);
    }
    if let Some(t) = input.term
        && let Some((start, end)) = term(&mut c, t)
    {
        next.term_start = start.unwrap_or(current.established);
        next.term_end = end;
        check_term(&mut c, next.term_start, next.term_end, current.established);
        note(
            "business_term",
            current.term_display(),
            &next.term_display(),
        );
    }
    // The representative's ID: a new number replaces the record; a new representative
    // without a number drops the old representative's.
    let representative_changed = next.legal_representative != current.legal_representative;
    let id_change = match input.legal_representative_id_number {
        Some(v) if !v.trim().is_empty() => {
            id_number(&mut c, "legal_representative_id_number", v, rules.today).and_then(|n| {
                let same = current
                    .representative_id
                    .as_ref()
                    .is_some_and(|h| n.matches(h));
                if same && !representative_changed {
                    None
                } else {
                    next.representative_id = Some(n.hash());
                    Some(if current.representative_id.is_some() {
                        "replaced"
                    } else {
                        "recorded"
                    })
                }
            })
        }
        _ if representative_changed && current.representative_id.is_some() => {
            next.representative_id = None;
            Some("removed")
        }
        _ => None,
    };
    if let Some(what) = id_change {
        changes.push(Change {
            field: "legal_representative_id",
            from: serde_json::Value::Null,
            to: what.into(),
        });
    }
    next.issue_date = if input.issue_date.trim().is_empty() {
        rules.today
    } else {
        date(&mut c, "issue_date", input.issue_date).unwrap_or(current.issue_date)
    };
    check_issue_date(
        &mut c,
        next.issue_date,
        current.established,
        Some(current.issue_date),
        rules.today,
    );
    c.finish()?;
    if changes.is_empty() {
        return Err(Invalid {
            reason: "AMENDMENT_EMPTY",
            message: "the amendment changes no license field".into(),
            violations: vec![FieldViolation::new(
                "uscc",
                "give at least one field whose value differs from the current version",
            )],
        });
    }
    Ok(Amended {
        content: next,
        changes,
    })
}

/// Checks a reason for the audit log: 1 to 500 characters, no control characters.
pub fn reason(value: &str, required: bool) -> Result<String, Invalid> {
    let v = value.trim();
    let n = v.chars().count();
    let bad_len = (required && n == 0) || n > REASON_CHARS;
    let bad_chars = v.chars().any(|c| c.is_control() || invisible(c));
    if bad_len || bad_chars {
        return Err(Invalid {
            reason: "REASON_INVALID",
            message: format!(
                "a reason of {}to {REASON_CHARS} characters without control characters is required for the audit history",
                if required { "1 " } else { "0 " }
            ),
            violations: vec![FieldViolation::new(
                "reason",
                format!("1 to {REASON_CHARS} characters"),
            )],
        });
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authority::{SHANGHAI_JINGAN, SHANGHAI_MUNICIPAL};
    use time::macros::date;

    const TODAY: Date = date!(2025 - 06 - 01);

    fn uscc(division: &str, body: &str) -> String {
        Uscc::from_parts('9', '1', division, body)
            .unwrap()
            .to_string()
    }

    fn input<'a>(code: &'a str) -> EstablishInput<'a> {
        EstablishInput {
            uscc: code,
            name: "上海静安面馆有限公司",
            entity_type: "有限责任公司（自然人投资或控股）",
            legal_representative: "王小明",
            legal_representative_id_number: "",
            capital: Some(MoneyInput {
                amount: "500000.00",
                currency: "cny",
            }),
            establishment_date: "2025-03-01",
            term: Some(TermInput {
                start: "",
                end: "",
                long_term: true,
            }),
            domicile: "上海市静安区南京西路1000号",
            business_scope: "餐饮服务；食品销售。",
            registration_authority: SHANGHAI_JINGAN,
            issue_date: "",
        }
    }

    fn rules(t: &Authorities) -> Rules<'_> {
        Rules {
            region: Region::Shanghai,
            authorities: t,
            today: TODAY,
        }
    }

    fn fields(e: &Invalid) -> Vec<&str> {
        e.violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn a_complete_establishment_is_accepted_and_normalised() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let (u, content) = validate_establishment(&input(&code), &rules(&t)).unwrap();
        assert_eq!(u.as_str(), code);
        assert_eq!(content.capital.display(), "500000.00 CNY");
        assert_eq!(content.term_start, date!(2025 - 03 - 01));
        assert_eq!(content.term_display(), "2025-03-01/..");
        assert_eq!(content.issue_date, TODAY);
        assert_eq!(content.authority.as_str(), SHANGHAI_JINGAN);
    }

    #[test]
    fn the_uscc_reason_is_passed_through_and_names_the_rule() {
        let t = Authorities::shanghai();
        let mut bad = uscc("310106", "MA1FL3Q1");
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        let e = validate_establishment(&input(&bad), &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "USCC_CHECK_DIGIT");
        assert!(
            e.message.contains("GB 32100-2015 position 18"),
            "{}",
            e.message
        );
        assert_eq!(fields(&e), ["uscc"]);
    }

    #[test]
    fn an_enterprise_of_another_region_or_department_is_refused() {
        let t = Authorities::shanghai();
        let js = uscc("320500", "MA1FL3Q1");
        let e = validate_establishment(&input(&js), &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "USCC_REGION_MISMATCH");
        let social = Uscc::from_parts('5', '1', "310106", "MA1FL3Q1")
            .unwrap()
            .to_string();
        let e = validate_establishment(&input(&social), &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "USCC_NOT_MARKET_ENTITY");
    }

    #[test]
    fn an_unknown_authority_is_refused() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let other = Uscc::from_parts('1', '1', "310106", "MB2F9999")
            .unwrap()
            .to_string();
        let mut i = input(&code);
        i.registration_authority = &other;
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "AUTHORITY_UNKNOWN");
        assert_eq!(fields(&e), ["registration_authority"]);
    }

    #[test]
    fn inconsistent_dates_are_each_reported() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let mut i = input(&code);
        i.establishment_date = "2025-07-01";
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "DATES_INCONSISTENT");
        assert!(fields(&e).contains(&"establishment_date"));

        let mut i = input(&code);
        i.term = Some(TermInput {
            start: "",
            end: "2025-02-01",
            long_term: false,
        });
        i.issue_date = "2025-02-15";
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "DATES_INCONSISTENT");
        assert_eq!(fields(&e), ["issue_date", "business_term.end_date"]);

        let mut i = input(&code);
        i.term = Some(TermInput {
            start: "",
            end: "2045-02-01",
            long_term: true,
        });
        i.establishment_date = "2025-3-1";
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(fields(&e), ["establishment_date", "business_term"]);
    }

    #[test]
    fn text_is_counted_in_characters_and_invisible_characters_are_refused() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let long = "面".repeat(100);
        let mut i = input(&code);
        i.name = &long;
        assert!(
            validate_establishment(&i, &rules(&t)).is_ok(),
            "100 characters fit"
        );
        let longer = "面".repeat(101);
        i.name = &longer;
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "FIELD_LENGTH");
        i.name = "上海\u{202E}面馆有限公司";
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "FIELD_CHARACTERS");
        i.name = "上海面馆\u{0007}有限公司";
        assert_eq!(
            validate_establishment(&i, &rules(&t)).unwrap_err().reason,
            "FIELD_CHARACTERS"
        );
        let mut i = input(&code);
        i.business_scope = "餐饮服务；\n食品销售。";
        assert!(
            validate_establishment(&i, &rules(&t)).is_ok(),
            "scope may span lines"
        );
    }

    #[test]
    fn money_is_a_decimal_with_a_currency_code() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        for (amount, ok) in [
            ("0", true),
            ("007.5", true),
            ("1.1234567", false),
            ("-5", false),
            ("1e6", false),
            ("", false),
            (".5", false),
        ] {
            let mut i = input(&code);
            i.capital = Some(MoneyInput {
                amount,
                currency: "CNY",
            });
            assert_eq!(
                validate_establishment(&i, &rules(&t)).is_ok(),
                ok,
                "{amount}"
            );
        }
        let mut i = input(&code);
        i.capital = Some(MoneyInput {
            amount: "007.50",
            currency: "US",
        });
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(fields(&e), ["registered_capital.currency_code"]);
    }

    #[test]
    fn an_id_number_is_checked_but_never_echoed() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let mut i = input(&code);
        i.legal_representative_id_number = "110105194912310021";
        let e = validate_establishment(&i, &rules(&t)).unwrap_err();
        assert_eq!(e.reason, "ID_NUMBER_INVALID");
        assert!(!format!("{e:?}").contains("110105"));
        i.legal_representative_id_number = "11010519491231002X";
        let (_, content) = validate_establishment(&i, &rules(&t)).unwrap();
        assert!(content.representative_id.is_some());
    }

    #[test]
    fn an_amendment_records_what_changed_and_refuses_no_change() {
        let t = Authorities::shanghai();
        let code = uscc("310106", "MA1FL3Q1");
        let mut i = input(&code);
        i.legal_representative_id_number = "11010519491231002X";
        let (_, current) = validate_establishment(&i, &rules(&t)).unwrap();
        let a = amend(
            &current,
            &AmendInput {
                domicile: Some("上海市静安区南京西路2000号"),
                legal_representative: Some("李四"),
                ..Default::default()
            },
            &rules(&t),
        )
        .unwrap();
        let changed: Vec<_> = a.changes.iter().map(|c| c.field).collect();
        assert_eq!(
            changed,
            [
                "legal_representative",
                "domicile",
                "legal_representative_id"
            ]
        );
        assert!(
            a.content.representative_id.is_none(),
            "old person's ID dropped"
        );
        let e = amend(
            &current,
            &AmendInput {
                name: Some(" 上海静安面馆有限公司 "),
                ..Default::default()
            },
            &rules(&t),
        )
        .unwrap_err();
        assert_eq!(e.reason, "AMENDMENT_EMPTY");
        let e = amend(
            &current,
            &AmendInput {
                name: Some("新名字有限公司"),
                issue_date: "2025-01-01",
                ..Default::default()
            },
            &rules(&t),
        )
        .unwrap_err();
        assert_eq!(e.reason, "DATES_INCONSISTENT");
        let _ = SHANGHAI_MUNICIPAL;
    }

    #[test]
    fn reasons_are_bounded() {
        assert!(reason("", true).is_err());
        assert!(reason("", false).is_ok());
        assert!(reason(&"因".repeat(501), true).is_err());
        assert_eq!(reason(" 股东会决议解散 ", true).unwrap(), "股东会决议解散");
    }
}
