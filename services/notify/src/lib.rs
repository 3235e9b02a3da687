//! Notify: the WebSocket hub at `/api/ws/notify`. It holds users' sockets and pushes
//! them the events they may see. Its router is mounted on the gateway's public address
//! in the all-in-one process, or served on its own address.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use clap::Args;
use tokio_util::sync::CancellationToken;

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
}

#[derive(Clone)]
pub struct NotifyDeps {
    pub nats: async_nats::Client,
}

struct Hub {
    _nats: async_nats::Client,
    shutdown: CancellationToken,
}

pub struct Notify {
    hub: Arc<Hub>,
}

const PING_EVERY: Duration = Duration::from_secs(20);
const MAX_INBOUND: usize = 4 * 1024;

impl Notify {
    pub async fn build(_config: NotifyConfig, deps: NotifyDeps) -> anyhow::Result<Notify> {
        Ok(Notify {
            hub: Arc::new(Hub {
                _nats: deps.nats,
                shutdown: CancellationToken::new(),
            }),
        })
    }

    /// `/api/ws/notify`, to be served on the public address.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/ws/notify", get(upgrade))
            .with_state(self.hub.clone())
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.hub.shutdown.cancel();
        Ok(())
    }
}

async fn upgrade(State(hub): State<Arc<Hub>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_INBOUND)
        .on_upgrade(move |socket| serve_socket(hub, socket))
}

async fn serve_socket(hub: Arc<Hub>, mut socket: WebSocket) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            inbound = socket.recv() => match inbound {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
}
