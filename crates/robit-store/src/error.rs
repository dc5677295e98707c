//! Store errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url `{0}`: use sqlite://path or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite group-commit writer, which runs on its own driver.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite group-commit writer's thread could not be started.
    #[error("cannot start the sqlite writer: {0}")]
    Writer(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
    /// A group commit failed; every event in the batch was rolled back.
    #[error("database error in a batched commit: {0}")]
    Batch(String),
}
