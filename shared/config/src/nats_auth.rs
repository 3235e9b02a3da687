//! Who may publish and subscribe to what on the platform's NATS: the one place the
//! bus's permissions are written down.
//!
//! Each service connects as its own user (named after its [`Role`]); [`permissions`]
//! says which subjects that user may publish and subscribe to, and [`render_authorization`]
//! turns the table into the `accounts { ... }` block of a nats-server config (2.9+): the
//! services and the admin in one account, the reader of outside systems in another
//! ([`READER_ACCOUNT`] says why). The embedded default, the test harness and `compose/`
//! all use it.
//!
//! Replies: services never get a blanket `_INBOX.>`. Each role reads replies on its own
//! inbox prefix ([`Role::inbox_prefix`], e.g. `_INBOX_gateway.>`), so nobody reads another
//! service's replies, and services that answer requests (deploy, registry, runner) get
//! `allow_responses`: they may publish once to the reply subject of a request they
//! received, and nowhere else.
//!
//! The runner connects twice. As `runner` it answers sync calls (`allow_responses`); as
//! `runner_jobs` (same password) it reads the job, app and variable streams and publishes
//! events. nats-server keeps a reply entry for every message with a reply subject that it
//! delivers to a user with `allow_responses`, and a JetStream delivery's ack subject is
//! one that the runner's explicit `$JS.ACK` permission never clears: on one user, each job
//! would leave an entry for a day and, past 4,096 of them, every later delivery would walk
//! them all. The second user has no `allow_responses`, so job deliveries leave nothing.

use std::collections::BTreeMap;

use nr_contracts::subjects;

/// Stream of per-app variable changes (gateways publish `app.env.<app>` when an operator
/// changes a variable, runners consume). Same names as `subjects::STREAM_APP_ENV` and
/// `subjects::APP_ENV_ALL` where the contracts define them.
pub const STREAM_APP_ENV: &str = "NR_APP_ENV";
/// Subjects carried in [`STREAM_APP_ENV`].
pub const APP_ENV_ALL: &str = "app.env.>";
/// Gateway -> registry requests about an app's variables (planned lookups).
pub const REGISTRY_APP_ENV_ALL: &str = "registry.app_env.>";
/// Core NATS broadcast of the signed-request nonces a runner accepted, so every runner
/// refuses their replay.
pub const RUNNER_NONCE: &str = "runner.nonce";

/// A NATS user of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Gateway,
    Deploy,
    Registry,
    Runner,
    /// The runner's second connection: streams (jobs, apps, variables) and events, and
    /// no answering of requests. Same password as [`Role::Runner`].
    RunnerJobs,
    Notify,
    /// Outside systems: read-only on `action.triggered.>` and `job.progress.>` (live, or
    /// through durable pull consumers an operator created on `NR_ACTIONS` and
    /// `NR_JOB_EVENTS`).
    Reader,
    /// Operators and tests: everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Gateway,
        Role::Deploy,
        Role::Registry,
        Role::Runner,
        Role::RunnerJobs,
        Role::Notify,
        Role::Reader,
        Role::Admin,
    ];
    /// The five services.
    pub const SERVICES: [Role; 5] = [
        Role::Gateway,
        Role::Deploy,
        Role::Registry,
        Role::Runner,
        Role::Notify,
    ];

    /// The NATS user name of the role.
    pub fn user(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Deploy => "deploy",
            Role::Registry => "registry",
            Role::Runner => "runner",
            Role::RunnerJobs => "runner_jobs",
            Role::Notify => "notify",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }

    /// The role whose password this role's user has: the runner's two users share one.
    pub fn password_role(self) -> Role {
        match self {
            Role::RunnerJobs => Role::Runner,
            r => r,
        }
    }

    /// The user name of [`Role::RunnerJobs`] for a runner configured as `user`.
    pub fn jobs_user(user: &str) -> String {
        format!("{user}_jobs")
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.user() == name)
    }

    /// Where the role's clients receive replies. Services and the reader get a prefix of
    /// their own (outside consumers set it in their client: `reader.env` carries it as
    /// `NATS_INBOX_PREFIX`), so the reader, which any outside system holds, never sees a
    /// reply meant for the admin; the admin, an operator's tool, keeps the default
    /// `_INBOX` of every NATS client library.
    pub fn inbox_prefix(self) -> String {
        match self {
            Role::Admin => "_INBOX".into(),
            r => format!("_INBOX_{}", r.user()),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.user())
    }
}

/// What one role may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// May answer requests it received (once per request, within `expires`).
    pub allow_responses: Option<&'static str>,
}

/// Every platform stream: each service calls `ensure_streams` at start.
fn all_streams() -> [&'static str; 7] {
    [
        subjects::STREAM_APPS,
        subjects::STREAM_JOBS,
        subjects::STREAM_JOB_EVENTS,
        subjects::STREAM_ACTIONS,
        subjects::STREAM_RBAC,
        STREAM_APP_ENV,
        subjects::STREAM_SCHEDULES,
    ]
}

/// Looking up and creating the platform's streams (what `ensure_streams` needs).
fn ensure_streams() -> Vec<String> {
    let mut v = vec!["$JS.API.INFO".to_owned()];
    for s in all_streams() {
        v.push(format!("$JS.API.STREAM.INFO.{s}"));
        v.push(format!("$JS.API.STREAM.CREATE.{s}"));
    }
    v
}

/// Consuming stream `s` (ephemeral, ordered or durable pull consumers) and acking.
fn consume(s: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{s}"),
        format!("$JS.API.CONSUMER.CREATE.{s}"),
        format!("$JS.API.CONSUMER.CREATE.{s}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{s}.>"),
        format!("$JS.API.CONSUMER.INFO.{s}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{s}.>"),
        format!("$JS.API.CONSUMER.DELETE.{s}.>"),
        format!("$JS.ACK.{s}.>"),
        format!("$JS.FC.{s}.>"),
    ]
}

/// Reading through consumers of stream `s` that an operator created: look up, fetch,
/// acknowledge. Not creating them: a push consumer's deliver subject is any subject the
/// creator names, with no permission check on it, so whoever may create consumers can
/// make the server publish stream messages onto `rbac.log` or `app.updated.<app>`.
fn read_consumers(s: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{s}"),
        format!("$JS.API.CONSUMER.INFO.{s}.>"),
        format!("$JS.API.CONSUMER.NAMES.{s}"),
        format!("$JS.API.CONSUMER.LIST.{s}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{s}.>"),
        format!("$JS.ACK.{s}.>"),
    ]
}

/// Reading single messages of stream `s` by sequence or by subject.
fn read_messages(s: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.MSG.GET.{s}"),
        format!("$JS.API.DIRECT.GET.{s}"),
        format!("$JS.API.DIRECT.GET.{s}.>"),
    ]
}

/// What a runner reads: the job, app and variable streams (on its jobs user; on its
/// first user too, for a NATS without the jobs user).
fn runner_streams() -> Vec<String> {
    let mut v = ensure_streams();
    for s in [subjects::STREAM_APPS, subjects::STREAM_JOBS, STREAM_APP_ENV] {
        v.extend(consume(s));
        v.extend(read_messages(s));
    }
    v
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The permission table.
pub fn permissions(role: Role) -> Permissions {
    let inbox = format!("{}.>", role.inbox_prefix());
    let mut publish = Vec::new();
    let mut subscribe = vec![inbox];
    let mut allow_responses = None;
    match role {
        Role::Gateway => {
            publish.extend(strs(&[
                subjects::RBAC_LOG,
                subjects::RBAC_BOOTSTRAP,
                subjects::RUNNER_EXEC_ALL,
                "job.submitted.*",
                subjects::JOB_CANCEL_ALL,
                // The cancellation event of a job no runner holds.
                "job.progress.*.*",
                subjects::DEPLOY_SUBMIT,
                subjects::DEPLOY_ROLLBACK,
                subjects::DEPLOY_DELETE,
                subjects::REGISTRY_APPS_LIST,
                subjects::REGISTRY_APP_VERSIONS,
                REGISTRY_APP_ENV_ALL,
                // An app's variables changed (the event names who changed which name).
                "app.env.*",
                // An operator paused or resumed a schedule.
                "schedule.changed.*",
            ]));
            publish.extend(ensure_streams());
            publish.extend(consume(subjects::STREAM_APPS));
            publish.extend(read_messages(subjects::STREAM_APPS));
            // The console's audit trail reads the access and variable logs by sequence.
            publish.extend(read_messages(subjects::STREAM_RBAC));
            publish.extend(read_messages(STREAM_APP_ENV));
            publish.extend(read_messages(subjects::STREAM_SCHEDULES));
            subscribe.push(subjects::RBAC_APPLIED.into());
            // Runners' heartbeats: a call whose runner died ends at once.
            subscribe.push(subjects::RUNNER_ALIVE.into());
            // What the runners made of a change of an app's variables.
            subscribe.push(subjects::RUNNER_ENV_LOADED_ALL.into());
        }
        Role::Deploy => {
            publish.push("app.updated.*".into());
            publish.extend(ensure_streams());
            publish.extend(consume(subjects::STREAM_APPS));
            publish.extend(read_messages(subjects::STREAM_APPS));
            subscribe.extend(strs(&[
                subjects::DEPLOY_SUBMIT,
                subjects::DEPLOY_ROLLBACK,
                subjects::DEPLOY_DELETE,
                // Which runners are live, and what each made of a published version.
                subjects::RUNNER_ALIVE,
                subjects::RUNNER_LOADED_ALL,
            ]));
            allow_responses = Some("10m");
        }
        Role::Registry => {
            publish.push(subjects::RBAC_APPLIED.into());
            publish.extend(ensure_streams());
            for s in [subjects::STREAM_APPS, subjects::STREAM_RBAC, STREAM_APP_ENV] {
                publish.extend(consume(s));
                publish.extend(read_messages(s));
            }
            subscribe.extend(strs(&[
                subjects::REGISTRY_APPS_LIST,
                subjects::REGISTRY_APP_VERSIONS,
                REGISTRY_APP_ENV_ALL,
            ]));
            allow_responses = Some("10m");
        }
        Role::Runner => {
            publish.extend(strs(&[
                subjects::ACTION_TRIGGERED_ALL,
                subjects::JOB_PROGRESS_ALL,
                subjects::JOB_LOG_ALL,
                RUNNER_NONCE,
                subjects::RUNNER_ALIVE,
                subjects::RUNNER_LOADED_ALL,
                subjects::RUNNER_ENV_LOADED_ALL,
            ]));
            publish.extend(runner_streams());
            subscribe.extend(strs(&[
                subjects::RUNNER_EXEC_ALL,
                subjects::JOB_CANCEL_ALL,
                RUNNER_NONCE,
            ]));
            // Long enough for the longest sync call (the gateway gives up before).
            allow_responses = Some("24h");
        }
        Role::RunnerJobs => {
            publish.extend(strs(&[
                subjects::ACTION_TRIGGERED_ALL,
                subjects::JOB_PROGRESS_ALL,
            ]));
            publish.extend(runner_streams());
            // No allow_responses: see the module's documentation.
        }
        Role::Notify => {
            publish.extend(ensure_streams());
            for s in [
                subjects::STREAM_APPS,
                subjects::STREAM_ACTIONS,
                subjects::STREAM_JOB_EVENTS,
            ] {
                publish.extend(consume(s));
                publish.extend(read_messages(s));
            }
            subscribe.push(subjects::RBAC_APPLIED.into());
            subscribe.push(subjects::JOB_LOG_ALL.into());
        }
        Role::Reader => {
            publish.push("$JS.API.INFO".into());
            for s in [subjects::STREAM_ACTIONS, subjects::STREAM_JOB_EVENTS] {
                publish.extend(read_consumers(s));
                publish.extend(read_messages(s));
            }
            subscribe.extend(strs(&[
                subjects::ACTION_TRIGGERED_ALL,
                subjects::JOB_PROGRESS_ALL,
            ]));
        }
        Role::Admin => {
            publish = vec![">".into()];
            subscribe = vec![">".into()];
            allow_responses = Some("24h");
        }
    }
    Permissions {
        publish: dedup(publish),
        subscribe: dedup(subscribe),
        allow_responses,
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// One password per role.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Passwords(pub BTreeMap<String, String>);

impl Passwords {
    /// Fresh random passwords (256 bits each) for every role.
    pub fn generate() -> Passwords {
        Passwords(
            Role::ALL
                .iter()
                .filter(|r| r.password_role() == **r)
                .map(|r| {
                    let pw = format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    );
                    (r.user().to_owned(), pw)
                })
                .collect(),
        )
    }

    /// The password of `role`'s user (the runner's for `runner_jobs`).
    pub fn get(&self, role: Role) -> Option<&str> {
        self.0.get(role.password_role().user()).map(String::as_str)
    }

    /// Reads a passwords file (JSON object, role name -> password).
    pub fn load(path: &std::path::Path) -> Result<Passwords, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read NATS passwords file {}: {e}", path.display()))?;
        let p: Passwords = serde_json::from_str(&text).map_err(|e| {
            format!(
                "NATS passwords file {} is not a JSON object of role -> password: {e}",
                path.display()
            )
        })?;
        if let Some(unknown) = p.0.keys().find(|k| Role::parse(k).is_none()) {
            return Err(format!(
                "NATS passwords file {} names an unknown role {unknown:?}",
                path.display()
            ));
        }
        Ok(p)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

mod render;

#[cfg(test)]
use render::quote;
pub use render::{
    lent_to_reader, render_authorization, render_for_compose, render_with_passwords, Secret,
    PLATFORM_ACCOUNT, READER_ACCOUNT,
};

#[cfg(test)]
mod tests;
