//! Who is calling, and what they may do.
//!
//! - `jwt`: session tokens issued by the platform (HS256) and, optionally, tokens of an
//!   external issuer verified with keys from a configured JWKS file.
//! - `password`: argon2 hashing.
//! - `rbac`: a cached view of the RBAC projection (roles, grants, user roles, API tokens,
//!   revoked sessions), dropped whenever the registry applies a change.
//! - `http`: the credential of a request and the origin rule (gateway and notify).
//! - `throttle`: growing delays after failed logins, per account and per address.
//! - [`Principal`]: the authenticated caller and its effective permissions; its
//!   [`Principal::has`] is the one permission check of the platform.

pub mod config;
pub mod http;
pub mod jwt;
pub mod password;
pub mod rbac;
pub mod signing;
pub mod throttle;

use std::collections::HashSet;
use std::sync::Arc;

pub use config::AuthArgs;

/// The role that holds every permission.
pub const ADMIN_ROLE: &str = "admin";

/// Built-in permissions of the platform itself.
pub mod perms {
    pub const APPS_DEPLOY: &str = "apps:deploy";
    pub const APPS_READ: &str = "apps:read";
    /// Set, unset and list apps' variables and secrets.
    pub const APPS_ENV: &str = "apps:env";
    pub const JOBS_READ_ALL: &str = "jobs:read_all";
    /// Cancel any user's job (seeing them, `jobs:read_all`, is not enough).
    pub const JOBS_CANCEL_ALL: &str = "jobs:cancel_all";
    /// Re-queue any user's failed job.
    pub const JOBS_REQUEUE_ALL: &str = "jobs:requeue_all";
    /// Read `/metrics` on the public address.
    pub const METRICS_READ: &str = "metrics:read";
    pub const RBAC_MANAGE: &str = "rbac:manage";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A platform user with a session token (cookie or bearer).
    User,
    /// A machine token made by an admin.
    ApiToken,
    /// A token from the configured external issuer.
    External,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub sub: String,
    pub name: String,
    pub roles: Vec<String>,
    pub kind: PrincipalKind,
    pub jti: Option<String>,
    /// Expiry of the session token (Unix seconds), for logout.
    pub exp: Option<i64>,
    /// Password stamp of a user's session ([`password::session_stamp`]).
    pub stamp: Option<String>,
    permissions: Arc<HashSet<String>>,
}

impl Principal {
    pub fn new(
        sub: String,
        name: String,
        roles: Vec<String>,
        kind: PrincipalKind,
        permissions: Arc<HashSet<String>>,
    ) -> Self {
        Self {
            sub,
            name,
            roles,
            kind,
            jti: None,
            exp: None,
            stamp: None,
            permissions,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }

    /// True when the caller holds `permission`; an empty permission is open to any
    /// authenticated caller.
    pub fn has(&self, permission: &str) -> bool {
        permission.trim().is_empty() || self.is_admin() || self.permissions.contains(permission)
    }

    pub fn permissions(&self) -> &HashSet<String> {
        &self.permissions
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send a bearer token or log in")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token was revoked")]
    Revoked,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
