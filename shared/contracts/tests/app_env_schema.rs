//! `schemas/events/app.env.json` checked against [`AppEnvChanged`] both ways, as
//! `schemas.rs` does for the other events: events as published validate, the schema's
//! examples decode into the type and encode back unchanged, and the schema names the
//! subject, stream and type the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use nr_contracts::events::{AppEnvChanged, EnvChange, APP_ENV_CHANGED};
use nr_contracts::{subjects, Envelope};
use serde_json::{json, Value};

const SCHEMA: &str = "events/app.env.json";

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

fn event(change: EnvChange, secret: bool) -> Envelope<AppEnvChanged> {
    Envelope::new(
        APP_ENV_CHANGED,
        "gateway-1a2b3c4d",
        AppEnvChanged {
            app_name: "shop".into(),
            name: "PAYMENT_API_KEY".into(),
            change,
            secret,
            actor: "admin".into(),
            actor_id: "019ac9f0-1111-7000-8000-000000000001".into(),
        },
    )
}

#[test]
fn app_env_events_as_published_match_their_schema() {
    let v = validator();
    for change in [EnvChange::Set, EnvChange::Unset] {
        for secret in [true, false] {
            let instance = wire(&event(change, secret));
            let errs: Vec<String> = v.iter_errors(&instance).map(|e| e.to_string()).collect();
            assert!(errs.is_empty(), "{instance:#}: {errs:?}");
        }
    }
}

#[test]
fn app_env_schema_examples_decode_into_the_rust_type_and_back() {
    let v = validator();
    let examples = schema()["examples"].as_array().unwrap().clone();
    assert!(!examples.is_empty());
    for example in examples {
        assert!(v.is_valid(&example), "{example:#}");
        let typed: Envelope<AppEnvChanged> =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&example).unwrap()).unwrap();
        assert_eq!(wire(&typed), example);
    }
}

#[test]
fn the_schema_refuses_a_value_field_and_names_the_subject_stream_and_type() {
    let v = validator();
    let mut with_value = wire(&event(EnvChange::Set, true));
    with_value["data"]["value"] = json!("hunter2");
    assert!(
        !v.is_valid(&with_value),
        "an event must never carry a value"
    );
    let s = schema();
    assert_eq!(s["x-subject"], subjects::app_env("<app>").as_str());
    assert_eq!(s["x-stream"], subjects::STREAM_APP_ENV);
    assert_eq!(s["properties"]["type"]["const"], APP_ENV_CHANGED);
}
