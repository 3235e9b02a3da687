//! Deploy: bundle intake and the app's version history. Takes a bundle the gateway
//! staged in the object store, checks it against the deploy contract (`check`: zip
//! safety, manifest, frontend, conflicts with other apps, import), stores it by content
//! hash and publishes `app.updated.<app>`, fenced on the app subject's last sequence so
//! two concurrent changes of one app cannot both win. Rollback and delete are the same
//! kind of event. A refused deploy changes nothing: the running version keeps serving.
//!
//! Modules: `archive` (zip safety), `manifest` (manifest rules), `frontend` (the guide's
//! frontend checklist), `conflicts` (cross-app rules and the catalogue of current
//! apps), `import` (the Python import check), `check` (all of them in order, shared
//! with `noderouter app lint`), `service` (the NATS handlers).

pub mod archive;
pub mod check;
pub mod config;
pub mod conflicts;
pub mod findings;
pub mod frontend;
pub mod import;
mod jsonpos;
pub mod manifest;
mod service;
mod versions;

pub use check::{Checker, Inspected};
pub use config::{CheckArgs, DeployConfig};
pub use findings::{Finding, Refused};
pub use service::{Deploy, DeployDeps};
