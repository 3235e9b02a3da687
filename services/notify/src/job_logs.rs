//! Live job logs: `job.log.<app>.<job_id>` lines (core NATS, published by the runner
//! holding the job) forwarded to the sockets of the job's submitter as
//! `{"type": "job_log", "job_id", "app_name", "line", "ts"}`, next to its `job`
//! progress messages. Not stored and not replayed: the whole log is kept with the job
//! (`GET /api/async/jobs/<id>/logs`).

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use nr_contracts::events::JobLog;
use nr_contracts::{decode, subjects, Envelope};
use nr_infra::consume::{consume, Order};

use crate::hub::Hub;

pub(crate) async fn follow(hub: &Arc<Hub>, nats: async_nats::Client) -> anyhow::Result<()> {
    let sub = nats
        .subscribe(subjects::JOB_LOG_ALL)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::JOB_LOG_ALL))?;
    let weak = Arc::downgrade(hub);
    consume(
        "hub-job-logs",
        sub,
        &hub.follows(),
        Order::InOrder,
        move |msg| {
            let forwarded = weak.upgrade().map(|hub| forward(&hub, &msg.payload));
            std::future::ready(forwarded.unwrap_or(Ok(())))
        },
    );
    Ok(())
}

/// One log line to its submitter's sockets (a line with no submitter goes nowhere).
fn forward(hub: &Hub, payload: &[u8]) -> anyhow::Result<()> {
    let env = decode::<Envelope<JobLog>>(payload)
        .map_err(|e| anyhow::anyhow!("undecodable job log line skipped: {e}"))?;
    let Some(owner) = env.data.submitted_by.as_deref() else {
        return Ok(());
    };
    let v = serde_json::json!({
        "type": "job_log",
        "job_id": env.data.job_id,
        "app_name": env.data.app_name,
        "line": env.data.line,
        "ts": env.time,
    });
    if let Ok(text) = serde_json::to_string(&v) {
        hub.push_job_text(owner, Utf8Bytes::from(text));
    }
    Ok(())
}
