//! The JSON Schemas in `schemas/` checked against the Rust contract types, both ways:
//!
//! - values of each type, encoded exactly as services put them on the wire
//!   (`rmp_serde::to_vec_named`) and read back as generic JSON, validate against the
//!   schema;
//! - every `examples` entry of a schema decodes (through MessagePack) into the Rust type
//!   and encodes back to the same JSON, so a field the Rust type does not know is caught.
//!
//! Schemas are closed (`additionalProperties: false`, every field required), so renaming
//! a field on either side fails here.
#![cfg(test)]

mod support;

use std::collections::BTreeSet;

use nr_contracts::events::{
    ActionTriggered, AppChange, AppUpdated, JobProgress, JobStatus, JobSubmitted, ACTION_TRIGGERED,
    APP_UPDATED, JOB_PROGRESS, JOB_SUBMITTED,
};
use nr_contracts::requests::{
    AppList, AppSummary, DeployReply, DeployReport, DeploySubmit, Finding,
};
use nr_contracts::rpc::ErrorBody;
use nr_contracts::RpcError;
use nr_contracts::{headers, subjects, Envelope};
use serde_json::{json, Value};
use support::{
    assert_invalid, assert_valid, examples_round_trip, schema, schemas_dir, validator, wire,
};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn manifest(app: &str, version: &str) -> Value {
    json!({
        "app_name": app,
        "display_name": "Notes",
        "version": version,
        "required_permission": "",
        "actions": [{"name": "note_created", "display_name": "Note created"}],
        "x-unknown-to-the-platform": {"kept": true}
    })
}

fn app_updated(change: AppChange, previous: Option<&str>) -> Envelope<AppUpdated> {
    Envelope::new(
        APP_UPDATED,
        "deploy-3f2a9c1b",
        AppUpdated {
            app_name: "notes".into(),
            change,
            version: "1.1.0".into(),
            sha256: SHA.into(),
            bundle_key: format!("bundles/notes/{SHA}.zip"),
            manifest: manifest("notes", "1.1.0"),
            previous_version: previous.map(str::to_owned),
            actor: Some("ann".into()),
            actor_id: Some("019a9f3c-0000-7000-8000-00000000a11e".into()),
            undoes: None,
        },
    )
}

fn action(payload: Value, declared: bool, request_id: Option<&str>) -> Envelope<ActionTriggered> {
    Envelope::new(
        ACTION_TRIGGERED,
        "runner-7c01d2aa",
        ActionTriggered {
            app_name: "notes".into(),
            action_name: "note_created".into(),
            payload,
            declared,
            request_id: request_id.map(str::to_owned),
            job_id: None,
        },
    )
}

fn finding(file: Option<&str>, line: Option<u32>) -> Finding {
    Finding {
        rule: "manifest.json".into(),
        file: file.map(str::to_owned),
        line,
        message: "manifest.json is not valid JSON: expected `,` or `}` at line 3".into(),
    }
}

const APP_UPDATED_SCHEMA: &str = "events/app.updated.json";
const ACTION_TRIGGERED_SCHEMA: &str = "events/action.triggered.json";
const JOB_SUBMITTED_SCHEMA: &str = "events/job.submitted.json";
const JOB_PROGRESS_SCHEMA: &str = "events/job.progress.json";
const JOB_LOG_SCHEMA: &str = "events/job.log.json";
const DEPLOY_SUBMIT_SCHEMA: &str = "requests/deploy.submit.json";
const DEPLOY_REPLY_SCHEMA: &str = "requests/deploy.submit.reply.json";
const APPS_LIST_REPLY_SCHEMA: &str = "requests/registry.apps.list.reply.json";
const RUNNER_EXEC_SCHEMA: &str = "requests/runner.exec.json";
const RUNNER_EXEC_REPLY_SCHEMA: &str = "requests/runner.exec.reply.json";

#[test]
fn app_updated_events_as_published_match_their_schema() {
    for event in [
        app_updated(AppChange::Deployed, None),
        app_updated(AppChange::Deployed, Some("1.0.0")),
        app_updated(AppChange::RolledBack, Some("1.2.0")),
        app_updated(AppChange::Deleted, None),
        undo(AppChange::RolledBack),
        undo(AppChange::Deleted),
    ] {
        assert_valid(APP_UPDATED_SCHEMA, &wire(&event));
    }
}

/// The change deploy makes to undo a version a runner could not load.
fn undo(change: AppChange) -> Envelope<AppUpdated> {
    let mut event = app_updated(change, Some("1.2.0"));
    event.data.undoes = Some(nr_contracts::events::Undone {
        version: "1.2.0".into(),
        sha256: SHA.into(),
        reason: "runner runner-7c01d2aa could not load it: ImportError: no".into(),
    });
    event
}

#[test]
fn app_updated_schema_examples_decode_into_the_rust_type() {
    examples_round_trip::<Envelope<AppUpdated>>(APP_UPDATED_SCHEMA);
}

#[test]
fn action_triggered_events_as_published_match_their_schema() {
    for event in [
        action(json!({"id": 42, "name": "buy milk"}), true, Some("req-1")),
        action(Value::Null, false, None),
        action(json!([1, 2.5, "three", {"nested": [true]}]), true, None),
    ] {
        assert_valid(ACTION_TRIGGERED_SCHEMA, &wire(&event));
    }
}

#[test]
fn action_triggered_schema_examples_decode_into_the_rust_type() {
    examples_round_trip::<Envelope<ActionTriggered>>(ACTION_TRIGGERED_SCHEMA);
}

fn job_progress(
    status: JobStatus,
    progress: i32,
    message: Option<&str>,
    by: Option<&str>,
) -> Envelope<JobProgress> {
    Envelope::new(
        JOB_PROGRESS,
        "runner-7c01d2aa",
        JobProgress {
            job_id: uuid::Uuid::now_v7().to_string(),
            app_name: "report".into(),
            status,
            progress,
            message: message.map(str::to_owned),
            submitted_by: by.map(str::to_owned),
        },
    )
}

#[test]
fn job_submitted_events_as_published_match_their_schema_and_examples_decode() {
    let event = Envelope::new(
        JOB_SUBMITTED,
        "gateway-1a2b3c4d",
        JobSubmitted {
            job_id: uuid::Uuid::now_v7().to_string(),
            app_name: "report".into(),
            app_rev: 12,
        },
    );
    assert_valid(JOB_SUBMITTED_SCHEMA, &wire(&event));
    let mut bad = wire(&event);
    bad["data"]["app_rev"] = json!(0);
    assert_invalid(JOB_SUBMITTED_SCHEMA, &bad);
    examples_round_trip::<Envelope<JobSubmitted>>(JOB_SUBMITTED_SCHEMA);
}

#[test]
fn job_log_lines_as_published_match_their_schema() {
    let id = uuid::Uuid::now_v7().to_string();
    let event = Envelope::new(
        nr_contracts::events::JOB_LOG,
        "runner-7c01d2aa",
        nr_contracts::events::JobLog {
            job_id: id.clone(),
            app_name: "report".into(),
            line: format!("[{id}] WARNING report: 3 rows skipped"),
            submitted_by: Some("u1".into()),
        },
    );
    assert_valid(JOB_LOG_SCHEMA, &wire(&event));
    let mut bad = wire(&event);
    bad["data"]["app_name"] = json!("no spaces allowed");
    assert_invalid(JOB_LOG_SCHEMA, &bad);
}

#[test]
fn job_progress_events_as_published_match_their_schema_and_examples_decode() {
    for event in [
        job_progress(
            JobStatus::Running,
            0,
            None,
            Some("019a9f30-0000-7000-8000-00000000a11c"),
        ),
        job_progress(JobStatus::Running, 99, Some("halfway"), Some("token:ab12")),
        job_progress(JobStatus::Completed, 100, None, None),
        job_progress(JobStatus::Failed, 40, None, Some("u1")),
        job_progress(JobStatus::Cancelled, 0, None, Some("u1")),
    ] {
        assert_valid(JOB_PROGRESS_SCHEMA, &wire(&event));
    }
    assert_invalid(
        JOB_PROGRESS_SCHEMA,
        &wire(&job_progress(JobStatus::Running, 101, None, None)),
    );
    let mut status = wire(&job_progress(JobStatus::Running, 1, None, None));
    status["data"]["status"] = json!("done");
    assert_invalid(JOB_PROGRESS_SCHEMA, &status);
    assert_eq!(
        examples_round_trip::<Envelope<JobProgress>>(JOB_PROGRESS_SCHEMA),
        2
    );
}

#[test]
fn deploy_submit_requests_match_their_schema_and_examples_decode() {
    let req = DeploySubmit {
        staging_key: "staging/019a9f3c-5a01-7d10-8c3b-0e1f2a3b4c5d.zip".into(),
        file_name: "notes.zip".into(),
        actor: Some("ann".into()),
        actor_id: Some("019a9f3c-0000-7000-8000-00000000a11e".into()),
        deadline_ms: Some(180_000),
    };
    assert_valid(DEPLOY_SUBMIT_SCHEMA, &wire(&req));
    examples_round_trip::<DeploySubmit>(DEPLOY_SUBMIT_SCHEMA);
}

/// What a `deploy.submit` reply body is: the reply (`Nr-Status: 200`) or the error.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum DeployWire {
    Reply(DeployReply),
    Error(ErrorBody),
}

#[test]
fn both_deploy_outcomes_match_the_reply_schema_and_examples_decode() {
    let deployed = DeployReply::Deployed(DeployReport {
        app_name: "notes".into(),
        version: "1.1.0".into(),
        sha256: SHA.into(),
        previous_version: Some("1.0.0".into()),
        rev: u64::MAX,
        warnings: vec![finding(None, None)],
        loaded_by: vec!["runner-1a2b3c4d".into(), "runner-5e6f7a8b".into()],
    });
    let first = DeployReply::Deployed(DeployReport {
        app_name: "notes".into(),
        version: "1.0.0".into(),
        sha256: SHA.into(),
        previous_version: None,
        rev: 1,
        warnings: vec![],
        loaded_by: vec![],
    });
    let refused = ErrorBody::Refused(
        RpcError::new(422, "refused", "manifest.json is not valid JSON")
            .with_details(vec![finding(Some("manifest.json"), Some(3))]),
    );
    for reply in [&deployed, &first] {
        assert_valid(DEPLOY_REPLY_SCHEMA, &wire(reply));
    }
    assert_valid(DEPLOY_REPLY_SCHEMA, &wire(&refused));
    assert_eq!(wire(&deployed)["outcome"], "deployed");
    assert_eq!(wire(&refused)["outcome"], "refused");
    assert_eq!(examples_round_trip::<DeployWire>(DEPLOY_REPLY_SCHEMA), 2);
}

#[test]
fn app_lists_match_their_schema_and_examples_decode() {
    let summary = |display: Option<&str>, description: Option<&str>| AppSummary {
        app_name: "notes".into(),
        display_name: display.map(str::to_owned),
        description: description.map(str::to_owned),
        version: "1.1.0".into(),
        sha256: SHA.into(),
        rev: 7,
        updated_at: nr_contracts::envelope::now_rfc3339(),
        refused: None,
    };
    let never_served = AppSummary {
        refused: Some("ImportError: No module named 'reportlab'".into()),
        ..summary(None, None)
    };
    for list in [
        AppList {
            apps: vec![],
            deleted: vec![],
        },
        AppList {
            apps: vec![
                summary(Some("Notes"), Some("Keeps notes")),
                summary(None, None),
            ],
            deleted: vec![summary(None, None), never_served.clone()],
        },
    ] {
        assert_valid(APPS_LIST_REPLY_SCHEMA, &wire(&list));
    }
    examples_round_trip::<AppList>(APPS_LIST_REPLY_SCHEMA);
}

#[test]
fn runner_exec_schemas_name_the_headers_the_code_uses_and_their_examples_hold() {
    let request = schema(RUNNER_EXEC_SCHEMA);
    let names = |s: &Value| -> BTreeSet<String> {
        s["x-nats-headers"]
            .as_object()
            .expect("x-nats-headers")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        names(&request),
        BTreeSet::from([headers::APP_REV.to_owned(), headers::REQUEST_ID.to_owned()])
    );
    let reply = schema(RUNNER_EXEC_REPLY_SCHEMA);
    assert_eq!(names(&reply), BTreeSet::from([headers::STATUS.to_owned()]));

    for example in request["examples"].as_array().expect("examples") {
        assert_valid(RUNNER_EXEC_SCHEMA, example);
    }
    assert_invalid(RUNNER_EXEC_SCHEMA, &json!([1, 2]));
    for example in reply["examples"].as_array().expect("examples") {
        assert_valid(RUNNER_EXEC_REPLY_SCHEMA, example);
    }
    // The runner's error body, exactly as it builds it.
    let error = validator(&reply["$defs"]["Error"]);
    for example in reply["$defs"]["Error"]["examples"]
        .as_array()
        .expect("error examples")
    {
        assert!(error.is_valid(example), "{example}");
    }
    assert!(error.is_valid(&json!({"error": "app 'x' is not deployed"})));
    assert!(!error.is_valid(&json!({"error": "x", "code": "y"})));
}

#[test]
fn schemas_name_the_subjects_streams_and_event_types_the_code_uses() {
    let cases = [
        (APP_UPDATED_SCHEMA, subjects::app_updated("<app>")),
        (
            ACTION_TRIGGERED_SCHEMA,
            subjects::action_triggered("<app>", "<action>"),
        ),
        (JOB_SUBMITTED_SCHEMA, subjects::job_submitted("<app>")),
        (
            JOB_PROGRESS_SCHEMA,
            subjects::job_progress("<app>", "<job_id>"),
        ),
        (DEPLOY_SUBMIT_SCHEMA, subjects::DEPLOY_SUBMIT.to_owned()),
        (DEPLOY_REPLY_SCHEMA, subjects::DEPLOY_SUBMIT.to_owned()),
        (
            APPS_LIST_REPLY_SCHEMA,
            subjects::REGISTRY_APPS_LIST.to_owned(),
        ),
        (RUNNER_EXEC_SCHEMA, subjects::runner_exec("<app>")),
        (RUNNER_EXEC_REPLY_SCHEMA, subjects::runner_exec("<app>")),
    ];
    for (rel, subject) in cases {
        assert_eq!(schema(rel)["x-subject"], subject.as_str(), "{rel}");
    }
    let app = schema(APP_UPDATED_SCHEMA);
    assert_eq!(app["x-stream"], subjects::STREAM_APPS);
    assert_eq!(app["properties"]["type"]["const"], APP_UPDATED);
    let act = schema(ACTION_TRIGGERED_SCHEMA);
    assert_eq!(act["x-stream"], subjects::STREAM_ACTIONS);
    assert_eq!(act["properties"]["type"]["const"], ACTION_TRIGGERED);
    let submitted = schema(JOB_SUBMITTED_SCHEMA);
    assert_eq!(submitted["x-stream"], subjects::STREAM_JOBS);
    assert_eq!(submitted["properties"]["type"]["const"], JOB_SUBMITTED);
    let progress = schema(JOB_PROGRESS_SCHEMA);
    assert_eq!(progress["x-stream"], subjects::STREAM_JOB_EVENTS);
    assert_eq!(progress["properties"]["type"]["const"], JOB_PROGRESS);
    assert_eq!(
        schema(DEPLOY_SUBMIT_SCHEMA)["x-queue-group"],
        subjects::DEPLOY_QUEUE_GROUP
    );
    assert_eq!(
        schema(APPS_LIST_REPLY_SCHEMA)["x-queue-group"],
        subjects::REGISTRY_QUEUE_GROUP
    );
    assert_eq!(
        schema(RUNNER_EXEC_SCHEMA)["x-queue-group"],
        subjects::RUNNER_QUEUE_GROUP
    );
}

#[test]
fn a_renamed_missing_or_extra_field_is_rejected() {
    let good = wire(&app_updated(AppChange::Deployed, None));

    let mut renamed = good.clone();
    let data = renamed["data"].as_object_mut().expect("data");
    let name = data.remove("app_name").expect("app_name");
    data.insert("app".into(), name);
    assert_invalid(APP_UPDATED_SCHEMA, &renamed);

    let mut missing = good.clone();
    missing["data"]
        .as_object_mut()
        .expect("data")
        .remove("previous_version");
    assert_invalid(APP_UPDATED_SCHEMA, &missing);

    let mut extra = good.clone();
    extra["data"]["unexpected"] = json!(1);
    assert_invalid(APP_UPDATED_SCHEMA, &extra);

    let mut kind = good.clone();
    kind["type"] = json!("app.changed");
    assert_invalid(APP_UPDATED_SCHEMA, &kind);

    // Formats are checked: the id is a UUID and the time RFC 3339.
    let mut id = good.clone();
    id["id"] = json!("not-a-uuid");
    assert_invalid(APP_UPDATED_SCHEMA, &id);
    let mut time = good;
    time["time"] = json!("22/11/2026 10:15");
    assert_invalid(APP_UPDATED_SCHEMA, &time);

    // A schema example with a field the Rust type does not have cannot round-trip.
    let mut example = schema(ACTION_TRIGGERED_SCHEMA)["examples"][0].clone();
    let data = example["data"].as_object_mut().expect("data");
    let job = data.remove("job_id").expect("job_id");
    data.insert("job".into(), job);
    let bytes = rmp_serde::to_vec_named(&example).expect("encode");
    let typed: Result<Envelope<ActionTriggered>, _> = rmp_serde::from_slice(&bytes);
    assert!(typed.map(|t| wire(&t) != example).unwrap_or(true));
}

#[test]
fn every_schema_file_is_checked_here() {
    let mut found = BTreeSet::new();
    for dir in ["events", "requests"] {
        for entry in std::fs::read_dir(schemas_dir().join(dir)).expect("schemas dir") {
            let name = entry.expect("entry").file_name();
            found.insert(format!("{dir}/{}", name.to_string_lossy()));
        }
    }
    let checked = BTreeSet::from(
        [
            APP_UPDATED_SCHEMA,
            ACTION_TRIGGERED_SCHEMA,
            JOB_SUBMITTED_SCHEMA,
            JOB_PROGRESS_SCHEMA,
            JOB_LOG_SCHEMA,
            DEPLOY_SUBMIT_SCHEMA,
            DEPLOY_REPLY_SCHEMA,
            APPS_LIST_REPLY_SCHEMA,
            RUNNER_EXEC_SCHEMA,
            RUNNER_EXEC_REPLY_SCHEMA,
            // Checked in app_env_schema.rs, schedule_changed_schema.rs and
            // runner_loaded_schema.rs.
            "events/app.env.json",
            "events/schedule.changed.json",
            "events/runner.loaded.json",
        ]
        .map(str::to_owned),
    );
    assert_eq!(
        found, checked,
        "a schema without a test, or a test without a schema"
    );
}
