//! `schemas/events/schedule.changed.json` checked against [`ScheduleChanged`] both ways,
//! as `schemas.rs` does for the other events: events as published validate, the
//! schema's examples decode into the type and encode back unchanged, and the schema
//! names the subject, stream and type the code uses.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use nr_contracts::events::{ScheduleChange, ScheduleChanged, SCHEDULE_CHANGED};
use nr_contracts::{subjects, Envelope};
use support::{assert_invalid, assert_valid, examples_round_trip, schema, wire};

const SCHEMA: &str = "events/schedule.changed.json";

fn event(change: ScheduleChange) -> Envelope<ScheduleChanged> {
    Envelope::new(
        SCHEDULE_CHANGED,
        "gateway-1a2b3c4d",
        ScheduleChanged {
            app_name: "shop".into(),
            schedule: "nightly".into(),
            change,
            actor: "admin".into(),
            actor_id: "019ac9f0-1111-7000-8000-000000000001".into(),
        },
    )
}

#[test]
fn schedule_events_as_published_match_their_schema_and_examples_decode() {
    for change in [ScheduleChange::Paused, ScheduleChange::Resumed] {
        assert_valid(SCHEMA, &wire(&event(change)));
    }
    let mut other = wire(&event(ScheduleChange::Paused));
    other["data"]["change"] = serde_json::json!("deleted");
    assert_invalid(SCHEMA, &other);
    assert_eq!(examples_round_trip::<Envelope<ScheduleChanged>>(SCHEMA), 2);
}

#[test]
fn the_schedule_schema_names_the_subject_stream_and_type() {
    let s = schema(SCHEMA);
    assert_eq!(s["x-subject"], subjects::schedule_changed("<app>").as_str());
    assert_eq!(s["x-stream"], subjects::STREAM_SCHEDULES);
    assert_eq!(s["properties"]["type"]["const"], SCHEDULE_CHANGED);
}
