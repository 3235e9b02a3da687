//! Replay of retained actions for a socket that reconnects with `?last_id=`: only what
//! was published after the viewer subscribed and what it may see now.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use nr_contracts::events::ActionTriggered;
use nr_contracts::{decode, subjects, Envelope};

use crate::auth::Viewer;
use crate::hub::{action_message, Hub};

impl Hub {
    /// Opens a replay of the retained actions after `after`, up to the stream's last
    /// sequence now. None when there is nothing to replay.
    pub(crate) async fn replay(&self, after: u64) -> anyhow::Result<Option<Replay>> {
        let stream = self
            .js
            .get_stream(subjects::STREAM_ACTIONS)
            .await
            .context("cannot open NR_ACTIONS")?;
        let state = stream
            .get_info()
            .await
            .context("cannot read NR_ACTIONS")?
            .state;
        let last = state.last_sequence;
        if last <= after {
            return Ok(None);
        }
        let start = (after + 1)
            .max(state.first_sequence)
            .max(last.saturating_sub(self.limits.max_replay.max(1)) + 1);
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subjects::ACTION_TRIGGERED_ALL.into(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .context("cannot create a replay consumer")?;
        let messages = consumer.messages().await.context("cannot replay")?;
        Ok(Some(Replay {
            messages,
            last,
            done: false,
        }))
    }
}

/// A replay in progress: `next` yields the messages a viewer may see, in order.
pub(crate) struct Replay {
    messages: consumer::pull::Ordered,
    /// The stream's last sequence when the replay began; live delivery covers the rest.
    pub last: u64,
    done: bool,
}

impl Replay {
    pub(crate) async fn next(
        &mut self,
        hub: &Hub,
        viewer: &Viewer,
    ) -> anyhow::Result<Option<(u64, Utf8Bytes)>> {
        while !self.done {
            let next = tokio::time::timeout(Duration::from_secs(5), self.messages.next()).await;
            let msg = match next {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Err(anyhow::anyhow!("replay read failed: {e}")),
                // What is left up to `last` expired or was purged meanwhile.
                Ok(None) | Err(_) => {
                    self.done = true;
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            if seq >= self.last || info.pending == 0 {
                self.done = true;
            }
            let Ok(env) = decode::<Envelope<ActionTriggered>>(&msg.payload) else {
                continue;
            };
            if hub
                .may_see(
                    viewer,
                    &env.data.app_name,
                    &env.data.action_name,
                    info.published,
                )
                .await
            {
                if let Some(text) = action_message(seq, &env) {
                    return Ok(Some((seq, text)));
                }
            }
        }
        Ok(None)
    }
}
