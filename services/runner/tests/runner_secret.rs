//! `nr-runner` refuses to start without `RUNNER_SECRET`: unsigned runner requests would
//! let anyone who may publish on the bus call apps (or answer for them).

#[test]
fn without_a_runner_secret_it_refuses_to_start_unless_told_it_is_development() {
    nr_testkit::runner_secret::refuses_to_start_without_runner_secret(env!(
        "CARGO_BIN_EXE_nr-runner"
    ));
}
