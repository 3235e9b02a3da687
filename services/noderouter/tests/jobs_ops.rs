//! Operating jobs, against the real platform: retries with back-off, dead letters and
//! re-queue (one job, an app's in bulk, and who may), listing without results, kept
//! logs, and retention pruning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use common::{client_with_token, post, role, Harness};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

async fn submit_id(h: &Harness, app: &str, body: Value) -> String {
    let (s, b) = h.submit(app, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["job_id"].as_str().unwrap().to_owned()
}

/// Submits with `X-Request-Id: rid`; the job's id.
async fn submit_as_request(h: &Harness, app: &str, rid: &str, body: Value) -> String {
    let (id, echoed) = h.submit_as(app, rid, body).await;
    assert_eq!(echoed, rid);
    id
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket on the hub with the session cookie, from the site's own origin.
async fn ws(base: &str, token: &str) -> Ws {
    let host = base.trim_start_matches("http://").to_owned();
    let mut req = format!("ws://{host}/api/ws/notify")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("nr_session={token}")).unwrap(),
    );
    req.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&format!("http://{host}")).unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Messages of `job` until its final `job` message (or 20 s).
async fn job_messages(ws: &mut Ws, job: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["job_id"] != job {
            continue;
        }
        let done = v["type"] == "job" && is_final(&v);
        out.push(v);
        if done {
            break;
        }
    }
    out
}

async fn login(h: &Harness, name: &str) -> String {
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

async fn user(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    client_with_token(b["token"].as_str().unwrap())
}

/// Fails until its `succeed_on`-th run, recording when each run started.
const FLAKY: &str = r#"import os, time, psycopg2

with psycopg2.connect(os.getenv("DATABASE_URL")) as c:
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tries (job TEXT, at DOUBLE PRECISION)")

def execute(data, conn=None):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO tries VALUES (%s, %s)", (data["_job_id"], time.time()))
        cur.execute("SELECT count(*) FROM tries WHERE job = %s", (data["_job_id"],))
        n = cur.fetchone()[0]
    conn.commit()
    if n < data.get("succeed_on", 99):
        raise RuntimeError("try %d failed" % n)
    return {"tries": n}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_retry_with_back_off_then_dead_letter_and_can_be_requeued() {
    let h = Harness::start().await;
    let app = app_name("flaky");
    let retry =
        json!({"job_retry": {"attempts": 3, "initial_delay_s": 1, "factor": 2, "on": "exception"}});
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", retry)),
            ("main.py", FLAKY),
        ],
    )
    .await;
    // Succeeds on its third run, after waits of 1 s then 2 s.
    let ok = submit_id(&h, &app, json!({"succeed_on": 3})).await;
    // Out of attempts: dead letters.
    let dead: Vec<String> =
        futures::future::join_all((0..3).map(|_| submit_id(&h, &app, json!({"succeed_on": 4}))))
            .await;
    let job = h.wait_job(&ok, is_final).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["tries"], 3);
    assert_eq!(job["attempt"], 3);
    let tables = common::app_tables(&h).await;
    let at: Vec<(f64,)> = sqlx::query_as("SELECT at FROM tries WHERE job = $1 ORDER BY at")
        .bind(&ok)
        .fetch_all(&tables)
        .await
        .unwrap();
    let gaps: Vec<f64> = at.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(gaps.len(), 2, "{at:?}");
    assert!(gaps[0] >= 0.95, "first back-off {:.2} s, not 1 s", gaps[0]);
    assert!(gaps[1] >= 1.95, "second back-off {:.2} s, not 2 s", gaps[1]);
    assert!(gaps[1] > gaps[0], "back-off does not grow: {gaps:?}");

    for id in &dead {
        let job = h.wait_job(id, is_final).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(
            job["error_message"], "RuntimeError: try 3 failed (gave up after 3 attempts)",
            "{job}"
        );
    }

    // Who may re-queue follows the cancel rule.
    role(&h, "auditors", &["jobs:read_all"]).await;
    let auditor = user(&h, "auditor", &["auditors"]).await;
    let stranger = user(&h, "stranger", &[]).await;
    let url = |id: &str| format!("{}/api/async/jobs/{id}/requeue", h.url);
    let (s, b) = post(&auditor, url(&dead[0]), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "seeing is not re-queueing: {b}");
    let (s, _) = post(&stranger, url(&dead[0]), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another user's job is not found");
    let (s, b) = post(
        &stranger,
        format!("{}/api/async/requeue", h.url),
        json!({"app_name": app}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["count"], 0,
        "a bulk re-queue takes only the caller's jobs"
    );
    let (s, b) = post(&h.http, url(&ok), json!({})).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a completed job is not re-queued: {b}"
    );
    let (s, b) = post(&h.http, url(&dead[0]), json!({"attempts": 0})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"].as_str().unwrap().contains("attempts"), "{b}");

    // One, then the rest in bulk: each runs once more and succeeds.
    let (s, b) = post(&h.http, url(&dead[0]), json!({"attempts": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let job = h.wait_job(&dead[0], is_final).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempt"], 4, "attempts keep counting: {job}");
    // A job whose submit was refused (503: it could not be queued, and the caller was
    // told to retry) stays out of a bulk re-queue, which would run it a second time.
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let unqueued = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO noderouter_core.job_queue (id, app_name, payload, status, submitted_by, \
             attempt, max_attempts, error_message) \
         SELECT $1, app_name, payload, 'failed', submitted_by, 0, max_attempts, \
             'the job could not be queued' FROM noderouter_core.job_queue WHERE id = $2",
    )
    .bind(unqueued)
    .bind(uuid::Uuid::parse_str(&dead[1]).unwrap())
    .execute(&db)
    .await
    .unwrap();
    let (s, b) = post(
        &h.http,
        format!("{}/api/async/requeue", h.url),
        json!({"app_name": app}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["count"], 2, "{b}");
    for id in &dead[1..] {
        let job = h.wait_job(id, is_final).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let job = h.job(&unqueued.to_string()).await;
    assert_eq!(job["status"], "failed", "{job}");
    // By its id, an operator may still run it.
    let (s, b) = post(&h.http, url(&unqueued.to_string()), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_it_waits_to_retry_drops_the_last_attempts_error() {
    let h = Harness::start().await;
    let app = app_name("patient");
    let retry = json!({"job_retry": {"attempts": 3, "initial_delay_s": 600, "on": "exception"}});
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", retry)),
            ("main.py", FLAKY),
        ],
    )
    .await;
    let id = submit_id(&h, &app, json!({})).await;
    // Its first run failed; the next waits ten minutes.
    let waiting = h
        .wait_job(&id, |j| j["status"] == "pending" && j["attempt"] == 1)
        .await;
    assert_eq!(
        waiting["error_message"], "RuntimeError: try 1 failed",
        "{waiting}"
    );
    let r = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Before: cancelled, still reading "RuntimeError: try 1 failed".
    let job = h.job(&id).await;
    assert_eq!(
        (&job["status"], &job["error_message"]),
        (&json!("cancelled"), &Value::Null),
        "{job}"
    );
}

const CHATTY: &str = r#"import logging

log = logging.getLogger("chatty")

def execute(data, conn=None):
    print("hello from the job")
    log.warning("careful: %s", data.get("n"))
    print("x" * 10000)
    for i in range(data.get("lines", 0)):
        print("line", i)
    if data.get("fail"):
        raise ValueError("broken")
    return {"big": "y" * 1000}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_kept_with_the_job_and_listings_leave_results_out() {
    let h = Harness::start_with(&["--job-log-bytes", "16384"]).await;
    let app = app_name("chatty");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", CHATTY),
        ],
    )
    .await;
    let stranger = user(&h, "stranger", &[]).await;
    let mut mine = ws(&h.url, h.platform.as_ref().unwrap().admin_token()).await;
    let mut theirs = ws(&h.url, &login(&h, "stranger").await).await;
    // Every line carries the request id of the submit.
    let (rid, many_rid) = (app_name("rid-one"), app_name("rid-many"));
    let id = submit_as_request(&h, &app, &rid, json!({"n": 1})).await;
    let many = submit_as_request(
        &h,
        &app,
        &many_rid,
        json!({"n": 2, "lines": 5000, "fail": true}),
    )
    .await;
    // Live over the WebSocket, to the submitter only.
    let live = job_messages(&mut mine, &id).await;
    let lines: Vec<&str> = live
        .iter()
        .filter(|m| m["type"] == "job_log")
        .filter_map(|m| m["line"].as_str())
        .collect();
    assert!(
        lines.contains(&format!("[{rid}] hello from the job").as_str()),
        "no live log line in {live:?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with(&format!("[{rid}] "))),
        "{lines:?}"
    );
    let log_at = live.iter().position(|m| m["type"] == "job_log").unwrap();
    let final_at = live
        .iter()
        .position(|m| m["type"] == "job" && is_final(m))
        .unwrap();
    assert!(
        log_at < final_at,
        "the live line came after the final state"
    );
    let leaked = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(m)) = theirs.next().await {
            if let Message::Text(t) = m {
                if t.contains("job_log") {
                    return t.to_string();
                }
            }
        }
        String::new()
    })
    .await;
    assert!(
        leaked.is_err() || leaked.as_deref() == Ok(""),
        "another user got {leaked:?}"
    );
    let job = h.wait_job(&id, is_final).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["big"].as_str().unwrap().len(), 1000);
    let logs = |id: String| {
        let h = &h;
        async move {
            let r = h
                .http
                .get(format!("{}/api/async/jobs/{id}/logs", h.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["logs"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let text = logs(id.clone()).await;
    assert!(
        text.contains(&format!("[{rid}] hello from the job")),
        "{text}"
    );
    assert!(
        text.contains(&format!("[{rid}] WARNING chatty: careful: 1")),
        "{text}"
    );
    assert!(text.contains("line truncated, 10000 characters"), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with(&format!("[{rid}] "))),
        "{text}"
    );

    let failed = h.wait_job(&many, is_final).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let text = logs(many.clone()).await;
    assert!(text.len() <= 16384 + 200, "{} bytes kept", text.len());
    assert!(text.contains("log truncated"), "no truncation marker");
    assert!(
        text.contains(&format!("[{many_rid}] line 0")),
        "first lines kept"
    );
    assert!(
        text.lines()
            .all(|l| l.starts_with(&format!("[{many_rid}] "))),
        "{text}"
    );

    // Another user sees neither the job nor its logs.
    let r = stranger
        .get(format!("{}/api/async/jobs/{id}/logs", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = h
        .http
        .get(format!("{}/api/async/jobs?app_name={app}&limit=500", h.url))
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{page}");
    for j in jobs {
        assert!(j.get("result").is_none(), "a listing carries a result: {j}");
        assert!(
            j.get("status").is_some() && j.get("attempt").is_some(),
            "{j}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_past_their_retention_are_pruned() {
    let h = Harness::start_with(&[
        "--job-retention-s",
        "1",
        "--job-prune-interval-s",
        "1",
        "--job-prune-batch",
        "2",
    ])
    .await;
    let app = app_name("brief");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            (
                "main.py",
                "import time\ndef execute(data, conn=None):\n    time.sleep(data.get('sleep', 0))\n    return {'ok': True}\n",
            ),
        ],
    )
    .await;
    let slow = submit_id(&h, &app, json!({"sleep": 8})).await;
    let mut done = Vec::new();
    for _ in 0..5 {
        done.push(submit_id(&h, &app, json!({})).await);
    }
    for id in &done {
        assert_eq!(h.wait_job(id, is_final).await["status"], "completed");
    }
    let gone = |id: String| {
        let h = &h;
        async move {
            let r = h
                .http
                .get(format!("{}/api/async/jobs/{id}", h.url))
                .send()
                .await
                .unwrap();
            r.status() == StatusCode::NOT_FOUND
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for id in &done {
            all &= gone(id.clone()).await;
        }
        if all {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "finished jobs were not pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = h.job(&slow).await;
    assert_eq!(
        running["status"], "running",
        "an unfinished job was pruned: {running}"
    );
}
