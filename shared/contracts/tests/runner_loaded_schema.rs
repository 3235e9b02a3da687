//! `schemas/events/runner.loaded.json` checked against [`AppLoaded`] both ways, as
//! `schemas.rs` does for the other messages: reports as published validate, the schema's
//! examples decode into the type and encode back unchanged, and the schema names the
//! subject the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use nr_contracts::events::{AppLoaded, LoadFault};
use nr_contracts::subjects;
use support::{assert_invalid, assert_valid, examples_round_trip, schema, wire};

const SCHEMA: &str = "events/runner.loaded.json";

fn report(error: Option<&str>, fault: LoadFault) -> AppLoaded {
    AppLoaded {
        runner: "runner-1a2b3c4d".into(),
        app_name: "notes".into(),
        version: "1.2.0".into(),
        rev: 9,
        error: error.map(str::to_owned),
        fault,
    }
}

#[test]
fn load_reports_as_published_match_their_schema_and_examples_decode() {
    assert_valid(SCHEMA, &wire(&report(None, LoadFault::App)));
    assert_valid(
        SCHEMA,
        &wire(&report(Some("ImportError: x"), LoadFault::App)),
    );
    let platform = wire(&report(Some("cannot read bundle"), LoadFault::Platform));
    assert_valid(SCHEMA, &platform);
    assert_eq!(platform["fault"], "platform");
    let mut bad = wire(&report(None, LoadFault::App));
    bad["rev"] = serde_json::json!(0);
    assert_invalid(SCHEMA, &bad);
    let mut missing = wire(&report(None, LoadFault::App));
    missing.as_object_mut().unwrap().remove("runner");
    assert_invalid(SCHEMA, &missing);
    let mut other = wire(&report(Some("x"), LoadFault::App));
    other["fault"] = serde_json::json!("deploy");
    assert_invalid(SCHEMA, &other);
    assert_eq!(examples_round_trip::<AppLoaded>(SCHEMA), 3);
}

#[test]
fn the_load_report_schema_names_the_subject() {
    assert_eq!(
        schema(SCHEMA)["x-subject"],
        subjects::runner_loaded("<app>").as_str()
    );
}
