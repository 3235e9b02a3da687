//! Notify: the WebSocket hub at `/api/ws/notify`. It holds users' sockets and pushes
//! them the events they may see. Its router is mounted on the gateway's public address
//! in the all-in-one process, or served on its own address by `nr-notify`.
//!
//! - `auth`: who opens a socket (session cookie with an origin check, bearer, or a
//!   one-time ticket from `POST /api/notify/ticket`) and what they may see, read live.
//! - `hub`: follows `NR_ACTIONS` and `NR_JOB_EVENTS` with ordered consumers of its own
//!   (every instance sees every event and serves its own sockets), the app catalogue
//!   (actions' `required_permission`) and the subscriptions; fans events out.
//! - `socket`: one connection: replay from `?last_id=`, bounded queue, pings, size cap.
//!
//! Messages and limits are described in `docs/events.md` ("WebSocket hub").

mod auth;
mod hub;
mod job_logs;
mod replay;
mod socket;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use tokio_util::sync::CancellationToken;

use hub::Hub;

/// The JavaScript client (`AdminWS`), served at `/assets/admin-ws.js`.
pub const ADMIN_WS_JS: &str = include_str!("../assets/admin-ws.js");

#[derive(Debug, Clone, Args)]
pub struct NotifyConfig {
    /// Address when notify runs on its own.
    #[arg(
        long = "notify-addr",
        env = "NR_NOTIFY_ADDR",
        default_value = "127.0.0.1:3001"
    )]
    pub http_addr: String,
    #[command(flatten)]
    pub nats: nr_config::NatsArgs,
    #[command(flatten)]
    pub db: nr_config::DbArgs,
    /// The same session settings as the gateway (NR_JWT_SECRET must match).
    #[command(flatten)]
    pub auth: nr_auth::AuthArgs,
    #[command(flatten)]
    pub limits: HubLimits,
}

/// Per-connection limits of the hub.
#[derive(Debug, Clone, Args)]
pub struct HubLimits {
    /// Messages waiting for one socket; a client that lets more pile up is disconnected
    /// with close code 1013.
    #[arg(long = "ws-queue", env = "NR_WS_QUEUE", default_value_t = 256)]
    pub queue: usize,
    /// Seconds between keep-alive pings; a socket silent for two intervals is closed.
    #[arg(long = "ws-ping-s", env = "NR_WS_PING_S", default_value_t = 20.0)]
    pub ping_s: f64,
    /// Largest frame a client may send, bytes; larger closes the socket with 1009.
    #[arg(
        long = "ws-max-inbound",
        env = "NR_WS_MAX_INBOUND",
        default_value_t = 4096
    )]
    pub max_inbound: usize,
    /// Most events replayed on a reconnect with `last_id`.
    #[arg(
        long = "ws-max-replay",
        env = "NR_WS_MAX_REPLAY",
        default_value_t = 10_000
    )]
    pub max_replay: u64,
    /// Open sockets one principal may hold on this instance; one more answers 429.
    #[arg(
        long = "ws-max-per-user",
        env = "NR_WS_MAX_PER_USER",
        default_value_t = 16
    )]
    pub max_per_user: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            queue: 256,
            ping_s: 20.0,
            max_inbound: 4096,
            max_replay: 10_000,
            max_per_user: 16,
        }
    }
}

impl HubLimits {
    fn ping(&self) -> Duration {
        Duration::from_secs_f64(self.ping_s.clamp(0.05, 3600.0))
    }
}

/// Bytes a socket reads at a time (and keeps as its read buffer).
const READ_CHUNK: usize = 512;

#[derive(Clone)]
pub struct NotifyDeps {
    pub nats: async_nats::Client,
    pub db: sqlx::PgPool,
}

pub struct Notify {
    hub: Arc<Hub>,
}

impl Notify {
    /// Connects the hub to the event streams, the app catalogue and RBAC. Events
    /// published from here on are delivered; earlier ones only through `last_id`.
    pub async fn build(config: NotifyConfig, deps: NotifyDeps) -> anyhow::Result<Notify> {
        let hub = Hub::start(config, deps).await?;
        Ok(Notify { hub })
    }

    /// `/api/ws/notify` and `/assets/admin-ws.js`, to be served on the public address.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/ws/notify", get(upgrade))
            .route("/assets/admin-ws.js", get(admin_ws_js))
            .with_state(self.hub.clone())
    }

    /// Open sockets on this instance.
    pub fn sockets(&self) -> usize {
        self.hub.socket_count()
    }

    /// Serves until `stop`; then closes every socket with 1001 (going away) so its
    /// client reconnects to another instance, and waits (at most 5 s) for the close
    /// frames to be written.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.hub.stop();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.hub.socket_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// The API's error shape, `{"error", "code"}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": message, "code": code})),
    )
        .into_response()
}

async fn admin_ws_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        ADMIN_WS_JS,
    )
        .into_response()
}

async fn upgrade(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // What the request itself gets wrong is answered before the credential is looked
    // at: a ticket opens one socket, and a request that cannot become one (not an
    // upgrade, a bad last_id) must not use it up.
    let last_id = match query
        .get("last_id")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "last_id must be the id of an event (a non-negative integer)",
                )
            }
        },
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status();
            return error(
                status,
                "bad_request",
                &format!("a WebSocket upgrade is required: {}", rejection.body_text()),
            );
        }
    };
    let (viewer, slot) = match auth::authenticate(&hub, &headers, query.get("ticket")).await {
        Ok(v) => v,
        Err(refusal) => return refusal.into_response(),
    };
    let limits = hub.limits().clone();
    // Registered now, so what happens after the client reads `101` reaches it.
    let registered = hub.register(viewer);
    ws.max_message_size(limits.max_inbound)
        .max_frame_size(limits.max_inbound)
        // Clients send little (pongs); tungstenite keeps this much per socket and
        // zeroes it before every read attempt. Larger frames (up to the cap) are read
        // in several chunks.
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        .max_write_buffer_size(2 * 1024 * 1024)
        .on_upgrade(move |socket| async move {
            socket::serve(hub, registered, socket, last_id).await;
            drop(slot);
        })
}
