//! The runner's second NATS connection (`runner_jobs`, see `nr_config::nats_auth`): made
//! as `<user>_jobs` with the runner's password, and left out, so the runner reads its
//! streams on its first connection, when NATS has no authorization or refuses that user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nr_config::nats_auth::Role;
use nr_config::NatsArgs;
use nr_infra::bus::connect_runner_jobs;
use nr_testkit::TestNats;

fn as_user(nats: &TestNats, user: &str, password_of: Role) -> NatsArgs {
    NatsArgs {
        nats_user: Some(user.to_owned()),
        nats_password: Some(nats.password(password_of)),
        ..NatsArgs::anonymous(nats.url.clone())
    }
}

#[tokio::test]
async fn the_jobs_connection_is_user_jobs_and_absent_where_nats_refuses_it() {
    let nats = TestNats::start().await.unwrap();

    // A split runner configured as `runner` connects a second time as `runner_jobs`, and
    // that connection may read the job stream's consumer API.
    let jobs = connect_runner_jobs(&as_user(&nats, "runner", Role::Runner))
        .await
        .unwrap()
        .expect("a jobs connection");
    let js = async_nats::jetstream::new(jobs);
    nr_infra::bus::ensure_streams(&js).await.unwrap();
    js.get_stream(nr_contracts::subjects::STREAM_JOBS)
        .await
        .expect("runner_jobs reads NR_JOBS");

    // A NATS configured without `<user>_jobs` (written by hand before that user
    // existed): refused, logged, and the runner keeps one connection.
    let refused = connect_runner_jobs(&as_user(&nats, "gateway", Role::Gateway))
        .await
        .unwrap();
    assert!(refused.is_none());
    assert!(
        nats.log().contains("User \"gateway_jobs\""),
        "NATS did not see the refused login"
    );

    // No credentials: a NATS without authorization, where one connection does both.
    let open = connect_runner_jobs(&NatsArgs::anonymous(nats.url.clone()))
        .await
        .unwrap();
    assert!(open.is_none());
}
