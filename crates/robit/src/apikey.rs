//! Admin API keys: making one and checking a presented one (`robit apikey` is
//! `cmd/apikey.rs`).
//!
//! A key reads `robit_<id>_<secret>`, the secret being 256 random bits in hex. Because the
//! secret is random and that long, a slow password hash adds nothing: what is stored is
//! `sha256$<hex digest>` of the secret, compared in constant time, so a copy of the database
//! does not give access and checking a key costs microseconds on the runtime thread.
//!
//! Keys created before that were stored as argon2id PHC strings. They still verify, but
//! argon2 (19 MiB, ~30 ms) runs on a blocking thread behind a one-permit semaphore, and a
//! request finding it busy gets 429 instead of queueing: a flood of requests for an old key
//! id cannot stall the runtime (Slack acks share it). `robit apikey list` shows which keys
//! are old; revoke them and create new ones.
//!
//! The secret is printed once, at creation, and never logged.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use robit_store::Store;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

const PREFIX: &str = "robit_";
/// The scheme prefix of a key stored as a SHA-256 digest.
pub(crate) const SHA256: &str = "sha256$";

/// Creates a key named `name`; returns the full key to hand to its holder.
pub async fn create(store: &dyn Store, name: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let id = store.add_api_key(name, &digest(&secret)).await?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

fn digest(secret: &str) -> String {
    format!("{SHA256}{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// Why a presented key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Malformed, unknown id, wrong secret, or a store failure (logged): 401.
    Invalid,
    /// An old argon2id key while another argon2 check runs: 429, try again.
    Busy,
}

/// Checks presented keys. Cheap to clone; one per server.
#[derive(Clone)]
pub struct Verifier {
    store: Arc<dyn Store>,
    /// One argon2 check at a time for keys created before the switch to SHA-256.
    legacy: Arc<Semaphore>,
}

impl Verifier {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            legacy: Arc::new(Semaphore::new(1)),
        }
    }

    /// The id of the key `presented` when it is valid.
    pub async fn verify(&self, presented: &str) -> Result<i64, Rejected> {
        let (id, secret) = presented
            .strip_prefix(PREFIX)
            .and_then(|k| k.split_once('_'))
            .ok_or(Rejected::Invalid)?;
        let id: i64 = id.parse().map_err(|_| Rejected::Invalid)?;
        let row = match self.store.api_key(id).await {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %e, "reading an API key failed");
                return Err(Rejected::Invalid);
            }
        };
        let presented_digest = digest(secret);
        let Some(row) = row else {
            // Do the same work as for a known id, so timing says little about which exist.
            let _ = presented_digest.as_bytes().ct_eq(digest("").as_bytes());
            return Err(Rejected::Invalid);
        };
        if row.hash.starts_with(SHA256) {
            let same = presented_digest.as_bytes().ct_eq(row.hash.as_bytes());
            return if bool::from(same) {
                Ok(id)
            } else {
                Err(Rejected::Invalid)
            };
        }
        self.verify_argon2(id, secret, row.hash).await
    }

    async fn verify_argon2(&self, id: i64, secret: &str, hash: String) -> Result<i64, Rejected> {
        let Ok(_permit) = self.legacy.clone().try_acquire_owned() else {
            return Err(Rejected::Busy);
        };
        let secret = secret.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if ok {
            Ok(id)
        } else {
            Err(Rejected::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = robit_store::connect_sqlite(dir.path().join("k.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_created_key_verifies_and_tampering_does_not() {
        let (_dir, store) = store().await;
        let verifier = Verifier::new(store.clone());
        let key = create(store.as_ref(), "ops").await.unwrap();
        let id = verifier.verify(&key).await.expect("the key verifies");
        let row = store.api_key(id).await.unwrap().unwrap();
        assert!(row.hash.starts_with("sha256$"), "{}", row.hash);
        assert_eq!(row.hash.len(), SHA256.len() + 64);
        assert!(!row.hash.contains(key.rsplit('_').next().unwrap()));
        let mut tampered = key.clone();
        tampered.pop();
        tampered.push('x');
        assert_eq!(verifier.verify(&tampered).await, Err(Rejected::Invalid));
        assert_eq!(
            verifier.verify("robit_999_abc").await,
            Err(Rejected::Invalid)
        );
        assert_eq!(verifier.verify("not a key").await, Err(Rejected::Invalid));
        assert!(store.delete_api_key(id).await.unwrap());
        assert_eq!(verifier.verify(&key).await, Err(Rejected::Invalid));
        assert!(!store.delete_api_key(id).await.unwrap());
    }

    #[tokio::test]
    async fn old_argon2_keys_still_verify_one_at_a_time() {
        let (_dir, store) = store().await;
        let secret = "0123456789abcdef";
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .unwrap()
            .to_string();
        let id = store.add_api_key("old", &phc).await.unwrap();
        let verifier = Verifier::new(store.clone());
        let key = format!("{PREFIX}{id}_{secret}");
        assert_eq!(verifier.verify(&key).await, Ok(id));
        assert_eq!(
            verifier.verify(&format!("{key}0")).await,
            Err(Rejected::Invalid)
        );
        // While one argon2 check holds the permit, another is refused, not queued.
        let held = verifier.legacy.clone().try_acquire_owned().unwrap();
        assert_eq!(verifier.verify(&key).await, Err(Rejected::Busy));
        drop(held);
        assert_eq!(verifier.verify(&key).await, Ok(id));
    }
}
