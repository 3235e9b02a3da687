//! `schemas/events/runner.loaded.json` checked against [`AppLoaded`] both ways, as
//! `schemas.rs` does for the other messages: reports as published validate, the schema's
//! examples decode into the type and encode back unchanged, and the schema names the
//! subject the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use nr_contracts::events::AppLoaded;
use nr_contracts::subjects;
use support::{assert_invalid, assert_valid, examples_round_trip, schema, wire};

const SCHEMA: &str = "events/runner.loaded.json";

fn report(error: Option<&str>) -> AppLoaded {
    AppLoaded {
        runner: "runner-1a2b3c4d".into(),
        app_name: "notes".into(),
        version: "1.2.0".into(),
        rev: 9,
        error: error.map(str::to_owned),
    }
}

#[test]
fn load_reports_as_published_match_their_schema_and_examples_decode() {
    assert_valid(SCHEMA, &wire(&report(None)));
    assert_valid(SCHEMA, &wire(&report(Some("ImportError: x"))));
    let mut bad = wire(&report(None));
    bad["rev"] = serde_json::json!(0);
    assert_invalid(SCHEMA, &bad);
    let mut missing = wire(&report(None));
    missing.as_object_mut().unwrap().remove("runner");
    assert_invalid(SCHEMA, &missing);
    assert_eq!(examples_round_trip::<AppLoaded>(SCHEMA), 2);
}

#[test]
fn the_load_report_schema_names_the_subject() {
    assert_eq!(
        schema(SCHEMA)["x-subject"],
        subjects::runner_loaded("<app>").as_str()
    );
}
