//! Wire contracts shared by every NodeRouter service: NATS subject and stream names,
//! the event envelope, event payloads and internal request/reply types.
//!
//! This crate does no I/O. Everything that crosses NATS is defined here, so a subject
//! string or a payload shape is written exactly once. Events are MessagePack maps with
//! field names (`rmp_serde::to_vec_named`), readable from any language; their JSON
//! Schemas live in `schemas/` and are checked against these types by tests.

pub mod alive;
pub mod bundle;
pub mod envelope;
pub mod events;
pub mod headers;
pub mod manifest;
pub mod requests;
pub mod rpc;
pub mod subjects;

pub use envelope::{decode, encode, Envelope, WireError};
pub use rpc::{Rpc, RpcError};
