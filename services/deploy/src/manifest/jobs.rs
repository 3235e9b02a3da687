//! `job_concurrency`, `job_retry` and `limits`: each field read on its own with the
//! typed manifest's own type, so every wrong one is reported with the others, its range
//! named, rather than the first one alone once the rest of the manifest is right.

use nr_contracts::manifest::{
    JobConcurrency, JobRetry, Limits, JOB_RETRY_FIELDS, LIMITS_FIELDS, LIMITS_RANGES,
    MAX_JOB_ATTEMPTS, MAX_JOB_CONCURRENCY, SECONDS_EXPECTED,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{display_path, kind, Ctx};

/// The value as an error shows it: a number as written, anything else by its kind.
fn shown(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        other => kind(other).to_owned(),
    }
}

/// Refuses `value` at `pointer` unless type `T` reads `wrap(value)`.
fn typed<T: DeserializeOwned>(
    c: &mut Ctx,
    rule: &str,
    pointer: &str,
    value: &Value,
    wrap: impl FnOnce(Value) -> Value,
    expected: &str,
) {
    if value.is_null() || serde_json::from_value::<T>(wrap(value.clone())).is_ok() {
        return;
    }
    c.error(
        rule,
        pointer,
        format!(
            "{} must be {expected}, not {}",
            display_path(pointer),
            shown(value)
        ),
    );
}

/// An object field whose every known key is read on its own as a one-key `T`.
fn object_fields<T: DeserializeOwned>(
    c: &mut Ctx,
    obj: &Map<String, Value>,
    key: &str,
    known: &[&str],
    expected: impl Fn(&str) -> String,
) {
    let rule = format!("manifest.{key}");
    let pointer = format!("/{key}");
    let fields = match obj.get(key) {
        None | Some(Value::Null) => return,
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            c.error(
                &rule,
                &pointer,
                format!(
                    "{key} must be an object {{{}}}, not {}",
                    known.join(", "),
                    kind(other)
                ),
            );
            return;
        }
    };
    c.unknown_fields(fields, &pointer, known);
    for (sub, value) in fields.iter().filter(|(k, _)| known.contains(&k.as_str())) {
        let one = |v: Value| {
            let mut m = Map::new();
            m.insert(sub.clone(), v);
            Value::Object(m)
        };
        typed::<T>(
            c,
            &rule,
            &format!("{pointer}/{sub}"),
            value,
            one,
            &expected(sub),
        );
    }
}

pub(super) fn check_jobs_and_limits(c: &mut Ctx, obj: &Map<String, Value>) {
    if let Some(value) = obj.get("job_concurrency") {
        typed::<JobConcurrency>(
            c,
            "manifest.job_concurrency",
            "/job_concurrency",
            value,
            |v| v,
            &format!("a whole number from 1 to {MAX_JOB_CONCURRENCY}"),
        );
    }
    object_fields::<JobRetry>(c, obj, "job_retry", JOB_RETRY_FIELDS, |sub| match sub {
        "attempts" => format!("a whole number from 1 to {MAX_JOB_ATTEMPTS} (runs in all)"),
        "factor" => "a number from 1 to 10".into(),
        "on" => "\"lost\" or \"exception\"".into(),
        _ => SECONDS_EXPECTED.into(),
    });
    object_fields::<Limits>(c, obj, "limits", LIMITS_FIELDS, |sub| {
        LIMITS_RANGES
            .iter()
            .find(|(f, _, _)| *f == sub)
            .map(|(_, lo, hi)| format!("a whole number from {lo} to {hi}"))
            .unwrap_or_else(|| "a whole number".into())
    });
}
