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

/// `kill -9` left the runner's directory (its unpacked bundles, app homes), a deploy
/// check's scratch directory and a staged upload behind; each start added more. The
/// next start removes what no living process holds, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_platform_left_is_removed_at_the_next_start() {
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let runner_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path().join("runner"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect()
    };
    let up = || {
        let mut cmd = up_command(&db, dir.path(), nr_testkit::free_port().unwrap());
        cmd.arg("--object-store-url")
            .arg(dir.path().join("objects"))
            .arg("--runner-dir")
            .arg(dir.path().join("runner"))
            .env("TMPDIR", &tmp);
        common::up::up_and_running(cmd)
    };
    let (mut first, _) = up().await;
    let killed = runner_dirs();
    assert_eq!(killed.len(), 1, "{killed:?}");
    // What a deploy cut short leaves: its scratch directory, its staged upload (a day
    // and more old), and one staged a moment ago, which a deploy may still be reading.
    let scratch = tmp.join("nr-deploy-cut");
    std::fs::create_dir_all(scratch.join("app")).unwrap();
    std::fs::write(scratch.join(".held"), "").unwrap();
    let staging = dir.path().join("objects").join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("old.zip"), "zip").unwrap();
    std::fs::File::options()
        .write(true)
        .open(staging.join("old.zip"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();
    std::fs::write(staging.join("new.zip"), "zip").unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(killed[0].exists());

    let (second, _) = up().await;
    let now = runner_dirs();
    assert_eq!(
        now.len(),
        1,
        "the killed runner's directory stayed: {now:?}"
    );
    assert_ne!(now[0], killed[0]);
    let gone = async {
        while scratch.exists() || staging.join("old.zip").exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let swept = tokio::time::timeout(Duration::from_secs(20), gone).await;
    assert!(
        swept.is_ok(),
        "left behind: scratch {}, old staged upload {}",
        scratch.exists(),
        staging.join("old.zip").exists()
    );
    assert!(
        staging.join("new.zip").exists(),
        "a fresh staged upload went"
    );
    stop(second).await;
}

/// A store an earlier release wrote kept the streams in NATS's global account; the
/// platform's users now live in an account of their own, which would start with no
/// streams (every app, user and job gone from the platform's view). They are moved over
/// at start, also when the earlier release's server was left running (killed platform):
/// it is stopped first, as reloading it with the new configuration hid the streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_an_earlier_release_kept_in_the_global_account_are_moved_over() {
    earlier_release_store(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_an_earlier_release_left_running_are_moved_over() {
    earlier_release_store(true).await;
}

async fn earlier_release_store(left_running: bool) {
    let dir = tempfile::tempdir().unwrap();
    let args = EmbeddedArgs {
        data_dir: dir.path().to_owned(),
        embedded_nats_port: nr_testkit::free_port().unwrap(),
        nats_server: nr_testkit::nats_server_bin(),
    };
    embedded::start(&args).await.unwrap().stop().await;
    let nats_dir = dir.path().join("nats");
    let passwords =
        nr_config::nats_auth::Passwords::load(&nats_dir.join("passwords.json")).unwrap();
    let admin_pw = passwords
        .get(nr_config::nats_auth::Role::Admin)
        .unwrap()
        .to_owned();
    // The earlier release's server: one user list, no accounts, on the same store, with
    // the configuration file and pid file its start wrote.
    std::fs::remove_dir_all(nats_dir.join("js")).unwrap();
    let port = args.embedded_nats_port;
    let conf = nats_dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\npid_file: {:?}\njetstream {{ store_dir: {:?} }}\n\
             authorization {{ users = [ {{ user: \"admin\", password: \"{admin_pw}\" }} ] }}\n",
            nats_dir.join("nats.pid"),
            nats_dir.join("js")
        ),
    )
    .unwrap();
    let mut old = tokio::process::Command::new(nr_testkit::nats_server_bin())
        .arg("-c")
        .arg(&conf)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = |url: String| {
        let pw = admin_pw.clone();
        async move {
            for _ in 0..100 {
                if let Ok(c) =
                    async_nats::ConnectOptions::with_user_and_password("admin".into(), pw.clone())
                        .connect(url.as_str())
                        .await
                {
                    return async_nats::jetstream::new(c);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no NATS at {url}");
        }
    };
    let js = admin(format!("nats://127.0.0.1:{port}")).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "NR_APPS".into(),
        subjects: vec!["app.updated.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("app.updated.notes", "deployed".into())
        .await
        .unwrap()
        .await
        .unwrap();
    drop(js);
    if !left_running {
        old.kill().await.unwrap();
        old.wait().await.unwrap();
    }

    let upgraded = embedded::start(&args).await.unwrap();
    let js = admin(upgraded.url.clone()).await;
    let info = js
        .get_stream("NR_APPS")
        .await
        .expect("the earlier release's stream is gone")
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 1);
    if left_running {
        let ended = tokio::time::timeout(Duration::from_secs(15), old.wait()).await;
        assert!(ended.is_ok(), "the earlier release's server still runs");
    }
    upgraded.stop().await;
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
