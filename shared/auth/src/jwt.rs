//! Session tokens (HS256, issued here) and external tokens (JWKS file, by `kid`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::{AuthArgs, AuthError, PrincipalKind};

/// The claims every token must carry, with these exact types: a token whose `exp` is a
/// string or whose `roles` is not a list of strings does not decode and is refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fingerprint of the user's password hash and disablings when the session began
    /// ([`crate::password::session_stamp`]); a session whose stamp no longer matches (the
    /// password changed, or the user was disabled since) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<String>,
    /// Audience; checked by the validation, kept for re-encoding.
    pub aud: serde_json::Value,
}

pub struct Jwt {
    encoding: EncodingKey,
    /// The keys session tokens verify with: the one that signs first, then the keys of a
    /// rotation (`NR_JWT_SECRET=<new>,<old>`).
    local_keys: Vec<DecodingKey>,
    local: Validation,
    external: HashMap<String, (DecodingKey, Validation)>,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Tokens verified lately, by their whole text: a token presented again skips the
    /// decode and the signature check (its expiry is checked on every use). Only tokens
    /// that verified are kept, so one differing in a byte is verified from scratch.
    verified: moka::sync::Cache<String, Arc<Verified>>,
    /// True when the key was generated for this process.
    pub ephemeral: bool,
}

/// What a verified token came to, and the clock leeway its validation allowed.
struct Verified {
    claims: Claims,
    kind: PrincipalKind,
    leeway: i64,
}

/// Verified tokens kept at most, and for at most this long.
const VERIFIED_MAX: u64 = 10_000;
const VERIFIED_TTL: Duration = Duration::from_secs(300);

const MAX_LEEWAY_S: u64 = 120;

fn validation(alg: Algorithm, iss: &str, aud: &str, leeway: u64) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    v.leeway = leeway.min(MAX_LEEWAY_S);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v
}

impl Jwt {
    pub fn from_args(args: &AuthArgs) -> anyhow::Result<Jwt> {
        let (secrets, ephemeral) = match &args.jwt_secret {
            Some(s) => {
                let keys: Vec<String> = s.split(',').map(|k| k.trim().to_owned()).collect();
                if keys.iter().any(|k| k.len() < 16) {
                    anyhow::bail!("NR_JWT_SECRET must be at least 16 characters; during a rotation, keys separated by commas (the first signs, every one verifies), each of at least 16 characters");
                }
                (keys, false)
            }
            None => (vec![crate::password::random_secret()], true),
        };
        let secret = secrets.first().cloned().unwrap_or_default();
        let mut external = HashMap::new();
        if let Some(path) = &args.external_jwks {
            let (Some(iss), Some(aud)) = (&args.external_issuer, &args.external_audience) else {
                anyhow::bail!("NR_EXTERNAL_JWKS needs NR_EXTERNAL_ISSUER and NR_EXTERNAL_AUDIENCE");
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read JWKS {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("JWKS {} is not valid: {e}", path.display()))?;
            for jwk in &set.keys {
                let Some(kid) = jwk.common.key_id.clone() else {
                    anyhow::bail!("every key in {} needs a kid", path.display());
                };
                let alg = match jwk.common.key_algorithm {
                    Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                    Some(KeyAlgorithm::ES256) => Algorithm::ES256,
                    Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
                    other => anyhow::bail!(
                        "key {kid} in {}: algorithm {other:?} is not allowed (RS256, ES256 or EdDSA)",
                        path.display()
                    ),
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| anyhow::anyhow!("key {kid} in {}: {e}", path.display()))?;
                external.insert(kid, (key, validation(alg, iss, aud, args.jwt_leeway_s)));
            }
        }
        Ok(Jwt {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            local_keys: secrets
                .iter()
                .map(|k| DecodingKey::from_secret(k.as_bytes()))
                .collect(),
            local: validation(
                Algorithm::HS256,
                &args.jwt_issuer,
                &args.jwt_audience,
                args.jwt_leeway_s,
            ),
            external,
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            ttl: Duration::from_secs(args.session_ttl_s.max(60)),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(VERIFIED_TTL)
                .build(),
            ephemeral,
        })
    }

    /// A session token for `sub`, bound to its password `stamp`. Returns it with its
    /// claims.
    pub fn issue(
        &self,
        sub: &str,
        name: &str,
        roles: Vec<String>,
        stamp: &str,
    ) -> anyhow::Result<(String, Claims)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            roles,
            exp: now + self.ttl.as_secs() as i64,
            iat: now,
            iss: self.issuer.clone(),
            jti: uuid::Uuid::now_v7().to_string(),
            name: Some(name.to_owned()),
            pwd: Some(stamp.to_owned()),
            aud: serde_json::Value::String(self.audience.clone()),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies a token. Session tokens are HS256 without `kid`; any other token must
    /// name a `kid` from the JWKS file and use that key's algorithm.
    pub fn verify(&self, token: &str) -> Result<(Claims, PrincipalKind), AuthError> {
        if let Some(v) = self.verified.get(token) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            // jsonwebtoken's own rule: expired when `exp < now - leeway`.
            if v.claims.exp >= now.saturating_sub(v.leeway) {
                return Ok((v.claims.clone(), v.kind));
            }
            self.verified.invalidate(token);
        }
        let header = decode_header(token).map_err(|_| AuthError::Invalid(MALFORMED.into()))?;
        let (keys, validation, kind) = match (&header.kid, header.alg) {
            (None, Algorithm::HS256) => (
                self.local_keys.iter().collect::<Vec<_>>(),
                &self.local,
                PrincipalKind::User,
            ),
            (Some(kid), _) => match self.external.get(kid) {
                Some((key, v)) => (vec![key], v, PrincipalKind::External),
                None => return Err(AuthError::Invalid(format!("unknown key id {kid:?}"))),
            },
            (None, alg) => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {alg:?} is not accepted"
                )))
            }
        };
        // The first key whose signature matches decides; a signature no key matches is
        // refused as the last key refused it.
        let mut outcome = Err(AuthError::Invalid(MALFORMED.into()));
        for key in keys {
            match decode::<Claims>(token, key, validation) {
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    outcome = Err(refusal(&e));
                }
                other => {
                    outcome = other.map_err(|e| refusal(&e));
                    break;
                }
            }
        }
        let data = outcome?;
        let verified = Verified {
            claims: data.claims.clone(),
            kind,
            leeway: i64::try_from(validation.leeway).unwrap_or(0),
        };
        self.verified.insert(token.to_owned(), Arc::new(verified));
        Ok((data.claims, kind))
    }
}

/// What a caller is told (after "invalid token: ") about a token that did not verify:
/// the reason in a few plain words, never the library's parser details.
const MALFORMED: &str = "malformed, not a JWT this platform accepts";

fn refusal(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    AuthError::Invalid(
        match e.kind() {
            K::ExpiredSignature => "expired",
            K::ImmatureSignature => "not valid yet",
            K::InvalidSignature => "the signature does not match",
            K::InvalidIssuer => "the issuer is not accepted",
            K::InvalidAudience => "the audience is not accepted",
            K::MissingRequiredClaim(_) => "a required claim is missing",
            _ => MALFORMED,
        }
        .into(),
    )
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
