//! `robit apikey create|list|revoke`: admin API keys from the command line. The keys
//! themselves (format, digest, checking) are `apikey.rs`.

/// `robit apikey create NAME`.
pub async fn create(
    loaded: crate::config::Loaded,
    name: &str,
) -> anyhow::Result<std::process::ExitCode> {
    let store = crate::app::open_store(&loaded.config).await?;
    let key = crate::apikey::create(store.as_ref(), name).await?;
    println!("{key}");
    eprintln!(
        "This is the only time the key is shown; robit keeps only its SHA-256 digest. Send it \
         as `Authorization: Bearer <key>` to /admin/v1/… (admin_api.enabled = true)."
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// `robit apikey list`: id, name, creation time and how each key is checked; never a secret.
pub async fn list(loaded: crate::config::Loaded) -> anyhow::Result<std::process::ExitCode> {
    let store = crate::app::open_store(&loaded.config).await?;
    let keys = store.api_keys().await?;
    println!(
        "{:>6}  {:<24}  {:<20}  check",
        "id", "name", "created (UTC)"
    );
    for k in &keys {
        let scheme = if k.hash.starts_with(crate::apikey::SHA256) {
            "sha256"
        } else {
            "argon2id (old: revoke and re-create)"
        };
        println!(
            "{:>6}  {:<24}  {:<20}  {scheme}",
            k.id,
            k.name,
            super::audit::utc(k.created_at)
        );
    }
    if keys.is_empty() {
        println!("(no keys; create one with `robit apikey create NAME`)");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `robit apikey revoke ID`: the key stops working at once, on every replica (each request
/// reads its row).
pub async fn revoke(
    loaded: crate::config::Loaded,
    id: i64,
) -> anyhow::Result<std::process::ExitCode> {
    let store = crate::app::open_store(&loaded.config).await?;
    let name = store.api_key(id).await?.map(|k| k.name);
    if !store.delete_api_key(id).await? {
        eprintln!("no API key with id {id} (see `robit apikey list`)");
        return Ok(std::process::ExitCode::FAILURE);
    }
    store
        .record_audit(robit_store::NewAuditEntry {
            platform: "cli".into(),
            workspace: "-".into(),
            channel: "-".into(),
            actor: "cli".into(),
            action: "apikey.revoke".into(),
            detail: format!("key {id} ({})", name.unwrap_or_default()),
        })
        .await?;
    println!("revoked API key {id}");
    Ok(std::process::ExitCode::SUCCESS)
}
