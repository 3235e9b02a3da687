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
use moka::sync::Cache;
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

/// Keys from `RUNNER_SECRET` (comma-separated; the first signs).
#[derive(Clone, Default)]
pub struct Keys(Vec<Vec<u8>>);

impl Keys {
    pub fn parse(secret: Option<&str>) -> Keys {
        Keys(
            secret
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().to_vec())
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

fn signed_text(
    ts: &str,
    nonce: &str,
    subject: &str,
    covered: Option<&HeaderMap>,
    body: &[u8],
) -> String {
    let mut text = format!("v2\n{ts}\n{nonce}\n{subject}\n");
    for name in COVERED {
        text.push_str(name);
        text.push(':');
        text.push_str(header(covered, name).unwrap_or(""));
        text.push('\n');
    }
    text.push_str(&hex::encode(Sha256::digest(body)));
    text
}

fn reply_text(nonce: &str, status: &str, body: &[u8]) -> String {
    format!(
        "reply-v1\n{nonce}\n{status}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

fn mac(key: &[u8], text: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(text.as_bytes());
    Some(m)
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
    let m = mac(key, &signed_text(&ts, &nonce, subject, Some(covered), body))?;
    let sig = format!("v1={}", hex::encode(m.finalize().into_bytes()));
    Some([(HEADER_TS, ts), (HEADER_NONCE, nonce), (HEADER_SIG, sig)])
}

/// The `Nr-Sig` value of a reply with `status` and `body` to the request signed with
/// `nonce`, or none without keys.
pub fn sign_reply(keys: &Keys, nonce: &str, status: &str, body: &[u8]) -> Option<String> {
    let m = mac(keys.0.first()?, &reply_text(nonce, status, body))?;
    Some(format!("v1={}", hex::encode(m.finalize().into_bytes())))
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
    let given = sig
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SigError::Invalid)?;
    let text = reply_text(nonce, status, body);
    let ok = keys
        .0
        .iter()
        .filter_map(|k| mac(k, &text))
        .any(|m| m.verify_slice(&given).is_ok());
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
    seen: Cache<String, ()>,
}

impl Verifier {
    pub fn new(keys: Keys) -> Verifier {
        Verifier {
            keys,
            seen: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(WINDOW * 2 + Duration::from_secs(1))
                .build(),
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
        let given = sig
            .strip_prefix("v1=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SigError::Invalid)?;
        let text = signed_text(ts, nonce, subject, headers, body);
        let ok = self
            .keys
            .0
            .iter()
            .filter_map(|k| mac(k, &text))
            .any(|m| m.verify_slice(&given).is_ok());
        if !ok {
            return Err(SigError::Invalid);
        }
        // Only a correctly signed nonce is remembered, so garbage cannot fill the cache.
        let entry = self.seen.entry(nonce.to_owned()).or_insert(());
        if !entry.is_fresh() {
            return Err(SigError::Replayed);
        }
        Ok(Some(nonce.to_owned()))
    }

    /// Records a nonce another runner accepted, so its replay is refused here too.
    pub fn remember(&self, nonce: &str) {
        self.seen.insert(nonce.to_owned(), ());
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
