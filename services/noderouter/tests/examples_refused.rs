//! `noderouter up --examples`: an example whose first version the runners refused (deploy
//! undid it, which leaves the app deleted) is deployed again at the next start, once
//! what it lacked is there; an example an operator deleted stays deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::up::{base_url, stop, up_and_running, up_command};
use serde_json::{json, Value};

/// An app that imports in deploy's check but not in a runner's host while its variable
/// `GREETING` is unset: what a package or setting missing where the runners run looks
/// like.
const NEEDS_GREETING: &str = "import os, sys\n\
if os.path.basename(sys.argv[0]) == \"nr_host.py\" and \"GREETING\" not in os.environ:\n    \
raise RuntimeError(\"GREETING is not set on this runner\")\n\n\
def execute(data, conn=None):\n    return {\"greeting\": os.environ[\"GREETING\"]}\n";

const PLAIN: &str = "def execute(data, conn=None):\n    return {\"ok\": True}\n";

fn example(examples: &std::path::Path, app: &str, main: &str) {
    std::fs::create_dir_all(examples.join(app)).unwrap();
    std::fs::write(
        examples.join(app).join("manifest.json"),
        json!({"app_name": app, "version": "1.0.0"}).to_string(),
    )
    .unwrap();
    std::fs::write(examples.join(app).join("main.py"), main).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_example_is_deployed_again_at_the_next_start_and_a_deleted_one_is_not() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let refused = nr_testkit::app_name("exrefused");
    let deleted = nr_testkit::app_name("exdeleted");
    let examples = dir.path().join("examples");
    example(&examples, &refused, NEEDS_GREETING);
    example(&examples, &deleted, PLAIN);
    let uid_base =
        (1_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_999_000) as u32 * 1000).to_string();
    let port = nr_testkit::free_port().unwrap();
    let up = || {
        let mut cmd = up_command(&db, dir.path(), port);
        cmd.arg("--examples").arg(&examples).args([
            "--app-uid-base",
            &uid_base,
            "--app-uid-count",
            "1000",
        ]);
        cmd
    };

    // Each start signs sessions with a key of its own: the token it wrote.
    let admin = || {
        let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
        common::client_with_token(token.trim())
    };
    let (child, printed) = up_and_running(up()).await;
    let url = base_url(&printed);
    let http = admin();
    assert!(
        printed.contains(&format!("deployed {deleted} 1.0.0")),
        "{printed}"
    );
    assert!(
        !printed.contains(&format!("deployed {refused}")),
        "the runners cannot load it yet: {printed}"
    );
    let versions: Value = http
        .get(format!("{url}/admin/api/apps/{refused}/versions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        versions["versions"][0]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("GREETING is not set")),
        "{versions}"
    );
    // The operator supplies what it lacked, and deletes the other example on purpose.
    let set = http
        .put(format!("{url}/admin/api/apps/{refused}/env"))
        .json(&json!({"name": "GREETING", "value": "hello"}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{:?}", set.text().await);
    let gone = http
        .delete(format!("{url}/admin/api/apps/{deleted}"))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{:?}", gone.text().await);
    stop(child).await;

    let (child, printed) = up_and_running(up()).await;
    let url = base_url(&printed);
    let http = admin();
    assert!(
        printed.contains(&format!("deployed {refused} 1.0.0")),
        "the refused example was not tried again: {printed}"
    );
    assert!(
        printed.contains(&format!("kept {deleted} 1.0.0, deleted (unchanged)")),
        "{printed}"
    );
    assert!(
        !printed.contains(&format!("deployed {deleted}")),
        "{printed}"
    );
    let answer: Value = http
        .post(format!("{url}/api/sync/{refused}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["greeting"], "hello", "{answer}");
    stop(child).await;
}
