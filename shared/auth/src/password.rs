//! Password hashing with argon2id, on a bounded blocking pool.
//!
//! argon2 costs tens of milliseconds of CPU per call on purpose; run on the async
//! threads, a burst of logins stalls every other request of the process. [`Hasher`]
//! runs each hash or check with `spawn_blocking`, at most `NR_ARGON2_THREADS` at a time
//! (a semaphore), so a login storm queues instead of taking the runtime over.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt_bytes = *uuid::Uuid::new_v4().as_bytes();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
}

/// Constant-time verification; a malformed hash never matches.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A real hash with the same parameters as every stored one, checked when the user is
/// unknown or disabled so that such a login costs what a wrong password costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash(&random_secret()).unwrap_or_default());

/// The stamp a session is bound to, a short fingerprint of its user's password hash and
/// of how many times the user was disabled (`users.sessions_epoch`). Session tokens
/// carry it (`pwd`), so a password change and a disabling each end every session issued
/// before. Epoch 0 gives the fingerprint of the hash alone, which sessions issued before
/// the count existed carry.
pub fn session_stamp(password_hash: &str, sessions_epoch: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = if sessions_epoch == 0 {
        Sha256::digest(password_hash.as_bytes())
    } else {
        Sha256::digest(format!("{password_hash}\n{sessions_epoch}").as_bytes())
    };
    hex::encode(&digest[..8])
}

/// A random secret for generated passwords and API tokens (244 bits).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// argon2 off the async threads, at most `threads` at once.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(threads: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("password pool closed: {e}"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| anyhow::anyhow!("password check failed: {e}"))
    }

    /// Checks `password` against `hash`; with no hash (unknown or disabled user) checks
    /// it against a dummy hash and answers false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (DUMMY_HASH.clone(), false),
        };
        self.run(move || verify(&password, &hash) && real).await
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.run(move || hash(&password)).await?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = super::hash("s3cret").unwrap();
        assert!(super::verify("s3cret", &h));
        assert!(!super::verify("s3cret ", &h));
        assert!(!super::verify("s3cret", "not-a-hash"));
    }

    #[tokio::test]
    async fn the_pool_checks_real_hashes_and_refuses_without_one() {
        let pool = super::Hasher::new(1);
        let h = pool.hash("correct horse").await.unwrap();
        assert!(pool.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!pool.verify("wrong", Some(&h)).await.unwrap());
        assert!(!pool.verify("correct horse", None).await.unwrap());
        assert_ne!(
            super::session_stamp(&h, 0),
            super::session_stamp(&pool.hash("x").await.unwrap(), 0)
        );
    }

    #[test]
    fn a_disabling_changes_the_stamp_and_epoch_zero_keeps_the_old_one() {
        use sha2::{Digest, Sha256};
        let h = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        // Sessions issued before the count existed carry the hash's fingerprint alone.
        assert_eq!(
            super::session_stamp(h, 0),
            hex::encode(&Sha256::digest(h.as_bytes())[..8])
        );
        assert_ne!(super::session_stamp(h, 0), super::session_stamp(h, 1));
        assert_ne!(super::session_stamp(h, 1), super::session_stamp(h, 2));
    }
}
