//! `GET /admin/api/console/metrics`: the dashboard's time series. A task samples the
//! process's Prometheus registry (sync calls and their latency histogram, per app) and
//! the job table (jobs by status) once per interval into a ring buffer of the last
//! [`KEEP`] points; a request adds a live point since the last sample. Per-app p95 is
//! read from the histogram buckets' growth over the interval.
//!
//! Also `GET /admin/api/console/jobs/{id}/payload`, the body a job was submitted with
//! (for "run again"), to its submitter or a holder of `jobs:read_all`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use nr_auth::perms;
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Points kept: two hours of one-minute samples.
const KEEP: usize = 120;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/api/console/metrics", get(series))
        .route("/admin/api/console/jobs/{id}/payload", get(payload))
}

/// Cumulative counters read from the registry at one instant, per app.
#[derive(Clone, Default)]
struct Totals {
    calls: HashMap<String, f64>,
    errors: HashMap<String, f64>,
    /// Latency bucket counts per app: upper bound (s) → cumulative count.
    buckets: HashMap<String, BTreeMap<u64, f64>>,
}

#[derive(Clone, Serialize)]
pub(crate) struct AppPoint {
    calls: u64,
    errors: u64,
    /// 95th percentile of the interval's calls, in milliseconds (the bucket's bound).
    p95_ms: Option<f64>,
}

#[derive(Clone, Serialize)]
pub(crate) struct Point {
    /// End of the interval, RFC 3339.
    t: String,
    apps: BTreeMap<String, AppPoint>,
    /// Jobs pending and running at `t`, and finished within the interval, by status.
    jobs: BTreeMap<String, i64>,
}

struct Ring {
    points: VecDeque<Point>,
    last: Totals,
    last_at: OffsetDateTime,
}

fn ring() -> &'static Mutex<Ring> {
    static RING: OnceLock<Mutex<Ring>> = OnceLock::new();
    RING.get_or_init(|| {
        Mutex::new(Ring {
            points: VecDeque::new(),
            last: read_totals(),
            last_at: OffsetDateTime::now_utc(),
        })
    })
}

/// Starts the sampler once per process (every gateway of a process shares the registry).
pub(crate) fn start(state: &Arc<AppState>) {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    let every = Duration::from_secs_f64(
        std::env::var("NR_CONSOLE_SAMPLE_S")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(60.0)
            .clamp(1.0, 3600.0),
    );
    let db = state.db.clone();
    let _ = ring();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sample(&db).await {
                Ok(p) => {
                    let mut r = ring().lock().unwrap_or_else(|p| p.into_inner());
                    r.points.push_back(p);
                    while r.points.len() > KEEP {
                        r.points.pop_front();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot sample the dashboard's metrics"),
            }
        }
    });
}

/// A point from the registry's growth since the previous sample; `commit` moves the
/// baseline (the sampler does, a live read does not).
async fn point(db: &sqlx::PgPool, commit: bool) -> anyhow::Result<Point> {
    let now = OffsetDateTime::now_utc();
    let totals = read_totals();
    let (apps, since) = {
        let mut r = ring().lock().unwrap_or_else(|p| p.into_inner());
        let apps = diff(&r.last, &totals);
        let since = r.last_at;
        if commit {
            r.last = totals;
            r.last_at = now;
        }
        (apps, since)
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM noderouter_core.job_queue \
         WHERE status IN ('pending', 'running') OR updated_at >= $1 GROUP BY status",
    )
    .bind(since)
    .fetch_all(db)
    .await?;
    let mut jobs: BTreeMap<String, i64> =
        ["pending", "running", "completed", "failed", "cancelled"]
            .iter()
            .map(|s| ((*s).to_owned(), 0))
            .collect();
    jobs.extend(rows);
    Ok(Point {
        t: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        apps,
        jobs,
    })
}

async fn sample(db: &sqlx::PgPool) -> anyhow::Result<Point> {
    point(db, true).await
}

fn diff(before: &Totals, now: &Totals) -> BTreeMap<String, AppPoint> {
    let mut out = BTreeMap::new();
    for (app, calls) in &now.calls {
        let calls = (calls - before.calls.get(app).copied().unwrap_or(0.0)).max(0.0);
        let errors = now.errors.get(app).copied().unwrap_or(0.0)
            - before.errors.get(app).copied().unwrap_or(0.0);
        let p95 = now.buckets.get(app).and_then(|b| {
            let empty = BTreeMap::new();
            let prev = before.buckets.get(app).unwrap_or(&empty);
            p95_ms(b, prev)
        });
        out.insert(
            app.clone(),
            AppPoint {
                calls: calls as u64,
                errors: errors.max(0.0) as u64,
                p95_ms: p95,
            },
        );
    }
    out
}

/// The bound of the first bucket holding 95 % of the interval's observations.
fn p95_ms(now: &BTreeMap<u64, f64>, before: &BTreeMap<u64, f64>) -> Option<f64> {
    let grown: Vec<(u64, f64)> = now
        .iter()
        .map(|(le, c)| (*le, c - before.get(le).copied().unwrap_or(0.0)))
        .collect();
    let total = grown.last().map(|(_, c)| *c).filter(|c| *c > 0.0)?;
    grown
        .iter()
        .find(|(_, c)| *c >= total * 0.95)
        .map(|(le, _)| {
            if *le == u64::MAX {
                f64::INFINITY
            } else {
                *le as f64 / 1e6
            }
        })
        .filter(|v| v.is_finite())
}

fn read_totals() -> Totals {
    parse_totals(&nr_telemetry::metrics().render())
}

/// Reads `nr_app_calls_total` and `nr_app_call_duration_seconds_bucket` from the text
/// exposition. Bucket bounds are kept in nanoseconds so they order as integers.
fn parse_totals(text: &str) -> Totals {
    let mut t = Totals::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = parse_line(line) else {
            continue;
        };
        let Some(app) = labels.get("app").cloned() else {
            continue;
        };
        match name {
            "nr_app_calls_total" => {
                *t.calls.entry(app.clone()).or_default() += value;
                let failed = labels
                    .get("status")
                    .and_then(|s| s.parse::<u16>().ok())
                    .is_none_or(|s| s >= 400);
                if failed {
                    *t.errors.entry(app).or_default() += value;
                }
            }
            "nr_app_call_duration_seconds_bucket" => {
                let le = match labels.get("le").map(String::as_str) {
                    Some("+Inf") => u64::MAX,
                    Some(v) => match v.parse::<f64>() {
                        Ok(s) => (s * 1e9).round() as u64,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                t.buckets.entry(app).or_default().insert(le, value);
            }
            _ => {}
        }
    }
    t
}

/// `name{k="v",…} value` → its parts.
fn parse_line(line: &str) -> Option<(&str, HashMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse::<f64>().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, HashMap::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = HashMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(c) => v.push(c),
                    None => return None,
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

#[derive(Serialize)]
struct Runners {
    /// Jobs running whose lease ran out: the runner holding them stopped renewing.
    stale_leases: i64,
    /// Age of the oldest pending job, in seconds (a queue no runner takes grows old).
    oldest_pending_s: Option<f64>,
    /// Nodes holding running jobs, with how many each.
    running_by_node: BTreeMap<String, i64>,
    /// True when nothing above suggests a runner is missing or stuck.
    healthy: bool,
}

#[derive(Serialize)]
struct Series {
    interval_s: f64,
    points: Vec<Point>,
    runners: Runners,
}

/// The dashboard's series: per-interval calls, errors and p95 per app, jobs by status,
/// and the runners' health as the job table shows it.
#[utoipa::path(
    get,
    path = "/admin/api/console/metrics",
    tag = "admin",
    responses(
        (status = 200, description = "`{interval_s, points: [{t, apps: {<app>: {calls, errors, p95_ms}}, jobs: {<status>: n}}], runners: {stale_leases, oldest_pending_s, running_by_node, healthy}}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `metrics:read` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn series(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(perms::METRICS_READ)?;
    let live = point(&state.db, false)
        .await
        .map_err(|e| ApiError::Internal(e.context("cannot read the job counts")))?;
    let mut points: Vec<Point> = {
        let r = ring().lock().unwrap_or_else(|p| p.into_inner());
        r.points.iter().cloned().collect()
    };
    points.push(live);
    let runners = runners(&state.db)
        .await
        .map_err(|e| ApiError::Internal(e.context("cannot read the runners' state")))?;
    let interval_s = std::env::var("NR_CONSOLE_SAMPLE_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(60.0);
    let body = Series {
        interval_s,
        points,
        runners,
    };
    serde_json::to_value(body)
        .map(Json)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot encode the series: {e}")))
}

async fn runners(db: &sqlx::PgPool) -> anyhow::Result<Runners> {
    let (stale, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'running' AND lease_until < NOW()), \
                EXTRACT(EPOCH FROM NOW() - min(created_at) FILTER (WHERE status = 'pending'))::float8 \
         FROM noderouter_core.job_queue WHERE status IN ('pending', 'running')",
    )
    .fetch_one(db)
    .await?;
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT node, count(*) FROM noderouter_core.job_queue WHERE status = 'running' GROUP BY node",
    )
    .fetch_all(db)
    .await?;
    let running_by_node = rows
        .into_iter()
        .map(|(n, c)| (n.unwrap_or_else(|| "unknown".into()), c))
        .collect();
    Ok(Runners {
        stale_leases: stale,
        oldest_pending_s: oldest,
        running_by_node,
        healthy: stale == 0 && oldest.is_none_or(|s| s < 120.0),
    })
}

/// The body a job was submitted with (for "run again"): to its submitter or a holder
/// of `jobs:read_all`.
#[utoipa::path(
    get,
    path = "/admin/api/console/jobs/{id}/payload",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(
        (status = 200, description = "`{app_name, payload}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such job visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn payload(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let uuid = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFound(format!("job '{id}' not found")))?;
    let all = caller.0.has(perms::JOBS_READ_ALL);
    let row: Option<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT app_name, payload FROM noderouter_core.job_queue \
         WHERE id = $1 AND ($2 OR submitted_by = $3)",
    )
    .bind(uuid)
    .bind(all)
    .bind(&caller.0.sub)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read job: {e}")))?;
    let (app, payload) = row.ok_or_else(|| ApiError::NotFound(format!("job '{id}' not found")))?;
    Ok(Json(
        serde_json::json!({"app_name": app, "payload": payload}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_read_from_the_growth_of_the_buckets() {
        let text = "# TYPE x\n\
            nr_app_calls_total{app=\"a\",status=\"200\"} 19\n\
            nr_app_calls_total{app=\"a\",status=\"500\"} 1\n\
            nr_app_call_duration_seconds_bucket{le=\"0.001\",app=\"a\"} 10\n\
            nr_app_call_duration_seconds_bucket{le=\"0.01\",app=\"a\"} 18\n\
            nr_app_call_duration_seconds_bucket{le=\"0.1\",app=\"a\"} 20\n\
            nr_app_call_duration_seconds_bucket{le=\"+Inf\",app=\"a\"} 20\n";
        let now = parse_totals(text);
        let d = diff(&Totals::default(), &now);
        let a = &d["a"];
        assert_eq!((a.calls, a.errors), (20, 1));
        assert_eq!(a.p95_ms, Some(100.0));
        // No growth since the baseline: no calls, no percentile.
        let d = diff(&now, &now);
        assert_eq!((d["a"].calls, d["a"].p95_ms), (0, None));
    }

    #[test]
    fn label_values_with_escapes_parse() {
        let (name, labels, v) =
            parse_line(r#"nr_app_calls_total{app="a\"b",status="200"} 2"#).unwrap();
        assert_eq!(
            (name, labels["app"].as_str(), v),
            ("nr_app_calls_total", "a\"b", 2.0)
        );
    }
}
