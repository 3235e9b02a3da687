//! Typed configuration shared by the services, read from the environment (or flags).
//!
//! Each service composes the pieces it needs with `#[command(flatten)]`. Defaults are
//! the embedded single-machine setup: NATS and Postgres on loopback, bundles in a local
//! directory. [`nats_auth`] holds who may do what on NATS, for every deployment.

pub mod nats_auth;

use std::path::PathBuf;

use clap::Args;

use crate::nats_auth::Role;

#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (JetStream enabled).
    #[arg(
        long,
        env = "NR_NATS_URL",
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS user this service connects as (with `NR_NATS_PASSWORD`).
    #[arg(long, env = "NR_NATS_USER")]
    pub nats_user: Option<String>,
    /// Password of `NR_NATS_USER`.
    #[arg(long, env = "NR_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// A JSON file of role -> password (`gateway`, `deploy`, `registry`, `runner`,
    /// `notify`, ...): each service connects as the user named after its role. Used by
    /// the all-in-one process; takes precedence over user and password.
    #[arg(long, env = "NR_NATS_PASSWORDS_FILE")]
    pub nats_passwords_file: Option<PathBuf>,
}

/// How a service proves who it is to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsCredentials {
    /// No credentials: only for a server without authorization (development).
    None,
    UserPassword {
        user: String,
        password: String,
    },
}

impl NatsArgs {
    /// Anonymous access to `url`.
    pub fn anonymous(url: impl Into<String>) -> NatsArgs {
        NatsArgs {
            nats_url: url.into(),
            nats_user: None,
            nats_password: None,
            nats_passwords_file: None,
        }
    }

    /// The credentials `role` connects with.
    pub fn credentials(&self, role: Role) -> Result<NatsCredentials, String> {
        if let Some(path) = &self.nats_passwords_file {
            let passwords = nats_auth::Passwords::load(path)?;
            let password = passwords.get(role).ok_or_else(|| {
                format!(
                    "NATS passwords file {} has no password for role {role:?}",
                    path.display(),
                    role = role.user()
                )
            })?;
            return Ok(NatsCredentials::UserPassword {
                user: role.user().to_owned(),
                password: password.to_owned(),
            });
        }
        match (&self.nats_user, &self.nats_password) {
            // The runner's second user (see `nats_auth`): `<user>_jobs`, same password.
            (Some(user), password) if role == Role::RunnerJobs => {
                Ok(NatsCredentials::UserPassword {
                    user: Role::jobs_user(user),
                    password: password.clone().unwrap_or_default(),
                })
            }
            (Some(user), password) => Ok(NatsCredentials::UserPassword {
                user: user.clone(),
                password: password.clone().unwrap_or_default(),
            }),
            (None, Some(_)) => Err("NR_NATS_PASSWORD is set without NR_NATS_USER: set both".into()),
            (None, None) => Ok(NatsCredentials::None),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres URL. Apps receive the same value as `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/noderouter"
    )]
    pub database_url: String,
    /// Connections in the platform's own pool.
    #[arg(long, env = "NR_DB_POOL", default_value_t = 8)]
    pub db_pool: u32,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Object store for bundles: `s3://bucket[/prefix]` (settings from the `AWS_*`
    /// variables), a directory path, `file:///abs/path`, or `memory://`.
    #[arg(long, env = "NR_OBJECT_STORE_URL", default_value = ".data/objects")]
    pub object_store_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Address of the `/healthz` listener for services that have no public HTTP port.
    #[arg(long, env = "NR_HEALTH_ADDR")]
    pub health_addr: Option<String>,
}

/// Number of CPU cores, the default size of worker pools.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Checks a time setting: a number of seconds from `min` to `max`. The error names the
/// setting, the range and what was given, for a start refused before anything runs.
pub fn seconds_in(setting: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{setting} must be a number of seconds from {min} to {max} (got {value})"
        ))
    }
}

/// Joins the errors of a configuration check into one, or none when there are none.
pub fn refused(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("bad configuration: {}", errors.join("; ")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod seconds_tests {
    use super::seconds_in;

    #[test]
    fn a_time_setting_out_of_range_or_not_a_number_is_refused_by_name() {
        assert!(seconds_in("NR_X_S", 30.0, 1.0, 86_400.0).is_ok());
        assert!(seconds_in("NR_X_S", 1.0, 1.0, 86_400.0).is_ok());
        for bad in [0.0, -1.0, 86_401.0, f64::NAN, f64::INFINITY] {
            let e = seconds_in("NR_X_S", bad, 1.0, 86_400.0).unwrap_err();
            assert!(
                e.starts_with("NR_X_S must be a number of seconds from 1 to 86400 (got "),
                "{e}"
            );
        }
    }
}
