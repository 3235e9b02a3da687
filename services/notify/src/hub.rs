//! The hub: which sockets are open here, and the fan-out of events to them.
//!
//! Every instance reads every event itself, through ordered consumers created at start
//! (`DeliverPolicy::New`), and writes to its own sockets only; with N instances each
//! socket is on exactly one, so each user gets each event once per socket. Delivery of
//! an action needs: the app's manifest declares the action (its `required_permission`
//! comes from the catalogue), the user is subscribed, and holds the permission now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_nats::jetstream;
use axum::extract::ws::Utf8Bytes;
use nr_auth::jwt::Jwt;
use nr_auth::rbac::Rbac;
use nr_contracts::events::AppChange;
use nr_contracts::manifest::RuntimeManifest;
use nr_contracts::subjects;
use nr_infra::consume::{consume, Order};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Viewer};

#[path = "hub_fanout.rs"]
mod fanout;
#[path = "hub_follow.rs"]
mod follow;
use crate::{HubLimits, NotifyConfig, NotifyDeps};
pub(crate) use fanout::action_message;

/// What the hub hands a socket.
pub(crate) enum Out {
    /// An `action` message and its `NR_ACTIONS` sequence (its `id`).
    Action {
        seq: u64,
        text: Utf8Bytes,
    },
    Job(Utf8Bytes),
}

pub(crate) struct Conn {
    pub id: u64,
    pub viewer: Arc<Viewer>,
    tx: mpsc::Sender<Out>,
    /// Cancelled when the queue overflowed: the socket closes with 1013.
    pub slow: CancellationToken,
    /// Cancelled when the socket's access ended; `end_reason` says how to close.
    pub ended: CancellationToken,
    pub end_reason: Mutex<Option<(u16, &'static str)>>,
}

impl Conn {
    fn push(&self, out: Out) {
        match self.tx.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.slow.is_cancelled() {
                    tracing::info!(conn = self.id, sub = %self.viewer.sub, "socket queue full; disconnecting a slow client");
                }
                self.slow.cancel();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

type ActionKey = (String, String);

/// What the current manifest of an app asks of a subscriber.
#[derive(Default)]
struct AppPerms {
    /// The app's own `required_permission`.
    app: String,
    /// `action -> required_permission`.
    actions: HashMap<String, String>,
}

/// Subscribers of an action, with when each subscribed.
type Subscribers = Arc<HashMap<String, time::OffsetDateTime>>;

pub(crate) struct Hub {
    jwt: Jwt,
    rbac: Arc<Rbac>,
    db: sqlx::PgPool,
    pub(crate) js: jetstream::Context,
    allowed_origins: Vec<String>,
    pub(crate) limits: HubLimits,
    next_id: AtomicU64,
    /// Open sockets by the `sub` of their principal.
    conns: RwLock<HashMap<String, Vec<Arc<Conn>>>>,
    /// The permissions of the current manifests, by app.
    actions: RwLock<HashMap<String, AppPerms>>,
    /// Subscribers of an action, dropped whenever an RBAC change (which includes
    /// subscribe and unsubscribe) is applied; `subs_generation` fences a racing load.
    subs: Mutex<HashMap<ActionKey, Subscribers>>,
    subs_generation: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    /// Sockets per principal, handshakes in progress included.
    slots: Mutex<HashMap<String, usize>>,
}

/// One socket slot of a principal (see [`Hub::reserve`]).
pub(crate) struct Slot {
    hub: std::sync::Weak<Hub>,
    sub: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut slots = hub.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = slots.get_mut(&self.sub) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.remove(&self.sub);
            }
        }
    }
}

/// A registered socket; dropping it removes the socket from the hub.
pub(crate) struct Registration {
    hub: std::sync::Weak<Hub>,
    pub conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(&self.conn);
        }
    }
}

impl Hub {
    pub(crate) async fn start(config: NotifyConfig, deps: NotifyDeps) -> anyhow::Result<Arc<Hub>> {
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let jwt = Jwt::from_args(&config.auth)?;
        if jwt.ephemeral {
            tracing::warn!("NR_JWT_SECRET is not set: the hub cannot verify the gateway's sessions unless it runs in the same process");
        }
        let rbac = Rbac::new(deps.db.clone());
        rbac.follow(deps.nats.clone()).await?;
        let hub = Arc::new(Hub {
            jwt,
            rbac,
            db: deps.db,
            js: js.clone(),
            allowed_origins: config.auth.allowed_origins.clone(),
            limits: config.limits,
            next_id: AtomicU64::new(1),
            conns: RwLock::new(HashMap::new()),
            actions: RwLock::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            subs_generation: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            slots: Mutex::new(HashMap::new()),
        });

        // Subscriptions are RBAC events: drop the cached subscriber sets when one lands.
        let applied = deps
            .nats
            .subscribe(subjects::RBAC_APPLIED)
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RBAC_APPLIED))?;
        let weak = Arc::downgrade(&hub);
        consume(
            "hub-rbac-applied",
            applied,
            &hub.follows(),
            Order::InOrder,
            move |_| {
                if let Some(hub) = weak.upgrade() {
                    hub.drop_subscriptions();
                    // This message may arrive here before the RBAC cache's own follower
                    // sees it: drop its entries first, so the check below reads the change.
                    hub.rbac.invalidate();
                    // Access may have ended (logout, password, disabled user, revoked
                    // token, lost role): check every open socket again.
                    tokio::spawn(async move { hub.recheck_sockets().await });
                }
                std::future::ready(Ok(()))
            },
        );

        let weak = Arc::downgrade(&hub);
        nr_infra::apps::follow(js.clone(), hub.shutdown.clone(), move |ev| {
            if let Some(hub) = weak.upgrade() {
                hub.apply_app(
                    &ev.event.data.app_name,
                    ev.event.data.change,
                    &ev.event.data.manifest,
                );
            }
        })
        .await?;

        hub.follow(subjects::STREAM_ACTIONS, subjects::ACTION_TRIGGERED_ALL)
            .await?;
        hub.follow(subjects::STREAM_JOB_EVENTS, subjects::JOB_PROGRESS_ALL)
            .await?;
        crate::job_logs::follow(&hub, deps.nats.clone()).await?;
        Ok(hub)
    }

    pub(crate) fn jwt(&self) -> &Jwt {
        &self.jwt
    }
    pub(crate) fn rbac(&self) -> &Rbac {
        &self.rbac
    }
    pub(crate) fn db(&self) -> &sqlx::PgPool {
        &self.db
    }
    pub(crate) fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }
    pub(crate) fn limits(&self) -> &HubLimits {
        &self.limits
    }

    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    fn apply_app(&self, app: &str, change: AppChange, manifest: &serde_json::Value) {
        let mut map = self.actions.write().unwrap_or_else(|p| p.into_inner());
        if change == AppChange::Deleted {
            map.remove(app);
            return;
        }
        let m = match RuntimeManifest::from_value(manifest) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(app, error = %e, "app.updated event skipped: its manifest does not parse; the app's actions stay as they were");
                nr_telemetry::metrics::metrics().app_event_skipped("notify", "manifest");
                return;
            }
        };
        let actions = m
            .actions
            .into_iter()
            .map(|a| (a.name, a.required_permission.unwrap_or_default()))
            .collect();
        map.insert(
            app.to_owned(),
            AppPerms {
                app: m.required_permission.unwrap_or_default(),
                actions,
            },
        );
    }

    /// The permissions an action needs (the app's, then the action's), or None when
    /// the current manifest does not declare it (nobody can follow an undeclared one).
    fn required_permissions(&self, app: &str, action: &str) -> Option<[String; 2]> {
        let map = self.actions.read().unwrap_or_else(|p| p.into_inner());
        let perms = map.get(app)?;
        let action = perms.actions.get(action)?;
        Some([perms.app.clone(), action.clone()])
    }

    /// Takes one of the `cap` socket slots of `sub` on this instance, from the
    /// handshake on (so sockets opened at once are all counted); None when all are
    /// taken. The slot is given back when the returned guard drops.
    pub(crate) fn reserve(self: &Arc<Self>, sub: &str, cap: usize) -> Option<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let n = slots.entry(sub.to_owned()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            hub: Arc::downgrade(self),
            sub: sub.to_owned(),
        })
    }

    /// Closes the sockets whose access ended or shrank since they opened.
    async fn recheck_sockets(&self) {
        let all: Vec<Arc<Conn>> = self
            .conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        for conn in all {
            if conn.ended.is_cancelled() {
                continue;
            }
            if let Err(reason) = auth::still_admitted(self, &conn.viewer).await {
                tracing::info!(conn = conn.id, sub = %conn.viewer.sub, code = reason.0, "closing a socket whose access ended");
                *conn.end_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                conn.ended.cancel();
            }
        }
    }

    fn drop_subscriptions(&self) {
        self.subs_generation.fetch_add(1, Ordering::AcqRel);
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn subscribers(&self, app: &str, action: &str) -> Option<Subscribers> {
        let key = (app.to_owned(), action.to_owned());
        if let Some(s) = self
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(s.clone());
        }
        let generation = self.subs_generation.load(Ordering::Acquire);
        let rows: Vec<(String, time::OffsetDateTime)> = match sqlx::query_as(
            "SELECT user_id, created_at FROM noderouter_core.subscriptions WHERE app_name = $1 AND action_name = $2",
        )
        .bind(app)
        .bind(action)
        .fetch_all(&self.db)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(app, action, error = %e, "cannot read subscriptions; event not delivered");
                return None;
            }
        };
        let set: Subscribers = Arc::new(rows.into_iter().collect());
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if self.subs_generation.load(Ordering::Acquire) == generation {
            subs.insert(key, set.clone());
        }
        Some(set)
    }

    /// Whether `viewer` may receive, on replay, this action published at `published`:
    /// subscribed before it was published, and allowed to see it now. (Fan-out does
    /// the same per user, without the time check: a live event is newer than any
    /// subscription that sees it.)
    pub(crate) async fn may_see(
        &self,
        viewer: &Viewer,
        app: &str,
        action: &str,
        published: time::OffsetDateTime,
    ) -> bool {
        let Some([app_perm, action_perm]) = self.required_permissions(app, action) else {
            return false;
        };
        let Some(subs) = self.subscribers(app, action).await else {
            return false;
        };
        let subscribed_before = subs
            .get(&viewer.sub)
            .is_some_and(|since| *since <= published);
        subscribed_before && auth::may(self, viewer, &[&app_perm, &action_perm]).await
    }

    /// Adds a socket for `viewer`: from now on it gets every event it may see, queued
    /// until it is read. Done before the handshake's answer, so an event that follows
    /// the client's `101` is never missed; the socket is removed when the returned
    /// registration drops (the socket ended, or its upgrade never completed).
    pub(crate) fn register(
        self: &Arc<Self>,
        viewer: Viewer,
    ) -> (Registration, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            viewer: Arc::new(viewer),
            tx,
            slow: CancellationToken::new(),
            ended: CancellationToken::new(),
            end_reason: Mutex::new(None),
        });
        self.conns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(conn.viewer.sub.clone())
            .or_default()
            .push(conn.clone());
        let registration = Registration {
            hub: Arc::downgrade(self),
            conn,
        };
        (registration, rx)
    }

    fn unregister(&self, conn: &Conn) {
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = conns.get_mut(&conn.viewer.sub) {
            list.retain(|c| c.id != conn.id);
            if list.is_empty() {
                conns.remove(&conn.viewer.sub);
            }
        }
    }

    fn conns_of(&self, sub: &str) -> Vec<Arc<Conn>> {
        self.conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(sub)
            .cloned()
            .unwrap_or_default()
    }
}
