//! `schemas/manifest.schema.json` against the typed manifest (`nr_contracts::manifest`):
//! the schema's examples parse, invalid manifests are refused by both, the field lists
//! agree, and over generated manifests the schema accepts exactly what the type accepts
//! and deploy's shape rules allow (a strict semver `version`, a `display_name` on every
//! action, no webhook on a GET route), so an editor never shows valid what deploy
//! refuses for its shape.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use nr_contracts::manifest::{self, Manifest};
use serde_json::{json, Value};

fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/manifest.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.schema.json is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema())
        .expect("manifest.schema.json is a valid schema")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

#[test]
fn the_examples_are_valid_for_both_and_parse_back_to_the_same_fields() {
    let v = validator();
    let examples = schema()["examples"].as_array().expect("examples").clone();
    assert!(examples.len() >= 3);
    for example in &examples {
        assert!(
            v.is_valid(example),
            "schema refuses its own example {example:#}"
        );
        let typed = Manifest::from_value(example).unwrap_or_else(|e| panic!("{e}: {example:#}"));
        let back = serde_json::to_value(&typed).expect("serialise");
        assert!(
            v.is_valid(&back),
            "schema refuses the type's output {back:#}"
        );
        // Every known field the example sets (not null) comes back the same.
        for (k, value) in example.as_object().expect("object") {
            if manifest::FIELDS.contains(&k.as_str()) && !value.is_null() {
                assert_eq!(&back[k], value, "{k} in {example:#}");
            }
        }
    }
}

#[test]
fn the_schema_knows_the_same_fields_as_the_type() {
    let s = schema();
    assert_eq!(keys(&s["properties"]), set(manifest::FIELDS));
    assert_eq!(
        keys(&s["$defs"]["Action"]["properties"]),
        set(manifest::ACTION_FIELDS)
    );
    assert_eq!(
        keys(&s["$defs"]["NavNode"]["properties"]),
        set(manifest::NAV_FIELDS)
    );
    assert_eq!(
        keys(&s["$defs"]["Permission"]["properties"]),
        set(manifest::PERMISSION_FIELDS)
    );
    assert_eq!(
        keys(&s["properties"]["limits"]["properties"]),
        set(manifest::LIMITS_FIELDS)
    );
    for (field, lo, hi) in manifest::LIMITS_RANGES {
        let p = &s["properties"]["limits"]["properties"][*field];
        assert_eq!(p["minimum"].as_u64(), Some(*lo), "{field}");
        assert_eq!(p["maximum"].as_u64(), Some(*hi), "{field}");
    }
    assert_eq!(
        s["$defs"]["Seconds"]["minimum"].as_f64(),
        Some(manifest::MIN_SECONDS)
    );
    assert_eq!(
        s["$defs"]["Seconds"]["maximum"].as_f64(),
        Some(manifest::MAX_SECONDS)
    );
}

fn base() -> Value {
    json!({"app_name": "sales", "version": "1.0.0"})
}

fn with(field: &str, value: Value) -> Value {
    let mut m = base();
    m[field] = value;
    m
}

#[test]
fn invalid_manifests_are_refused_by_both() {
    let v = validator();
    let cases = [
        with("job_timeout_s", json!("600")),
        with("timeout_s", json!(1e20)),
        with("timeout_s", json!(0)),
        with("timeout_s", json!(0.999)),
        with("job_timeout_s", json!(86_400.001)),
        with("job_timeout_s", json!(-1)),
        with("timeout_s", json!(true)),
        with("required_permission", json!(["sales:access"])),
        with("display_name", json!(3)),
        with("api_version", json!(1)),
        with("actions", json!({"name": "a"})),
        with("actions", json!([{"display_name": "A"}])),
        with("actions", json!([{"name": 1}])),
        with("nav", json!([{"id": "a"}])),
        with(
            "nav",
            json!([{"id": "a", "label": "A", "children": [{"id": "b", "label": false}]}]),
        ),
        with("permissions", json!([{"description": "x"}])),
        with("permissions", json!("sales:read")),
        json!({"version": "1.0.0"}),
        json!({"app_name": "sales"}),
        json!({"app_name": 1, "version": "1.0.0"}),
        json!(["app_name", "version"]),
        with("actions", json!([["deal_closed", "Deal closed"]])),
        with(
            "nav",
            json!([{"id": "a", "label": "A", "children": [["b", "B"]]}]),
        ),
        with("permissions", json!([["a:b"]])),
        with("limits", json!({"memory_mb": 10})),
        with("limits", json!({"cpu_s": "60"})),
        with("limits", json!([60])),
        json!(null),
    ];
    for m in cases {
        assert!(!v.is_valid(&m), "schema accepts {m}");
        assert!(Manifest::from_value(&m).is_err(), "type accepts {m}");
    }
}

/// Deploy's rules of shape that the type leaves to it, as the schema states them.
fn deploy_shape(m: &Value) -> bool {
    let idents = |t: &str| {
        t.split('.')
            .all(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    };
    let semver = |v: &str| {
        let (rest, build) = v.split_once('+').map_or((v, None), |(a, b)| (a, Some(b)));
        let (core, pre) = rest
            .split_once('-')
            .map_or((rest, None), |(a, b)| (a, Some(b)));
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars().all(|c| c.is_ascii_digit())
                    && (p.len() == 1 || !p.starts_with('0'))
            })
            && pre.is_none_or(idents)
            && build.is_none_or(idents)
    };
    let version_ok = m["version"].as_str().is_none_or(semver);
    let actions_ok = m["actions"]
        .as_array()
        .is_none_or(|a| a.iter().all(|x| x["display_name"].is_string()));
    version_ok && actions_ok
}

#[test]
fn what_deploy_refuses_for_its_shape_the_schema_refuses_too() {
    let v = validator();
    let route = |method: &str| {
        json!([{"method": method, "path": "/hook", "action": "a",
                "webhook": {"secret_name": "HOOK_SECRET"}}])
    };
    let mut get_hook = with("actions", json!([{"name": "a", "display_name": "A"}]));
    get_hook["routes"] = route("GET");
    for m in [
        with("version", json!("1.0")),
        with("version", json!("01.0.0")),
        with("actions", json!([{"name": "a"}])),
        with("actions", json!([{"name": "a", "display_name": null}])),
        get_hook.clone(),
    ] {
        assert!(!v.is_valid(&m), "schema accepts {m}");
    }
    get_hook["routes"] = route("POST");
    assert!(v.is_valid(&get_hook), "schema refuses {get_hook}");
    assert!(v.is_valid(&with("version", json!("1.2.3-rc.1+build.5"))));
}

/// Over generated manifests mixing good and bad values in every field, the schema
/// accepts exactly what the type accepts and deploy's shape rules allow.
#[test]
fn property_the_schema_and_the_type_accept_the_same_manifests() {
    let v = validator();
    let pools: Vec<(&str, Vec<Value>)> = vec![
        ("app_name", vec![json!("sales"), json!(1), json!(null)]),
        (
            "version",
            vec![
                json!("1.0.0"),
                json!(["1"]),
                json!("1.0"),
                json!("2.10.0-rc.1"),
            ],
        ),
        ("display_name", vec![json!("Sales"), json!(null), json!(3)]),
        ("description", vec![json!("d"), json!({})]),
        (
            "required_permission",
            vec![json!("sales:access"), json!(""), json!(null), json!(true)],
        ),
        (
            "timeout_s",
            vec![
                json!(30),
                json!(1),
                json!(86_400),
                json!(2.5),
                json!(0.5),
                json!(86_401),
                json!(1e20),
                json!("30"),
                json!(null),
            ],
        ),
        (
            "job_timeout_s",
            vec![
                json!(600),
                json!(-3),
                json!(u64::MAX),
                json!(i64::MIN),
                json!("600"),
                json!(null),
            ],
        ),
        (
            "actions",
            vec![
                json!([]),
                json!(null),
                json!([{"name": "a"}]),
                json!([{"name": "a", "display_name": null}]),
                json!([{"name": "a", "colour": "red"}]),
                json!([{"name": 2}]),
                json!([3]),
                json!([["a"]]),
                json!("a"),
            ],
        ),
        (
            "limits",
            vec![
                json!({"memory_mb": 512}),
                json!(null),
                json!({}),
                json!({"cpu_s": 1, "max_procs": 4, "max_file_mb": 1_048_576}),
                json!({"memory_mb": 63}),
                json!({"max_procs": 3}),
                json!({"cpu_s": 86_401}),
                json!({"memory_mb": "512"}),
                json!({"max_file_mb": 1.5}),
                json!([512]),
            ],
        ),
        ("api_version", vec![json!("1.0.0"), json!(null), json!(1.0)]),
        (
            "nav",
            vec![
                json!([]),
                json!([{"id": "a", "label": "A", "children": null}]),
                json!([{"id": "a", "label": "A", "children": [{"id": "b", "label": "B", "icon": "x"}]}]),
                json!([{"id": "a", "label": "A", "children": [{"id": "b"}]}]),
                json!([{"label": "A"}]),
                json!({}),
                json!([{"id": "a", "label": "A", "children": [["b", "B"]]}]),
            ],
        ),
        (
            "permissions",
            vec![
                json!([]),
                json!([{"name": "a:b"}]),
                json!([{"name": "a:b", "description": null}]),
                json!([{"name": null}]),
                json!([[]]),
                json!([["a:b"]]),
            ],
        ),
        ("x-unknown", vec![json!(1), json!({"any": "thing"})]),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..3000 {
        let mut m = json!({});
        for (field, pool) in &pools {
            // Mostly absent or the first (good) value, so both outcomes are common.
            match next(pool.len() * 5) {
                i if i < pool.len() => m[*field] = pool[i].clone(),
                i if i % 3 != 0 => m[*field] = pool[0].clone(),
                _ => {}
            }
        }
        let by_schema = v.is_valid(&m);
        let by_type = Manifest::from_value(&m);
        assert_eq!(
            by_schema,
            by_type.is_ok() && deploy_shape(&m),
            "schema says {by_schema}, type says {by_type:?} for {m}"
        );
        if by_schema {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 100 && invalid > 100,
        "{valid} valid, {invalid} invalid"
    );
}
