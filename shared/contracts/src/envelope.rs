//! The event envelope `{id, type, source, time, data}` and its MessagePack encoding.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// UUIDv7; also sent as `Nats-Msg-Id` so JetStream drops a duplicate publish.
    pub id: String,
    /// Event type, e.g. `app.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Emitting service instance, e.g. `deploy/3f2a…`.
    pub source: String,
    /// RFC 3339 time of the event.
    pub time: String,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn new(kind: &str, source: &str, data: T) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            source: source.to_owned(),
            time: now_rfc3339(),
            data,
        }
    }
}

/// Current time as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot encode payload: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("cannot decode payload: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes as a MessagePack map with field names.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    Ok(rmp_serde::from_slice(bytes)?)
}
