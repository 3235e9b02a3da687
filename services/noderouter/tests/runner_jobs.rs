//! Jobs on the runner, against real NATS, Postgres and Python workers: run to completion
//! with progress published in both styles, timed out or cancelled with their process
//! trees gone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::runner::{is_final, pids_alive};
use common::Harness;
use futures::StreamExt;
use nr_contracts::events::{ActionTriggered, JobProgress};
use nr_contracts::{decode, Envelope};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

const JOB_APP: &str = r#"
import os, time, psycopg2
from noderouter import progress

def execute(data, conn=None):
    a = data.get("action")
    if a == "guide":
        # The author guide's style: write progress straight to the row.
        for p in (10, 20, 30):
            with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
                with c.cursor() as cur:
                    cur.execute("UPDATE noderouter_core.job_queue SET progress = %s, updated_at = NOW() WHERE id = %s", (p, data["_job_id"]))
                c.commit()
            time.sleep(0.05)
        return {"style": "guide", "job": data["_job_id"]}
    if a == "sdk":
        for p in (40, 50, 60):
            progress(p)
            time.sleep(0.05)
        return {"style": "sdk", "_actions": [{"name": "finished", "payload": {"n": 1}}]}
    if a == "fail":
        raise RuntimeError("report source missing")
    if a == "sleep":
        import subprocess
        child = subprocess.Popen(["sleep", "120"])
        with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
            with c.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS job_pids (job TEXT, pid INT)")
                cur.execute("INSERT INTO job_pids VALUES (%s, %s), (%s, %s)", (data["_job_id"], os.getpid(), data["_job_id"], child.pid))
            c.commit()
        print("fetched 3 of 40 pages", flush=True)
        time.sleep(120)
    return {"ok": True}
"#;

async fn job_pids(h: &Harness, job: &str) -> Vec<i32> {
    let pool = common::app_tables(h).await;
    for _ in 0..100 {
        let rows: Result<Vec<(i32,)>, _> =
            sqlx::query_as("SELECT pid FROM job_pids WHERE job = $1")
                .bind(job)
                .fetch_all(&pool)
                .await;
        if let Ok(rows) = rows {
            if rows.len() == 2 {
                return rows.into_iter().map(|r| r.0).collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} never recorded its pids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_run_to_completion_with_both_progress_styles_published() {
    let h = Harness::start().await;
    let app = app_name("jobs");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"actions": [{"name": "finished", "display_name": "Finished"}]}),
                ),
            ),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let nats = h.nats_client().await;
    let mut events = nats
        .subscribe(format!("job.progress.{app}.>"))
        .await
        .unwrap();
    let mut actions = nats
        .subscribe(format!("action.triggered.{app}.>"))
        .await
        .unwrap();
    for subject in [
        format!("job.progress.{app}.>"),
        format!("action.triggered.{app}.>"),
    ] {
        h.nats.subscribed(&nats, &subject).await;
    }

    for (action, expected) in [("guide", vec![10, 20, 30]), ("sdk", vec![40, 50, 60])] {
        let (status, sub) = h.submit(&app, json!({"action": action})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sub}");
        assert_eq!(sub["status"], "pending");
        assert!(sub["node"].as_str().is_some());
        let id = sub["job_id"].as_str().unwrap().to_owned();
        let job = h.wait_job(&id, is_final).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["progress"], 100);
        assert_eq!(job["result"]["style"], action);
        assert!(job["result"].get("_actions").is_none(), "{job}");
        if action == "guide" {
            assert_eq!(job["result"]["job"], id.as_str(), "_job_id injected");
        }
        for key in [
            "id",
            "app_name",
            "status",
            "progress",
            "result",
            "error_message",
            "created_at",
            "updated_at",
        ] {
            assert!(job.get(key).is_some(), "job lacks {key}: {job}");
        }
        // Every progress change and the final state were published.
        let mut seen = Vec::new();
        while !seen.iter().any(|(s, _): &(String, i32)| s == "completed") {
            let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .unwrap()
                .unwrap();
            let ev: Envelope<JobProgress> = decode(&msg.payload).unwrap();
            assert_eq!(ev.data.job_id, id);
            seen.push((ev.data.status.as_str().to_owned(), ev.data.progress));
        }
        let running: Vec<i32> = seen
            .iter()
            .filter(|(s, _)| s == "running")
            .map(|(_, p)| *p)
            .filter(|p| *p > 0)
            .collect();
        assert_eq!(running, expected, "progress events: {seen:?}");
        assert_eq!(seen.last().unwrap(), &("completed".to_owned(), 100));
    }
    let msg = tokio::time::timeout(Duration::from_secs(5), actions.next())
        .await
        .unwrap()
        .unwrap();
    let ev: Envelope<ActionTriggered> = decode(&msg.payload).unwrap();
    assert_eq!(ev.data.action_name, "finished");
    assert!(ev.data.job_id.is_some());

    let (_, sub) = h.submit(&app, json!({"action": "fail"})).await;
    let job = h.wait_job(sub["job_id"].as_str().unwrap(), is_final).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_message"], "RuntimeError: report source missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_fails_keeps_what_it_printed_and_its_process_tree_is_gone() {
    let h = Harness::start().await;
    let app = app_name("slowjob");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_timeout_s": 2})),
            ),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let (_, sub) = h.submit(&app, json!({"action": "sleep"})).await;
    let id = sub["job_id"].as_str().unwrap().to_owned();
    let pids = job_pids(&h, &id).await;
    assert_eq!(pids_alive(&pids).len(), 2);
    let job = h.wait_job(&id, is_final).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_message"], "job timed out after 2 s");
    // What it printed before it was stopped is kept: the reason it hung is in there
    // (the worker's own copy of its output went with it, and the logs were empty).
    let logs = h.get_json(&format!("/api/async/jobs/{id}/logs")).await;
    assert!(
        logs["logs"]
            .as_str()
            .is_some_and(|l| l.ends_with("fetched 3 of 40 pages")),
        "{logs}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pids_alive(&pids).is_empty(),
        "left behind: {:?}",
        pids_alive(&pids)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_and_it_stays_cancelled() {
    let h = Harness::start().await;
    let app = app_name("cancel");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let (_, sub) = h.submit(&app, json!({"action": "sleep"})).await;
    let id = sub["job_id"].as_str().unwrap().to_owned();
    let pids = job_pids(&h, &id).await;
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    for _ in 0..40 {
        if pids_alive(&pids).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pids_alive(&pids).is_empty(), "job processes still running");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.job(&id).await["status"], "cancelled");
    // A finished job cannot be cancelled; an unknown one is 404.
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = h
        .http
        .get(format!("{}/api/async/jobs/not-a-job", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
