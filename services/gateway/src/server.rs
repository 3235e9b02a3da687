//! The gateway's accept loop, in place of `axum::serve`, for the limits a public
//! listener needs (see `docs/security.md`, "Identity and HTTP limits"):
//!
//! - a connection cap (`NR_MAX_CONNECTIONS`, at most three quarters of the process's
//!   open-file limit, which is raised to its hard limit first): past it, a new
//!   connection is closed at once instead of queueing, so slow clients cannot hold
//!   every slot, the memory they cost is bounded, and the rest of the process keeps
//!   files to open;
//! - a header read timeout (`NR_HEADER_TIMEOUT_S`): a client that does not finish its
//!   request head in time is disconnected;
//! - a body read deadline (`NR_BODY_TIMEOUT_S`): a request body not read in full by
//!   then fails, answering 408 and closing the connection;
//! - a cap per client address (`NR_MAX_CONNECTIONS_PER_ADDRESS`, half of the whole cap
//!   unless set; see [`crate::per_address`]): one client cannot hold every slot;
//! - the peer address as `ConnectInfo`, for per-address login throttling.
//!
//! A WebSocket leaves the connection count when it is upgraded; notify caps sockets
//! per user.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read: Duration,
    pub max_connections: usize,
    pub per_address: Option<usize>,
}

/// How long a stopping server waits for open requests.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop`, within `limits`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let files = nr_infra::open_files::raise();
    let max = nr_infra::open_files::connection_cap(limits.max_connections, files)
        .min(Semaphore::MAX_PERMITS);
    if max < limits.max_connections {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_files = files,
            capped_at = max,
            "NR_MAX_CONNECTIONS is more than this process can hold open: connections are capped at three quarters of its open-file limit (raise `ulimit -n`)"
        );
    }
    let permits = Arc::new(Semaphore::new(max));
    let per_address = crate::per_address::effective(limits.per_address, max);
    let addresses = crate::per_address::PerAddress::new(per_address);
    // Every connection's task, so a stopping server waits for exactly those.
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small writes (WebSocket frames, short replies) leave at once instead of
        // waiting for the peer's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max, "connection cap reached; connection closed");
            drop(stream);
            continue;
        };
        let Some(place) = addresses.admit(&peer) else {
            tracing::warn!(%peer, per_address, "connection cap of this client address reached; connection closed");
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = (permit, place);
            let svc = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(Body::new))
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    // New connections are refused from here on (a load balancer moves on at once).
    drop(listener);
    // Wait for open connections to finish their requests (up to DRAIN).
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "drain deadline passed: closing connections still open"
        );
    }
    Ok(())
}

/// A request body that fails once `deadline` has passed since the request began.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the body read timeout")]
struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: gives the request body a read deadline; a handler that failed because
/// of it answers 408 and the connection is closed.
pub(crate) async fn body_deadline(timeout: Duration, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let req = req.map(move |inner| {
        if inner.is_end_stream() {
            return inner;
        }
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired: flag,
        })
    });
    let res = next.run(req).await;
    if expired.load(Ordering::Acquire) {
        let mut res = crate::error::ApiError::Timeout(BodyTimedOut.to_string()).into_response();
        *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
        res.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return res;
    }
    res
}

/// API answers carry sessions, tokens and app data: no cache (a browser's, a proxy's)
/// may keep them. An answer that set its own `Cache-Control` keeps it.
pub(crate) async fn no_store(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut res = next.run(req).await;
    res.headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    res
}

/// The header a browser sends when it fetches a service worker's script (to register
/// it or to check it for an update).
const SERVICE_WORKER: &str = "service-worker";

/// Refuses every service worker script. A service worker outlives the page that
/// registered it, the app (deleted or not) and the session: registered by one app's
/// page from a download link or a bundle file, it would answer later page loads on the
/// platform's origin, script included, in whoever's session comes next. Nothing of the
/// platform uses one, and an app's scripts run only while its page is open.
pub(crate) async fn no_service_workers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.headers().contains_key(SERVICE_WORKER) {
        tracing::warn!(path = %req.uri().path(), "service worker script refused");
        return axum::response::IntoResponse::into_response(crate::error::ApiError::Forbidden(
            "service workers are not allowed on this platform: an app's scripts run only while its page is open".into(),
        ));
    }
    next.run(req).await
}

/// `Clear-Site-Data: "cache", "storage"`, sent when a session starts or ends: the
/// browser drops the origin's HTTP cache (answers an app let it keep, `private` and
/// per caller), its local storage and any service worker registered before they were
/// refused, so nothing one user's session left runs or shows in the next one's.
pub(crate) const CLEAR_SITE_DATA: (axum::http::HeaderName, axum::http::HeaderValue) = (
    axum::http::HeaderName::from_static("clear-site-data"),
    axum::http::HeaderValue::from_static("\"cache\", \"storage\""),
);
