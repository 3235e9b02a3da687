//! Follows the app catalogue: the latest `app.updated` event of every app, then every
//! new one, from the `NR_APPS` stream. Gateways and runners keep their view of which
//! version is current this way, with no lookup on the request path.

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use nr_contracts::{decode, events::AppUpdated, subjects, Envelope};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::consume::{consume, Order};
use crate::drain::Drain;

/// One catalogue entry: the event and its stream sequence (the app's revision).
#[derive(Debug, Clone)]
pub struct AppEvent {
    pub rev: u64,
    pub event: Envelope<AppUpdated>,
}

/// Starts following the catalogue. `on_event` is called in stream order. Returns once
/// every event that existed at the start has been handed over, so the caller starts
/// serving with a complete view; the follower keeps running until `shutdown`.
pub async fn follow<F>(
    js: jetstream::Context,
    shutdown: CancellationToken,
    mut on_event: F,
) -> anyhow::Result<()>
where
    F: FnMut(AppEvent) + Send + 'static,
{
    let stream = js
        .get_stream(subjects::STREAM_APPS)
        .await
        .context("cannot open stream NR_APPS")?;
    let last = stream
        .get_info()
        .await
        .context("cannot read stream NR_APPS")?
        .state
        .last_sequence;
    let messages = crate::follow::Resumable::open(
        js.clone(),
        subjects::STREAM_APPS,
        Some(subjects::APP_UPDATED_ALL),
        consumer::DeliverPolicy::LastPerSubject,
        "catalogue",
    )
    .await
    .context("cannot read app catalogue")?;
    let (caught_up_tx, mut caught_up_rx) = watch::channel(last == 0);
    let drain = Drain::from_token(shutdown.clone());
    consume(
        "catalogue",
        messages.into_stream(shutdown),
        &drain,
        Order::InOrder,
        move |msg| {
            if let Ok(info) = msg.info() {
                let (rev, pending) = (info.stream_sequence, info.pending);
                match decode::<Envelope<AppUpdated>>(&msg.payload) {
                    Ok(event) => on_event(AppEvent { rev, event }),
                    Err(e) => {
                        // Skipped, never retried: later events still apply. Manifests are
                        // checked where they are applied (each service counts its own).
                        tracing::error!(rev, error = %e, "undecodable app.updated event skipped");
                        nr_telemetry::metrics::metrics()
                            .app_event_skipped("catalogue", "undecodable");
                    }
                }
                if rev >= last || pending == 0 {
                    let _ = caught_up_tx.send(true);
                }
            }
            std::future::ready(Ok(()))
        },
    );
    caught_up_rx
        .wait_for(|done| *done)
        .await
        .map(|_| ())
        .map_err(|_| anyhow::anyhow!("app catalogue follower stopped before catching up"))
}
