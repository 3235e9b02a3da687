//! The hub's fan-out: an event from the streams to the sockets that may see it, as the
//! text message each socket is sent.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use nr_contracts::events::{ActionTriggered, JobProgress};
use nr_contracts::Envelope;

use super::{Conn, Hub, Out};
use crate::auth;

pub(crate) fn action_message(seq: u64, env: &Envelope<ActionTriggered>) -> Option<Utf8Bytes> {
    let v = serde_json::json!({
        "type": "action",
        "id": seq,
        "app_name": env.data.app_name,
        "action_name": env.data.action_name,
        "payload": env.data.payload,
        "ts": env.time,
    });
    serde_json::to_string(&v).ok().map(Utf8Bytes::from)
}

fn job_message(env: &Envelope<JobProgress>) -> Option<Utf8Bytes> {
    let v = serde_json::json!({
        "type": "job",
        "job_id": env.data.job_id,
        "app_name": env.data.app_name,
        "status": env.data.status.as_str(),
        "progress": env.data.progress,
        "message": env.data.message,
        "ts": env.time,
    });
    serde_json::to_string(&v).ok().map(Utf8Bytes::from)
}

impl Hub {
    pub(super) async fn fan_out_action(&self, seq: u64, env: &Envelope<ActionTriggered>) {
        let (app, action) = (&env.data.app_name, &env.data.action_name);
        let Some([app_perm, action_perm]) = self.required_permissions(app, action) else {
            return;
        };
        let Some(subs) = self.subscribers(app, action).await else {
            return;
        };
        let targets: Vec<Vec<Arc<Conn>>> = {
            let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
            if subs.len() <= conns.len() {
                subs.keys().filter_map(|s| conns.get(s).cloned()).collect()
            } else {
                conns
                    .iter()
                    .filter(|(s, _)| subs.contains_key(*s))
                    .map(|(_, c)| c.clone())
                    .collect()
            }
        };
        if targets.is_empty() {
            return;
        }
        let Some(text) = action_message(seq, env) else {
            return;
        };
        for user_conns in targets {
            let Some(first) = user_conns.first() else {
                continue;
            };
            if !auth::may(self, &first.viewer, &[&app_perm, &action_perm]).await {
                continue;
            }
            for conn in user_conns {
                conn.push(Out::Action {
                    seq,
                    text: text.clone(),
                });
            }
        }
    }

    /// Sends `text` (a job message) to every socket of `owner`.
    pub(crate) fn push_job_text(&self, owner: &str, text: Utf8Bytes) {
        for conn in self.conns_of(owner) {
            conn.push(Out::Job(text.clone()));
        }
    }

    pub(super) fn fan_out_job(&self, env: &Envelope<JobProgress>) {
        let Some(owner) = env.data.submitted_by.as_deref() else {
            return;
        };
        let conns = self.conns_of(owner);
        if conns.is_empty() {
            return;
        }
        let Some(text) = job_message(env) else { return };
        for conn in conns {
            conn.push(Out::Job(text.clone()));
        }
    }
}
