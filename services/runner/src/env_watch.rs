//! Reloads an app when its variables or secrets change: follows `app.env.>` (new
//! events only: a host loaded after a change reads it from Postgres anyway) and, per
//! app, loads a new host at the current revision, then switches to it the way a hot
//! reload does. In-flight calls finish on the old host; a failed load leaves the old
//! host serving.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream::consumer;
use nr_contracts::events::AppChange;
use nr_contracts::subjects;
use nr_infra::consume::{consume, Order};
use nr_infra::drain::Drain;
use tokio_util::sync::CancellationToken;

use crate::text::{clean, MAX_TRACEBACK};
use crate::{lock, Inner};

/// One app's env generations: `wanted` is the stream sequence of the last change seen,
/// `loaded` the one the current host was loaded after.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EnvGen {
    wanted: u64,
    loaded: u64,
}

/// Subscribes to `app.env.>` and reloads the app of each change.
pub(crate) async fn start(inner: Arc<Inner>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let messages = nr_infra::follow::Resumable::open(
        inner.js.clone(),
        subjects::STREAM_APP_ENV,
        Some(subjects::APP_ENV_ALL),
        consumer::DeliverPolicy::New,
        "app.env",
    )
    .await
    .context("cannot follow app.env")?;
    let weak = Arc::downgrade(&inner);
    drop(inner);
    let drain = Drain::from_token(shutdown.clone());
    consume(
        "app-env",
        messages.into_stream(shutdown),
        &drain,
        Order::InOrder,
        move |msg| {
            let change = weak.upgrade().zip(subjects::app_of_app_env(&msg.subject));
            if let (Some((inner, app)), Ok(info)) = (change, msg.info()) {
                let gen = info.stream_sequence;
                let app = app.to_owned();
                {
                    let mut gens = lock(&inner.env_gens);
                    let entry = gens.entry(app.clone()).or_default();
                    entry.wanted = entry.wanted.max(gen);
                }
                tokio::spawn(async move { inner.reload_env(&app).await });
            }
            std::future::ready(Ok(()))
        },
    );
    Ok(())
}

impl Inner {
    /// Loads `app` again at its current revision when its env changed since the current
    /// host was loaded. Serialised with the app's other loads.
    pub(crate) async fn reload_env(&self, app: &str) {
        let app_lock = lock(&self.load_locks)
            .entry(app.to_owned())
            .or_default()
            .clone();
        let _guard = app_lock.lock().await;
        let wanted = {
            let gens = lock(&self.env_gens);
            match gens.get(app) {
                Some(g) if g.wanted > g.loaded => g.wanted,
                _ => return,
            }
        };
        // Not loaded here: its next load reads the variables as they are now. A load
        // that failed is tried again then, not answered from memory: the new variables
        // may be what it lacked (a secret set again after its key was lost).
        let Some(current) = self.current(app) else {
            self.report_env(app, wanted, None).await;
            if lock(&self.failed).remove(app).is_some() {
                if let Some(g) = lock(&self.env_gens).get_mut(app) {
                    g.loaded = g.loaded.max(wanted);
                }
                tracing::info!(
                    app,
                    env_gen = wanted,
                    "the app's variables changed; its failed load is tried again at its next call"
                );
            }
            return;
        };
        let known = lock(&self.known).get(app).cloned();
        let ev = match known {
            Some(ev) if ev.rev >= current.rev => ev,
            _ => match self.fetch_event(app, current.rev).await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(app, error = %e, "cannot reload the app for its new variables");
                    self.report_env(
                        app,
                        wanted,
                        Some(format!(
                            "the runner cannot read the app's current version: {e}"
                        )),
                    )
                    .await;
                    return;
                }
            },
        };
        if ev.event.data.change == AppChange::Deleted {
            self.report_env(app, wanted, None).await;
            return;
        }
        match self.load(ev.rev, &ev.event.data).await {
            Ok(host) => {
                self.hosts
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(app.to_owned(), host.clone());
                lock(&self.failed).remove(app);
                if let Some(g) = lock(&self.env_gens).get_mut(app) {
                    g.loaded = g.loaded.max(wanted);
                }
                tracing::info!(app, version = %host.version, rev = host.rev, env_gen = wanted, "app reloaded with its new variables");
                self.report_env(app, wanted, None).await;
                if ev.rev > current.rev {
                    // A revision newer than the one serving: a deploy waits for this.
                    self.report_load(&ev, None).await;
                }
            }
            Err(e) => {
                if ev.rev > current.rev {
                    self.report_load(&ev, Some((e.to_string(), e.fault())))
                        .await;
                }
                // Never the value: load errors name the variable at most.
                tracing::error!(app, rev = ev.rev, error = %clean(&e.to_string(), MAX_TRACEBACK), "reload for new variables failed; the previous host keeps serving");
                let shown = self.for_author(app, &e.to_string());
                self.report_env(app, wanted, Some(shown)).await;
            }
        }
    }

    /// Tells the gateway that made change `gen` of `app`'s variables what came of it
    /// here (`runner.env_loaded.<app>`): reloaded, or not loaded here (`error` none), or
    /// why the reload failed (the previous host goes on serving).
    async fn report_env(&self, app: &str, gen: u64, error: Option<String>) {
        let report = nr_contracts::events::AppLoaded {
            runner: self.id.clone(),
            app_name: app.to_owned(),
            version: self
                .current(app)
                .map(|h| h.version.clone())
                .unwrap_or_default(),
            rev: gen,
            error,
            fault: nr_contracts::events::LoadFault::default(),
        };
        self.publish_report(subjects::runner_env_loaded(app), &report)
            .await;
    }
}
