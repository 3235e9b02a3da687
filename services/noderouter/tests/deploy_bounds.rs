//! The deploy's import check reads what it needs of the checker's output and no more:
//! app code can find the checker's result channel and write to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::procs::status_kib;
use common::Harness;
use nr_testkit::{app_name, manifest, zip_files};
use reqwest::StatusCode;
use serde_json::json;

/// Module code that finds the import check's result channel (a file object the checker
/// holds, on a descriptor past stderr) and writes 256 MiB to it without a newline.
const FLOOD: &str = r#"
import gc, io, os
chunk = b"A" * (1 << 20)
for o in gc.get_objects():
    if isinstance(o, io.TextIOWrapper) and not o.closed and o.fileno() > 2 and o.writable():
        for _ in range(256):
            os.write(o.fileno(), chunk)

def execute(data, conn=None):
    return {"ok": True}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_writing_over_the_checkers_output_is_refused_in_bounded_memory() {
    let h = Harness::start().await;
    let app = app_name("flood");
    let before = status_kib("VmHWM:");
    let zip = zip_files(&[
        ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
        ("main.py", FLOOD),
    ]);
    let (s, b) = h.deploy(&format!("{app}.zip"), zip).await;
    let after = status_kib("VmHWM:");
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("without a result"),
        "{b}"
    );
    // 256 MiB went down the pipe; the platform kept at most a few of them.
    assert!(
        after.saturating_sub(before) < 96 * 1024,
        "peak memory grew from {before} KiB to {after} KiB"
    );
    // A bundle written to the guide still deploys and serves.
    let good = app_name("good");
    h.deploy_ok(
        &good,
        &[
            ("manifest.json", &manifest(&good, "1.0.0", json!({}))),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True}\n",
            ),
        ],
    )
    .await;
    let (s, b) = h.sync(&good, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
