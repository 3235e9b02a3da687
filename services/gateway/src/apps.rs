//! The gateway's view of deployed apps, kept from the `NR_APPS` stream: no lookup on
//! the request path, and the revision each call must be served at.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nr_contracts::events::AppChange;
use nr_contracts::manifest::{RuntimeManifest, Seconds};
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

    /// Applies one catalogue event. An event whose manifest does not parse is skipped
    /// (the app keeps serving as it was, gated as it was), logged and counted; it still
    /// counts as applied so nothing waits on it.
    pub fn apply(&self, ev: AppEvent) {
        let d = ev.event.data;
        {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            if d.change == AppChange::Deleted {
                map.remove(&d.app_name);
            } else {
                match RuntimeManifest::from_value(&d.manifest) {
                    Ok(manifest) => {
                        let timeout = manifest
                            .timeout_s
                            .map(Seconds::duration)
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
                    Err(e) => {
                        tracing::error!(app = %d.app_name, rev = ev.rev, error = %e, "app.updated event skipped: its manifest does not parse; the app stays as it was");
                        nr_telemetry::metrics::metrics().app_event_skipped("gateway", "manifest");
                    }
                }
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
