//! Admin API keys: `robit apikey create`, and checking a presented key.
//!
//! A key reads `robit_<id>_<secret>`. Only an argon2id hash of the secret (PHC string, with
//! a random salt) is stored, so a copy of the database does not give access; the id picks
//! the one row to check, so a request costs one hash, not one per key. argon2's verify
//! compares digests in constant time. The secret is printed once, at creation, and never
//! logged.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use robit_store::Store;

const PREFIX: &str = "robit_";

/// Creates a key named `name`; returns the full key to hand to its holder.
pub async fn create(store: &dyn Store, name: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = hex(&bytes);
    let id = store.add_api_key(name, &hash(&secret)?).await?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

fn hash(secret: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the key failed: {e}"))?
        .to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of the key `presented` when it is a valid key; `None` otherwise (malformed,
/// unknown id, wrong secret, or a store failure, which is logged).
pub async fn verify(store: &dyn Store, presented: &str) -> Option<i64> {
    let (id, secret) = presented.strip_prefix(PREFIX)?.split_once('_')?;
    let id: i64 = id.parse().ok()?;
    let row = match store.api_key(id).await {
        Ok(row) => row?,
        Err(e) => {
            tracing::error!(error = %e, "reading an API key failed");
            return None;
        }
    };
    let parsed = PasswordHash::new(&row.hash).ok()?;
    Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .ok()
        .map(|()| id)
}

/// `robit apikey create NAME`.
pub async fn run_create(
    loaded: crate::config::Loaded,
    name: &str,
) -> anyhow::Result<std::process::ExitCode> {
    let store = crate::app::open_store(&loaded.config).await?;
    let key = create(store.as_ref(), name).await?;
    println!("{key}");
    eprintln!(
        "This is the only time the key is shown; robit keeps only its hash. Send it as \
         `Authorization: Bearer <key>` to /admin/v1/… (admin_api.enabled = true)."
    );
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_created_key_verifies_and_tampering_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = robit_store::connect_sqlite(dir.path().join("k.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let key = create(store.as_ref(), "ops").await.unwrap();
        let id = verify(store.as_ref(), &key)
            .await
            .expect("the key verifies");
        let row = store.api_key(id).await.unwrap().unwrap();
        assert!(row.hash.starts_with("$argon2id$"), "{}", row.hash);
        assert!(!row.hash.contains(key.rsplit('_').next().unwrap()));
        let mut tampered = key.clone();
        tampered.pop();
        tampered.push('x');
        assert_eq!(verify(store.as_ref(), &tampered).await, None);
        assert_eq!(verify(store.as_ref(), "robit_999_abc").await, None);
        assert_eq!(verify(store.as_ref(), "not a key").await, None);
    }
}
