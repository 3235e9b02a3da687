//! Every check of a bundle in order, shared by the deploy service and `noderouter app
//! lint` so both say the same thing:
//!
//! 1. zip safety and layout ([`crate::archive`]), unpacking into a private directory;
//! 2. the manifest ([`crate::manifest`]) and the wrapping folder's name;
//! 3. `main.py` present; the frontend checklist ([`crate::frontend`], warnings);
//! 4. (deploy only) conflicts with the other apps ([`crate::conflicts`]);
//! 5. the import check ([`crate::import`]).
//!
//! [`Checker::inspect`] runs 1–3; the caller runs 4, then [`Checker::import`].

use std::path::{Path, PathBuf};

use nr_infra::appid::ContainArgs;

use crate::archive::{self, Limits};
use crate::conflicts::AppFacts;
use crate::findings::{Finding, Refused};
use crate::import::ImportCheck;
use crate::{frontend, manifest};

#[derive(Debug, Clone)]
pub struct Checker {
    pub limits: Limits,
    /// The platform's process limits: a manifest's `limits` may ask for less only.
    pub contain: ContainArgs,
    /// `None` skips the import check.
    pub import: Option<ImportCheck>,
    /// Where bundles are unpacked for the import check (the system's temp dir if none).
    pub work_dir: Option<PathBuf>,
}

/// A bundle that passed the static checks, unpacked in a private directory that is
/// removed when this is dropped.
#[derive(Debug)]
pub struct Inspected {
    pub app_name: String,
    pub version: String,
    /// The manifest as written, unknown fields included.
    pub manifest: serde_json::Value,
    /// The manifest's `limits` (the import check runs under them).
    pub app_limits: Option<nr_contracts::manifest::Limits>,
    pub warnings: Vec<Finding>,
    pub facts: AppFacts,
    /// Dropped after the scratch directory is gone (fields drop in order).
    scratch: tempfile::TempDir,
    _held: nr_infra::leftovers::Held,
}

impl Inspected {
    pub fn app_dir(&self) -> PathBuf {
        self.scratch.path().join("app")
    }
}

impl Checker {
    /// Zip safety, layout, manifest, `main.py`, frontend. Blocking work runs off the
    /// async threads.
    pub async fn inspect(
        &self,
        bytes: bytes::Bytes,
        file_name: &str,
    ) -> Result<Inspected, Refused> {
        let limits = self.limits.clone();
        let contain = self.contain.clone();
        let work_dir = self.work_dir.clone();
        let file_name = file_name.to_owned();
        tokio::task::spawn_blocking(move || {
            inspect_blocking(&bytes, &file_name, &limits, &contain, work_dir.as_deref())
        })
        .await
        .map_err(Refused::internal)?
    }

    /// The import check, when configured.
    pub async fn import(&self, bundle: &Inspected) -> Result<(), Refused> {
        match &self.import {
            Some(check) => {
                check
                    .run(
                        &bundle.app_name,
                        &bundle.version,
                        bundle.app_limits.as_ref(),
                        &bundle.app_dir(),
                        bundle.scratch.path(),
                    )
                    .await
            }
            None => Ok(()),
        }
    }
}

/// How a check's scratch directory is named (in `NR_DEPLOY_DIR`, else the temp dir).
pub(crate) const SCRATCH_PREFIX: &str = "nr-deploy-";

fn inspect_blocking(
    bytes: &[u8],
    file_name: &str,
    limits: &Limits,
    contain: &ContainArgs,
    work_dir: Option<&Path>,
) -> Result<Inspected, Refused> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(SCRATCH_PREFIX);
    let scratch = match work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Refused::internal(format!("cannot create {}: {e}", dir.display())))?;
            builder.tempdir_in(dir)
        }
        None => builder.tempdir(),
    }
    .map_err(|e| Refused::internal(format!("cannot create a scratch directory: {e}")))?;
    let held = nr_infra::leftovers::hold(scratch.path())
        .map_err(|e| Refused::internal(format!("cannot lock the scratch directory: {e}")))?;
    let app_dir = scratch.path().join("app");
    let unpacked = archive::unpack(bytes, limits, Some(&app_dir))?;

    let raw = unpacked
        .texts
        .get("manifest.json")
        .cloned()
        .unwrap_or_default();
    let bundle_name = archive::bundle_name(file_name);
    let m = match manifest::check_manifest(&raw, bundle_name) {
        Ok(m) => m,
        // Limits above the platform's are manifest errors too, reported with the rest.
        Err(r) if r.status == 422 && !r.details.is_empty() => {
            let mut details = r.details;
            let text = manifest_text(&raw);
            details.extend(above_limits(contain, &text, &raw_limits(&text)));
            return Err(Refused::many(422, details).with_warnings(&r.warnings));
        }
        Err(r) => return Err(r),
    };
    let mut warnings = m.warnings.clone();
    warnings.extend(frontend::check(&m.app_name, &unpacked.texts));
    let above = match &m.typed.limits {
        Some(limits) => above_limits(contain, &manifest_text(&raw), std::slice::from_ref(limits)),
        None => Vec::new(),
    };
    if !above.is_empty() {
        return Err(Refused::many(422, above).with_warnings(&warnings));
    }
    if !unpacked.root.is_empty() {
        let folder = unpacked.root.trim_end_matches('/');
        if folder != m.app_name {
            return Err(archive::wrong_folder(folder, &m.app_name).with_warnings(&warnings));
        }
        warnings.insert(0, archive::wrapped_warning(folder));
    }
    if !unpacked.has_file("main.py") {
        return Err(Refused::one(
            422,
            "bundle.main_py",
            Some("main.py"),
            None,
            "main.py is missing: every app needs main.py defining execute(data, conn=None)",
        )
        .with_warnings(&warnings));
    }
    Ok(Inspected {
        app_name: m.app_name,
        version: m.version,
        manifest: m.manifest,
        app_limits: m.typed.limits,
        warnings,
        facts: m.facts,
        scratch,
        _held: held,
    })
}

/// The manifest's text as JSON reads it (comments stripped), to find fields' lines.
fn manifest_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    crate::jsonpos::strip_comments(&text).map_or(text.to_string(), |(t, _)| t)
}

/// `limits` above what this platform allows, as findings at their lines in the
/// manifest's `text`.
fn above_limits(
    contain: &ContainArgs,
    text: &str,
    limits: &[nr_contracts::manifest::Limits],
) -> Vec<Finding> {
    let above: Vec<_> = limits.iter().flat_map(|l| contain.above(Some(l))).collect();
    if above.is_empty() {
        return Vec::new();
    }
    let lines = crate::jsonpos::lines(text);
    above
        .into_iter()
        .map(|(field, message)| {
            let line = lines.get(&format!("/limits/{field}")).copied();
            crate::findings::finding("manifest.limits", Some("manifest.json"), line, message)
        })
        .collect()
}

/// The manifest's `limits` read field by field, for a manifest refused for something
/// else: each field that reads as a limit (one that does not has its own error).
fn raw_limits(text: &str) -> Vec<nr_contracts::manifest::Limits> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(fields) = value.get("limits").and_then(|l| l.as_object()) else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|(k, v)| {
            let one = serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
            serde_json::from_value(one).ok()
        })
        .collect()
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
