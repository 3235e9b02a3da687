//! The embedded default keeps the bus closed: `noderouter up` without `NR_NATS_URL` runs
//! a private nats-server with generated credentials, kept private and across restarts.
//! One left running by a killed platform is reused at the next start and made to read
//! the configuration just written, so a release that adds a subject to the permission
//! table gets it without the server being restarted; the next clean stop stops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use noderouter::embedded::{self, EmbeddedArgs};
use nr_config::nats_auth::{Passwords, Role};
use tokio::sync::mpsc;

mod common;

use common::up::{base_url, noderouter_up, stop, up_and_running, up_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noderouter_up_runs_a_private_nats_that_refuses_strangers() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let (child, printed) = noderouter_up(&db, dir.path(), port).await;
    let reader_file = data.join("nats/reader.env");
    assert!(
        printed.contains(&reader_file.display().to_string()),
        "{printed}"
    );
    for file in [
        "nats/passwords.json",
        "nats/reader.env",
        "nats/nats.conf",
        "runner.secret",
        "admin.token",
    ] {
        let mode = std::fs::metadata(data.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {mode:o}");
    }
    // The admin session token is in its file, never in the output (which ends up in
    // logs), and it works.
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    assert!(token.len() > 20 && !printed.contains(&token), "{printed}");
    assert!(
        printed.contains(&format!(
            "NR_TOKEN=$(cat {})",
            data.join("admin.token").display()
        )),
        "{printed}"
    );
    let http = base_url(&printed);
    let apps = reqwest::Client::new()
        .get(format!("{http}/admin/api/apps"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), reqwest::StatusCode::OK);

    let url = format!("nats://127.0.0.1:{port}");
    assert!(
        async_nats::connect(&url).await.is_err(),
        "the embedded NATS let a stranger in"
    );
    let env = std::fs::read_to_string(&reader_file).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    assert_eq!(get("NATS_URL"), url);
    // As an outside system connects: with the inbox prefix the file gives.
    let reader =
        async_nats::ConnectOptions::with_user_and_password(get("NATS_USER"), get("NATS_PASSWORD"))
            .custom_inbox_prefix(get("NATS_INBOX_PREFIX"))
            .connect(url.as_str())
            .await
            .unwrap();
    let js = async_nats::jetstream::new(reader);
    assert!(js.get_stream("NR_ACTIONS").await.is_ok());
    assert!(js.get_stream("NR_RBAC").await.is_err());
    let secret = std::fs::read_to_string(data.join("runner.secret")).unwrap();

    // The server stops with the platform; a restart keeps the credentials and the key.
    stop(child).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the embedded NATS outlived the platform"
    );
    let (child, _) = noderouter_up(&db, dir.path(), port).await;
    assert_eq!(std::fs::read_to_string(&reader_file).unwrap(), env);
    assert_eq!(
        std::fs::read_to_string(data.join("runner.secret")).unwrap(),
        secret
    );
    let again =
        async_nats::ConnectOptions::with_user_and_password(get("NATS_USER"), get("NATS_PASSWORD"))
            .connect(url.as_str())
            .await;
    assert!(again.is_ok(), "the reader's credentials changed on restart");
    stop(child).await;
}

/// Publishes on `runner.alive` as the runner and says whether the server refused it.
async fn runner_may_beat(url: &str, passwords: &Passwords) -> bool {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A connection made while the server reloads its configuration may be refused as
    // unauthorized for a moment: try again for a few seconds.
    let mut tries = 0;
    let client = loop {
        let tx = tx.clone();
        let attempt = async_nats::ConnectOptions::with_user_and_password(
            Role::Runner.user().into(),
            passwords.get(Role::Runner).unwrap_or_default().into(),
        )
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await;
        match attempt {
            Ok(client) => break client,
            Err(e) if tries < 30 => {
                tries += 1;
                eprintln!("runner connection refused ({e}); trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the runner cannot connect: {e}"),
        }
    };
    client.publish("runner.alive", "r".into()).await.unwrap();
    client.flush().await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    match refused {
        Ok(Some(e)) => {
            assert!(e.to_lowercase().contains("permissions violation"), "{e}");
            false
        }
        _ => true,
    }
}

/// Stops the server of `pid_file` when the test ends, passed or failed.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn signal(pid_file: &std::path::Path, sig: nix::sys::signal::Signal) {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_left_running_reads_the_new_permission_table_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = EmbeddedArgs {
        data_dir: dir.path().to_owned(),
        embedded_nats_port: nr_testkit::free_port().unwrap(),
        nats_server: nr_testkit::nats_server_bin(),
    };
    let first = embedded::start(&args).await.unwrap();
    let nats_dir = dir.path().join("nats");
    let _stop = StopOnDrop(nats_dir.join("nats.pid"));
    let passwords = Passwords::load(&nats_dir.join("passwords.json")).unwrap();
    assert!(runner_may_beat(&first.url, &passwords).await);

    // The server as a release before `runner.alive` configured it.
    let conf = nats_dir.join("nats.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let older = text.replace("\"runner.alive\", ", "");
    assert_ne!(older, text, "the table names runner.alive");
    std::fs::write(&conf, older).unwrap();
    signal(&nats_dir.join("nats.pid"), nix::sys::signal::Signal::SIGHUP);
    let mut refused = false;
    for _ in 0..20 {
        if !runner_may_beat(&first.url, &passwords).await {
            refused = true;
            break;
        }
    }
    assert!(refused, "the older table still lets the runner beat");

    // The platform is killed: its server keeps running. The next start reuses it.
    let url = first.url.clone();
    first.detach();
    let second = embedded::start(&args).await.unwrap();
    assert_eq!(second.url, url);
    let mut allowed = false;
    for _ in 0..20 {
        if runner_may_beat(&url, &passwords).await {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the reused server kept the older permission table");

    // A clean stop stops the server it reused, as it does one it started.
    second.stop().await;
    let port = args.embedded_nats_port;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the reused NATS server outlived the clean stop"
    );
}

/// Every file of `dir` and below.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// An examples directory holding one app, `app`.
fn one_example(dir: &std::path::Path, app: &str) -> std::path::PathBuf {
    let examples = dir.join("examples");
    std::fs::create_dir_all(examples.join(app)).unwrap();
    std::fs::write(
        examples.join(app).join("manifest.json"),
        serde_json::json!({"app_name": app, "version": "1.0.0"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        examples.join(app).join("main.py"),
        "def execute(data, conn=None):\n    return {\"ok\": True}\n",
    )
    .unwrap();
    examples
}

/// With `NR_DATA_DIR` set, everything the platform keeps lands under it: bundles, the
/// runner directory and the secrets key, not in `.data` of whatever directory it was
/// started from. A key an earlier release left there is kept, not replaced by a new one
/// (which could not open the secrets already sealed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_kept_goes_under_the_data_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let app = nr_testkit::app_name("datadir");
    let uid_base =
        (1_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_999_000) as u32 * 1000).to_string();
    let up = |examples: &std::path::Path| {
        let mut cmd = up_command(&db, dir.path(), nr_testkit::free_port().unwrap());
        cmd.current_dir(&cwd).arg("--examples").arg(examples).args([
            "--app-uid-base",
            &uid_base,
            "--app-uid-count",
            "1000",
        ]);
        cmd
    };
    let (child, printed) = up_and_running(up(&one_example(dir.path(), &app))).await;
    assert!(
        printed.contains(&format!("deployed {app} 1.0.0")),
        "{printed}"
    );
    stop(child).await;
    let data = dir.path().join("data");
    assert!(
        !files_under(&data.join("objects")).is_empty(),
        "no bundle under the data directory"
    );
    let key = std::fs::metadata(data.join("secrets.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(
        !cwd.join(".data").exists(),
        "the platform wrote {:?} in its working directory",
        files_under(&cwd.join(".data"))
    );

    // A platform an earlier release ran this way kept its key in ./.data: it is still
    // the key in use, and no second one is made.
    let legacy = cwd.join(".data");
    std::fs::create_dir_all(&legacy).unwrap();
    std::fs::rename(data.join("secrets.key"), legacy.join("secrets.key")).unwrap();
    let sealed_with = std::fs::read_to_string(legacy.join("secrets.key")).unwrap();
    let (child, printed) = up_and_running(up(&one_example(dir.path(), &app))).await;
    stop(child).await;
    // The example is what the app serves already: not deployed again (each start
    // added a revision and ran its import again).
    assert!(
        printed.contains(&format!("kept {app} 1.0.0 (unchanged)")),
        "{printed}"
    );
    assert!(!printed.contains(&format!("deployed {app}")), "{printed}");
    assert!(!data.join("secrets.key").exists(), "a second key was made");
    assert_eq!(
        std::fs::read_to_string(legacy.join("secrets.key")).unwrap(),
        sealed_with
    );
}

/// The private NATS server killed under a running platform is started again on the
/// same port, configuration and store, and the platform is ready again by itself
/// (before, it answered 503 to everything until it was restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_nats_killed_under_the_platform_is_started_again() {
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = nr_testkit::free_port().unwrap();
    let (child, printed) = noderouter_up(&db, dir.path(), port).await;
    let http = base_url(&printed);
    let pid_file = dir.path().join("data/nats/nats.pid");
    let pid = || -> Option<i32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
    let first = pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{http}/readyz")).send().await;
        let restarted = pid().is_some_and(|p| p != first);
        if restarted && ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the platform was not ready again within 60 s of its NATS server's death (restarted: {restarted})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The bus works again: a change that is an event on it goes through, at once: the
    // services' stream followers read again as soon as they are connected again, not
    // after the missed heartbeats by which their consumers would find out (15 s and more).
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    let since = std::time::Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let made = client
            .post(format!("{http}/admin/api/roles"))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({"name": format!("after-restart-{n}"), "permissions": ["apps:read"]}))
            .send()
            .await
            .unwrap();
        let status = made.status();
        let text = made.text().await.unwrap_or_default();
        if status.is_success() {
            break;
        }
        // A refused try waits 10 s for the registry first, so one try is all it takes.
        assert!(
            n < 2,
            "the first change after ready was refused ({:?} after ready): {status} {text}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "a change went through {:?} after ready (try {n})",
        since.elapsed()
    );
    stop(child).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the restarted NATS server outlived the platform"
    );
}
