//! Connections to the platform's backing services: NATS/JetStream (streams, event
//! publishing, the app catalogue follower), the object store and Postgres, and the
//! per-app variables and secrets (`appenv`).
//!
//! No service logic lives here; every service uses these to talk to the same
//! infrastructure the same way.

pub mod appenv;
pub mod appid;
pub mod apps;
pub mod bus;
pub mod contain;
pub mod cron;
pub mod db;
pub mod files;
pub mod follow;
pub mod health;
pub mod store;
