//! What `execute` may return: the values the author guide lists are converted (dates,
//! decimals, UUIDs, sets, bytes), and anything JSON cannot carry is a 500 that names
//! where in the result it is and what it is; so is an `_actions` payload its event
//! cannot carry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::json;

const MAIN: &str = r#"
import datetime, decimal, uuid

def execute(data, conn=None):
    kind = data.get("kind")
    if kind == "nan":
        return {"rows": [{"price": 1.5}, {"price": float("nan")}]}
    if kind == "object":
        return {"report": {"owner": object()}}
    if kind == "action_nan":
        return {"ok": True, "_actions": [{"name": "tick", "payload": {"v": float("inf")}}]}
    if kind == "action_big":
        return {"ok": True, "_actions": [{"name": "tick", "payload": {"n": 2 ** 70}}]}
    if kind == "action_edges":
        return {"ok": True, "_actions": [{"name": "tick", "payload": {"big": 2 ** 64 - 1, "low": -(2 ** 63)}}]}
    if kind == "huge_raise":
        raise ValueError("E" * 2000000)
    if kind == "progress_text":
        import noderouter
        noderouter.progress("x")
    if kind == "loop":
        rows = []
        rows.append(rows)
        return {"rows": rows}
    return {
        "day": datetime.date(2026, 11, 30),
        "amount": decimal.Decimal("12.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "tags": ("a", "b"),
        "raw": b"caf\xc3\xa9",
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_convert_as_the_guide_says_and_a_bad_value_is_named_where_it_is() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("values");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            ("main.py", MAIN),
        ],
    )
    .await;

    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"day": "2026-11-30", "amount": 12.5, "id": "12345678-1234-5678-1234-567812345678",
               "tags": ["a", "b"], "raw": "café"})
    );

    for (kind, named) in [
        ("nan", "result['rows'][1]['price'] is nan"),
        (
            "object",
            "result['report']['owner'] is an object of type object",
        ),
        ("loop", "result['rows'][0] is the container itself again"),
    ] {
        let (s, b) = h.sync(&app, json!({"kind": kind})).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{kind}: {b}");
        let error = b["error"].as_str().unwrap();
        assert!(
            error.contains("JSON cannot carry") && error.contains(named),
            "{kind}: {error}"
        );
    }

    // An action's payload its event cannot carry fails the call the same way, naming
    // where (an infinity killed the worker: 502; an integer beyond 64 bits arrived as a
    // float), and the worker serves on.
    for (kind, named) in [
        ("action_nan", "result['_actions'][0]['payload']['v'] is inf"),
        (
            "action_big",
            "result['_actions'][0]['payload']['n'] is 1180591620717411303424, an integer beyond 64 bits",
        ),
    ] {
        let (s, b) = h.sync(&app, json!({"kind": kind})).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{kind}: {b}");
        let error = b["error"].as_str().unwrap();
        assert!(
            error.contains("cannot carry") && error.contains(named),
            "{kind}: {error}"
        );
    }
    // A huge exception message is still the app's error (500), cut, not a result over
    // the bus's limit (413 "return less"); a bad progress value raises in a sync call too.
    let (s, b) = h.sync(&app, json!({"kind": "huge_raise"})).await;
    assert_eq!(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        &b.to_string()[..200]
    );
    let error = b["error"].as_str().unwrap();
    assert!(
        error.starts_with("ValueError: EEE") && error.ends_with("characters in all]"),
        "{} chars, ending {:?}",
        error.len(),
        &error[error.len() - 60..]
    );
    let (s, b) = h.sync(&app, json!({"kind": "progress_text"})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("progress() takes a number from 0 to 99"),
        "{b}"
    );
    let (s, b) = h.sync(&app, json!({"kind": "action_edges"})).await;
    assert_eq!(s, StatusCode::OK, "64-bit edges are carried: {b}");
    assert_eq!(b, json!({"ok": true}));
}
