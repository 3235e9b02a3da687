//! The permission table's rules, and the compose file rendered from it.

#![allow(clippy::unwrap_used)]
use super::*;

fn may_publish(role: Role, subject: &str) -> bool {
    permissions(role)
        .publish
        .iter()
        .any(|p| matches(p, subject))
}

fn may_subscribe(role: Role, subject: &str) -> bool {
    permissions(role)
        .subscribe
        .iter()
        .any(|p| matches(p, subject))
}

/// NATS subject matching: `*` one token, `>` the rest.
fn matches(pattern: &str, subject: &str) -> bool {
    let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[test]
fn only_the_owner_publishes_each_control_subject() {
    let owners = [
        ("rbac.log", Role::Gateway),
        ("rbac.bootstrap", Role::Gateway),
        ("runner.exec.notes", Role::Gateway),
        ("app.updated.notes", Role::Deploy),
        ("app.env.notes", Role::Gateway),
        ("schedule.changed.notes", Role::Gateway),
        ("rbac.applied", Role::Registry),
        ("runner.nonce", Role::Runner),
        ("runner.alive", Role::Runner),
        ("runner.loaded.notes", Role::Runner),
        ("action.triggered.notes.open", Role::Runner),
    ];
    for (subject, owner) in owners {
        for role in Role::ALL {
            // The runner's two users are one service: either may publish its events.
            let runner_events = owner == Role::Runner
                && role == Role::RunnerJobs
                && subject.starts_with("action.triggered.");
            let expected = role == owner || role == Role::Admin || runner_events;
            assert_eq!(may_publish(role, subject), expected, "{role} on {subject}");
        }
    }
}

#[test]
fn only_runners_see_runner_requests_and_only_deploy_sees_deploy_requests() {
    for role in Role::ALL {
        let admin = role == Role::Admin;
        assert_eq!(
            may_subscribe(role, "runner.exec.notes"),
            admin || role == Role::Runner
        );
        assert_eq!(
            may_subscribe(role, "deploy.delete"),
            admin || role == Role::Deploy
        );
        assert!(!may_publish(role, "deploy.delete") || admin || role == Role::Gateway);
        // Runners' heartbeats name the request ids they hold: gateways, and deploy,
        // which waits for the live runners to load what it published.
        assert_eq!(
            may_subscribe(role, "runner.alive"),
            admin || role == Role::Gateway || role == Role::Deploy
        );
        assert_eq!(
            may_subscribe(role, "runner.loaded.notes"),
            admin || role == Role::Deploy
        );
    }
}

#[test]
fn services_read_replies_on_their_own_inbox_only() {
    for role in Role::SERVICES {
        let p = permissions(role);
        assert!(!p.subscribe.iter().any(|s| s == "_INBOX.>" || s == ">"));
        assert!(may_subscribe(role, &format!("_INBOX_{role}.abc.1")));
        for other in Role::SERVICES.into_iter().filter(|o| *o != role) {
            assert!(!may_subscribe(role, &format!("_INBOX_{other}.abc.1")));
        }
        assert!(!may_publish(role, "_INBOX.abc.1"));
    }
    assert!(!may_subscribe(Role::Reader, "_INBOX_gateway.abc.1"));
    // The admin's replies (an operator's `nats req`, a stream read: RBAC events carry
    // password hashes) are not the reader's, which every outside system holds.
    assert!(!may_subscribe(Role::Reader, "_INBOX.abc.1"));
    assert!(may_subscribe(Role::Reader, "_INBOX_reader.abc.1"));
    assert!(may_subscribe(Role::Admin, "_INBOX.abc.1"));
}

#[test]
fn the_reader_only_reads_the_two_event_streams() {
    assert!(may_subscribe(Role::Reader, "action.triggered.a.b"));
    assert!(may_subscribe(Role::Reader, "job.progress.a.j"));
    assert!(may_publish(
        Role::Reader,
        "$JS.API.CONSUMER.INFO.NR_ACTIONS.crm"
    ));
    assert!(may_publish(
        Role::Reader,
        "$JS.ACK.NR_ACTIONS.crm.1.2.3.4.5"
    ));
    // Creating consumers would let it pick a push consumer's deliver subject.
    for create in [
        "$JS.API.CONSUMER.CREATE.NR_ACTIONS",
        "$JS.API.CONSUMER.CREATE.NR_ACTIONS.c.action.triggered.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.NR_ACTIONS.c",
        "$JS.API.CONSUMER.DELETE.NR_ACTIONS.c",
    ] {
        assert!(!may_publish(Role::Reader, create), "{create}");
    }
    assert!(may_publish(
        Role::Reader,
        "$JS.API.CONSUMER.MSG.NEXT.NR_JOB_EVENTS.c"
    ));
    for s in ["NR_APPS", "NR_RBAC", "NR_JOBS"] {
        assert!(!may_publish(
            Role::Reader,
            &format!("$JS.API.CONSUMER.CREATE.{s}")
        ));
        assert!(!may_publish(
            Role::Reader,
            &format!("$JS.API.STREAM.INFO.{s}")
        ));
    }
    for s in ["action.triggered.a.b", "job.progress.a.j", "rbac.log", "x"] {
        assert!(!may_publish(Role::Reader, s), "{s}");
    }
    assert!(!may_publish(
        Role::Reader,
        "$JS.API.STREAM.CREATE.NR_ACTIONS"
    ));
    assert!(!may_publish(
        Role::Reader,
        "$JS.API.STREAM.DELETE.NR_ACTIONS"
    ));
}

#[test]
fn the_rendered_block_names_every_user_and_its_permissions() {
    let pw = Passwords::generate();
    let conf = render_with_passwords(&pw);
    for role in Role::ALL {
        assert!(conf.contains(&format!("user: \"{role}\"")), "{role}");
        assert!(conf.contains(pw.get(role).unwrap()));
    }
    assert!(conf.contains("allow_responses: { max: 1, expires: \"24h\" }"));
    let env = render_authorization([(Role::Reader, Secret::Env("NATS_READER_PASSWORD"))]);
    assert!(env.contains("password: $NATS_READER_PASSWORD"), "{env}");
    assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
}

#[test]
fn compose_nats_auth_conf_is_the_rendered_table() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose/nats/auth.conf");
    let expected = render_for_compose();
    if std::env::var_os("NR_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == expected,
        "compose/nats/auth.conf is out of date: run NR_BLESS=1 cargo test -p nr-config"
    );
}

#[test]
fn passwords_round_trip_and_unknown_roles_are_refused() {
    let dir = tempfile_dir();
    let path = dir.join("p.json");
    let pw = Passwords::generate();
    std::fs::write(&path, pw.to_json()).unwrap();
    assert_eq!(Passwords::load(&path).unwrap(), pw);
    std::fs::write(&path, r#"{"root": "x"}"#).unwrap();
    let err = Passwords::load(&path).unwrap_err();
    assert!(err.contains("unknown role \"root\""), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nr-nats-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_runners_jobs_user_reads_the_streams_and_answers_nothing() {
    let p = permissions(Role::RunnerJobs);
    assert_eq!(
        p.allow_responses, None,
        "job deliveries must leave no reply entry"
    );
    for s in [
        "runner.exec.notes",
        "job.cancel.notes",
        "runner.nonce",
        "_INBOX_runner.x.1",
    ] {
        assert!(!may_subscribe(Role::RunnerJobs, s), "{s}");
    }
    assert!(may_subscribe(Role::RunnerJobs, "_INBOX_runner_jobs.x.1"));
    assert!(!may_subscribe(Role::Runner, "_INBOX_runner_jobs.x.1"));
    for s in [
        "$JS.API.CONSUMER.MSG.NEXT.NR_JOBS.runners",
        "$JS.ACK.NR_JOBS.runners.1.2.3.4.5",
        "job.progress.notes.j1",
    ] {
        assert!(may_publish(Role::RunnerJobs, s), "{s}");
    }
    for s in [
        "runner.nonce",
        "_INBOX_gateway.x.1",
        "app.updated.notes",
        "rbac.log",
    ] {
        assert!(!may_publish(Role::RunnerJobs, s), "{s}");
    }
    let pw = Passwords::generate();
    assert!(!pw.0.contains_key("runner_jobs"), "no password of its own");
    assert_eq!(pw.get(Role::RunnerJobs), pw.get(Role::Runner));
    assert!(render_for_compose()
        .contains("user: \"runner_jobs\"\n        password: $NATS_RUNNER_PASSWORD"));
}
