//! Choosing a backend from a database URL.

use crate::support::{drop_schema, postgres_store, postgres_url, unique_schema};
use robit_store::{connect, PoolOptions, StoreError};

#[tokio::test]
async fn sqlite_url_opens_and_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = connect(
        &format!("sqlite://{}", path.display()),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(path.exists());
    assert!(store
        .migration_status()
        .await
        .unwrap()
        .server_version
        .starts_with("SQLite"));
}

#[tokio::test]
async fn postgres_url_opens_postgres() {
    let url = postgres_url();
    // Fails with instructions when the server is down, like every postgres test.
    let schema = unique_schema();
    postgres_store(&url, &schema).await.close().await;
    drop_schema(&url, &schema).await;

    let store = connect(&url, PoolOptions::default()).await.unwrap();
    store.ping().await.unwrap();
    assert!(store
        .migration_status()
        .await
        .unwrap()
        .server_version
        .starts_with("PostgreSQL"));
    let alias = url.replacen("postgres://", "postgresql://", 1);
    connect(&alias, PoolOptions::default())
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn other_urls_are_refused_without_leaking_passwords() {
    let Err(err) = connect("mysql://robit:hunter2@db/robit", PoolOptions::default()).await else {
        panic!("mysql is not supported");
    };
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn sqlite_memory_url_works_for_throwaway_stores() {
    let store = connect("sqlite::memory:", PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let key = crate::support::key(None);
    let conversation = store.conversation(&key).await.unwrap();
    store
        .accept(crate::support::event("Ev1", &key, "hi"))
        .await
        .unwrap();
    assert_eq!(store.history(conversation.id, 10).await.unwrap().len(), 1);
}
