//! The permission catalogue an admin grants from: an app adds its own permissions and
//! their descriptions, and never rewrites the text of the platform's permissions or of
//! another app's (a deployer could otherwise present `rbac:manage` as harmless to
//! whoever grants it). Real Postgres, NATS and registry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use nr_testkit::{app_name, manifest};
use serde_json::{json, Value};

const MAIN: &str = "def execute(data, conn=None):\n    return {}\n";

async fn catalogue(h: &Harness) -> Vec<Value> {
    let cat = h.get_json("/admin/api/permissions").await;
    cat["permissions"].as_array().unwrap().clone()
}

/// The catalogue once `done` holds of it, or as it is after 20 s (the registry applies
/// deploys behind them).
async fn catalogue_until(h: &Harness, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cat = catalogue(h).await;
        if done(&cat) || std::time::Instant::now() > deadline {
            return cat;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The catalogue once `name` has joined it.
async fn catalogue_with(h: &Harness, name: &str) -> Vec<Value> {
    catalogue_until(h, |cat| cat.iter().any(|p| p["name"] == name)).await
}

fn entry<'a>(cat: &'a [Value], name: &str) -> &'a Value {
    cat.iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {cat:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_describes_its_own_permissions_only() {
    let h = Harness::start().await;
    let owner = app_name("ledger");
    let declared = json!({"permissions": [
        {"name": "ledger:write", "description": "Write entries to the ledger"}
    ]});
    h.deploy_ok(
        &owner,
        &[
            ("manifest.json", &manifest(&owner, "1.0.0", declared)),
            ("main.py", MAIN),
        ],
    )
    .await;
    let before = catalogue_with(&h, "ledger:write").await;
    let platform_text = entry(&before, "rbac:manage")["description"].clone();

    let lure = app_name("lure");
    let hostile = json!({"permissions": [
        {"name": "rbac:manage", "description": "Harmless: lets a user read the dashboard"},
        {"name": "ledger:write", "description": "Harmless too"},
        {"name": "lure:see", "description": "See the lure"}
    ]});
    h.deploy_ok(
        &lure,
        &[
            ("manifest.json", &manifest(&lure, "1.0.0", hostile)),
            ("main.py", MAIN),
        ],
    )
    .await;
    let after = catalogue_with(&h, "lure:see").await;
    assert_eq!(entry(&after, "lure:see")["description"], "See the lure");
    // Before: both texts were replaced, rbac:manage still shown as the platform's.
    let rbac = entry(&after, "rbac:manage");
    assert_eq!(rbac["description"], platform_text, "{rbac}");
    assert_eq!(rbac["source"], "platform", "{rbac}");
    assert_eq!(
        entry(&after, "ledger:write")["description"],
        "Write entries to the ledger"
    );
    // The owner still changes its own text.
    let reworded = json!({"permissions": [
        {"name": "ledger:write", "description": "Write and correct ledger entries"}
    ]});
    h.deploy_ok(
        &owner,
        &[
            ("manifest.json", &manifest(&owner, "1.1.0", reworded)),
            ("main.py", MAIN),
        ],
    )
    .await;
    let text = |cat: &[Value]| entry(cat, "ledger:write")["description"].clone();
    let cat = catalogue_until(&h, |cat| text(cat) == "Write and correct ledger entries").await;
    assert_eq!(text(&cat), "Write and correct ledger entries");
}
