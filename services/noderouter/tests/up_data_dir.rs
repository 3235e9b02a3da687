//! One `noderouter up` per data directory: a second one on the same directory is
//! refused before it touches anything (before, it removed the first one's token file,
//! shared its private NATS server and stopped it when it stopped); and a private NATS
//! server an earlier, killed start left running on another port, holding the same
//! store, is stopped before a new one starts on that store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use noderouter::embedded::{self, EmbeddedArgs};

mod common;

use common::up::{base_url, noderouter_up, stop, up_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_platform_on_the_same_data_directory_is_refused_and_touches_nothing() {
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, printed) = noderouter_up(&db, dir.path(), nr_testkit::free_port().unwrap()).await;
    let url = base_url(&printed);
    let token = dir.path().join("data").join("admin.token");
    assert!(token.is_file());

    let mut second = up_command(&db, dir.path(), nr_testkit::free_port().unwrap());
    second.stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(30), second.output())
        .await
        .expect("the second start did not end")
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "another `noderouter up` (pid {})",
            first.id().unwrap()
        )),
        "{said}"
    );
    // The first one's token file and its NATS are untouched: it still serves.
    assert!(token.is_file(), "the second start removed the token file");
    let r = reqwest::Client::new()
        .post(format!("{url}/api/sync/nope"))
        .bearer_auth(std::fs::read_to_string(&token).unwrap().trim())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    stop(first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_left_on_another_port_with_the_same_store_is_stopped_first() {
    let dir = tempfile::tempdir().unwrap();
    let args = |port| EmbeddedArgs {
        data_dir: dir.path().to_owned(),
        embedded_nats_port: port,
        nats_server: nr_testkit::nats_server_bin(),
    };
    let old_port = nr_testkit::free_port().unwrap();
    let first = embedded::start(&args(old_port)).await.unwrap();
    // Killed outright: its server keeps running (and is stopped when this test ends,
    // whatever happens).
    let pid: i32 = std::fs::read_to_string(dir.path().join("nats").join("nats.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _old = KillOnDrop(pid);
    first.detach();
    let new_port = nr_testkit::free_port().unwrap();
    let second = embedded::start(&args(new_port)).await.unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", new_port)).is_ok());
    // Before: both ran on one store.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old_port)).is_err(),
        "the server of the earlier start still runs on its port"
    );
    second.stop().await;
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
