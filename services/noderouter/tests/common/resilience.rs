//! Helpers of the resilience tests: deploy a version of an app that answers it.

use nr_testkit::manifest;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Harness;

pub fn version_main(version: &str) -> String {
    format!("def execute(data, conn=None):\n    return {{\"version\": \"{version}\"}}\n")
}

pub async fn deploy_version(h: &Harness, app: &str, v: &str) -> (StatusCode, Value) {
    let manifest = manifest(app, v, json!({}));
    let main = version_main(v);
    let zip = nr_testkit::zip_files(&[("manifest.json", &manifest), ("main.py", &main)]);
    h.deploy(&format!("{app}.zip"), zip).await
}
