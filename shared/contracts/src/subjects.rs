//! Every NATS subject and JetStream stream name the platform uses.
//!
//! App names are restricted to `[A-Za-z0-9_-]`, so they are always a single subject
//! token and can never inject a wildcard or a separator.

/// Event log of app versions becoming current (deploy, rollback, delete). Kept.
pub const STREAM_APPS: &str = "NR_APPS";
/// Async job work items, work-queue retention.
pub const STREAM_JOBS: &str = "NR_JOBS";
/// Job progress and completion events, kept for a while.
pub const STREAM_JOB_EVENTS: &str = "NR_JOB_EVENTS";
/// `_actions` fired by apps, kept for a while for replay by outside consumers.
pub const STREAM_ACTIONS: &str = "NR_ACTIONS";

/// Changes to apps' variables and secrets (names and who changed them, never values).
pub const STREAM_APP_ENV: &str = "NR_APP_ENV";

/// Operators' pauses and resumes of apps' schedules (`schedule.changed.<app>`). Kept.
pub const STREAM_SCHEDULES: &str = "NR_SCHEDULES";

/// Identity and access changes (users, roles, grants, tokens, subscriptions). Kept.
pub const STREAM_RBAC: &str = "NR_RBAC";
pub const RBAC_LOG: &str = "rbac.log";
/// The first admin, published once with an expected subject sequence of 0.
pub const RBAC_BOOTSTRAP: &str = "rbac.bootstrap";
/// Core NATS: the registry has applied the `NR_RBAC` event whose sequence is the
/// payload; gateways and hubs drop cached access decisions.
pub const RBAC_APPLIED: &str = "rbac.applied";

pub const APP_UPDATED_ALL: &str = "app.updated.>";
pub const JOB_SUBMITTED_ALL: &str = "job.submitted.>";
pub const JOB_PROGRESS_ALL: &str = "job.progress.>";
pub const ACTION_TRIGGERED_ALL: &str = "action.triggered.>";
pub const APP_ENV_ALL: &str = "app.env.>";
pub const SCHEDULE_CHANGED_ALL: &str = "schedule.changed.>";

/// Wildcard the runners' queue group listens on.
pub const RUNNER_EXEC_ALL: &str = "runner.exec.*";
/// Queue group shared by every runner, so each request reaches exactly one.
pub const RUNNER_QUEUE_GROUP: &str = "nr-runners";
/// Runners' heartbeats with the sync calls each holds (core NATS; see [`crate::alive`]).
pub const RUNNER_ALIVE: &str = "runner.alive";
/// Runners' reports of loading an app revision (core NATS; see
/// [`crate::events::AppLoaded`]): deploy waits for them before it answers.
pub const RUNNER_LOADED_ALL: &str = "runner.loaded.*";
/// Runners' reports of reloading an app for a change of its variables (core NATS; an
/// [`crate::events::AppLoaded`] whose `rev` is the change's `NR_APP_ENV` sequence): the
/// gateway that made the change waits for them before it answers.
pub const RUNNER_ENV_LOADED_ALL: &str = "runner.env_loaded.*";

/// Deploy intake (request/reply): a staged bundle to check and publish.
pub const DEPLOY_SUBMIT: &str = "deploy.submit";
pub const DEPLOY_QUEUE_GROUP: &str = "nr-deploy";
/// Deploy (request/reply): make an earlier version of an app current again.
pub const DEPLOY_ROLLBACK: &str = "deploy.rollback";
/// Deploy (request/reply): delete an app (its versions stay for a later rollback).
pub const DEPLOY_DELETE: &str = "deploy.delete";

/// Registry lookups (request/reply).
pub const REGISTRY_APPS_LIST: &str = "registry.apps.list";
/// Every version of one app, newest first (request/reply).
pub const REGISTRY_APP_VERSIONS: &str = "registry.apps.versions";
pub const REGISTRY_QUEUE_GROUP: &str = "nr-registry";

pub fn app_updated(app: &str) -> String {
    format!("app.updated.{app}")
}

/// A runner loaded, or could not load, a revision of `app`.
pub fn runner_loaded(app: &str) -> String {
    format!("runner.loaded.{app}")
}

/// A runner reloaded, or could not reload, `app` for a change of its variables.
pub fn runner_env_loaded(app: &str) -> String {
    format!("runner.env_loaded.{app}")
}

/// An app's variables or secrets changed: its runners reload it.
pub fn app_env(app: &str) -> String {
    format!("app.env.{app}")
}

/// The app name carried by an `app.env.<app>` subject.
pub fn app_of_app_env(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("app.env.")
        .filter(|s| !s.is_empty() && !s.contains('.'))
}

/// One of an app's schedules was paused or resumed.
pub fn schedule_changed(app: &str) -> String {
    format!("schedule.changed.{app}")
}

pub fn job_submitted(app: &str) -> String {
    format!("job.submitted.{app}")
}

pub fn job_progress(app: &str, job_id: &str) -> String {
    format!("job.progress.{app}.{job_id}")
}

/// Live log lines of running jobs (core NATS, not stored): `job.log.<app>.<job_id>`.
pub const JOB_LOG_ALL: &str = "job.log.*.*";

pub fn job_log(app: &str, job_id: &str) -> String {
    format!("job.log.{app}.{job_id}")
}

pub fn action_triggered(app: &str, action: &str) -> String {
    format!("action.triggered.{app}.{action}")
}

/// Core NATS broadcast asking whichever runner holds a job to stop it.
pub fn job_cancel(job_id: &str) -> String {
    format!("job.cancel.{job_id}")
}

pub const JOB_CANCEL_ALL: &str = "job.cancel.*";

pub fn runner_exec(app: &str) -> String {
    format!("runner.exec.{app}")
}

/// The app name carried by a `runner.exec.<app>` subject.
pub fn app_of_runner_exec(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("runner.exec.")
        .filter(|s| !s.is_empty() && !s.contains('.'))
}

/// The app name carried by an `app.updated.<app>` subject.
pub fn app_of_app_updated(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("app.updated.")
        .filter(|s| !s.is_empty() && !s.contains('.'))
}

/// True when `token` can be used as one subject token (the app-name alphabet).
pub fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_built_from_one_token_per_name() {
        assert_eq!(app_updated("notes"), "app.updated.notes");
        assert_eq!(runner_exec("a-b_c"), "runner.exec.a-b_c");
        assert_eq!(job_progress("a", "j1"), "job.progress.a.j1");
        assert_eq!(action_triggered("a", "x"), "action.triggered.a.x");
        assert_eq!(app_env("notes"), "app.env.notes");
        assert_eq!(app_of_app_env("app.env.notes"), Some("notes"));
        assert_eq!(app_of_app_env("app.env.a.b"), None);
    }

    #[test]
    fn app_is_recovered_from_exec_subject_and_nested_tokens_are_refused() {
        assert_eq!(app_of_runner_exec("runner.exec.notes"), Some("notes"));
        assert_eq!(app_of_runner_exec("runner.exec.a.b"), None);
        assert_eq!(app_of_runner_exec("runner.exec."), None);
        assert_eq!(app_of_app_updated("app.updated.x"), Some("x"));
    }

    #[test]
    fn subject_tokens_reject_wildcards_and_separators() {
        assert!(is_subject_token("app_1-x"));
        for bad in ["", "a.b", "a*", ">", "a b"] {
            assert!(!is_subject_token(bad), "{bad:?}");
        }
    }
}
