use super::*;

fn beat(r: &Runners, at: Instant, runner: &str, keys: &[&str]) {
    for m in nr_contracts::alive::encode(runner, keys.iter().copied()) {
        r.beat(&m, at);
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_call_named_by_a_beating_runner_is_waited_for() {
    let r = Runners::default();
    let t0 = Instant::now();
    for s in 0..30 {
        beat(&r, t0 + secs(s as f64), "a", &["call"]);
    }
    assert_eq!(r.verdict("call", t0, t0 + secs(30.0)), None);
}

#[test]
fn a_call_whose_runner_stopped_beating_is_lost() {
    let r = Runners::default();
    let t0 = Instant::now();
    beat(&r, t0 + secs(1.0), "a", &["call"]);
    beat(&r, t0 + secs(2.0), "a", &["call"]);
    beat(&r, t0 + secs(2.0), "b", &[]);
    assert_eq!(r.verdict("call", t0, t0 + secs(6.9)), None);
    // b keeps beating; a has been silent for more than STALE.
    beat(&r, t0 + secs(7.0), "b", &[]);
    assert_eq!(
        r.verdict("call", t0, t0 + secs(7.1)),
        Some(Lost::RunnerGone)
    );
}

#[test]
fn a_call_let_go_without_a_reply_is_lost_on_the_way() {
    let r = Runners::default();
    let t0 = Instant::now();
    beat(&r, t0 + secs(1.0), "a", &["call"]);
    for s in 2..=8 {
        beat(&r, t0 + secs(s as f64), "a", &[]);
    }
    assert_eq!(r.verdict("call", t0, t0 + secs(5.9)), None);
    assert_eq!(r.verdict("call", t0, t0 + secs(8.0)), Some(Lost::ReplyLost));
}

#[test]
fn a_call_never_named_is_lost_only_when_a_runner_died_after_it_was_sent() {
    let r = Runners::default();
    let t0 = Instant::now();
    // An old runner died long before the call; a live one beats without naming it
    // (a runner of a release without heartbeats holds it): wait.
    beat(&r, t0 - secs(30.0), "old-dead", &[]);
    for s in 0..12 {
        beat(&r, t0 + secs(s as f64), "live", &[]);
    }
    assert_eq!(r.verdict("call", t0, t0 + secs(11.0)), None);
    // A runner beating when the call was sent, silent since: the call may have been on it.
    beat(&r, t0 - secs(0.5), "died", &[]);
    assert_eq!(r.verdict("call", t0, t0 + secs(4.0)), None);
    assert_eq!(
        r.verdict("call", t0, t0 + secs(5.6)),
        Some(Lost::RunnerGone)
    );
}

#[test]
fn a_request_id_named_before_this_call_was_sent_says_nothing_about_it() {
    let r = Runners::default();
    let t0 = Instant::now();
    // An earlier call with the same request id, on a runner that died since.
    beat(&r, t0 - secs(20.0), "died", &["dup"]);
    for s in 0..10 {
        beat(&r, t0 + secs(s as f64), "live", &[]);
    }
    assert_eq!(r.verdict("dup", t0, t0 + secs(9.0)), None);
}

#[test]
fn a_call_that_moves_to_another_runner_follows_it() {
    let r = Runners::default();
    let t0 = Instant::now();
    beat(&r, t0 + secs(1.0), "a", &["k"]);
    for s in 2..10 {
        beat(&r, t0 + secs(s as f64), "b", &["k"]);
    }
    assert_eq!(r.verdict("k", t0, t0 + secs(9.5)), None);
}

#[test]
fn garbage_on_the_subject_changes_nothing() {
    let r = Runners::default();
    let t0 = Instant::now();
    r.beat(b"", t0);
    r.beat(&[0xff, 0xfe], t0);
    r.beat(b"\nkey", t0);
    assert_eq!(r.verdict("key", t0, t0 + secs(30.0)), None);
}
