//! The gateway's view of deployed apps, kept from the `NR_APPS` stream: no lookup on
//! the request path, and the revision each call must be served at.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nr_contracts::events::AppChange;
use nr_contracts::manifest::RuntimeManifest;
use nr_infra::apps::AppEvent;
use tokio::sync::watch;

#[derive(Debug)]
pub struct AppEntry {
    pub rev: u64,
    /// The manifest as deployed (nav fragments and other fields read as they are).
    pub raw_manifest: serde_json::Value,
    pub version: String,
    pub manifest: RuntimeManifest,
    pub timeout: Duration,
}

pub struct AppCache {
    map: RwLock<HashMap<String, Arc<AppEntry>>>,
    applied: watch::Sender<u64>,
    default_timeout: Duration,
}

impl AppCache {
    pub fn new(default_timeout: Duration) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            applied: watch::channel(0).0,
            default_timeout,
        }
    }

    pub fn get(&self, app: &str) -> Option<Arc<AppEntry>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }

    /// Every deployed app, by name.
    pub fn all(&self) -> Vec<(String, Arc<AppEntry>)> {
        let mut all: Vec<(String, Arc<AppEntry>)> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn apply(&self, ev: AppEvent) {
        let d = ev.event.data;
        {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            if d.change == AppChange::Deleted {
                map.remove(&d.app_name);
            } else {
                let manifest = RuntimeManifest::from_value(&d.manifest);
                let timeout = manifest
                    .timeout_s
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map(Duration::from_secs_f64)
                    .unwrap_or(self.default_timeout);
                map.insert(
                    d.app_name,
                    Arc::new(AppEntry {
                        rev: ev.rev,
                        raw_manifest: d.manifest.clone(),
                        version: d.version,
                        manifest,
                        timeout,
                    }),
                );
            }
        }
        self.applied.send_modify(|seq| *seq = (*seq).max(ev.rev));
    }

    /// Waits until the event at `rev` has been applied here (bounded by `limit`).
    pub async fn wait_for(&self, rev: u64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|seq| *seq >= rev))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }
}
