//! Open connections per client address (`NR_MAX_CONNECTIONS_PER_ADDRESS`): one client
//! flooding the listener takes at most its share of the connection cap, and clients at
//! other addresses still get in.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// What a client's connections are counted under: its IPv4 address (an IPv4-mapped
/// IPv6 address is the IPv4 one), or the /64 its IPv6 address is in, the block one
/// host usually holds.
pub(crate) fn bucket(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The cap per address that applies: `configured`, else half of the whole cap; 0 (no
/// cap per address) or a value past the whole cap leaves only the whole cap.
pub(crate) fn effective(configured: Option<usize>, whole: usize) -> usize {
    match configured {
        None => (whole / 2).max(1),
        Some(0) => whole,
        Some(n) => n.min(whole),
    }
}

/// Counts of open connections by [`bucket`].
#[derive(Clone)]
pub(crate) struct PerAddress {
    max: usize,
    open: Counts,
}

/// One admitted connection; dropping it gives its place back.
pub(crate) struct Held {
    key: IpAddr,
    open: Counts,
}

impl PerAddress {
    pub(crate) fn new(max: usize) -> PerAddress {
        PerAddress {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `peer`, or none while its address holds
    /// the maximum.
    pub(crate) fn admit(&self, peer: &SocketAddr) -> Option<Held> {
        let key = bucket(peer);
        // A poisoned lock still holds valid counts (each change is one statement).
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Held {
            key,
            open: self.open.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_share_and_no_more_and_places_come_back() {
        let limits = PerAddress::new(2);
        let a = limits.admit(&at("192.0.2.7:1000")).unwrap();
        let _b = limits.admit(&at("192.0.2.7:1001")).unwrap();
        assert!(limits.admit(&at("192.0.2.7:1002")).is_none());
        // Another address is counted apart.
        assert!(limits.admit(&at("192.0.2.8:1000")).is_some());
        drop(a);
        assert!(limits.admit(&at("192.0.2.7:1003")).is_some());
    }

    #[test]
    fn counts_are_dropped_with_the_last_connection() {
        let limits = PerAddress::new(3);
        let held: Vec<_> = (0..3)
            .map(|i| limits.admit(&at(&format!("198.51.100.{i}:9"))).unwrap())
            .collect();
        assert_eq!(limits.open.lock().unwrap().len(), 3);
        drop(held);
        assert!(limits.open.lock().unwrap().is_empty());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            bucket(&at("[2001:db8:1:2:aaaa::1]:80")),
            bucket(&at("[2001:db8:1:2:bbbb::9]:80"))
        );
        assert_ne!(
            bucket(&at("[2001:db8:1:2::1]:80")),
            bucket(&at("[2001:db8:1:3::1]:80"))
        );
        assert_eq!(
            bucket(&at("[::ffff:192.0.2.1]:80")),
            bucket(&at("192.0.2.1:81"))
        );
    }

    #[test]
    fn the_default_is_half_the_cap_and_zero_turns_it_off() {
        assert_eq!(effective(None, 4096), 2048);
        assert_eq!(effective(None, 1), 1);
        assert_eq!(effective(Some(0), 4096), 4096);
        assert_eq!(effective(Some(10), 4096), 10);
        assert_eq!(effective(Some(9000), 4096), 4096);
    }
}
