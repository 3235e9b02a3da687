//! A cached view of the RBAC projection. Every entry carries the generation it was read
//! in; when the registry announces an applied change (`rbac.applied`) the generation
//! moves on and older entries are read again, so a change takes effect at once on every
//! gateway and hub, without a restart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use nr_contracts::subjects;
use nr_infra::consume::{consume, Order};
use nr_infra::drain::Drain;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::jwt::Jwt;
use crate::{AuthError, Principal, PrincipalKind};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub disabled: bool,
    pub roles: Vec<String>,
    /// [`crate::password::session_stamp`] of the current password hash and disablings.
    pub stamp: String,
}

#[derive(Debug, Clone)]
struct TokenRow {
    owner: String,
    name: String,
    roles: Vec<String>,
    secret_hash: String,
    usable: bool,
}

type Tagged<T> = (u64, T);

pub struct Rbac {
    db: PgPool,
    generation: AtomicU64,
    applied: watch::Sender<u64>,
    roles: Cache<String, Tagged<Arc<HashSet<String>>>>,
    users: Cache<String, Tagged<Option<UserRow>>>,
    tokens: Cache<String, Tagged<Option<TokenRow>>>,
    revoked: Cache<String, Tagged<bool>>,
    /// The `rbac.applied` follower, stopped when the cache is dropped.
    follows: Drain,
}

impl Drop for Rbac {
    fn drop(&mut self) {
        self.follows.stop();
    }
}

/// API tokens look like `nrt_<id>.<secret>`.
pub const TOKEN_PREFIX: &str = "nrt_";

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn new_cache<V: Clone + Send + Sync + 'static>(capacity: u64) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(Duration::from_secs(300))
        .build()
}

impl Rbac {
    pub fn new(db: PgPool) -> Arc<Rbac> {
        Arc::new(Rbac {
            db,
            generation: AtomicU64::new(0),
            applied: watch::channel(0).0,
            roles: new_cache(10_000),
            users: new_cache(100_000),
            tokens: new_cache(100_000),
            revoked: new_cache(1_000_000),
            follows: Drain::new(),
        })
    }

    /// Drops cached decisions when the registry applies an RBAC change. Follows until
    /// the cache is dropped.
    pub async fn follow(self: &Arc<Self>, nats: async_nats::Client) -> anyhow::Result<()> {
        let sub = nats
            .subscribe(subjects::RBAC_APPLIED)
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RBAC_APPLIED))?;
        let weak = Arc::downgrade(self);
        consume(
            "rbac-applied",
            sub,
            &self.follows,
            Order::InOrder,
            move |msg| {
                if let Some(this) = weak.upgrade() {
                    let seq = std::str::from_utf8(&msg.payload)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0);
                    this.invalidate();
                    this.applied.send_modify(|s| *s = (*s).max(seq));
                }
                std::future::ready(Ok(()))
            },
        );
        Ok(())
    }

    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until the registry has applied the change at `seq` (bounded by `limit`).
    pub async fn wait_applied(&self, seq: u64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| *s >= seq))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    async fn cached<T: Clone + Send + Sync + 'static, F, Fut>(
        &self,
        cache: &Cache<String, Tagged<T>>,
        key: &str,
        load: F,
    ) -> Result<T, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let generation = self.generation();
        if let Some((g, v)) = cache.get(key).await {
            if g == generation {
                return Ok(v);
            }
        }
        let value = load().await.map_err(|e| AuthError::Internal(e.into()))?;
        cache
            .insert(key.to_owned(), (generation, value.clone()))
            .await;
        Ok(value)
    }

    /// Union of the permissions granted to `roles`.
    pub async fn permissions_for(
        &self,
        roles: &[String],
    ) -> Result<Arc<HashSet<String>>, AuthError> {
        if roles.len() == 1 {
            return self.role_permissions(&roles[0]).await;
        }
        let mut all = HashSet::new();
        for role in roles {
            all.extend(self.role_permissions(role).await?.iter().cloned());
        }
        Ok(Arc::new(all))
    }

    async fn role_permissions(&self, role: &str) -> Result<Arc<HashSet<String>>, AuthError> {
        let db = self.db.clone();
        let r = role.to_owned();
        self.cached(&self.roles, role, || async move {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT permission FROM noderouter_core.role_permissions WHERE role = $1",
            )
            .bind(r)
            .fetch_all(&db)
            .await?;
            Ok(Arc::new(rows.into_iter().map(|r| r.0).collect()))
        })
        .await
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>, AuthError> {
        let db = self.db.clone();
        let key = id.to_owned();
        self.cached(&self.users, id, || async move {
            let row: Option<(String, String, bool, String, i64)> = sqlx::query_as(
                "SELECT id, username, disabled, password_hash, sessions_epoch \
                 FROM noderouter_core.users WHERE id = $1",
            )
            .bind(&key)
            .fetch_optional(&db)
            .await?;
            let Some((id, username, disabled, hash, epoch)) = row else {
                return Ok(None);
            };
            let roles: Vec<(String,)> = sqlx::query_as(
                "SELECT role FROM noderouter_core.user_roles WHERE user_id = $1 ORDER BY role",
            )
            .bind(&id)
            .fetch_all(&db)
            .await?;
            Ok(Some(UserRow {
                id,
                username,
                disabled,
                roles: roles.into_iter().map(|r| r.0).collect(),
                stamp: crate::password::session_stamp(&hash, epoch),
            }))
        })
        .await
    }

    /// Looks a user up by name with its password hash (login; not cached).
    pub async fn credentials(
        &self,
        username: &str,
    ) -> Result<Option<(String, String, bool)>, AuthError> {
        sqlx::query_as(
            "SELECT id, password_hash, disabled FROM noderouter_core.users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| AuthError::Internal(e.into()))
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, AuthError> {
        let db = self.db.clone();
        let key = id.to_owned();
        self.cached(&self.tokens, id, || async move {
            let row: Option<(String, String, Vec<String>, String, bool)> = sqlx::query_as(
                "SELECT owner, name, roles, secret_hash, \
                     (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > NOW())) \
                 FROM noderouter_core.api_tokens WHERE id = $1",
            )
            .bind(&key)
            .fetch_optional(&db)
            .await?;
            Ok(
                row.map(|(owner, name, roles, secret_hash, usable)| TokenRow {
                    owner,
                    name,
                    roles,
                    secret_hash,
                    usable,
                }),
            )
        })
        .await
    }

    pub async fn is_revoked(&self, jti: &str) -> Result<bool, AuthError> {
        let db = self.db.clone();
        let key = jti.to_owned();
        self.cached(&self.revoked, jti, || async move {
            let row: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM noderouter_core.revoked_tokens WHERE jti = $1")
                    .bind(&key)
                    .fetch_optional(&db)
                    .await?;
            Ok(row.is_some())
        })
        .await
    }

    /// An API token's principal: its roles, cut down to those its owner still holds
    /// (all of them while the owner is an admin), so a token never carries more than
    /// its owner holds now.
    async fn token_principal(&self, id: &str, token: TokenRow) -> Result<Principal, AuthError> {
        if !token.usable {
            return Err(AuthError::Revoked);
        }
        let owner = match self.user(&token.owner).await? {
            Some(o) if !o.disabled => o,
            _ => return Err(AuthError::Disabled),
        };
        let roles: Vec<String> = if owner.roles.iter().any(|r| r == crate::ADMIN_ROLE) {
            token.roles
        } else {
            token
                .roles
                .into_iter()
                .filter(|r| owner.roles.contains(r))
                .collect()
        };
        let permissions = self.permissions_for(&roles).await?;
        Ok(Principal::new(
            format!("token:{id}"),
            token.name,
            roles,
            PrincipalKind::ApiToken,
            permissions,
        ))
    }

    /// A platform user's principal from a session: refused when the session was
    /// revoked, the user is gone or disabled, or the password changed since (`stamp`).
    async fn session_principal(
        &self,
        sub: &str,
        jti: Option<&str>,
        stamp: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if let Some(jti) = jti {
            if self.is_revoked(jti).await? {
                return Err(AuthError::Revoked);
            }
        }
        let user = self
            .user(sub)
            .await?
            .ok_or_else(|| AuthError::Invalid("unknown user".into()))?;
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        if stamp != Some(user.stamp.as_str()) {
            return Err(AuthError::Revoked);
        }
        let permissions = self.permissions_for(&user.roles).await?;
        let mut p = Principal::new(
            user.id,
            user.username,
            user.roles,
            PrincipalKind::User,
            permissions,
        );
        p.stamp = Some(user.stamp);
        Ok(p)
    }

    /// Authenticates a bearer credential: an API token (`nrt_…`) or a JWT.
    pub async fn authenticate(&self, jwt: &Jwt, credential: &str) -> Result<Principal, AuthError> {
        if let Some(rest) = credential.strip_prefix(TOKEN_PREFIX) {
            let (id, secret) = rest
                .split_once('.')
                .ok_or_else(|| AuthError::Invalid("malformed API token".into()))?;
            let token = self
                .token(id)
                .await?
                .ok_or_else(|| AuthError::Invalid("unknown API token".into()))?;
            if !constant_time_eq(&hash_secret(secret), &token.secret_hash) {
                return Err(AuthError::Invalid("unknown API token".into()));
            }
            return self.token_principal(id, token).await;
        }
        let (claims, kind) = jwt.verify(credential)?;
        let mut p = match kind {
            // A platform user's roles are read live, so a change applies at once.
            PrincipalKind::User => {
                self.session_principal(&claims.sub, Some(&claims.jti), claims.pwd.as_deref())
                    .await?
            }
            _ => {
                if self.is_revoked(&claims.jti).await? {
                    return Err(AuthError::Revoked);
                }
                let permissions = self.permissions_for(&claims.roles).await?;
                Principal::new(
                    claims.sub.clone(),
                    claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
                    claims.roles.clone(),
                    kind,
                    permissions,
                )
            }
        };
        p.jti = Some(claims.jti);
        p.exp = Some(claims.exp);
        Ok(p)
    }

    /// Checks again a principal recorded earlier (a WebSocket opened with a one-time
    /// ticket): the same rules as [`Rbac::authenticate`], read live.
    pub async fn recheck(&self, recorded: &Recorded) -> Result<Principal, AuthError> {
        match recorded.kind {
            PrincipalKind::User => {
                let mut p = self
                    .session_principal(
                        &recorded.sub,
                        recorded.jti.as_deref(),
                        recorded.stamp.as_deref(),
                    )
                    .await?;
                p.jti = recorded.jti.clone();
                Ok(p)
            }
            PrincipalKind::ApiToken => {
                let id = recorded
                    .sub
                    .strip_prefix("token:")
                    .ok_or_else(|| AuthError::Invalid("malformed API token subject".into()))?;
                let token = self.token(id).await?.ok_or(AuthError::Revoked)?;
                self.token_principal(id, token).await
            }
            PrincipalKind::External => {
                if let Some(jti) = &recorded.jti {
                    if self.is_revoked(jti).await? {
                        return Err(AuthError::Revoked);
                    }
                }
                let permissions = self.permissions_for(&recorded.roles).await?;
                let mut p = Principal::new(
                    recorded.sub.clone(),
                    recorded.sub.clone(),
                    recorded.roles.clone(),
                    PrincipalKind::External,
                    permissions,
                );
                p.jti = recorded.jti.clone();
                Ok(p)
            }
        }
    }
}

/// A principal as recorded when a one-time ticket was issued, to be checked again
/// while the socket it opened stays open.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub sub: String,
    pub kind: PrincipalKind,
    /// Roles of an external principal (users' and tokens' are read live).
    pub roles: Vec<String>,
    pub jti: Option<String>,
    pub stamp: Option<String>,
}
