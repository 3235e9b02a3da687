//! Login throttling: failed sign-ins are counted per account and per client address;
//! past a number of free failures each further one doubles the wait before the next
//! attempt is even checked (1 s, 2 s, 4 s … up to a ceiling). A success clears the
//! account's count. Counts are forgotten after the ceiling passes without a failure.
//!
//! Growing delays per key are not what a token-bucket limiter (governor's GCRA) models,
//! and the state is two small expiring maps, so this is a few lines over `moka`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::sync::Cache;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures allowed per account before delays start.
    pub per_account: u32,
    /// Failures allowed per client address before delays start.
    pub per_address: u32,
    /// Longest delay.
    pub max_delay: Duration,
}

pub struct LoginThrottle {
    limits: ThrottleLimits,
    accounts: Cache<String, Entry>,
    addresses: Cache<IpAddr, Entry>,
}

fn delay_after(failures: u32, free: u32, max: Duration) -> Option<Duration> {
    let over = failures.checked_sub(free)?;
    let secs = 1u64.checked_shl(over.min(30)).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(max))
}

impl LoginThrottle {
    pub fn new(limits: ThrottleLimits) -> LoginThrottle {
        let keep = limits.max_delay.max(Duration::from_secs(60)) * 2;
        LoginThrottle {
            limits,
            accounts: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(keep)
                .build(),
            addresses: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(keep)
                .build(),
        }
    }

    /// How long the caller must wait before this attempt may be checked; None: go on.
    pub fn wait(&self, account: &str, addr: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let a = self.accounts.get(account).and_then(|e| e.until);
        let b = addr
            .and_then(|ip| self.addresses.get(&ip))
            .and_then(|e| e.until);
        [a, b]
            .into_iter()
            .flatten()
            .filter(|u| *u > now)
            .max()
            .map(|u| u - now)
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let bump = |e: Option<Entry>, free: u32| {
            let failures = e.map_or(0, |e| e.failures).saturating_add(1);
            Entry {
                failures,
                until: delay_after(failures, free, self.limits.max_delay).map(|d| now + d),
            }
        };
        let key = account.to_owned();
        let e = bump(self.accounts.get(&key), self.limits.per_account);
        self.accounts.insert(key, e);
        if let Some(ip) = addr {
            let e = bump(self.addresses.get(&ip), self.limits.per_address);
            self.addresses.insert(ip, e);
        }
    }

    /// Records a success: the account starts afresh.
    pub fn succeeded(&self, account: &str) {
        self.accounts.invalidate(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> LoginThrottle {
        LoginThrottle::new(ThrottleLimits {
            per_account: 2,
            per_address: 4,
            max_delay: Duration::from_secs(8),
        })
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_ceiling() {
        assert_eq!(
            delay_after(2, 2, Duration::from_secs(8)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(delay_after(1, 2, Duration::from_secs(8)), None);
        assert_eq!(
            delay_after(4, 2, Duration::from_secs(8)),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            delay_after(40, 2, Duration::from_secs(8)),
            Some(Duration::from_secs(8))
        );
    }

    #[test]
    fn an_account_and_an_address_are_throttled_separately_and_success_clears_the_account() {
        let t = t();
        let ip: IpAddr = [10, 0, 0, 1].into();
        t.failed("ann", Some(ip));
        assert!(t.wait("ann", Some(ip)).is_none());
        t.failed("ann", Some(ip));
        assert!(t.wait("ann", None).is_some(), "account throttled");
        assert!(
            t.wait("bob", Some(ip)).is_none(),
            "address still has free tries"
        );
        t.failed("bob", Some(ip));
        t.failed("cy", Some(ip));
        assert!(t.wait("dan", Some(ip)).is_some(), "address throttled");
        t.succeeded("ann");
        assert!(t.wait("ann", None).is_none());
    }
}
