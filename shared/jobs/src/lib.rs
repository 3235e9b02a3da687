//! The job queue: the one owner of `noderouter_core.job_queue`.
//!
//! The row is the authority on a job. A claim bumps `attempt` and takes a lease that
//! the holder renews; every later write (progress, completion, retry, hand-back) names
//! the attempt, so a runner that lost its lease changes nothing. The gateway submits,
//! reads, cancels and re-queues; runners claim, renew, finish, retry and hand back;
//! either may prune. Statuses are [`JobStatus`], never string literals at call sites.

mod batch;
mod ops;
mod read;
mod storable;
mod submit;

pub use batch::Batcher;
pub use nr_contracts::events::JobStatus;
pub use ops::*;
pub use read::*;
pub use storable::{error_text, has_nul, unreadable_body, without_nul};
pub use submit::*;

/// The status a stored `status` column holds.
pub fn parse_status(s: &str) -> Option<JobStatus> {
    [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ]
    .into_iter()
    .find(|st| st.as_str() == s)
}

/// Every status, as the API names them.
pub const STATUSES: &[&str] = &["pending", "running", "completed", "failed", "cancelled"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back() {
        for s in STATUSES {
            assert_eq!(parse_status(s).map(JobStatus::as_str), Some(*s));
        }
        assert_eq!(parse_status("done"), None);
    }
}
