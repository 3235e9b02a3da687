#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::{json, Value};

fn base() -> Value {
    json!({"app_name": "sales", "version": "1.0.0"})
}

fn with(field: &str, value: Value) -> Value {
    let mut m = base();
    m[field] = value;
    m
}

fn refused(m: Value) -> ManifestError {
    match Manifest::from_value(&m) {
        Ok(parsed) => panic!("{m} parsed as {parsed:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_mistyped_timeout_fails_the_whole_parse_naming_the_field() {
    // Before there was one type, this manifest read as all defaults: the permission
    // was dropped and the gated app opened.
    let mut m = with("job_timeout_s", json!("600"));
    m["required_permission"] = json!("sales:access");
    let e = refused(m);
    assert_eq!(e.field, "job_timeout_s");
    assert_eq!(e.pointer, "/job_timeout_s");
    assert!(e.message.contains("string \"600\""), "{e}");
    assert!(e.message.contains(SECONDS_EXPECTED), "{e}");
    assert!(
        e.to_string().starts_with("manifest field job_timeout_s: "),
        "{e}"
    );
}

#[test]
fn timeouts_out_of_range_are_refused_with_the_range() {
    for (field, value) in [
        ("timeout_s", json!(1e20)),
        ("timeout_s", json!(0)),
        ("timeout_s", json!(0.5)),
        ("timeout_s", json!(-1)),
        ("job_timeout_s", json!(86_401)),
        ("job_timeout_s", json!(u64::MAX)),
        ("job_timeout_s", json!(i64::MIN)),
        ("job_timeout_s", json!(true)),
        ("timeout_s", json!([30])),
    ] {
        let e = refused(with(field, value.clone()));
        assert_eq!(e.field, field, "{value}");
        assert!(e.message.contains("from 1 to 86400"), "{value}: {e}");
    }
}

#[test]
fn timeouts_in_range_become_durations() {
    for (value, secs) in [
        (json!(1), 1.0),
        (json!(2.5), 2.5),
        (json!(600), 600.0),
        (json!(86_400), 86_400.0),
        (json!(86_400.0), 86_400.0),
    ] {
        let m = Manifest::from_value(&with("timeout_s", value.clone())).unwrap();
        let t = m.timeout_s.unwrap();
        assert_eq!(t.get(), secs);
        assert_eq!(t.duration().as_secs_f64(), secs);
        let back = serde_json::to_value(m).unwrap();
        assert_eq!(back["timeout_s"].as_f64(), Some(secs));
    }
    assert!(Seconds::new(f64::NAN).is_none());
    assert!(Seconds::new(f64::INFINITY).is_none());
}

#[test]
fn wrong_types_anywhere_are_named_by_path() {
    let cases = [
        (
            with("required_permission", json!(["sales:access"])),
            "required_permission",
        ),
        (with("display_name", json!(3)), "display_name"),
        (with("actions", json!({"name": "x"})), "actions"),
        (
            with(
                "actions",
                json!([{"name": "a", "display_name": "A"}, {"name": 7}]),
            ),
            "actions[1].name",
        ),
        (
            with("actions", json!([{"display_name": "A"}])),
            "actions[0]",
        ),
        (
            with(
                "nav",
                json!([{"id": "a", "label": "A", "children": [{"id": "b", "label": 2}]}]),
            ),
            "nav[0].children[0].label",
        ),
        (
            with(
                "permissions",
                json!([{"name": "a:b", "description": false}]),
            ),
            "permissions[0].description",
        ),
        (with("api_version", json!(1)), "api_version"),
        (json!({"version": "1.0.0"}), ""),
        (json!({"app_name": "sales", "version": 1}), "version"),
        (json!([]), ""),
        (json!(["sales", "1.0.0"]), ""),
        (with("actions", json!([{"name": "a"}, ["b"]])), "actions[1]"),
        (with("permissions", json!([["a:b"]])), "permissions[0]"),
        (
            with(
                "nav",
                json!([{"id": "a", "label": "A", "children": [["b", "B"]]}]),
            ),
            "nav[0].children[0]",
        ),
    ];
    for (m, field) in cases {
        let e = refused(m.clone());
        assert_eq!(e.field, field, "{m}: {e}");
    }
}

#[test]
fn absent_and_null_fields_take_their_own_default_only() {
    let m = Manifest::from_value(&json!({
        "app_name": "sales", "version": "1.0.0", "required_permission": "sales:access",
        "actions": null, "nav": null, "permissions": null, "timeout_s": null,
        "x-later-field": {"kept": "by deploy, ignored here"}
    }))
    .unwrap();
    assert_eq!(m.permission(), "sales:access");
    assert!(m.actions.is_empty() && m.nav.is_empty() && m.permissions.is_empty());
    assert_eq!(m.timeout_s, None);
    assert_eq!(m.job_timeout_s, None);
}

#[test]
fn the_full_manifest_round_trips_and_fields_lists_every_field() {
    let full = json!({
        "app_name": "sales",
        "version": "1.2.0",
        "display_name": "Sales",
        "description": "Deals.",
        "required_permission": "sales:access",
        "timeout_s": 30,
        "job_timeout_s": 600,
        "job_concurrency": 4,
        "job_retry": {"attempts": 5, "initial_delay_s": 2, "factor": 1.5, "max_delay_s": 60, "on": "exception"},
        "limits": {"memory_mb": 512, "cpu_s": 60, "max_procs": 32, "max_file_mb": 100},
        "actions": [{"name": "deal_closed", "display_name": "Deal closed", "description": "d", "required_permission": "sales:read"}],
        "api_version": "1.0.0",
        "nav": [{"id": "sales:root", "label": "Sales", "icon": "briefcase", "href": "/apps/sales/", "permission": "sales:access",
                 "children": [{"id": "sales:reports", "label": "Reports"}]}],
        "permissions": [{"name": "sales:read", "description": "Read deals"}],
        "schedules": [{"name": "nightly", "cron": "0 2 * * *", "action": "deal_closed", "payload": {"days": 1},
                       "timezone": "Europe/Paris", "overlap": "queue", "catch_up": "last"}],
        "routes": [
            {"method": "GET", "path": "/deals/:id", "action": "deal_closed", "permission": "sales:read"},
            {"method": "POST", "path": "/hook", "action": "deal_closed",
             "webhook": {"secret_name": "HOOK", "header": "X-Sig", "algorithm": "sha256", "delivery_header": "X-Id"},
             "upload": {"max_bytes": 1024}}
        ]
    });
    let m = Manifest::from_value(&full).unwrap();
    assert_eq!(serde_json::to_value(&m).unwrap(), full);
    let mut keys: Vec<&str> = full
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut fields = FIELDS.to_vec();
    fields.sort_unstable();
    assert_eq!(keys, fields, "FIELDS must list exactly the typed fields");
    let mut action: Vec<&str> = full["actions"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    action.sort_unstable();
    let mut known = ACTION_FIELDS.to_vec();
    known.sort_unstable();
    assert_eq!(action, known);
    let mut nav: Vec<&str> = full["nav"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    nav.sort_unstable();
    let mut known = NAV_FIELDS.to_vec();
    known.sort_unstable();
    assert_eq!(nav, known);
}

#[test]
fn configured_durations_never_panic_whatever_the_number() {
    use std::time::Duration;
    assert_eq!(duration_or(2.5, 30.0), Duration::from_millis(2500));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1.0, 0.0] {
        assert_eq!(duration_or(bad, 30.0), Duration::from_secs(30), "{bad}");
    }
    assert_eq!(duration_or(f64::NAN, f64::NAN), Duration::from_secs(1));
}

#[test]
fn limits_are_whole_numbers_in_their_range_named_by_path() {
    for (field, lo, hi) in LIMITS_RANGES {
        let ok = Manifest::from_value(&with("limits", json!({ *field: lo }))).unwrap();
        assert_eq!(ok.limits.unwrap().set_fields(), vec![(*field, *lo)]);
        for bad in [
            json!(lo - 1),
            json!(hi + 1),
            json!("64"),
            json!(1.5),
            json!(-1),
        ] {
            let e = refused(with("limits", json!({ *field: bad.clone() })));
            assert_eq!(e.field, format!("limits.{field}"), "{bad}");
            assert_eq!(e.pointer, format!("/limits/{field}"), "{bad}");
            assert!(
                e.message.contains(&format!("from {lo} to {hi}"))
                    || e.message.contains("u64")
                    || e.message.contains("integer"),
                "{bad}: {e}"
            );
        }
    }
    // Not an object: refused, not read as a list of its fields.
    assert_eq!(refused(with("limits", json!([512]))).field, "limits");
    let none = Manifest::from_value(&with("limits", json!({}))).unwrap();
    assert!(none.limits.unwrap().set_fields().is_empty());
    let fields: Vec<&str> = LIMITS_RANGES.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(fields, LIMITS_FIELDS);
}
