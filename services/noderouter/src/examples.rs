//! `noderouter up --examples DIR`: once the platform is up, deploys every app folder of
//! DIR (one with a `manifest.json`) whose bundle is not already what an app serves, or
//! served when it was deleted. Packing is deterministic, so a restart with unchanged
//! examples adds no revision, runs no import again and brings no deleted app back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::author;

/// Deploys the examples of `dir` to the platform at `url`; returns one line per app for
/// the start banner (`deployed hello 1.0.0`, `kept hello 1.0.0 (unchanged)`). An app
/// that cannot be deployed is logged and skipped.
pub(crate) async fn deploy_all(url: &str, dir: &Path, token: &str) -> anyhow::Result<Vec<String>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    entries.sort();
    let known = match known_bundles(url, token).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the deployed apps; deploying every example");
            HashMap::new()
        }
    };
    let mut lines = Vec::new();
    for app in entries {
        let bundle = author::load_bundle(&app);
        let (file_name, bytes) = match bundle {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(app = %app.display(), error = %format!("{e:#}"), "example app not deployed");
                continue;
            }
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        if let Some(kept) = known.get(&sha) {
            lines.push(format!("kept {kept} (unchanged)"));
            continue;
        }
        match deploy_bytes(url, file_name, bytes, Some(token)).await {
            Ok(report) => lines.push(format!(
                "deployed {} {}",
                report["app_name"].as_str().unwrap_or_default(),
                report["version"].as_str().unwrap_or_default()
            )),
            Err(e) => {
                tracing::error!(app = %app.display(), error = %e, "example app not deployed")
            }
        }
    }
    Ok(lines)
}

/// The bundles the platform holds as current or deleted apps: sha256 -> `name version`.
async fn known_bundles(url: &str, token: &str) -> anyhow::Result<HashMap<String, String>> {
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/admin/api/apps", url.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut known = HashMap::new();
    for key in ["apps", "deleted"] {
        for app in listed[key].as_array().into_iter().flatten() {
            if let Some(sha) = app["sha256"].as_str() {
                known.insert(
                    sha.to_owned(),
                    format!(
                        "{} {}{}",
                        app["app_name"].as_str().unwrap_or_default(),
                        app["version"].as_str().unwrap_or_default(),
                        if key == "deleted" { ", deleted" } else { "" }
                    ),
                );
            }
        }
    }
    Ok(known)
}

/// Uploads a bundle; the deploy report, or the refusal as an error.
async fn deploy_bytes(
    url: &str,
    file_name: String,
    bytes: Vec<u8>,
    token: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name);
    let form = reqwest::multipart::Form::new().part("file", part);
    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/apps/deploy",
            url.trim_end_matches('/')
        ))
        .multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "deploy refused ({status}): {}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    }
    Ok(body)
}
