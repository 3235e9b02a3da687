//! HMAC signatures on runner requests. The gateway stamps each `runner.exec.<app>`
//! request; a runner with `RUNNER_SECRET` set refuses unsigned, stale, replayed or
//! tampered ones.
//!
//! Signed text: `v1\n<unix millis>\n<nonce>\n<subject>\n<hex sha256 of body>`, with
//! HMAC-SHA256 under the first configured key; any configured key verifies, so keys can
//! be rotated by adding the new one everywhere, then moving it first, then dropping the
//! old one.

use std::time::Duration;

use hmac::{Hmac, Mac};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

pub const HEADER_TS: &str = "Nr-Sig-Ts";
pub const HEADER_NONCE: &str = "Nr-Sig-Nonce";
pub const HEADER_SIG: &str = "Nr-Sig";

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

fn signed_text(ts: &str, nonce: &str, subject: &str, body: &[u8]) -> String {
    format!(
        "v1\n{ts}\n{nonce}\n{subject}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

fn mac(key: &[u8], text: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(text.as_bytes());
    Some(m)
}

/// The three headers for a request, or none without keys (development mode).
pub fn sign(keys: &Keys, subject: &str, body: &[u8]) -> Option<[(&'static str, String); 3]> {
    let key = keys.0.first()?;
    let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let ts = ts.to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let m = mac(key, &signed_text(&ts, &nonce, subject, body))?;
    let sig = format!("v1={}", hex::encode(m.finalize().into_bytes()));
    Some([(HEADER_TS, ts), (HEADER_NONCE, nonce), (HEADER_SIG, sig)])
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

    pub fn verify(
        &self,
        subject: &str,
        body: &[u8],
        ts: Option<&str>,
        nonce: Option<&str>,
        sig: Option<&str>,
    ) -> Result<(), SigError> {
        if !self.enabled() {
            return Ok(());
        }
        let (Some(ts), Some(nonce), Some(sig)) = (ts, nonce, sig) else {
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
        let text = signed_text(ts, nonce, subject, body);
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(h: &[(&'static str, String); 3]) -> (String, String, String) {
        (h[0].1.clone(), h[1].1.clone(), h[2].1.clone())
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let keys = Keys::parse(Some("k1"));
        let v = Verifier::new(keys.clone());
        let (ts, n, s) = parts(&sign(&keys, "runner.exec.a", b"{}").unwrap());
        assert_eq!(
            v.verify("runner.exec.a", b"{}", Some(&ts), Some(&n), Some(&s)),
            Ok(())
        );
        assert_eq!(
            v.verify("runner.exec.a", b"{}", Some(&ts), Some(&n), Some(&s)),
            Err(SigError::Replayed)
        );
    }

    #[test]
    fn tampering_staleness_and_absence_are_refused() {
        let keys = Keys::parse(Some("k1"));
        let v = Verifier::new(keys.clone());
        let (ts, n, s) = parts(&sign(&keys, "runner.exec.a", b"{}").unwrap());
        assert_eq!(
            v.verify("runner.exec.a", b"{\"x\":1}", Some(&ts), Some(&n), Some(&s)),
            Err(SigError::Invalid)
        );
        assert_eq!(
            v.verify("runner.exec.b", b"{}", Some(&ts), Some(&n), Some(&s)),
            Err(SigError::Invalid)
        );
        assert_eq!(
            v.verify("runner.exec.a", b"{}", None, None, None),
            Err(SigError::Missing)
        );
        let old = (time::OffsetDateTime::now_utc().unix_timestamp() - 60) * 1000;
        assert_eq!(
            v.verify(
                "runner.exec.a",
                b"{}",
                Some(&old.to_string()),
                Some(&n),
                Some(&s)
            ),
            Err(SigError::Stale)
        );
    }

    #[test]
    fn any_configured_key_verifies_during_rotation() {
        let old = Keys::parse(Some("old"));
        let v = Verifier::new(Keys::parse(Some("new, old")));
        let (ts, n, s) = parts(&sign(&old, "s", b"").unwrap());
        assert_eq!(v.verify("s", b"", Some(&ts), Some(&n), Some(&s)), Ok(()));
        let other = Keys::parse(Some("other"));
        let (ts, n, s) = parts(&sign(&other, "s", b"").unwrap());
        assert_eq!(
            v.verify("s", b"", Some(&ts), Some(&n), Some(&s)),
            Err(SigError::Invalid)
        );
    }

    #[test]
    fn without_keys_everything_passes_and_nothing_is_signed() {
        let v = Verifier::new(Keys::parse(None));
        assert!(!v.enabled());
        assert_eq!(v.verify("s", b"", None, None, None), Ok(()));
        assert!(sign(&Keys::parse(Some(" , ")), "s", b"").is_none());
    }
}
