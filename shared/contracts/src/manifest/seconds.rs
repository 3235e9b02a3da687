//! A bounded number of seconds: the type of the manifest's time limits.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The shortest time limit a manifest may set, seconds.
pub const MIN_SECONDS: f64 = 1.0;
/// The longest time limit a manifest may set, seconds (24 h).
pub const MAX_SECONDS: f64 = 86_400.0;
/// What a time limit field must hold, as error messages and docs say it.
pub const SECONDS_EXPECTED: &str = "a number of seconds from 1 to 86400 (24 h)";

/// A time limit between [`MIN_SECONDS`] and [`MAX_SECONDS`] inclusive. Only a value in
/// range can be built, so turning it into a [`Duration`] never fails.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Seconds(f64);

impl Seconds {
    /// `Some` when `value` is a finite number in range.
    pub fn new(value: f64) -> Option<Seconds> {
        (value.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&value))
            .then_some(Seconds(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }

    pub fn duration(self) -> Duration {
        // In range by construction: finite, positive and far below Duration's limit.
        Duration::from_secs_f64(self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// A configured number of seconds (a flag, not a manifest) as a duration: `fallback`
/// seconds when `secs` is not a positive number a `Duration` can hold. Never panics,
/// unlike `Duration::from_secs_f64`, whatever the number.
pub fn duration_or(secs: f64, fallback: f64) -> Duration {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .or_else(|| Duration::try_from_secs_f64(fallback).ok())
        .unwrap_or(Duration::from_secs(1))
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(SECONDS_EXPECTED)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
        Seconds::new(v).ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
        // Anything above 2^53 is far out of range anyway; the cast only loses precision.
        Seconds::new(v as f64).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
        Seconds::new(v as f64).ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
        d.deserialize_any(SecondsVisitor)
    }
}
