use super::*;
use clap::Parser;

#[derive(Parser)]
struct T {
    #[command(flatten)]
    a: AuthArgs,
}

fn jwt() -> Jwt {
    Jwt::from_args(&T::parse_from(["t", "--jwt-secret", "0123456789abcdef0123"]).a).unwrap()
}

fn b64(v: &serde_json::Value) -> String {
    use base64_engine::encode_url;
    encode_url(&serde_json::to_vec(v).unwrap())
}

mod base64_engine {
    // Minimal base64url without padding, for forging test tokens.
    pub fn encode_url(bytes: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

fn sign(header: serde_json::Value, claims: serde_json::Value) -> String {
    use hmac_sign::sign as s;
    let input = format!("{}.{}", b64(&header), b64(&claims));
    format!("{input}.{}", s(input.as_bytes()))
}

mod hmac_sign {
    pub fn sign(input: &[u8]) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123");
        jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::HS256).unwrap()
    }
}

fn good_claims() -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    serde_json::json!({"sub": "u1", "roles": ["r"], "exp": now + 600, "iat": now, "iss": "noderouter", "aud": "noderouter", "jti": "j1"})
}

#[test]
fn an_issued_token_verifies() {
    let j = jwt();
    let (t, c) = j.issue("u1", "ann", vec!["admin".into()], "s").unwrap();
    let (back, kind) = j.verify(&t).unwrap();
    assert_eq!(back, c);
    assert_eq!(kind, PrincipalKind::User);
}

#[test]
fn a_hand_signed_token_with_good_claims_verifies() {
    let t = sign(
        serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        good_claims(),
    );
    assert!(jwt().verify(&t).is_ok());
}

#[test]
fn tampered_expired_wrong_audience_and_wrong_types_are_refused() {
    let j = jwt();
    let (t, _) = j.issue("u1", "ann", vec![], "s").unwrap();
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = b64(&serde_json::json!({"sub": "admin"}));
    parts[1] = &forged;
    assert!(j.verify(&parts.join(".")).is_err(), "tampered");

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = good_claims();
    c["exp"] = serde_json::json!(now - 3600);
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "expired"
    );

    let mut c = good_claims();
    c["aud"] = serde_json::json!("someone-else");
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "audience"
    );

    let mut c = good_claims();
    c["iss"] = serde_json::json!("evil");
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "issuer"
    );

    let mut c = good_claims();
    c["exp"] = serde_json::json!((now + 600).to_string());
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "string exp"
    );

    let mut c = good_claims();
    c["roles"] = serde_json::json!("admin");
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "string roles"
    );

    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(
        j.verify(&sign(serde_json::json!({"alg": "HS256"}), c))
            .is_err(),
        "no exp"
    );
}

#[test]
fn a_token_verified_before_is_still_refused_once_expired_and_a_changed_one_is_checked() {
    let j = Jwt::from_args(
        &T::parse_from([
            "t",
            "--jwt-secret",
            "0123456789abcdef0123",
            "--jwt-leeway-s",
            "0",
        ])
        .a,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = good_claims();
    c["exp"] = serde_json::json!(now + 1);
    let t = sign(serde_json::json!({"alg": "HS256"}), c);
    assert!(j.verify(&t).is_ok());
    assert!(j.verify(&t).is_ok(), "again, from the cache");
    // The same text with one signature character changed is not the cached one.
    let at = t.len() - 10;
    let swap = if &t[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &t[..at], &t[at + 1..]);
    assert!(j.verify(&forged).is_err(), "a changed signature");
    std::thread::sleep(Duration::from_millis(2100));
    assert!(j.verify(&t).is_err(), "expired while cached");
}

#[test]
fn a_refusal_says_why_in_plain_words_and_never_quotes_the_parser() {
    let j = jwt();
    let why = |t: &str| j.verify(t).unwrap_err().to_string();
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&good_claims())
    );
    for garbage in [none.as_str(), "not-a-jwt", "a.b.c"] {
        let text = why(garbage);
        assert_eq!(text, format!("invalid token: {MALFORMED}"), "{garbage}");
    }
    let mut c = good_claims();
    c["exp"] = serde_json::json!(1);
    assert_eq!(
        why(&sign(serde_json::json!({"alg": "HS256"}), c)),
        "invalid token: expired"
    );
    let t = sign(serde_json::json!({"alg": "HS256"}), good_claims());
    let at = t.len() - 10;
    let swap = if &t[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &t[..at], &t[at + 1..]);
    assert_eq!(why(&forged), "invalid token: the signature does not match");
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let j = jwt();
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&good_claims())
    );
    assert!(j.verify(&none).is_err());
    let hs512 = sign(serde_json::json!({"alg": "HS512"}), good_claims());
    assert!(j.verify(&hs512).is_err());
    let unknown_kid = sign(
        serde_json::json!({"alg": "HS256", "kid": "k9"}),
        good_claims(),
    );
    assert!(j.verify(&unknown_kid).is_err());
}

// A fixed Ed25519 key pair for tests (PKCS#8 DER private key; its public key as a JWK
// `x`), and a second private key the JWKS does not hold.
const ED_PRIVATE: &str = "302e020100300506032b65700422042091cafb4140137091118fd923ebe866b8c216a9d18300716686812639ca4a7f0e";
const ED_PUBLIC_X: &str = "O1ixiB2XKWgbZUG9XyTHcltdLZLJMjxofnUAqkQgy04";
const ED_OTHER_PRIVATE: &str = "302e020100300506032b657004220420edd011b0eadf4022d420084f5c7395c472e38aaf2b43edbbfaeac9b0b6aad344";

fn external() -> (Jwt, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED_PUBLIC_X, "kid": "corp-1", "alg": "EdDSA"}]})
            .to_string(),
    )
    .unwrap();
    let args = T::parse_from([
        "t",
        "--jwt-secret",
        "0123456789abcdef0123",
        "--external-jwks",
        jwks.to_str().unwrap(),
        "--external-issuer",
        "https://idp.example",
        "--external-audience",
        "noderouter-prod",
    ])
    .a;
    (Jwt::from_args(&args).unwrap(), dir)
}

fn ed_token(private_hex: &str, kid: &str, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_ed_der(&hex::decode(private_hex).unwrap());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    encode(&header, &claims, &key).unwrap()
}

fn idp_claims() -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    serde_json::json!({"sub": "ext-42", "roles": ["sales"], "exp": now + 600, "iat": now,
                       "iss": "https://idp.example", "aud": "noderouter-prod", "jti": "x1"})
}

#[test]
fn an_external_token_verifies_with_the_jwks_key_named_by_kid() {
    let (j, _dir) = external();
    let (claims, kind) = j
        .verify(&ed_token(ED_PRIVATE, "corp-1", idp_claims()))
        .unwrap();
    assert_eq!(kind, PrincipalKind::External);
    assert_eq!(claims.roles, vec!["sales".to_owned()]);
}

#[test]
fn external_tokens_with_another_key_kid_issuer_or_audience_are_refused() {
    let (j, _dir) = external();
    assert!(
        j.verify(&ed_token(ED_OTHER_PRIVATE, "corp-1", idp_claims()))
            .is_err(),
        "wrong key"
    );
    assert!(
        j.verify(&ed_token(ED_PRIVATE, "corp-2", idp_claims()))
            .is_err(),
        "unknown kid"
    );
    let mut c = idp_claims();
    c["iss"] = serde_json::json!("noderouter");
    assert!(
        j.verify(&ed_token(ED_PRIVATE, "corp-1", c)).is_err(),
        "issuer"
    );
    let mut c = idp_claims();
    c["aud"] = serde_json::json!("noderouter");
    assert!(
        j.verify(&ed_token(ED_PRIVATE, "corp-1", c)).is_err(),
        "audience"
    );
    // A session-style HS256 token naming the external kid is not accepted either.
    let hs = sign(
        serde_json::json!({"alg": "HS256", "kid": "corp-1"}),
        idp_claims(),
    );
    assert!(j.verify(&hs).is_err(), "algorithm of the key is enforced");
}

#[test]
fn a_jwks_key_with_a_disallowed_algorithm_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]}"#,
    )
    .unwrap();
    let args = T::parse_from([
        "t",
        "--external-jwks",
        jwks.to_str().unwrap(),
        "--external-issuer",
        "i",
        "--external-audience",
        "a",
    ])
    .a;
    let err = Jwt::from_args(&args)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("not allowed"), "{err}");
}

#[test]
fn a_rotation_verifies_tokens_of_every_listed_key_and_signs_with_the_first() {
    let with =
        |secret: &str| Jwt::from_args(&T::parse_from(["t", "--jwt-secret", secret]).a).unwrap();
    let old = with("old-key-0123456789");
    let (old_token, _) = old.issue("u1", "ann", vec![], "s").unwrap();
    let rotating = with("new-key-0123456789, old-key-0123456789");
    // Before: the whole value was one key, and every session ended at the rotation.
    assert!(rotating.verify(&old_token).is_ok());
    let (new_token, _) = rotating.issue("u1", "ann", vec![], "s").unwrap();
    let new_only = with("new-key-0123456789");
    assert!(new_only.verify(&new_token).is_ok());
    let err = new_only
        .verify(&old_token)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("signature does not match"), "{err}");
    let short = Jwt::from_args(&T::parse_from(["t", "--jwt-secret", "new-key-0123456789,short"]).a)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(short.contains("keys separated by commas"), "{short}");
}
