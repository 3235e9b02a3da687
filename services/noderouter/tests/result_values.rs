//! What `execute` may return: the values the author guide lists are converted (dates,
//! decimals, UUIDs, sets, bytes), and anything JSON cannot carry is a 500 that names
//! where in the result it is and what it is.

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
}
