//! The API's bearer token: kept in the key store (OS keyring or the opted-in encrypted
//! file) under [`API_TOKEN_ENTRY`], created once, replaced by [`rotate_token`], and
//! compared in constant time.
//!
//! A server whose token comes from the store ([`TokenSource::Stored`]) reads it again when
//! its copy is more than [`REREAD_AFTER`] old, so a rotation takes effect on a running server
//! within a second: the old token is refused, the new one accepted, without a restart.

use std::time::{Duration, Instant};

use baton_remote::{ApiKey, KeyStore, SecretsError};
use subtle::ConstantTimeEq;

/// The key store entry holding the token. It contains a `/`, which no remote engine's name
/// may, so it never collides with an engine's API key in the same store.
pub const API_TOKEN_ENTRY: &str = "baton-api/token";

/// How old the server's copy of a stored token may get before it is read again.
pub const REREAD_AFTER: Duration = Duration::from_secs(1);

/// How long a re-read may take before the server keeps answering with its last copy (a
/// keyring that hangs must not hold every request).
const REREAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors keeping the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key store could not be read or written.
    #[error("cannot keep the API token: {0}. Or give the server a token of your own in the BATON_API_TOKEN environment variable")]
    Store(SecretsError),
    /// The key store's blocking call did not finish.
    #[error("the key store call stopped unexpectedly ({0}); try again")]
    Interrupted(String),
}

impl From<SecretsError> for TokenError {
    fn from(e: SecretsError) -> Self {
        // Not a `source`: the message already holds it, and error chains would repeat it.
        TokenError::Store(e)
    }
}

/// A fresh random bearer token (128 random bits, hex).
pub fn new_token() -> String {
    format!("baton-{:032x}", rand::random::<u128>())
}

/// The stored token, created and stored first if there is none.
pub fn stored_token(store: &KeyStore) -> Result<ApiKey, TokenError> {
    if let Some(token) = store.get(API_TOKEN_ENTRY)? {
        if !token.expose().is_empty() {
            return Ok(token);
        }
    }
    rotate_token(store)
}

/// Replaces the stored token with a fresh one and returns it. Servers reading from the
/// same store refuse the old token within [`REREAD_AFTER`].
pub fn rotate_token(store: &KeyStore) -> Result<ApiKey, TokenError> {
    let token = ApiKey::new(new_token());
    store.set(API_TOKEN_ENTRY, &token)?;
    Ok(token)
}

/// Whether `given` equals `expected`, in time that does not depend on where they differ
/// (the length is not secret: every generated token has the same).
pub fn tokens_match(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Where a server's token comes from.
#[derive(Clone)]
pub enum TokenSource {
    /// One token for the server's life (`--token` or `BATON_API_TOKEN`).
    Fixed(ApiKey),
    /// The token in a key store, read again when the copy is older than [`REREAD_AFTER`].
    Stored(KeyStore),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(…)"),
            TokenSource::Stored(store) => f.debug_tuple("Stored").field(store).finish(),
        }
    }
}

impl From<String> for TokenSource {
    fn from(token: String) -> Self {
        TokenSource::Fixed(ApiKey::new(token))
    }
}

impl From<ApiKey> for TokenSource {
    fn from(token: ApiKey) -> Self {
        TokenSource::Fixed(token)
    }
}

/// The server's copy of a stored token.
struct Copy {
    token: Option<ApiKey>,
    read_at: Instant,
}

/// Checks presented tokens against the source.
pub(crate) struct TokenCheck {
    source: TokenSource,
    copy: tokio::sync::Mutex<Copy>,
}

impl TokenCheck {
    /// A check against `source`; a stored token is read now (and created if missing), so a
    /// key store that does not answer stops the server before it listens.
    pub(crate) async fn new(source: TokenSource) -> Result<Self, TokenError> {
        let token = match &source {
            TokenSource::Fixed(token) => token.clone(),
            TokenSource::Stored(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || stored_token(&store))
                    .await
                    .map_err(|e| TokenError::Interrupted(e.to_string()))??
            }
        };
        Ok(Self {
            source,
            copy: tokio::sync::Mutex::new(Copy {
                token: Some(token),
                read_at: Instant::now(),
            }),
        })
    }

    /// A fingerprint of the token `given` if it is the right one, else `None`. The
    /// fingerprint identifies the token (for per-client rate limits) without holding it.
    pub(crate) async fn check(&self, given: Option<&str>) -> Option<u64> {
        let expected = match &self.source {
            TokenSource::Fixed(token) => Some(token.clone()),
            TokenSource::Stored(store) => {
                let mut copy = self.copy.lock().await;
                if copy.read_at.elapsed() >= REREAD_AFTER {
                    let store = store.clone();
                    let read = tokio::task::spawn_blocking(move || store.get(API_TOKEN_ENTRY));
                    match tokio::time::timeout(REREAD_TIMEOUT, read).await {
                        Err(_) => {
                            tracing::warn!(
                                "the key store did not answer within {} s; the last API token read stays valid",
                                REREAD_TIMEOUT.as_secs()
                            );
                        }
                        Ok(Ok(Ok(token))) => {
                            if token.is_none() && copy.token.is_some() {
                                tracing::warn!(
                                    "the API token is gone from the key store: every request is refused until `baton serve --rotate-token` stores a new one"
                                );
                            }
                            copy.token = token;
                        }
                        Ok(Ok(Err(e))) => {
                            tracing::warn!(error = %e, "cannot read the API token again; the last one read stays valid");
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "reading the API token stopped unexpectedly");
                        }
                    }
                    copy.read_at = Instant::now();
                }
                copy.token.clone()
            }
        };
        let (given, expected) = (given?, expected?);
        tokens_match(given, expected.expose()).then(|| fingerprint(expected.expose()))
    }
}

/// A keyed hash of a token, for telling clients apart in memory only.
fn fingerprint(token: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        let token = new_token();
        assert!(tokens_match(&token, &token.clone()));
        assert!(!tokens_match("", &token));
        assert!(!tokens_match(&token[..token.len() - 1], &token));
        let mut last = token.clone().into_bytes();
        let n = last.len() - 1;
        last[n] = if last[n] == b'0' { b'1' } else { b'0' };
        assert!(!tokens_match(std::str::from_utf8(&last).unwrap(), &token));
        let mut first = token.clone().into_bytes();
        first[0] = b'B';
        assert!(!tokens_match(std::str::from_utf8(&first).unwrap(), &token));
        assert!(!tokens_match(&format!("{token}x"), &token));
    }

    #[test]
    fn new_tokens_differ_and_have_one_length() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert!(a.starts_with("baton-"));
    }

    #[tokio::test]
    async fn a_stored_token_is_created_once_and_rotation_is_seen_by_a_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::encrypted_file(dir.path().join("keys.bin"), Some("pw".into()));
        let first = stored_token(&store).unwrap();
        assert_eq!(stored_token(&store).unwrap(), first, "created once");
        let check = TokenCheck::new(TokenSource::Stored(store.clone()))
            .await
            .unwrap();
        assert!(check.check(Some(first.expose())).await.is_some());
        assert!(check.check(None).await.is_none());
        assert!(check.check(Some("baton-wrong")).await.is_none());

        let second = rotate_token(&store).unwrap();
        assert_ne!(second, first);
        // The copy is re-read once it is REREAD_AFTER old: poll until the rotation shows.
        let deadline = Instant::now() + Duration::from_secs(10);
        while check.check(Some(first.expose())).await.is_some() {
            assert!(Instant::now() < deadline, "the old token still works");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(check.check(Some(second.expose())).await.is_some());
    }
}
