//! `manifest.json`, typed: the one definition deploy checks uploads against and every
//! other service reads stored `app.updated` events with. Pure: no I/O.
//!
//! Each known field has one type; a field of the wrong type or out of range makes the
//! whole parse fail with an error naming the field ([`ManifestError`]), and nothing
//! falls back to defaults. Absent (or `null`) optional fields take their own default
//! only. Unknown fields are ignored here (deploy warns about them and the stored
//! manifest keeps them). New fields are added as optional ones, so manifests written
//! before them keep parsing; `#[non_exhaustive]` keeps that additive for callers.
//!
//! `schemas/manifest.schema.json` describes the same shape and is tested against this
//! type. Rules that are not about shape (name formats, uniqueness, matching the bundle
//! name, conflicts with other apps) are deploy's (`services/deploy/src/manifest.rs`).

mod beyond;
mod jobs;
mod limits;
mod seconds;

use serde::{Deserialize, Deserializer, Serialize};

pub use beyond::{
    CatchUp, Overlap, RouteDecl, RouteMethod, ScheduleDecl, UploadDecl, WebhookDecl,
    CREDENTIAL_HEADERS, DEFAULT_DELIVERY_HEADER, DEFAULT_SIGNATURE_HEADER, ROUTE_FIELDS,
    SCHEDULE_FIELDS, UPLOAD_FIELDS, WEBHOOK_FIELDS,
};
pub use jobs::{
    JobConcurrency, JobRetry, RetryOn, JOB_RETRY_FIELDS, MAX_JOB_ATTEMPTS, MAX_JOB_CONCURRENCY,
};
pub use limits::{Limits, LIMITS_FIELDS, LIMITS_RANGES};
pub use seconds::{duration_or, Seconds, MAX_SECONDS, MIN_SECONDS, SECONDS_EXPECTED};

/// The top-level fields the platform knows, in the order the docs list them.
pub const FIELDS: &[&str] = &[
    "app_name",
    "version",
    "display_name",
    "description",
    "required_permission",
    "timeout_s",
    "job_timeout_s",
    "job_concurrency",
    "job_retry",
    "limits",
    "actions",
    "api_version",
    "nav",
    "permissions",
    "schedules",
    "routes",
];

/// The fields of one `actions[]` entry.
pub const ACTION_FIELDS: &[&str] = &["name", "display_name", "description", "required_permission"];
/// The fields of one `nav[]` node (and of its `children`).
pub const NAV_FIELDS: &[&str] = &["id", "label", "icon", "href", "permission", "children"];
/// The fields of one `permissions[]` entry.
pub const PERMISSION_FIELDS: &[&str] = &["name", "description"];

/// An app's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    pub app_name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Empty or absent: any signed-in user may call the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_permission: Option<String>,
    /// Time limit of a sync call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<Seconds>,
    /// Time limit of an async job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_timeout_s: Option<Seconds>,
    /// Most jobs of this app one runner runs at once; the platform's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_concurrency: Option<JobConcurrency>,
    /// Retries with back-off of a failed job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_retry: Option<JobRetry>,
    /// Process limits lower than the platform's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub actions: Vec<ActionDecl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nav: Vec<NavNode>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub permissions: Vec<PermissionDecl>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub schedules: Vec<ScheduleDecl>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub routes: Vec<RouteDecl>,
}

/// The name the services used for the run-time view before there was one type.
pub type RuntimeManifest = Manifest;

/// One action the app may emit (`actions[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActionDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_permission: Option<String>,
}

/// One node of the app's menu fragment (`nav[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NavNode {
    pub id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub children: Vec<NavNode>,
}

/// One permission the app declares (`permissions[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PermissionDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a manifest does not parse: the field (`job_timeout_s`, `actions[1].name`, or
/// empty for the manifest itself) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ManifestError {
    /// The field as an author reads it: `timeout_s`, `actions[0].name`; empty for the
    /// whole manifest.
    pub field: String,
    /// The field as a JSON pointer (`/actions/0/name`), to find its line.
    pub pointer: String,
    /// What serde found wrong, naming the expected type and range.
    pub message: String,
}

impl ManifestError {
    fn describe(&self) -> String {
        if self.field.is_empty() {
            format!("manifest: {}", self.message)
        } else {
            format!("manifest field {}: {}", self.field, self.message)
        }
    }
}

impl Manifest {
    /// Parses a manifest (a stored event's, or an upload's). Fails on the first field
    /// of the wrong type or out of range, naming it; never substitutes defaults.
    pub fn from_value(value: &serde_json::Value) -> Result<Manifest, ManifestError> {
        not_an_object(value)?;
        serde_path_to_error::deserialize::<_, Manifest>(value).map_err(|e| {
            let mut field = String::new();
            let mut pointer = String::new();
            for segment in e.path() {
                match segment {
                    serde_path_to_error::Segment::Seq { index } => {
                        field.push_str(&format!("[{index}]"));
                        pointer.push_str(&format!("/{index}"));
                    }
                    serde_path_to_error::Segment::Map { key }
                    | serde_path_to_error::Segment::Enum { variant: key } => {
                        if !field.is_empty() {
                            field.push('.');
                        }
                        field.push_str(key);
                        pointer.push('/');
                        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    }
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            ManifestError {
                field,
                pointer,
                message: e.into_inner().to_string(),
            }
        })
    }

    /// The permission a caller needs: `""` when the app is open to any signed-in user.
    pub fn permission(&self) -> &str {
        self.required_permission.as_deref().unwrap_or("")
    }
}

/// Serde would read a struct from an array of its fields in order (`["sales", "1.0.0"]`);
/// the manifest, its actions, nav nodes and permissions must be JSON objects.
fn not_an_object(manifest: &serde_json::Value) -> Result<(), ManifestError> {
    fn object(v: &serde_json::Value, field: &str, pointer: &str) -> Result<(), ManifestError> {
        if v.is_object() {
            return Ok(());
        }
        let found = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        Err(ManifestError {
            field: field.to_owned(),
            pointer: pointer.to_owned(),
            message: format!("expected a JSON object, found {found}"),
        })
    }
    fn items<'v>(
        parent: &'v serde_json::Value,
        key: &str,
        field: &str,
        pointer: &str,
    ) -> Vec<(String, String, &'v serde_json::Value)> {
        let Some(list) = parent.get(key).and_then(|l| l.as_array()) else {
            return Vec::new();
        };
        let prefix = if field.is_empty() {
            key.to_owned()
        } else {
            format!("{field}.{key}")
        };
        list.iter()
            .enumerate()
            .map(|(i, v)| (format!("{prefix}[{i}]"), format!("{pointer}/{key}/{i}"), v))
            .collect()
    }
    object(manifest, "", "")?;
    for key in ["job_retry", "limits"] {
        if let Some(v) = manifest.get(key).filter(|v| !v.is_null()) {
            object(v, key, &format!("/{key}"))?;
        }
    }
    for key in ["actions", "permissions", "schedules", "routes"] {
        for (field, pointer, v) in items(manifest, key, "", "") {
            object(v, &field, &pointer)?;
        }
    }
    let mut nav = items(manifest, "nav", "", "");
    while let Some((field, pointer, v)) = nav.pop() {
        object(v, &field, &pointer)?;
        nav.extend(items(v, "children", &field, &pointer));
    }
    Ok(())
}

/// `null` reads as an empty list, as an absent field does.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
