//! Gateway: the public HTTP API. It authenticates callers, keeps a live view of the
//! deployed apps (`apps`), forwards sync calls to the runners over NATS (`sync`) and
//! takes bundle uploads for deploy (`admin`).

mod admin;
mod alive;
#[cfg(test)]
mod api_doc_tests;
mod app_env;
pub mod apps;
pub mod auth;
pub mod config;
mod console;
mod env_reload;
pub mod error;
mod identity;
mod job_ops;
mod jobs;
mod openapi;
mod per_address;
mod routes;
mod schedules;
mod server;
mod shell;
mod sync;
mod ticket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use nr_infra::store::Store;
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
use error::ApiError;

#[derive(Clone)]
pub struct GatewayDeps {
    pub nats: async_nats::Client,
    pub store: Store,
    pub db: sqlx::PgPool,
    /// Routes of services mounted on the public address (notify's WebSocket hub).
    pub extra_routes: Router,
    /// Runners in this process, which take sync calls in memory; empty: the bus.
    pub local_runners: nr_infra::local_call::LocalRunners,
    /// Drops of `nats` (`nr_infra::bus::connect_as_watched`): a runner call waiting
    /// when the connection drops is answered 503 at once.
    pub bus_drops: nr_infra::bus::Drops,
}

pub(crate) struct AppState {
    pub(crate) config: GatewayConfig,
    pub(crate) nats: async_nats::Client,
    pub(crate) store: Store,
    pub(crate) db: sqlx::PgPool,
    pub(crate) js: jetstream::Context,
    pub(crate) apps: apps::AppCache,
    /// This gateway's name, returned as `node` when a job is submitted.
    pub(crate) node: String,
    pub(crate) jwt: Arc<nr_auth::jwt::Jwt>,
    pub(crate) rbac: Arc<nr_auth::rbac::Rbac>,
    pub(crate) auth_args: nr_auth::AuthArgs,
    pub(crate) runner_keys: nr_auth::signing::Keys,
    /// Runners in this process (`noderouter up`): sync calls go to them in memory.
    pub(crate) local_runners: nr_infra::local_call::LocalRunners,
    pub(crate) bus_drops: nr_infra::bus::Drops,
    /// Runners' heartbeats: a bus call whose runner died ends at once.
    pub(crate) runners: Arc<alive::Runners>,
    /// Seals app secrets (`NR_SECRETS_KEY`); without it secret operations are refused.
    pub(crate) secrets: Option<Arc<nr_infra::appenv::SecretsKey>>,
    /// argon2 on a bounded blocking pool.
    pub(crate) hasher: nr_auth::password::Hasher,
    /// Growing delays after failed logins.
    pub(crate) throttle: nr_auth::throttle::LoginThrottle,
    /// Writes submitted jobs, many per statement under load.
    pub(crate) submits: nr_jobs::Batcher<nr_jobs::QueuedJob, jobs::SubmitResult>,
}

#[derive(Clone)]
pub(crate) struct RequestId(pub String);

pub struct Gateway {
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
    /// The internal listener of `/metrics` (NR_METRICS_ADDR).
    metrics: Option<(tokio::net::TcpListener, Router)>,
    follower_stop: CancellationToken,
}

/// Takes `X-Request-Id` from the caller or makes one, and echoes it in the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut res = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// A duration from a configured number of seconds (at least 1 ms).
fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.001, 86_400.0))
}

/// Ready when NATS is connected, Postgres answers and the object store answers; the
/// reason names every dependency that is down.
fn ready_check(state: Arc<AppState>) -> nr_telemetry::ReadyCheck {
    nr_infra::health::Deps {
        nats: Some(state.nats.clone()),
        db: Some(state.db.clone()),
        store: Some(state.store.clone()),
    }
    .ready_check()
}

/// Whether a request needs NATS to be served: calls, job submissions and cancels, and
/// every change made through the admin API (all are events on the bus).
fn needs_nats(method: &axum::http::Method, path: &str) -> bool {
    if path.starts_with("/api/sync/") {
        return true;
    }
    let writes = !matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    writes
        && (path.starts_with("/api/async/")
            || path.starts_with("/admin/api/")
            || path == "/api/auth/password")
}

/// Fails fast when a dependency is down: a request that needs NATS while it is
/// unreachable answers 503 at once (the client reconnects by itself; nothing waits
/// for it), and a 500 produced while Postgres or NATS is unreachable is answered as
/// the 503 it is, naming the dependency.
async fn dependency_guard(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse as _;
    if needs_nats(req.method(), req.uri().path()) {
        if let Err(reason) = nr_infra::health::nats(&state.nats) {
            return ApiError::Unavailable(format!("{reason}; retry shortly")).into_response();
        }
    }
    let res = next.run(req).await;
    if res.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let down = nr_infra::health::Deps {
        nats: Some(state.nats.clone()),
        db: Some(state.db.clone()),
        store: None,
    }
    .check()
    .await;
    match down {
        Err(reason) => ApiError::Unavailable(format!("{reason}; retry shortly")).into_response(),
        Ok(()) => res,
    }
}

/// Parses `NR_SECRETS_KEY`; when a rotation put a new key first, seals the secrets that
/// only an older key opens again, in the background.
fn app_env_key(
    config: &GatewayConfig,
    db: &sqlx::PgPool,
) -> anyhow::Result<Option<Arc<nr_infra::appenv::SecretsKey>>> {
    let Some(text) = config
        .secrets_key
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    else {
        tracing::warn!("NR_SECRETS_KEY is not set: app secrets cannot be set here (variables can)");
        return Ok(None);
    };
    let key = Arc::new(nr_infra::appenv::SecretsKey::parse(text)?);
    let (db, k) = (db.clone(), key.clone());
    tokio::spawn(async move {
        let mut unopened = Vec::new();
        match nr_infra::appenv::reseal(&db, &k, Some(&mut unopened)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "secrets sealed again with the first NR_SECRETS_KEY"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot seal secrets again with the new key"),
        }
        if !unopened.is_empty() {
            tracing::error!(
                count = unopened.len(),
                secrets = %unopened.join(", "),
                "secrets sealed with a key this platform does not have (lost, or not given in NR_SECRETS_KEY): their apps do not load. Give the key back (NR_SECRETS_KEY, or the key file of `noderouter up`), or set each of them again"
            );
        }
    });
    Ok(Some(key))
}

/// `/metrics` on the public address: 404 when it is served on an internal address,
/// else only for a credential holding `metrics:read` (an admin holds it).
async fn metrics_guard(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.uri().path() != "/metrics" {
        return Ok(next.run(req).await);
    }
    if state.config.metrics_addr.is_some() {
        return Err(ApiError::NotFound(
            "metrics are served on the internal address (NR_METRICS_ADDR)".into(),
        ));
    }
    let (parts, body) = req.into_parts();
    let caller = auth::authenticate(&state, &parts).await?;
    if !caller.has(nr_auth::perms::METRICS_READ) {
        return Err(ApiError::Forbidden(format!(
            "permission '{}' is required",
            nr_auth::perms::METRICS_READ
        )));
    }
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// An unknown path: a page for a browser asking for one (a GET outside `/api/`, the
/// ops endpoints and `/ws`), the API's JSON error otherwise.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let api = [
        "/api", "/ws", "/metrics", "/healthz", "/readyz", "/livez", "/assets", "/static",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if !api && (method == axum::http::Method::GET || method == axum::http::Method::HEAD) {
        return shell::not_found_page();
    }
    ApiError::NotFound("no such endpoint".into()).into_response()
}

impl Gateway {
    pub async fn build(config: GatewayConfig, deps: GatewayDeps) -> anyhow::Result<Gateway> {
        config.check()?;
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let jwt = Arc::new(nr_auth::jwt::Jwt::from_args(&config.auth)?);
        if jwt.ephemeral {
            tracing::warn!("NR_JWT_SECRET is not set: sessions use a random key and end when this process stops");
        }
        let rbac = nr_auth::rbac::Rbac::new(deps.db.clone());
        rbac.follow(deps.nats.clone()).await?;
        let runner_keys = nr_auth::signing::Keys::parse(config.runner_secret.as_deref());
        if runner_keys.is_empty() {
            tracing::warn!(
                "RUNNER_SECRET is not set: runner requests are not signed (development mode)"
            );
        }
        let secrets = app_env_key(&config, &deps.db)?;
        let state = Arc::new(AppState {
            secrets,
            runner_keys,
            local_runners: deps.local_runners,
            bus_drops: deps.bus_drops,
            runners: Arc::default(),
            jwt,
            rbac,
            hasher: nr_auth::password::Hasher::new(config.auth.argon2_threads),
            throttle: nr_auth::throttle::LoginThrottle::new(nr_auth::throttle::ThrottleLimits {
                per_account: config.auth.login_free_failures,
                per_address: config.auth.login_free_failures_per_addr,
                max_delay: Duration::from_secs(config.auth.login_max_delay_s.max(1)),
            }),
            auth_args: config.auth.clone(),
            apps: apps::AppCache::new(Duration::from_secs_f64(config.sync_timeout_s.max(0.001))),
            config,
            nats: deps.nats,
            store: deps.store,
            submits: jobs::submit_batcher(deps.db.clone()),
            db: deps.db,
            js: js.clone(),
            node: format!(
                "gateway-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        });
        let follower_stop = CancellationToken::new();
        alive::follow(&state.nats, state.runners.clone(), follower_stop.clone()).await?;
        let weak = Arc::downgrade(&state);
        nr_infra::apps::follow(js, follower_stop.clone(), move |ev| {
            if let Some(state) = weak.upgrade() {
                state.apps.apply(ev);
            }
        })
        .await?;

        if let Some(password) = identity::bootstrap_admin(&state).await? {
            // Shown on standard output once; a closed output must not stop the gateway.
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), "Created user 'admin' with password: {password}  (shown once; set NR_ADMIN_PASSWORD to choose it)");
        }

        let body_limit = state.config.max_body_bytes;
        let body_timeout = secs(state.config.body_timeout_s);
        let bundle_limit = state.config.max_bundle_bytes;
        let api = Router::new()
            .route("/api/sync/{app}", post(sync::sync_call))
            .merge(jobs::routes())
            .merge(identity::routes())
            .merge(ticket::routes())
            .merge(routes::routes());
        // One body limit for every JSON endpoint, so a 413 always names the setting that
        // applied; a bundle upload has its own (`NR_MAX_BUNDLE_BYTES`, on its route).
        let router = Router::new()
            .merge(api)
            .merge(admin::routes(bundle_limit))
            .merge(app_env::routes())
            .merge(schedules::admin::routes())
            .merge(openapi::routes())
            .layer(DefaultBodyLimit::max(body_limit))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                dependency_guard,
            ))
            .with_state(state.clone())
            .route_layer(middleware::from_fn(|req, next| {
                nr_telemetry::track_http("gateway", req, next)
            }))
            .merge(
                nr_telemetry::ops_router("gateway", ready_check(state.clone()))
                    .layer(middleware::from_fn_with_state(state.clone(), metrics_guard)),
            )
            .merge(deps.extra_routes)
            .layer(middleware::from_fn_with_state(
                body_limit,
                error::uniform_errors,
            ))
            .layer(middleware::from_fn(server::no_store))
            .merge(shell::routes().with_state(state.clone()))
            .merge(console::routes(&state).with_state(state.clone()))
            .fallback(not_found)
            .layer(middleware::from_fn(server::no_service_workers))
            .layer(middleware::from_fn(request_id))
            .layer(middleware::from_fn(move |req, next| {
                server::body_deadline(body_timeout, req, next)
            }));

        let listener = tokio::net::TcpListener::bind(&state.config.http_addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on NR_HTTP_ADDR (--http-addr) {}: {e}",
                    state.config.http_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let metrics = match &state.config.metrics_addr {
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on NR_METRICS_ADDR {a}: {e}"))?;
                tracing::info!(addr = %l.local_addr()?, "metrics listening");
                let r = nr_telemetry::ops_router("gateway", ready_check(state.clone()));
                Some((l, r))
            }
            None => None,
        };
        Ok(Gateway {
            state: state.clone(),
            listener,
            router,
            addr,
            metrics,
            follower_stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A session token for the `admin` user (for the operator's own tools).
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let (id, _, _) = self
            .state
            .rbac
            .credentials("admin")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("there is no admin user"))?;
        let user = self
            .state
            .rbac
            .user(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("there is no admin user"))?;
        let roles = vec![nr_auth::ADMIN_ROLE.to_owned()];
        Ok(self.state.jwt.issue(&id, "admin", roles, &user.stamp)?.0)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address of the internal `/metrics` listener, when NR_METRICS_ADDR is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "gateway listening");
        let limits = server::Limits {
            header_read: secs(self.state.config.header_timeout_s),
            max_connections: self.state.config.max_connections,
            per_address: self.state.config.max_connections_per_address,
        };
        if let Some((listener, router)) = self.metrics {
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Err(e) = server::serve(listener, router, limits, stop).await {
                    tracing::error!(error = %e, "metrics listener ended");
                }
            });
        }
        if !self.state.config.scheduler_off {
            schedules::spawn(Arc::downgrade(&self.state), stop.clone());
        }
        jobs::repair::spawn(Arc::downgrade(&self.state), stop.clone());
        server::serve(self.listener, self.router, limits, stop).await?;
        self.follower_stop.cancel();
        Ok(())
    }
}
