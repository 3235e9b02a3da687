//! HMAC signatures on runner requests and their replies. The gateway stamps each
//! `runner.exec.<app>` request; a runner with `RUNNER_SECRET` set refuses unsigned,
//! stale, replayed or tampered ones, and signs its reply; the gateway refuses a reply
//! whose signature does not match the request it sent.
//!
//! One header each way, `Nr-Sig`. On a request its value is
//! `<unix millis>.<nonce>.<hex MAC>`, the MAC over the request text: `v3\n<unix
//! millis>\n<nonce>\n<subject>\n`, then one `<name>:<value>\n` line per header in
//! [`COVERED`] (every header the runner acts on; empty when absent), then the body as
//! sent. On a reply its value is the hex MAC of `reply-v3\n<request nonce>\n<status>\n`
//! followed by the reply body. The body comes last and no other part can hold a newline
//! (NATS subjects and header values cannot), so each text reads one way only.
//! HMAC-SHA256 under the first configured key; any configured key verifies, so keys can
//! be rotated by adding the new one everywhere, then moving it first, then dropping the
//! old one. Gateways sign in this scheme only; runners also accept the previous
//! release's ([`legacy`]) and answer it in kind, so they can be upgraded first.

use std::time::Duration;

use async_nats::HeaderMap;
use hmac::{Hmac, Mac};
use nr_contracts::headers;
use sha2::Sha256;

/// The signature header, on requests and on replies.
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

    /// Refuses a `RUNNER_SECRET` key shorter than [`MIN_KEY_CHARS`], which could be
    /// guessed; the message says how to make one.
    pub fn check_lengths(secret: Option<&str>) -> Result<(), String> {
        secret
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .try_for_each(|k| {
                let n = k.chars().count();
                if n < MIN_KEY_CHARS {
                    Err(format!(
                        "RUNNER_SECRET: each key needs {MIN_KEY_CHARS} characters at least (one has {n}); make one with `openssl rand -hex 32`, the same on every gateway and runner"
                    ))
                } else {
                    Ok(())
                }
            })
    }
}

/// The shortest key `RUNNER_SECRET` may hold.
pub const MIN_KEY_CHARS: usize = 16;

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
    mac_request_text(key, "v3\n", ts, nonce, subject, covered, body)
}

/// `version`, the time, nonce, subject and covered headers, then `body` (the body
/// itself, or its digest in the [`legacy`] scheme).
fn mac_request_text(
    key: &HmacSha256,
    version: &str,
    ts: &str,
    nonce: &str,
    subject: &str,
    covered: Option<&HeaderMap>,
    body: &[u8],
) -> HmacSha256 {
    let mut m = key.clone();
    for part in [version, ts, "\n", nonce, "\n", subject, "\n"] {
        m.update(part.as_bytes());
    }
    for name in COVERED {
        m.update(name.as_bytes());
        m.update(b":");
        m.update(header(covered, name).unwrap_or("").as_bytes());
        m.update(b"\n");
    }
    m.update(body);
    m
}

fn mac_reply(key: &HmacSha256, nonce: &str, status: &str, body: &[u8]) -> HmacSha256 {
    mac_reply_text(key, "reply-v3\n", nonce, status, body)
}

/// `version`, the request's nonce and the status, then `body` (or its digest).
fn mac_reply_text(
    key: &HmacSha256,
    version: &str,
    nonce: &str,
    status: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut m = key.clone();
    for part in [version, nonce, "\n", status, "\n"] {
        m.update(part.as_bytes());
    }
    m.update(body);
    m
}

/// Appends the MAC's 64 hex digits to `out`.
fn push_mac(out: &mut String, m: HmacSha256) {
    let mut hex = [0u8; 64];
    // Cannot fail: 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(m.finalize().into_bytes(), &mut hex);
    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
}

/// The 32 bytes of a hex MAC, without allocating.
fn parse_mac(mac: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(mac, &mut out).ok()?;
    Some(out)
}

/// A signed request's `Nr-Sig` value, and its nonce (the reply's signature is checked
/// against it).
pub struct Stamp {
    value: String,
    nonce: std::ops::Range<usize>,
}

impl Stamp {
    /// The value of the request's `Nr-Sig` header.
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn nonce(&self) -> &str {
        &self.value[self.nonce.clone()]
    }
}

/// A request a runner accepted: its nonce, and the scheme its reply is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub nonce: String,
    legacy: bool,
}

#[path = "signing_legacy.rs"]
pub mod legacy;

/// The parts of a request's `Nr-Sig` value.
fn split_stamp(value: &str) -> Option<(&str, &str, &str)> {
    let (ts, rest) = value.split_once('.')?;
    let (nonce, mac) = rest.split_once('.')?;
    (!nonce.is_empty()).then_some((ts, nonce, mac))
}

/// The stamp of a request whose other headers are `covered` (at least the
/// [`COVERED`] ones it carries), or none without keys (development mode).
pub fn sign(keys: &Keys, subject: &str, covered: &HeaderMap, body: &[u8]) -> Option<Stamp> {
    let key = keys.0.first()?;
    let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut value = String::with_capacity(20 + 1 + 32 + 1 + 64);
    value.push_str(&ts.to_string());
    value.push('.');
    let start = value.len();
    value.push_str(
        uuid::Uuid::new_v4()
            .simple()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    let nonce = start..value.len();
    let mac = mac_request(
        key,
        &value[..start - 1],
        &value[nonce.clone()],
        subject,
        Some(covered),
        body,
    );
    value.push('.');
    push_mac(&mut value, mac);
    Some(Stamp { value, nonce })
}

/// The `Nr-Sig` value of a reply with `status` and `body` to the request signed with
/// `nonce`, or none without keys.
pub fn sign_reply(keys: &Keys, nonce: &str, status: &str, body: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(64);
    push_mac(&mut out, mac_reply(keys.0.first()?, nonce, status, body));
    Some(out)
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
    let given = parse_mac(sig).ok_or(SigError::Invalid)?;
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

    /// Verifies a request carrying `headers`; on success returns what its reply is
    /// signed against (and whose nonce is shared with the other runners), `None` in
    /// development mode. Requests of the previous release's gateways (three headers,
    /// [`legacy`]) are accepted too, so runners can be upgraded first.
    pub fn verify(
        &self,
        subject: &str,
        body: &[u8],
        headers: Option<&HeaderMap>,
    ) -> Result<Option<Accepted>, SigError> {
        if !self.enabled() {
            return Ok(None);
        }
        let value = header(headers, HEADER_SIG).ok_or(SigError::Missing)?;
        let legacy_nonce = header(headers, legacy::HEADER_NONCE);
        let (ts, nonce, given) = match legacy_nonce {
            Some(nonce) => {
                let ts = header(headers, legacy::HEADER_TS).ok_or(SigError::Missing)?;
                (ts, nonce, legacy::parse_sig(value))
            }
            None => {
                let (ts, nonce, mac) = split_stamp(value).ok_or(SigError::Invalid)?;
                (ts, nonce, parse_mac(mac))
            }
        };
        let sent: i128 = ts.parse().map_err(|_| SigError::Invalid)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        if (now - sent).unsigned_abs() > WINDOW.as_millis() {
            return Err(SigError::Stale);
        }
        let given = given.ok_or(SigError::Invalid)?;
        let ok = self.keys.0.iter().any(|k| {
            let m = if legacy_nonce.is_some() {
                legacy::mac_request(k, ts, nonce, subject, headers, body)
            } else {
                mac_request(k, ts, nonce, subject, headers, body)
            };
            m.verify_slice(&given).is_ok()
        });
        if !ok {
            return Err(SigError::Invalid);
        }
        // Only a correctly signed nonce is remembered, so garbage cannot fill the cache.
        if !self.seen.insert(nonce) {
            return Err(SigError::Replayed);
        }
        Ok(Some(Accepted {
            nonce: nonce.to_owned(),
            legacy: legacy_nonce.is_some(),
        }))
    }

    /// The `Nr-Sig` value of the reply to an accepted request, in the request's scheme.
    pub fn sign_reply(&self, request: &Accepted, status: &str, body: &[u8]) -> Option<String> {
        if request.legacy {
            legacy::sign_reply(&self.keys, &request.nonce, status, body)
        } else {
            sign_reply(&self.keys, &request.nonce, status, body)
        }
    }

    /// Records a nonce another runner accepted, so its replay is refused here too.
    pub fn remember(&self, nonce: &str) {
        self.seen.insert(nonce);
    }
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
