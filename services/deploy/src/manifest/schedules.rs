//! The rules of `schedules[]`: cron syntax and time zones (with the scheduler's own
//! parser), policies, actions that exist, and a payload the platform's keys would not
//! overwrite.

use std::collections::BTreeMap;

use nr_contracts::manifest::SCHEDULE_FIELDS;
use serde_json::{Map, Value};

use super::beyond::{action_ref, declared_actions, list};
use super::{display_path, is_action_slug, kind, Ctx};

/// Schedules one app may declare.
pub const MAX_SCHEDULES: usize = 100;

pub(super) fn check_schedules(c: &mut Ctx, obj: &Map<String, Value>) {
    const RULE: &str = "manifest.schedules";
    let actions = declared_actions(obj);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let items = list(c, obj, "schedules");
    if items.len() > MAX_SCHEDULES {
        c.error(RULE, "/schedules", format!("schedules: {} declared, at most {MAX_SCHEDULES} per app (every scheduler pass weighs each one)", items.len()));
    }
    for (i, item) in items.iter().enumerate() {
        let p = format!("/schedules/{i}");
        let at = display_path(&p);
        let Some(o) = item.as_object() else {
            c.error(
                RULE,
                &p,
                format!(
                    "{at} must be an object {{\"name\", \"cron\", ...}}, not {}",
                    kind(item)
                ),
            );
            continue;
        };
        c.unknown_fields(o, &p, SCHEDULE_FIELDS);
        match o.get("name") {
            Some(Value::String(n)) if is_action_slug(n) => {
                if let Some(first) = seen.insert(n.clone(), i) {
                    c.error(RULE, &format!("{p}/name"), format!("schedule {n:?} is declared twice (schedules[{first}] and schedules[{i}])"));
                }
            }
            Some(Value::String(n)) => c.error(RULE, &format!("{p}/name"), format!("{at}.name {n:?} must be a slug: letters, digits, _ and -, starting with a letter or digit, at most 64 characters")),
            _ => c.error(RULE, &p, format!("{at}.name is required: a slug such as \"nightly\"")),
        }
        let tz = match o.get("timezone") {
            None | Some(Value::Null) => None,
            Some(Value::String(z)) => Some(z.as_str()),
            Some(other) => {
                c.error(
                    RULE,
                    &format!("{p}/timezone"),
                    format!("{at}.timezone must be a string, not {}", kind(other)),
                );
                None
            }
        };
        if let Some(z) = tz {
            if let Err(m) = nr_infra::cron::parse_timezone(Some(z)) {
                c.error(RULE, &format!("{p}/timezone"), format!("{at}.timezone {m}"));
            }
        }
        match o.get("cron") {
            Some(Value::String(expr)) => {
                if let Err(m) = nr_infra::cron::check_fires(expr) {
                    c.error(RULE, &format!("{p}/cron"), format!("{at}.cron {m}"));
                }
            }
            Some(other) => c.error(
                RULE,
                &format!("{p}/cron"),
                format!("{at}.cron must be a string, not {}", kind(other)),
            ),
            None => c.error(
                RULE,
                &p,
                format!("{at}.cron is required: five fields such as \"0 2 * * *\""),
            ),
        }
        action_ref(c, RULE, o, &p, &actions, false);
        match o.get("payload") {
            None | Some(Value::Null) => {}
            Some(Value::Object(data)) => {
                for key in ["_schedule", "_job_id"] {
                    if data.contains_key(key) {
                        c.error(RULE, &format!("{p}/payload/{key}"), format!("{at}.payload.{key} is set by the platform on every scheduled job (it would be overwritten); rename the key"));
                    }
                }
                if data.contains_key("action")
                    && !matches!(o.get("action"), None | Some(Value::Null))
                {
                    c.error(RULE, &format!("{p}/payload/action"), format!("{at}.payload.action would be overwritten by {at}.action: name the action in one of them"));
                }
            }
            Some(other) => c.error(
                RULE,
                &format!("{p}/payload"),
                format!(
                    "{at}.payload must be an object (the job's data), not {}",
                    kind(other)
                ),
            ),
        }
        for (key, allowed) in [
            ("overlap", &["skip", "queue", "allow"][..]),
            ("catch_up", &["none", "last", "all"][..]),
        ] {
            match o.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) if allowed.contains(&v.as_str()) => {}
                Some(v) => c.error(
                    RULE,
                    &format!("{p}/{key}"),
                    format!(
                        "{at}.{key} must be one of {} (the first is the default), not {v}",
                        allowed.join(", ")
                    ),
                ),
            }
        }
    }
}
