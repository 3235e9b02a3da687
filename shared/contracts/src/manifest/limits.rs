//! The manifest's `limits`: an app's own process limits, within the platform's.

use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

/// `limits`: process limits of this app lower than the platform's (the operator's
/// `NR_WORKER_MEMORY_MB`, `NR_APP_CPU_S`, `NR_APP_MAX_PROCS`, `NR_APP_MAX_FILE_MB`, which
/// are both every app's default and its ceiling: deploy refuses a value above them).
/// An absent field keeps the platform's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Address space of each of the app's processes, MiB.
    #[serde(
        default,
        deserialize_with = "bounded::<_, 128, 1_048_576>",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_mb: Option<u64>,
    /// CPU seconds of one call, one job or the import.
    #[serde(
        default,
        deserialize_with = "bounded::<_, 1, 86_400>",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_s: Option<u64>,
    /// Processes and threads the app's OS user may have at once.
    #[serde(
        default,
        deserialize_with = "bounded::<_, 4, 100_000>",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_procs: Option<u64>,
    /// Largest file one of its processes may write, MiB.
    #[serde(
        default,
        deserialize_with = "bounded::<_, 1, 1_048_576>",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_file_mb: Option<u64>,
}

/// The fields of `limits`.
pub const LIMITS_FIELDS: &[&str] = &["memory_mb", "cpu_s", "max_procs", "max_file_mb"];

/// Each field's range, inclusive: `(field, least, most)`, as the fields' deserializers
/// check them (the manifest's tests hold the two together).
pub const LIMITS_RANGES: &[(&str, u64, u64)] = &[
    ("memory_mb", 128, 1_048_576),
    ("cpu_s", 1, 86_400),
    ("max_procs", 4, 100_000),
    ("max_file_mb", 1, 1_048_576),
];

/// A whole number from `LO` to `HI`, or absent (`null`).
fn bounded<'de, D: Deserializer<'de>, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<u64>::deserialize(d)? else {
        return Ok(None);
    };
    if (LO..=HI).contains(&n) {
        Ok(Some(n))
    } else {
        Err(de::Error::invalid_value(
            Unexpected::Unsigned(n),
            &format!("a whole number from {LO} to {HI}").as_str(),
        ))
    }
}

impl Limits {
    /// The app's limits as `(field, value)` pairs, the fields it sets only.
    pub fn set_fields(&self) -> Vec<(&'static str, u64)> {
        [
            ("memory_mb", self.memory_mb),
            ("cpu_s", self.cpu_s),
            ("max_procs", self.max_procs),
            ("max_file_mb", self.max_file_mb),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v)))
        .collect()
    }
}
