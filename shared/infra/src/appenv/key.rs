//! The key that seals app secrets at rest (`NR_SECRETS_KEY`): ChaCha20-Poly1305 with a
//! random 96-bit nonce per value, the app and the variable's name as associated data (a
//! ciphertext moved to another app or name does not open).
//!
//! The setting may list several keys, comma-separated: the first seals, any opens. That
//! is how a key is rotated (docs/operations.md).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};

/// Length of one key, bytes.
pub const KEY_LEN: usize = 32;

/// One or more secrets keys; the first seals.
pub struct SecretsKey {
    keys: Vec<LessSafeKey>,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsKey({} key(s), redacted)", self.keys.len())
    }
}

/// Why a key setting is refused. Never contains the key.
#[derive(Debug, thiserror::Error)]
#[error("NR_SECRETS_KEY: key {index} is not 32 bytes written as 64 hex digits or base64 (make one with `openssl rand -base64 32`)")]
pub struct BadKey {
    /// 1-based position in the comma-separated list.
    pub index: usize,
}

/// A sealed value: the nonce and the ciphertext with its tag.
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn decode_one(text: &str) -> Option<[u8; KEY_LEN]> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .ok()?
    };
    bytes.try_into().ok()
}

fn aad(app: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(app.len() + name.len() + 1);
    aad.extend_from_slice(app.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl SecretsKey {
    /// Parses the setting: keys separated by commas, each 64 hex digits or base64.
    pub fn parse(setting: &str) -> Result<SecretsKey, BadKey> {
        let mut keys = Vec::new();
        for (i, part) in setting.split(',').enumerate() {
            let raw = decode_one(part).ok_or(BadKey { index: i + 1 })?;
            let key =
                UnboundKey::new(&CHACHA20_POLY1305, &raw).map_err(|_| BadKey { index: i + 1 })?;
            keys.push(LessSafeKey::new(key));
        }
        Ok(SecretsKey { keys })
    }

    /// The key of an optional setting: none when unset or blank (secrets disabled),
    /// an error naming the setting when malformed.
    pub fn from_setting(
        setting: Option<&str>,
    ) -> Result<Option<std::sync::Arc<SecretsKey>>, BadKey> {
        setting
            .filter(|t| !t.trim().is_empty())
            .map(SecretsKey::parse)
            .transpose()
            .map(|k| k.map(std::sync::Arc::new))
    }

    /// A new random key, as the base64 text the setting takes.
    pub fn generate_text() -> anyhow::Result<String> {
        let mut raw = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(raw))
    }

    /// Seals `plaintext` as the value of `name` for `app`, with the first key.
    pub fn seal(&self, app: &str, name: &str, plaintext: &[u8]) -> anyhow::Result<Sealed> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no secrets key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(app, name)),
            &mut in_out,
        )
        .map_err(|_| anyhow::anyhow!("cannot seal the secret"))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext: in_out,
        })
    }

    /// Opens a sealed value with whichever key sealed it; also says whether that was
    /// the first key (false: the value should be sealed again with the current key).
    pub fn open(
        &self,
        app: &str,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Option<(Vec<u8>, bool)> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().enumerate().find_map(|(i, key)| {
            let mut in_out = ciphertext.to_vec();
            let plain = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad(app, name)),
                    &mut in_out,
                )
                .ok()?;
            Some((plain.to_vec(), i == 0))
        })
    }
}

/// Reads the key kept in `path`, or makes one and writes it there readable by the owner
/// only (0600). For the all-in-one platform when `NR_SECRETS_KEY` is not set.
pub fn load_or_create_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the secrets key file is readable by others; chmod 600 it");
            }
            let text = text.trim().to_owned();
            SecretsKey::parse(&text).with_context(|| format!("in {}", path.display()))?;
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let text = SecretsKey::generate_text()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(format!("{text}\n").as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(text)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_base64_keys_are_accepted_and_other_lengths_refused() {
        let key = SecretsKey::parse(HEX).unwrap();
        let shown = format!("{key:?}");
        assert!(
            shown.contains("redacted") && !shown.contains("0001"),
            "{shown}"
        );
        let b64 = SecretsKey::generate_text().unwrap();
        assert!(SecretsKey::parse(&b64).is_ok());
        assert!(SecretsKey::parse(&format!("{b64},{HEX}")).is_ok());
        let err = SecretsKey::parse("c2hvcnQ=").unwrap_err();
        assert_eq!(err.index, 1);
        assert!(!err.to_string().contains("c2hvcnQ"), "{err}");
        assert_eq!(
            SecretsKey::parse(&format!("{HEX},nope")).unwrap_err().index,
            2
        );
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_app_and_name_and_key() {
        let key = SecretsKey::parse(HEX).unwrap();
        let sealed = key.seal("shop", "API_KEY", b"hunter2").unwrap();
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        let (plain, current) = key
            .open("shop", "API_KEY", &sealed.nonce, &sealed.ciphertext)
            .unwrap();
        assert_eq!(plain, b"hunter2");
        assert!(current);
        assert!(key
            .open("other", "API_KEY", &sealed.nonce, &sealed.ciphertext)
            .is_none());
        assert!(key
            .open("shop", "OTHER", &sealed.nonce, &sealed.ciphertext)
            .is_none());
        let other = SecretsKey::parse(&SecretsKey::generate_text().unwrap()).unwrap();
        assert!(other
            .open("shop", "API_KEY", &sealed.nonce, &sealed.ciphertext)
            .is_none());
        // Rotation: the new key first, the old one still opens, and says so.
        let rotated =
            SecretsKey::parse(&format!("{},{HEX}", SecretsKey::generate_text().unwrap())).unwrap();
        let (plain, current) = rotated
            .open("shop", "API_KEY", &sealed.nonce, &sealed.ciphertext)
            .unwrap();
        assert_eq!(plain, b"hunter2");
        assert!(!current);
    }

    #[test]
    fn the_key_file_is_made_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("secrets.key");
        let first = load_or_create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_file(&path).unwrap(), first);
        assert!(SecretsKey::parse(&first).is_ok());
    }
}
