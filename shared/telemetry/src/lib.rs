//! Logging, health, readiness and metrics endpoints, and shutdown signals, the same for
//! every service.

pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{routing::get, Json, Router};
use tokio_util::sync::CancellationToken;

pub use metrics::metrics;

/// A readiness probe: resolves to `Err(reason)` when the service cannot serve.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/healthz` (the process is alive), `/readyz` (its dependencies answer) and
/// `/metrics` (Prometheus text).
pub fn ops_router(service: &'static str, ready: ReadyCheck) -> Router {
    health_router(service)
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready", "service": service}))).into_response(),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(serde_json::json!({"status": "not_ready", "service": service, "error": reason, "code": "unavailable"})),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    metrics().render(),
                )
            }),
        )
}

/// Readiness of a NATS connection and, optionally, a Postgres pool.
pub fn nats_ready(nats: async_nats::Client) -> ReadyCheck {
    Arc::new(move || {
        let nats = nats.clone();
        Box::pin(async move {
            match nats.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                other => Err(format!("NATS is {other:?}")),
            }
        })
    })
}

/// Counts requests and latency per matched route.
pub async fn track_http(service: &'static str, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    metrics().http(
        service,
        &method,
        &route,
        res.status().as_u16(),
        start.elapsed(),
    );
    res
}

/// Installs the `tracing` subscriber once; `RUST_LOG` overrides the default `info`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// A `/healthz` route reporting the service name.
pub fn health_router(service: &'static str) -> Router {
    Router::new().route(
        "/healthz",
        get(move || async move { Json(serde_json::json!({"status": "ok", "service": service})) }),
    )
}

/// Serves `router` on `addr` (given by `setting`, which a failure to listen names)
/// until `shutdown` is cancelled. Returns the bound address and the serving task.
pub async fn serve(
    addr: &str,
    setting: &str,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} ({setting}): {e}"),
        )
    })?;
    let local = listener.local_addr()?;
    let fut = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    };
    Ok((local, fut))
}

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
                        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        t.cancel();
    });
    token
}
