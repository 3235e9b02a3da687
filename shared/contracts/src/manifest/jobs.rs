//! The manifest's job scheduling fields: `job_concurrency` and `job_retry`.

use std::time::Duration;

use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

use super::Seconds;

/// Most jobs of one app a runner runs at once (`job_concurrency`), 1-1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JobConcurrency(u32);

/// Largest `job_concurrency`.
pub const MAX_JOB_CONCURRENCY: u32 = 1000;
/// Largest `job_retry.attempts`.
pub const MAX_JOB_ATTEMPTS: u32 = 100;

impl JobConcurrency {
    pub fn new(n: u32) -> Option<JobConcurrency> {
        (1..=MAX_JOB_CONCURRENCY)
            .contains(&n)
            .then_some(JobConcurrency(n))
    }

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl<'de> Deserialize<'de> for JobConcurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        u32::try_from(n)
            .ok()
            .and_then(JobConcurrency::new)
            .ok_or_else(|| {
                de::Error::invalid_value(Unexpected::Unsigned(n), &"a whole number from 1 to 1000")
            })
    }
}

/// Whether a job is run again only when its worker or runner is lost, or also when
/// `execute` raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// A worker that died or a runner that stopped under the job (the default).
    #[default]
    Lost,
    /// Also an exception raised by `execute`.
    Exception,
}

/// `job_retry`: how often and how soon a failed job runs again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct JobRetry {
    /// Runs in all, the first included (1-100); the platform's default when absent.
    #[serde(
        default,
        deserialize_with = "attempts",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempts: Option<u32>,
    /// Wait before the second run, seconds (1 s when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_s: Option<Seconds>,
    /// Each later wait is the one before times this (1-10; 2 when absent).
    #[serde(
        default,
        deserialize_with = "factor",
        skip_serializing_if = "Option::is_none"
    )]
    pub factor: Option<f64>,
    /// Longest wait, seconds (300 s when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_s: Option<Seconds>,
    /// `lost` (default) or `exception`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<RetryOn>,
}

/// The fields of `job_retry`.
pub const JOB_RETRY_FIELDS: &[&str] =
    &["attempts", "initial_delay_s", "factor", "max_delay_s", "on"];

impl JobRetry {
    /// The wait after the `attempt`-th run failed (1-based):
    /// `min(initial * factor^(attempt-1), max)`.
    pub fn delay(&self, attempt: i32) -> Duration {
        let initial = self.initial_delay_s.map(Seconds::get).unwrap_or(1.0);
        let factor = self.factor.unwrap_or(2.0);
        let max = self.max_delay_s.map(Seconds::get).unwrap_or(300.0);
        let exp = attempt.saturating_sub(1).clamp(0, 64);
        let secs = (initial * factor.powi(exp)).min(max).max(0.0);
        super::duration_or(secs, 1.0)
    }

    pub fn on_exception(&self) -> bool {
        self.on == Some(RetryOn::Exception)
    }
}

fn attempts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<u64>::deserialize(d)? else {
        return Ok(None);
    };
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_JOB_ATTEMPTS).contains(n))
        .map(Some)
        .ok_or_else(|| {
            de::Error::invalid_value(Unexpected::Unsigned(n), &"a whole number from 1 to 100")
        })
}

fn factor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let Some(f) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if f.is_finite() && (1.0..=10.0).contains(&f) {
        Ok(Some(f))
    } else {
        Err(de::Error::invalid_value(
            Unexpected::Float(f),
            &"a number from 1 to 10",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_maximum() {
        let r: JobRetry = serde_json::from_value(serde_json::json!({
            "attempts": 5, "initial_delay_s": 1, "factor": 3, "max_delay_s": 5
        }))
        .unwrap();
        let d: Vec<f64> = (1..=4).map(|a| r.delay(a).as_secs_f64()).collect();
        assert_eq!(d, vec![1.0, 3.0, 5.0, 5.0]);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            serde_json::json!({"attempts": 0}),
            serde_json::json!({"attempts": 101}),
            serde_json::json!({"factor": 0.5}),
            serde_json::json!({"on": "always"}),
        ] {
            assert!(
                serde_json::from_value::<JobRetry>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<JobConcurrency>(serde_json::json!(0)).is_err());
        assert!(serde_json::from_value::<JobConcurrency>(serde_json::json!(1001)).is_err());
    }
}
