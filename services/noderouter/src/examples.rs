//! `noderouter up --examples DIR`: once the platform is up, deploys every app folder of
//! DIR (one with a `manifest.json`) whose bundle is not already what an app serves, or
//! served when it was deleted. Packing is deterministic, so a restart with unchanged
//! examples adds no revision, runs no import again and brings no deleted app back. An
//! app deleted only because the runners refused its first version (deploy's undo) is
//! not one an operator deleted: its example is deployed again at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::author::{self, Remote};

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
    let remote = Remote {
        url: url.to_owned(),
        token: Some(token.to_owned()),
    };
    let known = match known_bundles(&remote).await {
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
        match deploy_bytes(&remote, file_name, bytes).await {
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
async fn known_bundles(remote: &Remote) -> anyhow::Result<HashMap<String, String>> {
    let req = reqwest::Client::new().get(remote.endpoint("/admin/api/apps"));
    let (status, listed) = remote.send(req).await?;
    anyhow::ensure!(
        status.is_success(),
        "listing the apps answered {status}: {listed}"
    );
    let mut known = HashMap::new();
    for key in ["apps", "deleted"] {
        for app in listed[key].as_array().into_iter().flatten() {
            if let Some(sha) = app["sha256"].as_str() {
                if key == "deleted" && refused(remote, app["app_name"].as_str(), sha).await {
                    continue;
                }
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

/// Whether the bundle `sha` of the deleted `app` is a version the runners refused (its
/// deletion was deploy's undo of a refused first version, not an operator's). When the
/// versions cannot be read, it is taken as deleted on purpose.
async fn refused(remote: &Remote, app: Option<&str>, sha: &str) -> bool {
    let Some(app) = app else { return false };
    let req =
        reqwest::Client::new().get(remote.endpoint(&format!("/admin/api/apps/{app}/versions")));
    match remote.send(req).await {
        Ok((status, body)) if status.is_success() => body["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["sha256"] == sha && v["refused"].is_string()),
        Ok((status, body)) => {
            tracing::warn!(app, %status, %body, "cannot read the versions of a deleted app; its example stays deleted");
            false
        }
        Err(e) => {
            tracing::warn!(app, error = %format!("{e:#}"), "cannot read the versions of a deleted app; its example stays deleted");
            false
        }
    }
}

/// Uploads a bundle; the deploy report, or the refusal as an error.
async fn deploy_bytes(
    remote: &Remote,
    file_name: String,
    bytes: Vec<u8>,
) -> anyhow::Result<serde_json::Value> {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name);
    let form = reqwest::multipart::Form::new().part("file", part);
    let req = reqwest::Client::new()
        .post(remote.endpoint("/admin/api/apps/deploy"))
        .multipart(form);
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        anyhow::bail!(
            "deploy refused ({status}): {}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    }
    Ok(body)
}
