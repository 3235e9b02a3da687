//! Connections to the platform's backing services: NATS/JetStream (streams, event
//! publishing, typed request/reply in `rpc`, the one consumer loop in `consume`, the
//! app catalogue follower), the object store and Postgres, and the per-app variables
//! and secrets (`appenv`).
//!
//! No service logic lives here; every service uses these to talk to the same
//! infrastructure the same way.

pub mod appenv;
pub mod appid;
pub mod apps;
pub mod bus;
pub mod consume;
pub mod contain;
pub mod cron;
pub mod db;
pub mod drain;
pub mod files;
pub mod follow;
pub mod health;
pub mod import_lock;
pub mod leftovers;
pub mod local_call;
pub mod offset;
pub mod open_files;
pub mod rpc;
pub mod store;
