//! The hub's stream readers: actions and job progress, each an ordered consumer from
//! now on, read through the one consumer loop.

use std::sync::Arc;

use async_nats::jetstream::consumer;
use nr_contracts::events::{ActionTriggered, JobProgress};
use nr_contracts::{decode, subjects, Envelope};
use nr_infra::consume::{consume, Order};
use nr_infra::drain::Drain;

use super::Hub;

impl Hub {
    /// Starts an ordered consumer on `stream` from now on, feeding `dispatch`.
    pub(super) async fn follow(
        self: &Arc<Self>,
        stream: &'static str,
        filter: &'static str,
    ) -> anyhow::Result<()> {
        let messages = nr_infra::follow::Resumable::open(
            self.js.clone(),
            stream,
            Some(filter),
            consumer::DeliverPolicy::New,
            "hub",
        )
        .await?;
        let weak = Arc::downgrade(self);
        let name = if stream == subjects::STREAM_ACTIONS {
            "hub-actions"
        } else {
            "hub-job-progress"
        };
        let messages = messages.into_stream(self.shutdown.clone());
        consume(
            name,
            messages,
            &self.follows(),
            Order::InOrder,
            move |msg| {
                let weak = weak.clone();
                async move {
                    let (Some(hub), Ok(info)) = (weak.upgrade(), msg.info()) else {
                        return Ok(());
                    };
                    let seq = info.stream_sequence;
                    if stream == subjects::STREAM_ACTIONS {
                        let env =
                            decode::<Envelope<ActionTriggered>>(&msg.payload).map_err(|e| {
                                anyhow::anyhow!("undecodable action {seq} skipped: {e}")
                            })?;
                        hub.fan_out_action(seq, &env).await;
                    } else {
                        let env = decode::<Envelope<JobProgress>>(&msg.payload).map_err(|e| {
                            anyhow::anyhow!("undecodable job progress {seq} skipped: {e}")
                        })?;
                        hub.fan_out_job(&env);
                    }
                    Ok(())
                }
            },
        );
        Ok(())
    }

    /// The drain of the hub's followers: they stop with the hub.
    pub(crate) fn follows(&self) -> Drain {
        Drain::from_token(self.shutdown.clone())
    }
}
