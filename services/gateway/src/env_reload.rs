//! What the runners made of a change of an app's variables. Each runner reloads the app
//! with them (`runner.env_loaded.<app>`: reloaded, not loaded there, or why the reload
//! failed, the previous host serving on with the previous variables). The change's
//! answer waits for every live runner's report, at most [`WAIT`], and names each failure:
//! a change whose reload failed was answered as done while the app went on with the
//! value it replaced (a secret rotated or removed, still in use).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use nr_contracts::events::AppLoaded;
use nr_contracts::subjects;

use crate::AppState;

/// How long a change waits for the runners' reports (an import with module-level work
/// may take seconds).
const WAIT: Duration = Duration::from_secs(15);

/// The runners' reports, subscribed to before the change is published.
pub(crate) struct Watch(Option<async_nats::Subscriber>);

pub(crate) async fn watch(state: &AppState, app: &str) -> Watch {
    let sub = state
        .nats
        .subscribe(subjects::runner_env_loaded(app))
        .await
        .map_err(|e| tracing::warn!(app, error = %e, "cannot follow the runners' reloads"))
        .ok();
    Watch(sub)
}

/// Waits for the live runners' reports on change `seq` and returns what to tell the
/// operator: each runner whose reload failed and why, and the runners that did not
/// report in time.
pub(crate) async fn wait(state: &AppState, watch: Watch, seq: u64) -> Vec<String> {
    let Some(mut sub) = watch.0 else {
        return Vec::new();
    };
    let mut waiting: HashSet<String> = state.runners.live(std::time::Instant::now());
    let mut warnings = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !waiting.is_empty() {
        let msg = match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => break,
        };
        let Ok(report) = nr_contracts::decode::<AppLoaded>(&msg.payload) else {
            continue;
        };
        if report.rev < seq || !waiting.remove(&report.runner) {
            continue;
        }
        if let Some(error) = report.error {
            warnings.push(format!(
                "runner {}: the app did not reload with this change and goes on with its previous variables: {error}",
                report.runner
            ));
        }
    }
    if !waiting.is_empty() {
        let mut late: Vec<String> = waiting.into_iter().collect();
        late.sort();
        warnings.push(format!(
            "{} had not reloaded the app within {} s: it may still be importing it",
            late.join(", "),
            WAIT.as_secs()
        ));
    }
    warnings
}
