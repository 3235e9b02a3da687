//! Readiness of a service's dependencies, named one by one: `/readyz` answers 503 with
//! every dependency that is down (`NATS is unreachable; Postgres is unreachable: ...`),
//! and the gateway answers 503 naming the dependency instead of a 500 or a long wait.

use std::time::Duration;

use crate::store::Store;

/// How long one probe may take before its dependency counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The message naming NATS when the client is not connected (it reconnects by itself).
pub const NATS_DOWN: &str = "NATS is unreachable";

/// The dependencies a service needs; `None` for the ones it does not use.
#[derive(Clone, Default)]
pub struct Deps {
    pub nats: Option<async_nats::Client>,
    pub db: Option<sqlx::PgPool>,
    pub store: Option<Store>,
}

/// `Err` naming NATS when the client is not connected right now (no round trip).
pub fn nats(client: &async_nats::Client) -> Result<(), String> {
    match client.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        state => Err(format!("{NATS_DOWN} (connection {state:?}; reconnecting)")),
    }
}

/// `Err` naming Postgres when `SELECT 1` fails or takes over [`PROBE_TIMEOUT`].
pub async fn postgres(db: &sqlx::PgPool) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(db)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("Postgres is unreachable: {e}")),
        Err(_) => Err(format!(
            "Postgres is unreachable: no answer within {} s",
            PROBE_TIMEOUT.as_secs_f64()
        )),
    }
}

/// `Err` naming the object store when a metadata read fails (a missing object is fine).
pub async fn object_store(store: &Store) -> Result<(), String> {
    let probe = object_store::path::Path::from("_readyz/probe");
    match tokio::time::timeout(PROBE_TIMEOUT, store.head(&probe)).await {
        Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
        Ok(Err(e)) => Err(format!("the object store is unreachable: {e}")),
        Err(_) => Err(format!(
            "the object store is unreachable: no answer within {} s",
            PROBE_TIMEOUT.as_secs_f64()
        )),
    }
}

/// `Err` naming NATS when the client is not connected, or when the server does not
/// answer a JetStream request within [`PROBE_TIMEOUT`]: a server that hangs (stopped,
/// overloaded, its disk stalled) keeps the connection open but answers nothing, and
/// every request the service makes would wait its whole time limit.
pub async fn nats_round_trip(client: &async_nats::Client) -> Result<(), String> {
    nats(client)?;
    // Any answer will do: what counts is that the server answers at all.
    let info = client.request("$JS.API.INFO", bytes::Bytes::new());
    match tokio::time::timeout(PROBE_TIMEOUT, info).await {
        Ok(Ok(msg)) => match js_error(&msg.payload) {
            // A server that answers for a JetStream with no leader (a cluster that lost
            // its quorum): the connection is fine, every stream write fails.
            Some(e) => Err(format!(
                "{NATS_DOWN}: JetStream answers with an error ({e})"
            )),
            None => Ok(()),
        },
        Ok(Err(e)) => Err(format!("{NATS_DOWN}: JetStream does not answer ({e})")),
        Err(_) => Err(format!(
            "{NATS_DOWN}: no answer within {} s",
            PROBE_TIMEOUT.as_secs_f64()
        )),
    }
}

/// The error a JetStream API answer carries (`{"error": {"code", "description"}}`), if
/// any.
fn js_error(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let e = v.get("error")?;
    Some(format!(
        "{} {}",
        e.get("code").and_then(|c| c.as_u64()).unwrap_or_default(),
        e.get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("unknown error")
    ))
}

/// The projections kept in Postgres and the streams they are read from.
const PROJECTIONS: [(&str, &str); 2] = [
    (crate::offset::APPS, nr_contracts::subjects::STREAM_APPS),
    (crate::offset::RBAC, nr_contracts::subjects::STREAM_RBAC),
];

/// `Err` when the database has applied more of a stream than the stream holds: NATS's
/// store was lost, or restored from a backup older than the database's. Events written
/// from then on get sequences the database counts as applied, and are never projected
/// (a new user, a deploy), so the platform is not ready until the streams are restored.
/// A stream or row that cannot be read counts as fine here (other probes name those).
pub async fn projections(client: &async_nats::Client, db: &sqlx::PgPool) -> Result<(), String> {
    let js = async_nats::jetstream::new(client.clone());
    let mut behind = Vec::new();
    for (projection, stream) in PROJECTIONS {
        // A projection that has applied nothing yet (0) is never ahead.
        let applied =
            match tokio::time::timeout(PROBE_TIMEOUT, crate::offset::applied(db, projection)).await
            {
                Ok(Ok(applied)) if applied > 0 => applied,
                _ => continue,
            };
        let last =
            match tokio::time::timeout(PROBE_TIMEOUT, crate::follow::last_sequence(&js, stream))
                .await
            {
                Ok(Ok(last)) => last,
                _ => continue,
            };
        if applied > last {
            behind.push(format!("stream {stream} ends at {last} but the database has applied {applied} of it (NATS's store is older than the database: restore the streams from a backup taken after the database's, docs/operations.md, \"Streams and backups\")"));
        }
    }
    if behind.is_empty() {
        Ok(())
    } else {
        Err(behind.join("; "))
    }
}

/// `Err` when the object store lacks the bundle of the app made current last: the store
/// was emptied, replaced (a directory swapped or unmounted: an empty one is created in
/// its place and answers), or restored from a backup older than the database's. Calls
/// of such an app fail once a runner loads it again. A row or object that cannot be read
/// counts as fine here (other probes name those).
pub async fn bundles(db: &sqlx::PgPool, store: &Store) -> Result<(), String> {
    let last: Option<(String, String)> = match tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_as(
            "SELECT app_name, bundle_key FROM noderouter_core.apps \
             WHERE NOT deleted ORDER BY rev DESC LIMIT 1",
        )
        .fetch_optional(db),
    )
    .await
    {
        Ok(Ok(last)) => last,
        _ => return Ok(()),
    };
    let Some((app, key)) = last else {
        return Ok(());
    };
    let path = object_store::path::Path::from(key.as_str());
    match tokio::time::timeout(PROBE_TIMEOUT, store.head(&path)).await {
        Ok(Err(object_store::Error::NotFound { .. })) => Err(format!(
            "the object store lacks {key}, the bundle of app {app} (the last one deployed): it was emptied, replaced or unmounted, or restored from a backup older than the database's; put back its contents (docs/operations.md, \"Object store\")"
        )),
        _ => Ok(()),
    }
}

impl Deps {
    /// Every dependency that is down, joined with `; `.
    pub async fn check(&self) -> Result<(), String> {
        let (nats, db, store) = tokio::join!(
            async {
                match &self.nats {
                    Some(c) => nats_round_trip(c).await,
                    None => Ok(()),
                }
            },
            async {
                match &self.db {
                    Some(db) => postgres(db).await,
                    None => Ok(()),
                }
            },
            async {
                match &self.store {
                    Some(s) => object_store(s).await,
                    None => Ok(()),
                }
            }
        );
        let down: Vec<String> = [nats, db, store]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }

    /// [`Deps::check`], then, once every dependency answers, [`projections`] and
    /// [`bundles`]: what `/readyz` answers (not every failed request's check: it reads
    /// both streams and the last deployed bundle's metadata).
    pub async fn ready(&self) -> Result<(), String> {
        self.check().await?;
        let (projected, stored) = tokio::join!(
            async {
                match (&self.nats, &self.db) {
                    (Some(c), Some(pool)) => projections(c, pool).await,
                    _ => Ok(()),
                }
            },
            async {
                match (&self.db, &self.store) {
                    (Some(pool), Some(store)) => bundles(pool, store).await,
                    _ => Ok(()),
                }
            }
        );
        let wrong: Vec<String> = [projected, stored]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    /// A `/readyz` probe over these dependencies ([`Deps::ready`]).
    pub fn ready_check(self) -> nr_telemetry::ReadyCheck {
        std::sync::Arc::new(move || {
            let deps = self.clone();
            Box::pin(async move { deps.ready().await })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jetstream_answer_with_an_error_is_named_and_a_plain_one_is_not() {
        let no_leader = br#"{"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#;
        assert_eq!(
            js_error(no_leader).as_deref(),
            Some("503 JetStream system temporarily unavailable")
        );
        let fine = br#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":1024,"streams":7}"#;
        assert_eq!(js_error(fine), None);
        assert_eq!(js_error(b"not json"), None);
    }
}
