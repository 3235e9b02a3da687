//! Tests of `signing`: the signed texts, nonces, tampering, rotation and replies.

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
    out.insert(HEADER_SIG, sign(keys, subject, h, body).unwrap().value());
    out
}

/// The signed texts are the documented ones, byte for byte (the MAC is fed in
/// pieces, so this pins the format against the module's description).
#[test]
fn the_signed_texts_are_the_documented_ones() {
    let mac_of = |text: &str| {
        let mut m = HmacSha256::new_from_slice(b"k1").unwrap();
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    let keys = Keys::parse(Some("k1"));
    assert_eq!(
        sign_reply(&keys, "n1", "200", b"{\"a\":1}").unwrap(),
        mac_of("reply-v3\nn1\n200\n{\"a\":1}")
    );
    let h = covered("3", "r1");
    let stamp = sign(&keys, "runner.exec.a", &h, b"{\"a\":1}").unwrap();
    let (ts, nonce, mac) = split_stamp(stamp.value()).unwrap();
    assert_eq!(nonce, stamp.nonce());
    assert_eq!(nonce.len(), 32, "{nonce}");
    let text = format!(
        "v3\n{ts}\n{nonce}\nrunner.exec.a\n{}:3\n{}:r1\n{{\"a\":1}}",
        headers::APP_REV,
        headers::REQUEST_ID
    );
    assert_eq!(mac, mac_of(&text));
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
    let nonce = split_stamp(h.get(HEADER_SIG).unwrap().as_str())
        .unwrap()
        .1
        .to_owned();
    let accepted = v.verify("runner.exec.a", b"{}", Some(&h)).unwrap().unwrap();
    assert_eq!(accepted.nonce, nonce);
    // Its reply is signed in this release's scheme, against its nonce.
    let sig = v.sign_reply(&accepted, "200", b"{}").unwrap();
    assert_eq!(
        verify_reply(&keys, &nonce, "200", b"{}", Some(&sig)),
        Ok(())
    );
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
    second.remember(&nonce.nonce);
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
    let value = h.get(HEADER_SIG).unwrap().as_str().to_owned();
    let (_, nonce, mac) = split_stamp(&value).unwrap();
    let mut stale = h.clone();
    stale.insert(HEADER_SIG, format!("{old}.{nonce}.{mac}").as_str());
    assert_eq!(
        v.verify("runner.exec.a", b"{}", Some(&stale)),
        Err(SigError::Stale)
    );
    for garbage in ["", "1.2", "x.n.00", &format!("{old}..{mac}")] {
        let mut bad = h.clone();
        bad.insert(HEADER_SIG, garbage);
        assert_eq!(
            v.verify("runner.exec.a", b"{}", Some(&bad)),
            Err(SigError::Invalid),
            "{garbage:?}"
        );
    }
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

/// The previous release's three-header requests, from gateways not yet upgraded: they
/// verify once, are refused when tampered or stale, and are answered in their own reply
/// scheme (`v1=`, over the body's digest), which those gateways check.
#[test]
fn requests_of_the_previous_scheme_verify_and_get_replies_in_it() {
    let keys = Keys::parse(Some("k1"));
    let v = Verifier::new(keys.clone());
    let h = covered("3", "r1");
    let mut old = h.clone();
    for (k, val) in legacy::sign(&keys, "runner.exec.a", &h, b"{}").unwrap() {
        old.insert(k, val.as_str());
    }
    let nonce = old.get(legacy::HEADER_NONCE).unwrap().as_str().to_owned();
    assert_eq!(
        v.verify("runner.exec.a", b"{\"x\":1}", Some(&old)),
        Err(SigError::Invalid),
        "tampered body"
    );
    let mut changed = old.clone();
    changed.insert(headers::APP_REV, "2");
    assert_eq!(
        v.verify("runner.exec.a", b"{}", Some(&changed)),
        Err(SigError::Invalid),
        "tampered revision"
    );
    let mut stale = old.clone();
    let then = (time::OffsetDateTime::now_utc().unix_timestamp() - 60) * 1000;
    stale.insert(legacy::HEADER_TS, then.to_string().as_str());
    assert_eq!(
        v.verify("runner.exec.a", b"{}", Some(&stale)),
        Err(SigError::Stale)
    );
    let accepted = v
        .verify("runner.exec.a", b"{}", Some(&old))
        .unwrap()
        .unwrap();
    assert_eq!(accepted.nonce, nonce);
    assert_eq!(
        v.verify("runner.exec.a", b"{}", Some(&old)),
        Err(SigError::Replayed)
    );
    // The reply text of the previous scheme, as its gateways compute it.
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"{\"ok\":1}"));
    let mut m = HmacSha256::new_from_slice(b"k1").unwrap();
    m.update(format!("reply-v1\n{nonce}\n200\n{digest}").as_bytes());
    let expected = format!("v1={}", hex::encode(m.finalize().into_bytes()));
    assert_eq!(
        v.sign_reply(&accepted, "200", b"{\"ok\":1}").unwrap(),
        expected
    );
    // A signature of the previous scheme never passes as one of this one.
    let mut mixed = h.clone();
    mixed.insert(HEADER_SIG, old.get(HEADER_SIG).unwrap().as_str());
    assert_eq!(
        v.verify("runner.exec.a", b"{}", Some(&mixed)),
        Err(SigError::Invalid)
    );
}

#[test]
fn a_runner_key_shorter_than_sixteen_characters_is_refused() {
    assert_eq!(Keys::check_lengths(None), Ok(()));
    assert_eq!(Keys::check_lengths(Some("0123456789abcdef")), Ok(()));
    assert_eq!(
        Keys::check_lengths(Some("0123456789abcdef, 0123456789abcdefgh")),
        Ok(())
    );
    for short in ["short", "0123456789abcdef,old", "new-key-123,old-key-456"] {
        let e = Keys::check_lengths(Some(short)).unwrap_err();
        assert!(
            e.contains("RUNNER_SECRET") && e.contains("16 characters"),
            "{short}: {e}"
        );
    }
}
