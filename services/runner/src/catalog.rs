//! The catalogue: which revision of each app this runner serves, loading a newer one
//! when a call names it (hot reload), loading an app again when its host died, and the
//! sweep of what apps leave behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::RawMessageErrorKind;
use bytes::Bytes;
use nr_contracts::events::{AppChange, AppLoaded, AppUpdated, LoadFault};
use nr_contracts::manifest::{duration_or, RuntimeManifest, Seconds};
use nr_contracts::{decode, subjects, Envelope};
use nr_infra::apps::AppEvent;
use tokio_util::sync::CancellationToken;

use crate::host::{AppHost, LoadError, LoadSpec};
use crate::text::{self, clean, MAX_TRACEBACK};
use crate::{lock, unpack, HostError, Inner};

/// A load that failed: answered from memory until the next change of the app, or, for a
/// failure of the platform's, until `retry_at`.
#[derive(Clone)]
pub(crate) struct Failed {
    pub rev: u64,
    pub version: String,
    pub error: String,
    pub retry_at: Option<Instant>,
}

/// How long a load that failed for the platform's reasons (the object store, Postgres,
/// a process that did not start) is answered from memory before it is tried again.
const PLATFORM_RETRY: Duration = Duration::from_secs(5);

impl Inner {
    pub(crate) fn current(&self, app: &str) -> Option<Arc<AppHost>> {
        self.hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }

    /// The host to serve a call or job of `app` that names revision `min_rev`: as
    /// [`Self::host_for`], except that while the host serving now is alive and older,
    /// it takes the call rather than hold it for the import of the new revision. That
    /// import is under way (the event reached this runner first), or about to start
    /// (the event reached the caller first, as it can after a deploy), or, should this
    /// runner have missed the event, started here in the background. Deploy answers
    /// only once the live runners have loaded the revision, so a call made after it
    /// answered is still served by the new version.
    pub(crate) async fn host_for_call(
        self: &Arc<Self>,
        app: &str,
        min_rev: u64,
    ) -> Result<Arc<AppHost>, HostError> {
        if let Some(h) = self.current(app) {
            if !h.is_dead() {
                if h.rev < min_rev {
                    let loading = lock(&self.load_locks)
                        .get(app)
                        .is_some_and(|l| l.try_lock().is_err());
                    if !loading {
                        let (inner, app) = (Arc::clone(self), app.to_owned());
                        tokio::spawn(async move {
                            // A failure is logged and reported to deploy by the load.
                            if let Err(e) = inner.host_for(&app, min_rev).await {
                                tracing::debug!(app = %app, min_rev, error = %e, "load for a call failed");
                            }
                        });
                    }
                }
                return Ok(h);
            }
        }
        self.host_for(app, min_rev).await
    }

    /// The host serving `app` at revision `min_rev` or later, loading it when this
    /// runner is behind. Loads of one app are serialised; other apps are unaffected.
    pub(crate) async fn host_for(
        &self,
        app: &str,
        mut min_rev: u64,
    ) -> Result<Arc<AppHost>, HostError> {
        if let Some(h) = self.current(app) {
            if h.rev >= min_rev && !h.is_dead() {
                return Ok(h);
            }
        }
        let app_lock = lock(&self.load_locks)
            .entry(app.to_owned())
            .or_default()
            .clone();
        let _guard = app_lock.lock().await;
        let mut current = self.current(app);
        if let Some(h) = &current {
            if h.is_dead() {
                // Its host process is gone: load the same revision again, now.
                tracing::warn!(
                    app,
                    rev = h.rev,
                    "the app's host process died; loading it again"
                );
                min_rev = min_rev.max(h.rev);
                h.kill_workers();
                self.hosts
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(app);
                current = None;
            } else if h.rev >= min_rev {
                return Ok(h.clone());
            }
        }
        if let Some(f) = lock(&self.failed).get(app).cloned() {
            // A failure of the app's code stands until the next change; one of the
            // platform's is tried again once its pause is over.
            let standing = f.retry_at.is_none_or(|at| Instant::now() < at);
            if f.rev >= min_rev && standing {
                return current.ok_or_else(|| HostError::LoadFailed {
                    app: app.to_owned(),
                    version: f.version,
                    error: f.error,
                    platform: f.retry_at.is_some(),
                });
            }
        }
        let known = lock(&self.known).get(app).cloned();
        let ev = match known {
            Some(ev) if ev.rev >= min_rev => ev,
            _ if min_rev > 0 => self.fetch_event(app, min_rev).await?,
            _ => return Err(HostError::NotFound(app.to_owned())),
        };
        if ev.event.data.change == AppChange::Deleted {
            self.hosts
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(app);
            return Err(HostError::NotFound(app.to_owned()));
        }
        match self.load(ev.rev, &ev.event.data).await {
            Ok(host) => {
                self.hosts
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(app.to_owned(), host.clone());
                lock(&self.failed).remove(app);
                tracing::info!(app, version = %host.version, rev = host.rev, "app loaded");
                self.report_load(&ev, None).await;
                Ok(host)
            }
            Err(e) => {
                let error = match &e {
                    LoadError::Import { error, traceback } if !traceback.is_empty() => {
                        format!("{error}\n{traceback}")
                    }
                    other => other.to_string(),
                };
                tracing::error!(app, version = %ev.event.data.version, rev = ev.rev, error = %clean(&error, MAX_TRACEBACK), "app failed to load");
                self.report_load(&ev, Some((error.clone(), e.fault())))
                    .await;
                lock(&self.failed).insert(
                    app.to_owned(),
                    Failed {
                        rev: ev.rev,
                        version: ev.event.data.version.clone(),
                        error: e.to_string(),
                        retry_at: (e.fault() == LoadFault::Platform)
                            .then(|| Instant::now() + PLATFORM_RETRY),
                    },
                );
                current.ok_or_else(|| HostError::LoadFailed {
                    app: app.to_owned(),
                    version: ev.event.data.version.clone(),
                    error: e.to_string(),
                    platform: e.fault() == LoadFault::Platform,
                })
            }
        }
    }

    /// Tells deploy (`runner.loaded.<app>`) that this runner loaded the revision of
    /// `ev`, or why it could not (the error and traceback as the author should see
    /// them) and whose fault that is.
    pub(crate) async fn report_load(&self, ev: &AppEvent, failure: Option<(String, LoadFault)>) {
        let app = &ev.event.data.app_name;
        let (error, fault) = match failure {
            Some((error, fault)) => (Some(self.for_author(app, &error)), fault),
            None => (None, LoadFault::default()),
        };
        let report = AppLoaded {
            runner: self.id.clone(),
            app_name: ev.event.data.app_name.clone(),
            version: ev.event.data.version.clone(),
            rev: ev.rev,
            error,
            fault,
        };
        self.publish_report(subjects::runner_loaded(app), &report)
            .await;
    }

    /// A load error as the app's author should see it: the app's files named from its
    /// folder, the runner's own frames left out, cut.
    pub(crate) fn for_author(&self, app: &str, error: &str) -> String {
        text::for_author(
            error,
            &self.bundles_dir.to_string_lossy(),
            app,
            &self.spawner.py_dir.to_string_lossy(),
        )
    }

    /// Publishes a load report (core NATS) on `subject`.
    pub(crate) async fn publish_report(&self, subject: String, report: &AppLoaded) {
        match nr_contracts::encode(report) {
            Ok(bytes) => {
                if let Err(e) = self.nats.publish(subject, bytes.into()).await {
                    tracing::warn!(app = %report.app_name, error = %e, "cannot publish a load report");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode a load report"),
        }
    }

    /// Reads one catalogue event by sequence (a caller saw a revision before we did).
    pub(crate) async fn fetch_event(&self, app: &str, rev: u64) -> Result<AppEvent, HostError> {
        let stream = self
            .js
            .get_stream(subjects::STREAM_APPS)
            .await
            .map_err(|e| HostError::Internal(format!("cannot open NR_APPS: {e}")))?;
        let msg = stream
            .get_raw_message(rev)
            .await
            .map_err(|e| match e.kind() {
                RawMessageErrorKind::NoMessageFound => HostError::NotFound(app.to_owned()),
                // The stream away or without a leader: the platform's trouble (a job is
                // tried again), not an app that is not deployed (a job would fail for good).
                _ => HostError::Internal(format!("cannot read app event {rev} from NR_APPS: {e}")),
            })?;
        if subjects::app_of_app_updated(&msg.subject) != Some(app) {
            return Err(HostError::NotFound(app.to_owned()));
        }
        let event: Envelope<AppUpdated> = decode(&msg.payload)
            .map_err(|e| HostError::Internal(format!("bad app.updated event {rev}: {e}")))?;
        Ok(AppEvent { rev, event })
    }

    pub(crate) async fn load(&self, rev: u64, ev: &AppUpdated) -> Result<Arc<AppHost>, LoadError> {
        // Checked before any work: a manifest that does not parse loads nothing, and
        // the version already loaded keeps serving.
        let manifest = RuntimeManifest::from_value(&ev.manifest).map_err(|e| {
            nr_telemetry::metrics::metrics().app_event_skipped("runner", "manifest");
            LoadError::Host(format!("app.updated event {rev} skipped: its {e}"))
        })?;
        let path = object_store::path::Path::from(ev.bundle_key.as_str());
        let bytes: Bytes = async { self.store.get(&path).await?.bytes().await }
            .await
            .map_err(|e| LoadError::Host(format!("cannot read bundle {}: {e}", ev.bundle_key)))?;
        // A directory of its own for every load, the same revision's included (a reload
        // for new variables, a dead host's replacement): the host still serving from the
        // previous one removes that one when it goes, and nothing else.
        let dir = self.bundles_dir.join(&ev.app_name).join(format!(
            "{rev}-{}-{}",
            ev.sha256.get(..12).unwrap_or(&ev.sha256),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let identity = nr_infra::appid::ensure(&self.db, &ev.app_name, &self.config.contain)
            .await
            .map_err(|e| {
                LoadError::Host(format!(
                    "cannot set up the identity of app {}: {e:#}",
                    ev.app_name
                ))
            })?;
        // The app's folder is closed to other apps before anything is unpacked in it.
        let gid = self.spawner.switch_users.then_some(identity.gid());
        let app_dir = self.bundles_dir.join(&ev.app_name);
        nr_infra::contain::group_dir(&app_dir, gid)
            .map_err(|e| LoadError::Host(format!("cannot prepare {}: {e}", app_dir.display())))?;
        let target = dir.clone();
        tokio::task::spawn_blocking(move || unpack::unpack(&bytes, &target))
            .await
            .map_err(|e| LoadError::Host(format!("unpack task failed: {e}")))?
            .map_err(|e| LoadError::Host(format!("cannot unpack bundle: {e:#}")))?;
        let env = nr_infra::appenv::load_for_app(&self.db, self.secrets.as_deref(), &ev.app_name)
            .await
            .map_err(|e| LoadError::Host(format!("cannot read the app's variables: {e}")))?;
        let timeout = manifest
            .timeout_s
            .map(Seconds::duration)
            .unwrap_or_else(|| duration_or(self.config.sync_timeout_s, 30.0));
        // Module code runs once at a time per app, across runners and deploy checks.
        let import =
            nr_infra::import_lock::ImportLock::take(&self.config.database_url, &ev.app_name).await;
        let host = AppHost::load(
            self.spawner.clone(),
            LoadSpec {
                app: ev.app_name.clone(),
                rev,
                sha256: ev.sha256.clone(),
                version: ev.version.clone(),
                dir,
                manifest,
                timeout,
                pool: self.config.pool(),
                import_timeout: duration_or(self.config.import_timeout_s.max(1.0), 60.0),
                identity,
                env,
                jobs: self.config.job_pool(),
            },
        )
        .await;
        if let Some(import) = import {
            import.release().await;
        }
        host
    }
}

/// Every second (the first at start), kills what an app left running under its host
/// (children of module code, orphans of killed workers) and app processes adopted by
/// init (left by a runner or deploy that was killed outright): cheap, it reads each
/// host's and init's children lists (ended children, zombies, are not walked).
pub(crate) async fn sweep(inner: std::sync::Weak<Inner>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let hosts: Vec<Arc<AppHost>> = inner
            .hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let (contained, base, count) = (
            inner.spawner.switch_users,
            inner.config.contain.app_uid_base,
            inner.config.contain.app_uid_count,
        );
        drop(inner);
        // Reading /proc and killing are blocking work: off the async threads that serve
        // calls, and awaited, so passes never overlap.
        let pass = tokio::task::spawn_blocking(move || {
            for h in hosts {
                h.sweep();
                h.watch_cpu();
            }
            if contained {
                nr_infra::contain::reap(base, count);
            }
        });
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "a sweep of app processes failed");
        }
    }
}
