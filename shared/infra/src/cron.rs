//! Cron expressions and time zones of manifest schedules: parsing with the rule that
//! failed named, and the ticks of a schedule between two instants. Pure; the
//! scheduler (gateway) and deploy's checks use the same functions so a schedule deploy
//! accepts is one the scheduler can run.
//!
//! Ticks are instants (UTC). An expression is read in the schedule's time zone: on a
//! day the clocks go forward, a local time that does not exist fires once at the first
//! minute after the gap; on a day they go back, a local time that happens twice fires
//! once, at its first occurrence (croner's OCPS behaviour, pinned by the tests below).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A schedule's expression and zone, ready to compute ticks.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    tz: Tz,
}

/// Parses a standard five-field expression (minute hour day-of-month month weekday;
/// names such as `MON` and `JAN`, lists, ranges, steps and the `@daily` nicknames).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "{expr:?} has {fields} fields; a cron expression has five: minute hour day-of-month month weekday (e.g. \"0 2 * * *\" for 02:00 every day)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

/// Parses an IANA time zone name such as `Europe/Paris`; absent means UTC.
pub fn parse_timezone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => n.parse::<Tz>().map_err(|_| {
            format!("{n:?} is not an IANA time zone name (such as \"Europe/Paris\" or \"UTC\")")
        }),
    }
}

impl CronSpec {
    pub fn new(expr: &str, timezone: Option<&str>) -> Result<CronSpec, String> {
        Ok(CronSpec {
            cron: parse_cron(expr)?,
            tz: parse_timezone(timezone)?,
        })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` ticks strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            match self.next_after(at) {
                Some(t) if t > at => {
                    out.push(t);
                    at = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The ticks in `(from, to]`, oldest first, at most `limit` of them (the newest
    /// ones when there are more: older ones are past any use).
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = from;
        while let Some(t) = self.next_after(at) {
            if t > to || t <= at {
                break;
            }
            out.push(t);
            if out.len() > limit {
                out.remove(0);
            }
            at = t;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_are_required_and_bad_fields_are_named() {
        assert!(parse_cron("0 2 * * *").is_ok());
        assert!(parse_cron("*/15 9-17 * * MON-FRI").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("0 0 2 * * *").unwrap_err().contains("6 fields"));
        assert!(parse_cron("0 2 * *").unwrap_err().contains("4 fields"));
        assert!(parse_cron("61 2 * * *").is_err());
        assert!(parse_cron("0 25 * * *").is_err());
        assert!(parse_timezone(Some("Mars/Olympus")).is_err());
        assert_eq!(parse_timezone(None).unwrap(), Tz::UTC);
    }

    #[test]
    fn a_daily_time_follows_the_zone_across_the_spring_change() {
        // Paris moves from UTC+1 to UTC+2 on 2026-03-29.
        let s = CronSpec::new("30 9 * * *", Some("Europe/Paris")).unwrap();
        let ticks = s.upcoming(utc("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            ticks,
            vec![
                utc("2026-03-28T08:30:00Z"),
                utc("2026-03-29T07:30:00Z"),
                utc("2026-03-30T07:30:00Z"),
            ]
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_fires_once_after_the_gap() {
        // 02:30 does not exist in Paris on 2026-03-29 (02:00 -> 03:00).
        let s = CronSpec::new("30 2 * * *", Some("Europe/Paris")).unwrap();
        let ticks = s.upcoming(utc("2026-03-28T12:00:00Z"), 2);
        assert_eq!(ticks.len(), 2);
        assert_eq!(ticks[0].date_naive().to_string(), "2026-03-29");
        assert!(
            ticks[0] >= utc("2026-03-29T01:00:00Z") && ticks[0] <= utc("2026-03-29T01:30:00Z"),
            "{ticks:?}"
        );
        assert_eq!(ticks[1], utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn a_time_repeated_in_the_autumn_fires_once() {
        // 02:30 happens twice in Paris on 2026-10-25 (03:00 -> 02:00).
        let s = CronSpec::new("30 2 * * *", Some("Europe/Paris")).unwrap();
        let ticks = s.between(utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"), 10);
        assert_eq!(
            ticks,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn between_keeps_the_newest_ticks_under_the_limit() {
        let s = CronSpec::new("* * * * *", None).unwrap();
        let ticks = s.between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T01:00:00Z"), 3);
        assert_eq!(
            ticks,
            vec![
                utc("2026-01-01T00:58:00Z"),
                utc("2026-01-01T00:59:00Z"),
                utc("2026-01-01T01:00:00Z"),
            ]
        );
    }
}
