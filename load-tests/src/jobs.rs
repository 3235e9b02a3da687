//! `nr-load async`: async jobs end to end.
//!
//! Subscribes to `job.progress.<app>.>` on NATS first, then submits `--jobs` jobs with
//! `POST /api/async/<app>` from `--concurrency` HTTP clients (optionally paced to
//! `--rate` jobs/s), and waits until every accepted job has a final event.
//!
//! Per job it records, on this process's monotonic clock:
//! - submit: just before the POST is sent;
//! - accepted: when the `202 {job_id, ...}` answer has been read;
//! - start: when the first `job.progress` event with status `running` arrives (the
//!   runner publishes it right after its claim `UPDATE` committed, before it forks the
//!   job's worker);
//! - end: when the final event (`completed`, `failed` or `cancelled`) arrives.
//!
//! Events can arrive before the POST's answer (the runner may claim the job first),
//! so they are keyed by job id and joined with the submissions at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use nr_contracts::events::{JobProgress, JobStatus};
use nr_contracts::{decode, Envelope};

#[derive(Debug, Args)]
pub struct AsyncArgs {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Bearer token sent with every submit (the admin token `noderouter up` prints).
    #[arg(long, env = "NR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The platform's NATS (`NATS_URL` of `.data/nats/reader.env` for `noderouter up`).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4223")]
    nats_url: String,
    /// NATS user to read job progress as: the read-only `reader`.
    #[arg(long, env = "NATS_USER")]
    nats_user: Option<String>,
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    /// App the jobs run.
    #[arg(long, default_value = "bench_noop")]
    app: String,
    /// Jobs to submit.
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    /// Concurrent HTTP submitters.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Offered load in jobs/s (submissions paced on a fixed schedule); 0 submits as
    /// fast as the submitters can.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// JSON body of each job.
    #[arg(long, default_value = "{}")]
    body: String,
    /// Most seconds to wait for the last job to finish after the last submit.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Label printed at the start of each line.
    #[arg(long, default_value = "")]
    label: String,
}

/// What the event listener saw of one job.
#[derive(Default, Clone, Copy)]
struct Seen {
    start: Option<Instant>,
    end: Option<(Instant, JobStatus)>,
}

type SeenMap = Arc<Mutex<HashMap<String, Seen>>>;

fn lock(map: &SeenMap) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// One submission as the submitter saw it.
struct Submission {
    submit: Instant,
    accepted: Instant,
    job_id: Result<String, String>,
}

fn micros_of(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// `p50 x ms  p99 y ms  max z ms` of a set of durations in microseconds.
fn dist(mut micros: Vec<u64>) -> String {
    micros.sort_unstable();
    if micros.is_empty() {
        return "n=0".to_owned();
    }
    let p = |q| crate::Summary::percentile(&micros, q);
    format!(
        "p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   n={}",
        p(0.50),
        p(0.99),
        p(1.0),
        micros.len()
    )
}

pub async fn run(args: AsyncArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.jobs > 0, "--jobs must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.rate.is_finite() && args.rate >= 0.0,
        "--rate must be 0 or a positive number"
    );
    let mut options = async_nats::ConnectOptions::new();
    if let Some(user) = &args.nats_user {
        options =
            options.user_and_password(user.clone(), args.nats_password.clone().unwrap_or_default());
    }
    let nats = options
        .connect(args.nats_url.as_str())
        .await
        .with_context(|| format!("cannot connect to NATS at {}", args.nats_url))?;
    let mut events = nats
        .subscribe(format!("job.progress.{}.>", args.app))
        .await
        .context("cannot subscribe to job progress")?;
    nats.flush()
        .await
        .context("cannot flush the subscription")?;

    let seen: SeenMap = Arc::default();
    let undecodable = Arc::new(AtomicUsize::new(0));
    let listener = {
        let seen = seen.clone();
        let undecodable = undecodable.clone();
        tokio::spawn(async move {
            while let Some(msg) = events.next().await {
                let now = Instant::now();
                let Ok(env) = decode::<Envelope<JobProgress>>(&msg.payload) else {
                    undecodable.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let ev = env.data;
                let mut map = lock(&seen);
                let entry = map.entry(ev.job_id).or_default();
                if ev.status == JobStatus::Running {
                    entry.start.get_or_insert(now);
                } else if ev.status.is_final() && entry.end.is_none() {
                    entry.end = Some((now, ev.status));
                }
            }
        })
    };

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let endpoint = Arc::new(format!(
        "{}/api/async/{}",
        args.url.trim_end_matches('/'),
        args.app
    ));
    let body = Arc::new(args.body.clone());
    let auth = Arc::new(args.token.as_ref().map(|t| format!("Bearer {t}")));
    let next = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now();
    let mut submitters = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency.min(args.jobs) {
        let (http, endpoint, body, next, auth) = (
            http.clone(),
            endpoint.clone(),
            body.clone(),
            next.clone(),
            auth.clone(),
        );
        let (total, rate) = (args.jobs, args.rate);
        submitters.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if rate > 0.0 {
                    let at = begin + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                let mut request = http
                    .post(endpoint.as_str())
                    .header("content-type", "application/json")
                    .body(body.as_str().to_owned());
                if let Some(auth) = auth.as_deref() {
                    request = request.header("authorization", auth);
                }
                let submit = Instant::now();
                let answer = request.send().await;
                let job_id = match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                        match r.json::<serde_json::Value>().await {
                            Ok(v) => v
                                .get("job_id")
                                .and_then(|j| j.as_str())
                                .map(str::to_owned)
                                .ok_or_else(|| format!("answer without job_id: {v}")),
                            Err(e) => Err(format!("unreadable answer: {e}")),
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        Err(format!(
                            "HTTP {status}: {}",
                            r.text().await.unwrap_or_default()
                        ))
                    }
                    Err(e) => Err(format!("request failed: {e}")),
                };
                mine.push(Submission {
                    submit,
                    accepted: Instant::now(),
                    job_id,
                });
            }
            mine
        }));
    }
    let mut subs = Vec::with_capacity(args.jobs);
    for s in submitters {
        subs.extend(s.await.context("a submitter stopped")?);
    }
    let submitted_in = begin.elapsed();

    // Wait (bounded) until every accepted job has its final event.
    let ids: Vec<&str> = subs
        .iter()
        .filter_map(|s| s.job_id.as_deref().ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    loop {
        let pending = {
            let map = lock(&seen);
            ids.iter()
                .filter(|id| map.get(**id).and_then(|s| s.end).is_none())
                .count()
        };
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    listener.abort();

    let map = lock(&seen).clone();
    let mut rejected: Vec<&str> = Vec::new();
    let (mut accept_lat, mut to_start, mut to_end, mut start_to_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut completed, mut failed, mut lost, mut no_start) = (0usize, 0usize, 0usize, 0usize);
    let mut last_end = begin;
    for s in &subs {
        accept_lat.push(micros_of(s.accepted - s.submit));
        let id = match &s.job_id {
            Ok(id) => id,
            Err(e) => {
                rejected.push(e);
                continue;
            }
        };
        let got = map.get(id).copied().unwrap_or_default();
        match got.start {
            Some(start) => to_start.push(micros_of(start.saturating_duration_since(s.submit))),
            None => no_start += 1,
        }
        match got.end {
            Some((end, JobStatus::Completed)) => {
                completed += 1;
                last_end = last_end.max(end);
                to_end.push(micros_of(end.saturating_duration_since(s.submit)));
                if let Some(start) = got.start {
                    start_to_end.push(micros_of(end.saturating_duration_since(start)));
                }
            }
            Some(_) => failed += 1,
            None => lost += 1,
        }
    }
    let wall = last_end.saturating_duration_since(begin);
    let label = if args.label.is_empty() {
        format!("async '{}'", args.app)
    } else {
        args.label.clone()
    };
    let rate = if args.rate > 0.0 {
        format!("{:.0}/s paced", args.rate)
    } else {
        "closed loop".to_owned()
    };
    println!(
        "{label}: {} jobs, c={}, {rate}; accepted {} in {:.2} s ({:.0} submits/s); completed {completed}, failed {failed}, rejected {}, no final event {lost}, no running event {no_start}",
        args.jobs,
        args.concurrency,
        ids.len(),
        submitted_in.as_secs_f64(),
        subs.len() as f64 / submitted_in.as_secs_f64().max(1e-9),
        rejected.len(),
    );
    println!(
        "{label}: {:>8.0} jobs/s completed (first submit → last completed event, {:.2} s)",
        completed as f64 / wall.as_secs_f64().max(1e-9),
        wall.as_secs_f64()
    );
    println!("{label}: submit → 202 answered    {}", dist(accept_lat));
    println!("{label}: submit → running seen    {}", dist(to_start));
    println!("{label}: submit → completed seen  {}", dist(to_end));
    println!("{label}: running → completed      {}", dist(start_to_end));
    if let Some(first) = rejected.first() {
        println!("{label}: first rejection: {first}");
    }
    let bad = undecodable.load(Ordering::Relaxed);
    if bad > 0 {
        println!("{label}: {bad} undecodable progress events ignored");
    }
    anyhow::ensure!(
        completed > 0,
        "no job completed (is app '{}' deployed?)",
        args.app
    );
    Ok(())
}
