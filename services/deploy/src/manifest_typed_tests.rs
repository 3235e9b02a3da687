//! Deploy's rules against the typed manifest every other service reads.
use super::*;
use serde_json::json;

fn check(m: serde_json::Value) -> Result<ManifestOk, Refused> {
    check_manifest(
        serde_json::to_string_pretty(&m).unwrap().as_bytes(),
        "sales",
    )
}

fn base() -> serde_json::Value {
    json!({"app_name": "sales", "version": "1.0.0", "api_version": "1.0.0"})
}

#[test]
fn a_mistyped_job_timeout_with_a_permission_is_refused_naming_field_type_and_range() {
    // Before: an "unknown field" warning, and at run time the whole manifest fell back
    // to defaults, required_permission included.
    let mut m = base();
    m["required_permission"] = json!("sales:access");
    m["job_timeout_s"] = json!("600");
    let r = check(m).unwrap_err();
    assert_eq!(r.status, 422);
    assert_eq!(r.details.len(), 1, "{:?}", r.details);
    let d = &r.details[0];
    assert_eq!(d.rule, "manifest.job_timeout_s");
    assert_eq!(d.file.as_deref(), Some("manifest.json"));
    assert!(d.line.is_some(), "{d:?}");
    assert!(
        d.message.starts_with(
            "job_timeout_s must be a number of seconds from 1 to 86400 (24 h), not a string"
        ),
        "{}",
        d.message
    );
}

#[test]
fn timeouts_out_of_range_are_refused_with_the_range() {
    for (field, value) in [
        ("timeout_s", json!(1e20)),
        ("timeout_s", json!(0)),
        ("timeout_s", json!(0.25)),
        ("job_timeout_s", json!(86_401)),
        ("job_timeout_s", json!(-5)),
        ("job_timeout_s", json!(true)),
    ] {
        let mut m = base();
        m[field] = value.clone();
        let r = check(m).unwrap_err();
        assert_eq!(r.status, 422);
        assert_eq!(r.details[0].rule, format!("manifest.{field}"), "{value}");
        assert!(
            r.details[0].message.contains("from 1 to 86400 (24 h)"),
            "{}",
            r.details[0].message
        );
    }
    let r = check({
        let mut m = base();
        m["timeout_s"] = json!(1e20);
        m
    })
    .unwrap_err();
    assert_eq!(
        r.details[0].message,
        "timeout_s must be a number of seconds from 1 to 86400 (24 h), not 1e+20"
    );
}

#[test]
fn timeouts_in_range_pass_and_are_typed() {
    let mut m = base();
    m["timeout_s"] = json!(1);
    m["job_timeout_s"] = json!(86_400);
    let ok = check(m).unwrap();
    assert!(
        ok.warnings
            .iter()
            .all(|w| w.rule != "manifest.unknown_field"),
        "{:?}",
        ok.warnings
    );
    assert_eq!(ok.typed.timeout_s.map(Seconds::get), Some(1.0));
    assert_eq!(
        ok.typed.job_timeout_s.map(|s| s.duration().as_secs()),
        Some(86_400)
    );
}

/// Deploy's own rules refuse everything the type refuses (with their own message, line
/// and rule), and whatever passes parses: over generated manifests mixing good and bad
/// values in every known field.
#[test]
fn property_deploy_refuses_exactly_what_the_type_cannot_read_and_more() {
    let pools: Vec<(&str, Vec<serde_json::Value>)> = vec![
        (
            "display_name",
            vec![json!("Sales"), json!(3), json!(null), json!(["x"])],
        ),
        ("description", vec![json!("d"), json!({}), json!(false)]),
        (
            "required_permission",
            vec![
                json!(""),
                json!("sales:access"),
                json!(1),
                json!(["sales:access"]),
            ],
        ),
        (
            "timeout_s",
            vec![
                json!(30),
                json!(2.5),
                json!("30"),
                json!(1e20),
                json!(0),
                json!(null),
            ],
        ),
        (
            "job_timeout_s",
            vec![
                json!(600),
                json!("600"),
                json!(-1),
                json!(86_400.5),
                json!(null),
            ],
        ),
        (
            "actions",
            vec![
                json!([]),
                json!(null),
                json!({}),
                json!([{"name": "a", "display_name": "A"}]),
                json!([{"name": 1, "display_name": "A"}]),
                json!([{"display_name": "A"}]),
                json!([7]),
            ],
        ),
        ("api_version", vec![json!("1.0.0"), json!(1)]),
        (
            "nav",
            vec![
                json!([]),
                json!("x"),
                json!([{"id": "s:r", "label": "S"}]),
                json!([{"id": "s:r", "label": 2}]),
                json!([{"id": "s:r", "label": "S", "children": [{"id": "s:c"}]}]),
            ],
        ),
        (
            "permissions",
            vec![
                json!([]),
                json!([{"name": "s:r"}]),
                json!([{"name": "s:r", "description": 1}]),
                json!([{}]),
            ],
        ),
        ("version", vec![json!("1.0.0"), json!(1)]),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut passed, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut m = base();
        for (field, pool) in &pools {
            // Mostly absent or the first (good) value, so both outcomes are common.
            match next(pool.len() * 6) {
                i if i < pool.len() => m[*field] = pool[i].clone(),
                i if i % 2 == 0 => m[*field] = pool[0].clone(),
                _ => {}
            }
        }
        let typed = Manifest::from_value(&m);
        match check(m.clone()) {
            Ok(ok) => {
                passed += 1;
                assert_eq!(Some(ok.typed), typed.ok(), "{m}");
            }
            Err(r) => {
                refused += 1;
                assert_eq!(r.status, 422);
                // Never only the safety net: deploy's rules name the field themselves.
                assert!(
                    r.details
                        .iter()
                        .all(|d| !d.message.starts_with("manifest field ")),
                    "{m}: {:?}",
                    r.details
                );
                if let Err(e) = typed {
                    let top = e.field.split(['.', '[']).next().unwrap_or_default();
                    let rule = format!("manifest.{top}");
                    assert!(
                        r.details.iter().any(|d| d.rule == rule),
                        "{m}: type says {e}, deploy says {:?}",
                        r.details
                    );
                }
            }
        }
    }
    assert!(
        passed > 20 && refused > 20,
        "{passed} passed, {refused} refused"
    );
}

#[test]
fn an_app_declares_at_most_a_hundred_schedules_and_two_hundred_routes() {
    let m = |schedules: usize, routes: usize| {
        serde_json::json!({
            "app_name": "sales", "version": "1.0.0",
            "actions": [{"name": "go", "display_name": "Go"}],
            "schedules": (0..schedules)
                .map(|i| serde_json::json!({"name": format!("s{i}"), "cron": "0 2 * * *", "action": "go"}))
                .collect::<Vec<_>>(),
            "routes": (0..routes)
                .map(|i| serde_json::json!({"method": "GET", "path": format!("/r{i}"), "action": "go"}))
                .collect::<Vec<_>>(),
        })
    };
    let check = |v: serde_json::Value| check_manifest(v.to_string().as_bytes(), "sales");
    assert!(check(m(100, 200)).is_ok());
    let refused = check(m(101, 201)).unwrap_err();
    let messages: Vec<&str> = refused.details.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("101 declared, at most 100")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("201 declared, at most 200")),
        "{messages:?}"
    );
}

#[test]
fn every_wrong_job_and_limit_field_is_reported_at_once_with_its_range() {
    // Before: only the schedule's error came back; fixed, the next deploy named
    // job_concurrency alone ("invalid type: floating point `2.5`, expected u64"), and
    // so on one field at a time.
    let mut m = base();
    m["job_concurrency"] = json!(2.5);
    m["job_retry"] = json!({"attempts": 0, "on": "always", "factor": 2, "jitter": true});
    m["limits"] = json!({"memory_mb": 10, "cpu_s": "5", "max_procs": 64});
    m["schedules"] = json!([{"name": "n", "cron": "0 0 30 2 *"}]);
    let r = check(m).unwrap_err();
    assert_eq!(r.status, 422);
    let found: Vec<(&str, &str)> = r
        .details
        .iter()
        .map(|d| (d.rule.as_str(), d.message.as_str()))
        .collect();
    for (rule, message) in [
        (
            "manifest.job_concurrency",
            "job_concurrency must be a whole number from 1 to 1000, not 2.5",
        ),
        (
            "manifest.job_retry",
            "job_retry.attempts must be a whole number from 1 to 100 (runs in all), not 0",
        ),
        (
            "manifest.job_retry",
            "job_retry.on must be \"lost\" or \"exception\", not the string \"always\"",
        ),
        (
            "manifest.limits",
            "limits.memory_mb must be a whole number from 128 to 1048576, not 10",
        ),
        (
            "manifest.limits",
            "limits.cpu_s must be a whole number from 1 to 86400, not the string \"5\"",
        ),
    ] {
        assert!(
            found.contains(&(rule, message)),
            "{rule}: {message:?} missing from {found:#?}"
        );
    }
    assert!(
        found.iter().any(|(_, m)| m.contains("never fires")),
        "{found:#?}"
    );
    // Right fields are not named; an unknown one is a warning.
    assert!(
        !found
            .iter()
            .any(|(_, m)| m.contains("factor") || m.contains("max_procs")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 6, "{found:#?}");

    let mut m = base();
    m["job_retry"] = json!({"attempts": 3, "jitter": true});
    let ok = check(m).unwrap();
    assert!(
        ok.warnings
            .iter()
            .any(|w| w.message.contains("unknown field \"job_retry.jitter\"")),
        "{:?}",
        ok.warnings
    );
}

#[test]
fn a_schedule_payload_holding_what_the_platform_sets_is_refused_naming_the_key() {
    // Before: deployed, and each job got the platform's `_schedule` and the schedule's
    // action in place of the payload's, silently.
    let mut m = base();
    m["actions"] = json!([{"name": "report", "display_name": "Report"}]);
    m["schedules"] = json!([
        {"name": "a", "cron": "0 2 * * *", "action": "report",
         "payload": {"action": "other", "_schedule": 1, "_job_id": "x", "days": 1}},
        {"name": "b", "cron": "0 2 * * *", "payload": {"action": "report"}}
    ]);
    let r = check(m).unwrap_err();
    let found: Vec<(&str, &str)> = r
        .details
        .iter()
        .map(|d| (d.rule.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    for needle in [
        "schedules[0].payload._schedule is set by the platform",
        "schedules[0].payload._job_id is set by the platform",
        "schedules[0].payload.action would be overwritten by schedules[0].action",
    ] {
        assert!(
            found
                .iter()
                .any(|(rule, msg)| *rule == "manifest.schedules" && msg.contains(needle)),
            "{needle:?} missing from {found:?}"
        );
    }
    assert!(
        r.details.iter().all(|d| d.line.is_some()),
        "{:?}",
        r.details
    );
}
