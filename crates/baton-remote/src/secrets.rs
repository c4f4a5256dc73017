//! API keys of remote engines: in the OS keyring (Secret Service on Linux), or, where none
//! exists and the user opts in, in a file encrypted with a passphrase (Argon2id +
//! ChaCha20-Poly1305). Keys never go into SQLite, the config file or logs.

use crate::engine::ApiKey;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::ChaCha20Poly1305;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

const SERVICE: &str = "baton";
const MAGIC: &[u8; 8] = b"BATONSK1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// Errors of the key store. Each says what to do.
#[derive(Debug, Error)]
pub enum SecretsError {
    /// No OS keyring answers.
    #[error("no OS keyring is reachable ({0}). Start a Secret Service (GNOME Keyring, KDE Wallet, KeePassXC), or opt into the encrypted key file: `store = \"file\"` under [secrets] in the config, and a passphrase in BATON_SECRETS_PASSPHRASE")]
    NoKeyring(String),
    /// The encrypted file store needs a passphrase.
    #[error("the encrypted key file needs a passphrase: set BATON_SECRETS_PASSPHRASE")]
    NoPassphrase,
    /// The encrypted file could not be decrypted.
    #[error("could not decrypt {0}: the passphrase (BATON_SECRETS_PASSPHRASE) is wrong or the file is damaged; nothing was changed")]
    WrongPassphrase(PathBuf),
    /// Reading or writing the key file failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where keys are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStoreKind {
    /// The OS keyring.
    Keyring,
    /// A passphrase-encrypted file in Baton's data directory.
    EncryptedFile,
}

/// Stores API keys by engine name.
#[derive(Clone)]
pub struct KeyStore {
    kind: KeyStoreKind,
    file: PathBuf,
    passphrase: Option<String>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("kind", &self.kind)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Keys in the OS keyring.
    pub fn keyring() -> Self {
        Self {
            kind: KeyStoreKind::Keyring,
            file: PathBuf::new(),
            passphrase: None,
        }
    }

    /// Keys in an encrypted file at `path`, unlocked with `passphrase`.
    pub fn encrypted_file(path: impl Into<PathBuf>, passphrase: Option<String>) -> Self {
        Self {
            kind: KeyStoreKind::EncryptedFile,
            file: path.into(),
            passphrase: passphrase.filter(|p| !p.is_empty()),
        }
    }

    /// Which store this is.
    pub fn kind(&self) -> KeyStoreKind {
        self.kind
    }

    /// Saves the key for `engine`, replacing an earlier one.
    pub fn set(&self, engine: &str, key: &ApiKey) -> Result<(), SecretsError> {
        match self.kind {
            KeyStoreKind::Keyring => entry(engine)?
                .set_password(key.expose())
                .map_err(|e| SecretsError::NoKeyring(e.to_string())),
            KeyStoreKind::EncryptedFile => {
                let mut keys = self.read_file()?;
                keys.insert(engine.to_owned(), key.expose().to_owned());
                self.write_file(&keys)
            }
        }
    }

    /// The key for `engine`, if one is stored.
    pub fn get(&self, engine: &str) -> Result<Option<ApiKey>, SecretsError> {
        match self.kind {
            KeyStoreKind::Keyring => match entry(engine)?.get_password() {
                Ok(key) => Ok(Some(ApiKey::new(key))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(SecretsError::NoKeyring(e.to_string())),
            },
            KeyStoreKind::EncryptedFile => {
                Ok(self.read_file()?.get(engine).cloned().map(ApiKey::new))
            }
        }
    }

    /// Removes the key for `engine` (no error when there is none).
    pub fn delete(&self, engine: &str) -> Result<(), SecretsError> {
        match self.kind {
            KeyStoreKind::Keyring => match entry(engine)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(SecretsError::NoKeyring(e.to_string())),
            },
            KeyStoreKind::EncryptedFile => {
                let mut keys = self.read_file()?;
                if keys.remove(engine).is_some() {
                    self.write_file(&keys)?;
                }
                Ok(())
            }
        }
    }

    fn cipher(&self, salt: &[u8]) -> Result<ChaCha20Poly1305, SecretsError> {
        let passphrase = self.passphrase.as_ref().ok_or(SecretsError::NoPassphrase)?;
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(passphrase.as_bytes(), salt, &mut key)
            .map_err(|_| SecretsError::WrongPassphrase(self.file.clone()))?;
        Ok(ChaCha20Poly1305::new(&key.into()))
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, SecretsError> {
        let bytes = match std::fs::read(&self.file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Check the passphrase exists before the first write, not after.
                self.passphrase.as_ref().ok_or(SecretsError::NoPassphrase)?;
                return Ok(BTreeMap::new());
            }
            Err(source) => {
                return Err(SecretsError::Io {
                    action: "read",
                    path: self.file.clone(),
                    source,
                })
            }
        };
        let damaged = || SecretsError::WrongPassphrase(self.file.clone());
        if bytes.len() < MAGIC.len() + SALT_LEN + NONCE_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(damaged());
        }
        let salt = &bytes[MAGIC.len()..MAGIC.len() + SALT_LEN];
        let nonce = &bytes[MAGIC.len() + SALT_LEN..MAGIC.len() + SALT_LEN + NONCE_LEN];
        let sealed = &bytes[MAGIC.len() + SALT_LEN + NONCE_LEN..];
        let plain = self
            .cipher(salt)?
            .decrypt(nonce.into(), sealed)
            .map_err(|_| damaged())?;
        serde_json::from_slice(&plain).map_err(|_| damaged())
    }

    fn write_file(&self, keys: &BTreeMap<String, String>) -> Result<(), SecretsError> {
        let salt: [u8; SALT_LEN] = rand::random();
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let plain = serde_json::to_vec(keys).expect("a string map serialises");
        let sealed = self
            .cipher(&salt)?
            .encrypt(&nonce, plain.as_slice())
            .expect("encryption of a small buffer cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + SALT_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        write_private(&self.file, &out)
    }
}

fn entry(engine: &str) -> Result<keyring::Entry, SecretsError> {
    keyring::Entry::new(SERVICE, &format!("engine:{engine}"))
        .map_err(|e| SecretsError::NoKeyring(e.to_string()))
}

/// Writes `bytes` to `path` readable only by the user, atomically (temp file + rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |action, source| SecretsError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("write", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encrypted_file_round_trips_and_refuses_a_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.bin");
        let store = KeyStore::encrypted_file(&path, Some("correct horse".into()));
        assert_eq!(store.get("or").unwrap(), None);
        store.set("or", &ApiKey::new("sk-one")).unwrap();
        store.set("other", &ApiKey::new("sk-two")).unwrap();
        assert_eq!(store.get("or").unwrap(), Some(ApiKey::new("sk-one")));
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"sk-one"), "stored in clear");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let wrong = KeyStore::encrypted_file(&path, Some("wrong".into()));
        let err = wrong.get("or").unwrap_err().to_string();
        assert!(
            err.contains("passphrase") && err.contains("nothing was changed"),
            "{err}"
        );
        assert!(wrong.set("or", &ApiKey::new("x")).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            raw,
            "a wrong passphrase changed the file"
        );

        store.delete("or").unwrap();
        assert_eq!(store.get("or").unwrap(), None);
        assert_eq!(store.get("other").unwrap(), Some(ApiKey::new("sk-two")));
        let none = KeyStore::encrypted_file(dir.path().join("new.bin"), None);
        assert!(matches!(none.get("x"), Err(SecretsError::NoPassphrase)));
    }

    #[test]
    fn a_damaged_file_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.bin");
        std::fs::write(&path, b"not a key file").unwrap();
        let store = KeyStore::encrypted_file(&path, Some("pw".into()));
        assert!(matches!(
            store.get("x"),
            Err(SecretsError::WrongPassphrase(_))
        ));
        assert!(store.set("x", &ApiKey::new("k")).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key file");
    }
}
