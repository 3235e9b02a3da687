//! Reading the app event log (`NR_APPS`): the stream's last sequence, an app's current
//! event, an app's whole history.

use std::time::Duration;

use async_nats::jetstream::consumer;
use futures::StreamExt;
use nr_contracts::events::AppUpdated;
use nr_contracts::{decode, subjects, Envelope};

use super::{not_found, Inner};
use crate::findings::Refused;
use crate::manifest::is_valid_app_name;

impl Inner {
    pub(super) async fn stream_last_seq(&self) -> anyhow::Result<u64> {
        let mut stream = self
            .js
            .get_stream(subjects::STREAM_APPS)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open NR_APPS: {e}"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read NR_APPS: {e}"))?;
        Ok(info.state.last_sequence)
    }

    /// Sequence and event of the app's current state (0 and none for a new app). Asked
    /// again twice, a second apart, when the event log does not answer: a NATS node lost
    /// under a cluster leaves its streams without a leader for a few seconds.
    pub(super) async fn last_event(&self, app: &str) -> anyhow::Result<(u64, Option<AppUpdated>)> {
        let mut tries = 0;
        loop {
            match self.last_event_once(app).await {
                Err(e) if tries < 2 => {
                    tries += 1;
                    tracing::warn!(app, error = %format!("{e:#}"), "the app event log did not answer; asking again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                done => return done,
            }
        }
    }

    async fn last_event_once(&self, app: &str) -> anyhow::Result<(u64, Option<AppUpdated>)> {
        let subject = subjects::app_updated(app);
        let stream = self
            .js
            .get_stream(subjects::STREAM_APPS)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open NR_APPS: {e}"))?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(msg) => {
                let prev: Envelope<AppUpdated> = decode(&msg.payload)?;
                Ok((msg.sequence, Some(prev.data)))
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok((0, None))
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the last event of {subject}: {e}"
            )),
        }
    }

    /// Every event of the app, oldest first, from the event log.
    pub(super) async fn history(&self, app: &str) -> Result<Vec<(u64, AppUpdated)>, Refused> {
        if !is_valid_app_name(app) {
            return Err(not_found(app));
        }
        let (last, _) = self.last_event(app).await.map_err(Refused::event_log)?;
        if last == 0 {
            return Ok(Vec::new());
        }
        let stream = self
            .js
            .get_stream(subjects::STREAM_APPS)
            .await
            .map_err(|e| Refused::event_log(format!("cannot open NR_APPS: {e}")))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subjects::app_updated(app),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| Refused::event_log(format!("cannot read the history of {app}: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Refused::event_log(format!("cannot read the history of {app}: {e}")))?;
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next())
                .await
                .map_err(|_| {
                    Refused::event_log(format!("reading the history of {app} timed out"))
                })?;
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    return Err(Refused::internal(format!(
                        "cannot read the history of {app}: {e}"
                    )))
                }
                None => break,
            };
            let Ok(info) = msg.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            match decode::<Envelope<AppUpdated>>(&msg.payload) {
                Ok(ev) => out.push((seq, ev.data)),
                Err(e) => tracing::warn!(seq, error = %e, "undecodable app.updated event skipped"),
            }
            if pending == 0 || seq >= last {
                break;
            }
        }
        Ok(out)
    }
}
