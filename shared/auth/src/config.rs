//! Authentication settings.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// HS256 key for session tokens. Unset: a random key per process (tokens do not
    /// survive a restart and gateways cannot share them); set it in production.
    #[arg(long, env = "NR_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// `iss` of session tokens.
    #[arg(long, env = "NR_JWT_ISSUER", default_value = "noderouter")]
    pub jwt_issuer: String,
    /// `aud` of session tokens.
    #[arg(long, env = "NR_JWT_AUDIENCE", default_value = "noderouter")]
    pub jwt_audience: String,
    /// Session lifetime, seconds.
    #[arg(long, env = "NR_SESSION_TTL_S", default_value_t = 12 * 3600)]
    pub session_ttl_s: u64,
    /// Clock leeway when checking `exp`/`iat`, seconds (at most 120).
    #[arg(long, env = "NR_JWT_LEEWAY_S", default_value_t = 30)]
    pub jwt_leeway_s: u64,
    /// JWKS file with the public keys of an external issuer (RS256/ES256/EdDSA, picked by
    /// `kid`). Keys are only ever read from this file, never fetched from a token's URL.
    #[arg(long, env = "NR_EXTERNAL_JWKS")]
    pub external_jwks: Option<PathBuf>,
    /// `iss` required of external tokens.
    #[arg(long, env = "NR_EXTERNAL_ISSUER")]
    pub external_issuer: Option<String>,
    /// `aud` required of external tokens.
    #[arg(long, env = "NR_EXTERNAL_AUDIENCE")]
    pub external_audience: Option<String>,
    /// Password of the `admin` user created on first start; unset: one is generated and
    /// printed once.
    #[arg(long, env = "NR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Mark the session cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "NR_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Extra origins allowed for cookie-authenticated requests and WebSockets
    /// (comma-separated, e.g. `https://admin.example.com`); the request's own host is
    /// always allowed.
    #[arg(long, env = "NR_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Shortest password accepted when a user is created or a password is set.
    #[arg(long, env = "NR_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// argon2 checks running at once (each on a blocking thread); more wait their turn.
    #[arg(long, env = "NR_ARGON2_THREADS", default_value_t = 2)]
    pub argon2_threads: usize,
    /// Failed logins of one account before each further one doubles a delay.
    #[arg(long, env = "NR_LOGIN_FREE_FAILURES", default_value_t = 5)]
    pub login_free_failures: u32,
    /// Failed logins from one client address before delays start.
    #[arg(long, env = "NR_LOGIN_FREE_FAILURES_PER_ADDR", default_value_t = 20)]
    pub login_free_failures_per_addr: u32,
    /// Longest delay between login attempts after failures, seconds.
    #[arg(long, env = "NR_LOGIN_MAX_DELAY_S", default_value_t = 900)]
    pub login_max_delay_s: u64,
}
