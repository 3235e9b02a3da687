//! HMAC signatures on runner requests and their replies. The gateway stamps each
//! `runner.exec.<app>` request; a runner with `RUNNER_SECRET` set refuses unsigned,
//! stale, replayed or tampered ones, and signs its reply; the gateway refuses a reply
//! whose signature does not match the request it sent.
//!
//! Request text: `v2\n<unix millis>\n<nonce>\n<subject>\n` then one `<name>:<value>\n`
//! line per header in [`COVERED`] (every header the runner acts on; empty when absent),
//! then the hex SHA-256 of the body. Reply text: `reply-v1\n<request nonce>\n<status>\n`
//! and the hex SHA-256 of the reply body. HMAC-SHA256 under the first configured key;
//! any configured key verifies, so keys can be rotated by adding the new one everywhere,
//! then moving it first, then dropping the old one.

use std::time::Duration;

use async_nats::HeaderMap;
use hmac::{Hmac, Mac};
use nr_contracts::headers;
use sha2::{Digest, Sha256};

pub const HEADER_TS: &str = "Nr-Sig-Ts";
pub const HEADER_NONCE: &str = "Nr-Sig-Nonce";
pub const HEADER_SIG: &str = "Nr-Sig";

/// Request headers the runner acts on, all covered by the signature. A header the
/// runner starts to read must be added here.
pub const COVERED: [&str; 2] = [headers::APP_REV, headers::REQUEST_ID];

/// How far a request's timestamp may be from the runner's clock.
pub const WINDOW: Duration = Duration::from_secs(30);

type HmacSha256 = Hmac<Sha256>;

/// Keys from `RUNNER_SECRET` (comma-separated; the first signs). Each is kept as an
/// HMAC already keyed (its inner and outer pads hashed once), cloned per message.
#[derive(Clone, Default)]
pub struct Keys(Vec<HmacSha256>);

impl Keys {
    pub fn parse(secret: Option<&str>) -> Keys {
        Keys(
            secret
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .filter_map(|k| HmacSha256::new_from_slice(k.as_bytes()).ok())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// The request text, fed to a keyed MAC piece by piece (no intermediate string).
fn mac_request(
    key: &HmacSha256,
    ts: &str,
    nonce: &str,
    subject: &str,
    covered: Option<&HeaderMap>,
    body: &[u8],
) -> HmacSha256 {
    let mut m = key.clone();
    for part in ["v2\n", ts, "\n", nonce, "\n", subject, "\n"] {
        m.update(part.as_bytes());
    }
    for name in COVERED {
        m.update(name.as_bytes());
        m.update(b":");
        m.update(header(covered, name).unwrap_or("").as_bytes());
        m.update(b"\n");
    }
    m.update(&body_digest(body));
    m
}

fn mac_reply(key: &HmacSha256, nonce: &str, status: &str, body: &[u8]) -> HmacSha256 {
    let mut m = key.clone();
    for part in ["reply-v1\n", nonce, "\n", status, "\n"] {
        m.update(part.as_bytes());
    }
    m.update(&body_digest(body));
    m
}

/// The hex SHA-256 of a body, on the stack.
fn body_digest(body: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // Cannot fail: 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(body), &mut out);
    out
}

fn signature(m: HmacSha256) -> String {
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    out.push_str(&hex::encode(m.finalize().into_bytes()));
    out
}

/// The 32 bytes of a `v1=<64 hex>` signature, without allocating.
fn parse_sig(sig: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(sig.strip_prefix("v1=")?, &mut out).ok()?;
    Some(out)
}

/// The three headers for a request whose other headers are `covered` (at least the
/// [`COVERED`] ones it carries), or none without keys (development mode). The nonce is
/// the second entry; the reply's signature is checked against it.
pub fn sign(
    keys: &Keys,
    subject: &str,
    covered: &HeaderMap,
    body: &[u8],
) -> Option<[(&'static str, String); 3]> {
    let key = keys.0.first()?;
    let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let ts = ts.to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = signature(mac_request(key, &ts, &nonce, subject, Some(covered), body));
    Some([(HEADER_TS, ts), (HEADER_NONCE, nonce), (HEADER_SIG, sig)])
}

/// The `Nr-Sig` value of a reply with `status` and `body` to the request signed with
/// `nonce`, or none without keys.
pub fn sign_reply(keys: &Keys, nonce: &str, status: &str, body: &[u8]) -> Option<String> {
    Some(signature(mac_reply(keys.0.first()?, nonce, status, body)))
}

/// Checks a reply's `Nr-Sig` against the request nonce the gateway sent. Without keys
/// everything passes (development mode).
pub fn verify_reply(
    keys: &Keys,
    nonce: &str,
    status: &str,
    body: &[u8],
    sig: Option<&str>,
) -> Result<(), SigError> {
    if keys.is_empty() {
        return Ok(());
    }
    let sig = sig.ok_or(SigError::Missing)?;
    let given = parse_sig(sig).ok_or(SigError::Invalid)?;
    let ok = keys.0.iter().any(|k| {
        mac_reply(k, nonce, status, body)
            .verify_slice(&given)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(SigError::Invalid)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("the request is not signed")]
    Missing,
    #[error("the request's signature timestamp is outside the {}-second window", WINDOW.as_secs())]
    Stale,
    #[error("the request was already seen (replay)")]
    Replayed,
    #[error("the request's signature does not match")]
    Invalid,
}

/// Verifies signatures and remembers nonces for the window.
pub struct Verifier {
    keys: Keys,
    seen: Nonces,
}

/// Nonces seen, as 64-bit keyed hashes in two generations: a nonce stays between one
/// and two rotation periods, each period twice the timestamp window, so a request is
/// remembered for as long as its timestamp can be accepted (a replay inside the window
/// is refused; one outside it is stale). A set and a hash per request, where a general
/// cache with per-entry expiry costs more than the check itself. A hash collision (at a
/// million nonces, about one chance in ten million) refuses a request as a replay; it
/// never lets one through.
struct Nonces {
    hasher: std::collections::hash_map::RandomState,
    sets: std::sync::Mutex<Generations>,
    period: Duration,
}

struct Generations {
    current: std::collections::HashSet<u64>,
    previous: std::collections::HashSet<u64>,
    rotated: std::time::Instant,
}

/// How long one generation of nonces is filled before it becomes the previous one.
const ROTATE: Duration = Duration::from_secs(WINDOW.as_secs() * 2);

impl Nonces {
    fn new(period: Duration) -> Nonces {
        Nonces {
            period,
            hasher: std::collections::hash_map::RandomState::new(),
            sets: std::sync::Mutex::new(Generations {
                current: Default::default(),
                previous: Default::default(),
                rotated: std::time::Instant::now(),
            }),
        }
    }

    /// Records `nonce`; false when it was already there.
    fn insert(&self, nonce: &str) -> bool {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(nonce);
        // A poisoned lock still holds valid sets (inserts cannot half-happen).
        let mut g = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        if g.rotated.elapsed() >= self.period {
            let current = std::mem::take(&mut g.current);
            g.previous = current;
            g.rotated = std::time::Instant::now();
        }
        if g.previous.contains(&key) {
            return false;
        }
        g.current.insert(key)
    }
}

impl Verifier {
    pub fn new(keys: Keys) -> Verifier {
        Verifier {
            keys,
            seen: Nonces::new(ROTATE),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies a request carrying `headers`; on success returns its nonce (to be shared
    /// with the other runners), `None` in development mode.
    pub fn verify(
        &self,
        subject: &str,
        body: &[u8],
        headers: Option<&HeaderMap>,
    ) -> Result<Option<String>, SigError> {
        if !self.enabled() {
            return Ok(None);
        }
        let (Some(ts), Some(nonce), Some(sig)) = (
            header(headers, HEADER_TS),
            header(headers, HEADER_NONCE),
            header(headers, HEADER_SIG),
        ) else {
            return Err(SigError::Missing);
        };
        let sent: i128 = ts.parse().map_err(|_| SigError::Invalid)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        if (now - sent).unsigned_abs() > WINDOW.as_millis() {
            return Err(SigError::Stale);
        }
        let given = parse_sig(sig).ok_or(SigError::Invalid)?;
        let ok = self.keys.0.iter().any(|k| {
            mac_request(k, ts, nonce, subject, headers, body)
                .verify_slice(&given)
                .is_ok()
        });
        if !ok {
            return Err(SigError::Invalid);
        }
        // Only a correctly signed nonce is remembered, so garbage cannot fill the cache.
        if !self.seen.insert(nonce) {
            return Err(SigError::Replayed);
        }
        Ok(Some(nonce.to_owned()))
    }

    /// Records a nonce another runner accepted, so its replay is refused here too.
    pub fn remember(&self, nonce: &str) {
        self.seen.insert(nonce);
    }

    /// The keys replies are signed with.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(rev: &str, rid: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::APP_REV, rev);
        h.insert(headers::REQUEST_ID, rid);
        h
    }

    /// The request as it travels: covered headers plus the stamp.
    fn stamped(keys: &Keys, subject: &str, h: &HeaderMap, body: &[u8]) -> HeaderMap {
        let mut out = h.clone();
        for (k, v) in sign(keys, subject, h, body).unwrap() {
            out.insert(k, v.as_str());
        }
        out
    }

    /// The signed texts are the documented ones, byte for byte (the MAC is fed in
    /// pieces, so this pins the format against the module's description).
    #[test]
    fn the_signed_texts_are_the_documented_ones() {
        let mac_of = |text: &str| {
            let mut m = HmacSha256::new_from_slice(b"k1").unwrap();
            m.update(text.as_bytes());
            format!("v1={}", hex::encode(m.finalize().into_bytes()))
        };
        let keys = Keys::parse(Some("k1"));
        let digest = hex::encode(Sha256::digest(b"{\"a\":1}"));
        assert_eq!(
            sign_reply(&keys, "n1", "200", b"{\"a\":1}").unwrap(),
            mac_of(&format!("reply-v1\nn1\n200\n{digest}"))
        );
        let h = covered("3", "r1");
        let [(_, ts), (_, nonce), (_, sig)] =
            sign(&keys, "runner.exec.a", &h, b"{\"a\":1}").unwrap();
        let text = format!(
            "v2\n{ts}\n{nonce}\nrunner.exec.a\n{}:3\n{}:r1\n{digest}",
            headers::APP_REV,
            headers::REQUEST_ID
        );
        assert_eq!(sig, mac_of(&text));
    }

    /// A nonce is refused for at least one rotation period after it was first seen
    /// (the period is twice the timestamp window in use), and forgotten after two.
    #[test]
    fn nonces_are_remembered_for_a_period_then_forgotten() {
        let period = Duration::from_millis(200);
        let n = Nonces::new(period);
        assert!(n.insert("a"));
        assert!(!n.insert("a"));
        assert!(n.insert("b"));
        std::thread::sleep(period + Duration::from_millis(20));
        // Rotated once: both are in the previous generation, still refused.
        assert!(!n.insert("a"));
        assert!(n.insert("c"));
        std::thread::sleep(period + Duration::from_millis(20));
        // Rotated twice: "a" and "b" are gone, "c" (seen one period ago) is not.
        assert!(!n.insert("c"));
        assert!(n.insert("a"));
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let keys = Keys::parse(Some("k1"));
        let v = Verifier::new(keys.clone());
        let h = stamped(&keys, "runner.exec.a", &covered("3", "r1"), b"{}");
        let nonce = h.get(HEADER_NONCE).unwrap().as_str().to_owned();
        assert_eq!(v.verify("runner.exec.a", b"{}", Some(&h)), Ok(Some(nonce)));
        assert_eq!(
            v.verify("runner.exec.a", b"{}", Some(&h)),
            Err(SigError::Replayed)
        );
    }

    #[test]
    fn a_nonce_remembered_from_another_runner_is_a_replay() {
        let keys = Keys::parse(Some("k1"));
        let (first, second) = (Verifier::new(keys.clone()), Verifier::new(keys.clone()));
        let h = stamped(&keys, "runner.exec.a", &covered("3", "r1"), b"{}");
        let nonce = first
            .verify("runner.exec.a", b"{}", Some(&h))
            .unwrap()
            .unwrap();
        second.remember(&nonce);
        assert_eq!(
            second.verify("runner.exec.a", b"{}", Some(&h)),
            Err(SigError::Replayed)
        );
    }

    #[test]
    fn tampering_staleness_and_absence_are_refused() {
        let keys = Keys::parse(Some("k1"));
        let v = Verifier::new(keys.clone());
        let h = stamped(&keys, "runner.exec.a", &covered("3", "r1"), b"{}");
        assert_eq!(
            v.verify("runner.exec.a", b"{\"x\":1}", Some(&h)),
            Err(SigError::Invalid)
        );
        assert_eq!(
            v.verify("runner.exec.b", b"{}", Some(&h)),
            Err(SigError::Invalid)
        );
        for (name, value) in [(headers::APP_REV, "2"), (headers::REQUEST_ID, "other")] {
            let mut changed = h.clone();
            changed.insert(name, value);
            assert_eq!(
                v.verify("runner.exec.a", b"{}", Some(&changed)),
                Err(SigError::Invalid),
                "{name} is covered"
            );
        }
        assert_eq!(
            v.verify("runner.exec.a", b"{}", None),
            Err(SigError::Missing)
        );
        let old = (time::OffsetDateTime::now_utc().unix_timestamp() - 60) * 1000;
        let mut stale = h.clone();
        stale.insert(HEADER_TS, old.to_string().as_str());
        assert_eq!(
            v.verify("runner.exec.a", b"{}", Some(&stale)),
            Err(SigError::Stale)
        );
    }

    #[test]
    fn any_configured_key_verifies_during_rotation() {
        let old = Keys::parse(Some("old"));
        let v = Verifier::new(Keys::parse(Some("new, old")));
        let h = stamped(&old, "s", &HeaderMap::new(), b"");
        assert!(v.verify("s", b"", Some(&h)).is_ok());
        let other = Keys::parse(Some("other"));
        let h = stamped(&other, "s", &HeaderMap::new(), b"");
        assert_eq!(v.verify("s", b"", Some(&h)), Err(SigError::Invalid));
    }

    #[test]
    fn without_keys_everything_passes_and_nothing_is_signed() {
        let v = Verifier::new(Keys::parse(None));
        assert!(!v.enabled());
        assert_eq!(v.verify("s", b"", None), Ok(None));
        assert!(sign(&Keys::parse(Some(" , ")), "s", &HeaderMap::new(), b"").is_none());
        assert!(sign_reply(&Keys::parse(None), "n", "200", b"").is_none());
        assert_eq!(
            verify_reply(&Keys::parse(None), "n", "200", b"", None),
            Ok(())
        );
    }

    #[test]
    fn a_signed_reply_verifies_only_for_its_request_status_and_body() {
        let keys = Keys::parse(Some("k1"));
        let sig = sign_reply(&keys, "nonce-1", "200", b"{\"ok\":1}").unwrap();
        assert_eq!(
            verify_reply(&keys, "nonce-1", "200", b"{\"ok\":1}", Some(&sig)),
            Ok(())
        );
        for (nonce, status, body) in [
            ("nonce-2", "200", &b"{\"ok\":1}"[..]),
            ("nonce-1", "500", &b"{\"ok\":1}"[..]),
            ("nonce-1", "200", &b"{\"ok\":2}"[..]),
        ] {
            assert_eq!(
                verify_reply(&keys, nonce, status, body, Some(&sig)),
                Err(SigError::Invalid),
                "{nonce} {status}"
            );
        }
        assert_eq!(
            verify_reply(&keys, "nonce-1", "200", b"", None),
            Err(SigError::Missing)
        );
        let forged = sign_reply(&Keys::parse(Some("attacker")), "nonce-1", "200", b"").unwrap();
        assert_eq!(
            verify_reply(&keys, "nonce-1", "200", b"", Some(&forged)),
            Err(SigError::Invalid)
        );
        assert_eq!(
            verify_reply(&keys, "nonce-1", "200", b"", Some("garbage")),
            Err(SigError::Invalid)
        );
    }
}
