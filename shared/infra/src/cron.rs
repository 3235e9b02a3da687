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
    let nickname = expr.trim();
    if nickname.starts_with('@') && !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(nickname)) {
        return Err(format!(
            "{expr:?} is not a schedule: the nicknames are {} (a schedule fires at times of day; work to do at start belongs at module level in main.py)",
            NICKNAMES.join(", ")
        ));
    }
    if !nickname.starts_with('@') && fields != 5 {
        return Err(format!(
            "{expr:?} has {fields} fields; a cron expression has five: minute hour day-of-month month weekday (e.g. \"0 2 * * *\" for 02:00 every day)"
        ));
    }
    if let Some((i, field)) = expr
        .split_whitespace()
        .enumerate()
        .find(|(_, f)| f.split(',').any(str::is_empty))
    {
        let (name, _) = FIELDS[i.min(4)];
        return Err(format!(
            "{expr:?} is not a valid cron expression: the {name} field {field:?} has an empty item in its list (write 0,5 or 0-5)"
        ));
    }
    parser().parse(expr).map_err(|e| {
        let why = culprit(expr).unwrap_or_else(|| e.to_string());
        format!("{expr:?} is not a valid cron expression: {why}")
    })
}

/// The `@` forms a schedule takes (`@reboot` is not one: a schedule fires at times).
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_nickname_and_an_empty_list_item_are_refused_with_what_to_write() {
        // Before: "@reboot" got the library's own message, "0,,5" was taken as "0,5".
        let e = parse_cron("@reboot").err().unwrap_or_default();
        assert!(e.contains("the nicknames are @yearly"), "{e}");
        assert!(e.contains("module level"), "{e}");
        for (expr, field) in [("0,,5 * * * *", "minute"), ("0 1, * * *", "hour")] {
            let e = parse_cron(expr).err().unwrap_or_default();
            assert!(e.contains(&format!("the {field} field")), "{e}");
            assert!(e.contains("empty item"), "{e}");
        }
        assert!(parse_cron("@Daily").is_ok());
        assert!(parse_cron("0,5 1-3 * * MON-FRI").is_ok());
    }

    #[test]
    fn the_forms_the_guide_lists_beyond_the_five_fields_fire_where_it_says() {
        let at = |expr: &str, from: &str| {
            let spec = CronSpec::new(expr, None).map_err(|e| format!("{expr}: {e}"));
            let from = DateTime::parse_from_rfc3339(from).map(|t| t.with_timezone(&Utc));
            match (spec, from) {
                (Ok(s), Ok(f)) => s.next_after(f).map(|t| t.to_rfc3339()),
                _ => None,
            }
        };
        let from = "2027-02-01T00:00:00+00:00";
        // The last day of the month, the weekday nearest the 15th, the second Friday,
        // the last Friday, and `?` for "any".
        assert_eq!(
            at("0 9 L * *", from).as_deref(),
            Some("2027-02-28T09:00:00+00:00")
        );
        assert_eq!(
            at("0 9 15W * *", from).as_deref(),
            Some("2027-02-15T09:00:00+00:00")
        );
        assert_eq!(
            at("0 9 * * 5#2", from).as_deref(),
            Some("2027-02-12T09:00:00+00:00")
        );
        assert_eq!(
            at("0 9 * * 5L", from).as_deref(),
            Some("2027-02-26T09:00:00+00:00")
        );
        assert_eq!(
            at("0 9 ? * MON", from).as_deref(),
            Some("2027-02-01T09:00:00+00:00")
        );
    }
}
