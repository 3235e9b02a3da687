//! `schemas/events/app.env.json` checked against [`AppEnvChanged`] both ways, as
//! `schemas.rs` does for the other events: events as published validate, the schema's
//! examples decode into the type and encode back unchanged, and the schema names the
//! subject, stream and type the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use nr_contracts::events::{AppEnvChanged, EnvChange, APP_ENV_CHANGED};
use nr_contracts::{subjects, Envelope};
use serde_json::json;
use support::{examples_round_trip, schema, validator, wire};

const SCHEMA: &str = "events/app.env.json";

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
    let v = validator(&schema(SCHEMA));
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
    assert_eq!(examples_round_trip::<Envelope<AppEnvChanged>>(SCHEMA), 2);
}

#[test]
fn the_schema_refuses_a_value_field_and_names_the_subject_stream_and_type() {
    let v = validator(&schema(SCHEMA));
    let mut with_value = wire(&event(EnvChange::Set, true));
    with_value["data"]["value"] = json!("hunter2");
    assert!(
        !v.is_valid(&with_value),
        "an event must never carry a value"
    );
    let s = schema(SCHEMA);
    assert_eq!(s["x-subject"], subjects::app_env("<app>").as_str());
    assert_eq!(s["x-stream"], subjects::STREAM_APP_ENV);
    assert_eq!(s["properties"]["type"]["const"], APP_ENV_CHANGED);
}
