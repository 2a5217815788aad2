//! The working-day calendar dispute deadlines are counted in.
//!
//! A working day is a Monday to Friday that is not a configured public holiday, or a
//! configured make-up working day (调休上班日, often a Saturday or Sunday next to a
//! holiday). The State Council publishes each year's holidays and make-up days in
//! December, so both lists are configuration, not code.
//!
//! A deadline of N working days after an event ends at the end (24:00 China Standard
//! Time) of the N-th working day after the event's day: a dispute filed on a Friday
//! evening with a 1-working-day deadline must be accepted by the end of Monday.

use std::collections::BTreeSet;

use time::{Date, Duration, OffsetDateTime, UtcOffset, Weekday};

/// China Standard Time, in which days begin and end.
pub const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Weekends, holidays and make-up working days.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkingCalendar {
    holidays: BTreeSet<Date>,
    workdays: BTreeSet<Date>,
}

impl WorkingCalendar {
    /// A calendar with `holidays` off and `workdays` (make-up days) on, besides the
    /// Monday-to-Friday week.
    pub fn new(
        holidays: impl IntoIterator<Item = Date>,
        workdays: impl IntoIterator<Item = Date>,
    ) -> Self {
        WorkingCalendar {
            holidays: holidays.into_iter().collect(),
            workdays: workdays.into_iter().collect(),
        }
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: Date) -> bool {
        if self.workdays.contains(&day) {
            return true;
        }
        if self.holidays.contains(&day) {
            return false;
        }
        !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
    }

    /// The `n`-th working day after `day` (`n` ≥ 1).
    pub fn add_working_days(&self, day: Date, n: u32) -> Date {
        let mut d = day;
        let mut left = n;
        // A year of holidays never exceeds a few weeks; the bound only stops a
        // misconfigured calendar (every day a holiday) from looping forever.
        for _ in 0..(n as usize * 7 + 400) {
            if left == 0 {
                break;
            }
            d = d.next_day().unwrap_or(d);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// The deadline `n` working days after the instant `at` (Unix seconds): the last
    /// second of the n-th working day after `at`'s day, in CST.
    pub fn deadline(&self, at: i64, n: u32) -> i64 {
        let day = cst_date(at);
        let due = self.add_working_days(day, n);
        let next = due.next_day().unwrap_or(due);
        next.midnight().assume_offset(CST).unix_timestamp() - 1
    }
}

/// The CST calendar date of an instant.
pub fn cst_date(at: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(at)
        .map(|t| t.to_offset(CST).date())
        .unwrap_or(Date::MIN)
}

/// The first instant of a CST date.
pub fn cst_start(day: Date) -> i64 {
    day.midnight().assume_offset(CST).unix_timestamp()
}

/// The last instant of the CST date `days` after `day` (a validity end).
pub fn cst_end_after(day: Date, days: i64) -> (Date, i64) {
    let last = day
        .checked_add(Duration::days(days.max(1) - 1))
        .unwrap_or(day);
    let end = last
        .next_day()
        .unwrap_or(last)
        .midnight()
        .assume_offset(CST)
        .unix_timestamp()
        - 1;
    (last, end)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_friday_filing_is_due_on_monday() {
        let cal = WorkingCalendar::default();
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 25), 1),
            date!(2026 - 09 - 28)
        );
    }

    #[test]
    fn holidays_are_skipped_and_make_up_days_count() {
        // National Day 2026: 1–7 October off, Sunday 27 September and Saturday
        // 10 October worked (the shape of the State Council's notice).
        let cal = WorkingCalendar::new(
            (1..=7).map(|d| Date::from_calendar_date(2026, time::Month::October, d).unwrap()),
            [date!(2026 - 09 - 27), date!(2026 - 10 - 10)],
        );
        assert!(cal.is_working_day(date!(2026 - 09 - 27)));
        assert!(!cal.is_working_day(date!(2026 - 10 - 01)));
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 30), 1),
            date!(2026 - 10 - 08)
        );
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 30), 3),
            date!(2026 - 10 - 10)
        );
    }

    #[test]
    fn a_deadline_is_the_last_second_of_the_day_in_china() {
        let cal = WorkingCalendar::default();
        // Monday 2026-09-21 10:00 CST.
        let at = cst_start(date!(2026 - 09 - 21)) + 10 * 3600;
        let due = cal.deadline(at, 1);
        assert_eq!(due, cst_start(date!(2026 - 09 - 23)) - 1);
    }
}
