//! The signature scheme of the previous release, which runners still accept so they can
//! be upgraded before the gateways (docs/operations.md, upgrades): a request with
//! `Nr-Sig-Ts`, `Nr-Sig-Nonce` and `Nr-Sig: v1=<hex MAC>` over `v2\n<ts>\n<nonce>\n
//! <subject>\n`, the [`COVERED`] header lines and the hex SHA-256 of the body; its reply
//! signed `v1=<hex MAC>` over `reply-v1\n<nonce>\n<status>\n` and the hex SHA-256 of the
//! reply body. Gateways of this release no longer send it.

use async_nats::HeaderMap;
use hmac::Mac;
use sha2::{Digest, Sha256};

use super::{HmacSha256, Keys};

pub const HEADER_TS: &str = "Nr-Sig-Ts";
pub const HEADER_NONCE: &str = "Nr-Sig-Nonce";

pub(super) fn mac_request(
    key: &HmacSha256,
    ts: &str,
    nonce: &str,
    subject: &str,
    covered: Option<&HeaderMap>,
    body: &[u8],
) -> HmacSha256 {
    super::mac_request_text(key, "v2\n", ts, nonce, subject, covered, &body_digest(body))
}

fn mac_reply(key: &HmacSha256, nonce: &str, status: &str, body: &[u8]) -> HmacSha256 {
    super::mac_reply_text(key, "reply-v1\n", nonce, status, &body_digest(body))
}

/// The hex SHA-256 of a body, on the stack.
fn body_digest(body: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // Cannot fail: 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(body), &mut out);
    out
}

fn signature(m: HmacSha256) -> String {
    format!("v1={}", hex::encode(m.finalize().into_bytes()))
}

/// The 32 bytes of a `v1=<64 hex>` signature.
pub(super) fn parse_sig(sig: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(sig.strip_prefix("v1=")?, &mut out).ok()?;
    Some(out)
}

/// The three headers a gateway of the previous release sent.
pub fn sign(
    keys: &Keys,
    subject: &str,
    covered: &HeaderMap,
    body: &[u8],
) -> Option<[(&'static str, String); 3]> {
    let key = keys.0.first()?;
    let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = signature(mac_request(key, &ts, &nonce, subject, Some(covered), body));
    Some([
        (HEADER_TS, ts),
        (HEADER_NONCE, nonce),
        (super::HEADER_SIG, sig),
    ])
}

/// The `Nr-Sig` value of a reply to a request signed this way.
pub fn sign_reply(keys: &Keys, nonce: &str, status: &str, body: &[u8]) -> Option<String> {
    Some(signature(mac_reply(keys.0.first()?, nonce, status, body)))
}
