//! The parts of `manifest.json` that services other than deploy read at run time.
//! Deploy validates the full manifest; everything else reads it leniently.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeManifest {
    #[serde(default)]
    pub app_name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required_permission: Option<String>,
    /// Per-app time limit for a sync call, seconds.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Per-app time limit for an async job, seconds.
    #[serde(default)]
    pub job_timeout_s: Option<f64>,
    #[serde(default)]
    pub actions: Vec<ActionDecl>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionDecl {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub required_permission: Option<String>,
}

impl RuntimeManifest {
    pub fn from_value(value: &serde_json::Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }
}
