//! Cron expressions and time zones of manifest schedules: parsing with the rule that
//! failed named, and the ticks of a schedule between two instants. Pure; the
//! scheduler (gateway) and deploy's checks use the same functions so a schedule deploy
//! accepts is one the scheduler can run.
//!
//! Ticks are instants (UTC). An expression is read in the schedule's time zone: on a
//! day the clocks go forward, a local time that does not exist fires once at the first
//! minute after the gap; on a day they go back, a local time that happens twice fires
//! once, at its first occurrence (croner's OCPS behaviour, pinned by
//! `services/noderouter/tests/schedules.rs`).

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
    parser().parse(expr).map_err(|e| {
        let why = culprit(expr).unwrap_or_else(|| e.to_string());
        format!("{expr:?} is not a valid cron expression: {why}")
    })
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// The five fields, in order, with what each takes.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("weekday", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
];

/// Which field of a five-field `expr` the parser refuses, tried one at a time with
/// `*` in the others: "minute field \"60\" is out of its range 0-59".
fn culprit(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return None;
    }
    fields.iter().enumerate().find_map(|(i, field)| {
        let alone: Vec<&str> = (0..5).map(|j| if j == i { *field } else { "*" }).collect();
        parser().parse(&alone.join(" ")).err().map(|_| {
            let (name, range) = FIELDS[i];
            format!("the {name} field {field:?} is not valid: it takes {range}, with lists (1,15), ranges (1-5) and steps (*/10)")
        })
    })
}

/// Refuses an expression that never fires, such as `0 0 30 2 *` (no 30 February) or
/// `0 0 31 4 *` (no 31 April): it parses, but its schedule would wait forever. A day
/// that exists only in leap years (`29 2`) fires.
pub fn check_fires(expr: &str) -> Result<(), String> {
    let cron = parse_cron(expr)?;
    // Every calendar date repeats within eight years (29 February skips 2100), so a
    // time that exists is found from any start.
    match cron.find_next_occurrence(&Utc::now(), false) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{expr:?} never fires: no date has that day-of-month in that month (a month's last days differ: 30 and 31 do not occur in February, 31 not in April, June, September or November)"
        )),
    }
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
