//! The schema migrations, compiled into the binary so that `robit` migrates its database
//! from whatever directory it is started in.
//!
//! The SQL lives in `migrations/sqlite/` and `migrations/postgres/` at the workspace root,
//! named as `sqlx migrate add` names them, so sqlx-cli and this crate agree on versions and
//! checksums. This module only lists those files; it must not hold SQL of its own.

use crate::model::MigrationStatus;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;
use std::sync::LazyLock;

/// One embedded migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "rate buckets",
        include_str!("../../../migrations/sqlite/0002_rate_buckets.sql"),
    ),
    (
        3,
        "access",
        include_str!("../../../migrations/sqlite/0003_access.sql"),
    ),
    (
        4,
        "turns",
        include_str!("../../../migrations/sqlite/0004_turns.sql"),
    ),
    (
        5,
        "history index",
        include_str!("../../../migrations/sqlite/0005_history_index.sql"),
    ),
    (
        6,
        "answer actions",
        include_str!("../../../migrations/sqlite/0006_answer_actions.sql"),
    ),
    (
        7,
        "edits",
        include_str!("../../../migrations/sqlite/0007_edits.sql"),
    ),
    (
        8,
        "lean indexes",
        include_str!("../../../migrations/sqlite/0008_lean_indexes.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "rate buckets",
        include_str!("../../../migrations/postgres/0002_rate_buckets.sql"),
    ),
    (
        3,
        "access",
        include_str!("../../../migrations/postgres/0003_access.sql"),
    ),
    (
        4,
        "turns",
        include_str!("../../../migrations/postgres/0004_turns.sql"),
    ),
    (
        5,
        "history index",
        include_str!("../../../migrations/postgres/0005_history_index.sql"),
    ),
    (
        6,
        "answer actions",
        include_str!("../../../migrations/postgres/0006_answer_actions.sql"),
    ),
    (
        7,
        "edits",
        include_str!("../../../migrations/postgres/0007_edits.sql"),
    ),
    (
        8,
        "lean indexes",
        include_str!("../../../migrations/postgres/0008_lean_indexes.sql"),
    ),
];

pub(crate) static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));
pub(crate) static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));

fn migrator(embedded: &[Embedded]) -> Migrator {
    Migrator::with_migrations(
        embedded
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Builds the status from the versions a database reports as applied.
pub(crate) fn status(
    migrator: &Migrator,
    applied: Vec<i64>,
    server_version: String,
) -> MigrationStatus {
    let pending = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    MigrationStatus {
        applied,
        pending,
        server_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A migration file added to the folder but not to the list above would silently never
    /// run; this catches it.
    #[test]
    fn every_migration_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for (dialect, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let mut files: Vec<String> = std::fs::read_dir(root.join(dialect))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = embedded
                .iter()
                .map(|(v, d, _)| format!("{v:04}_{}.sql", d.replace(' ', "_")))
                .collect();
            assert_eq!(
                files, listed,
                "migrations/{dialect} and migrations.rs disagree"
            );
        }
    }

    #[test]
    fn dialects_have_the_same_versions() {
        let versions = |e: &[Embedded]| e.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }
}
