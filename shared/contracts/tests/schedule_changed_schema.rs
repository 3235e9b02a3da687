//! `schemas/events/schedule.changed.json` checked against [`ScheduleChanged`] both ways:
//! events as published validate, the schema's examples decode into the type and encode
//! back unchanged, and the schema names the subject, stream and type the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use nr_contracts::events::{ScheduleChange, ScheduleChanged, SCHEDULE_CHANGED};
use nr_contracts::{subjects, Envelope};
use serde_json::Value;

const SCHEMA: &str = "events/schedule.changed.json";

fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(SCHEMA);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema())
        .unwrap()
}

fn wire<T: serde::Serialize>(value: &T) -> Value {
    rmp_serde::from_slice(&rmp_serde::to_vec_named(value).unwrap()).unwrap()
}

#[test]
fn schedule_events_as_published_match_their_schema() {
    let v = validator();
    for change in [ScheduleChange::Paused, ScheduleChange::Resumed] {
        let instance = wire(&Envelope::new(
            SCHEDULE_CHANGED,
            "gateway-1a2b3c4d",
            ScheduleChanged {
                app_name: "shop".into(),
                schedule: "nightly".into(),
                change,
                actor: "admin".into(),
                actor_id: "019ac9f0-1111-7000-8000-000000000001".into(),
            },
        ));
        let errs: Vec<String> = v.iter_errors(&instance).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{instance:#}: {errs:?}");
    }
}

#[test]
fn schedule_schema_examples_decode_into_the_rust_type_and_back() {
    let v = validator();
    let examples = schema()["examples"].as_array().unwrap().clone();
    assert!(!examples.is_empty());
    for example in examples {
        assert!(v.is_valid(&example), "{example:#}");
        let typed: Envelope<ScheduleChanged> =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&example).unwrap()).unwrap();
        assert_eq!(wire(&typed), example);
    }
}

#[test]
fn the_schedule_schema_names_the_subject_stream_and_type() {
    let s = schema();
    assert_eq!(s["x-subject"], subjects::schedule_changed("<app>").as_str());
    assert_eq!(s["x-stream"], subjects::STREAM_SCHEDULES);
    assert_eq!(s["properties"]["type"]["const"], SCHEDULE_CHANGED);
}
