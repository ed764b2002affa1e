//! Migrations for both backends, embedded in the binary and applied at start and by
//! `switchboard migrate`.

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, StoreError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x5357_4244; // "SWBD"

/// Applies every pending migration; returns how many were applied.
pub fn run_pending(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let applied = match conn {
        // Taking the write lock up front (BEGIN IMMEDIATE) makes a second process wait for
        // the busy timeout instead of failing when its read lock cannot be upgraded.
        DbConnection::Sqlite(c) => {
            c.immediate_transaction(|c| c.run_pending_migrations(SQLITE).map(|v| v.len()))
        }
        DbConnection::Postgresql(c) => {
            // Several instances starting together on one database would otherwise race to
            // apply the same migration; the loser would fail on "relation already exists".
            // The lock is the session's, so it is released even if a migration fails.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = c.run_pending_migrations(POSTGRES).map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
        }
    };
    applied.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
}

/// Whether the schema lags behind this binary (readiness answers 503 until it does not).
pub fn pending(conn: &mut DbConnection) -> Result<bool, StoreError> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE),
        DbConnection::Postgresql(c) => c.has_pending_migration(POSTGRES),
    };
    pending.map_err(|e| StoreError::Internal(format!("cannot read migration state: {e}")))
}

/// Reverts every applied migration newer than `keep_through` (a version such as
/// `2026-12-02-000009`), newest first; returns the versions reverted. For rolling a database
/// back before a downgrade, and for tests that prove a data migration on an older schema.
pub fn revert_newer_than(
    conn: &mut DbConnection,
    keep_through: &str,
) -> Result<Vec<String>, StoreError> {
    // diesel's versions are the digits of the folder name (`20261202000009`).
    let digits = |v: &str| v.chars().filter(char::is_ascii_digit).collect::<String>();
    let keep_through = digits(keep_through);
    let mut reverted = Vec::new();
    loop {
        let applied = match conn {
            DbConnection::Sqlite(c) => c.applied_migrations(),
            DbConnection::Postgresql(c) => c.applied_migrations(),
        }
        .map_err(|e| StoreError::Internal(format!("cannot read migration state: {e}")))?;
        let Some(newest) = applied.iter().map(|v| digits(&v.to_string())).max() else {
            return Ok(reverted);
        };
        if newest <= keep_through {
            return Ok(reverted);
        }
        let version = match conn {
            DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE),
            DbConnection::Postgresql(c) => c.revert_last_migration(POSTGRES),
        }
        .map_err(|e| StoreError::Internal(format!("reverting a migration failed: {e}")))?;
        reverted.push(version.to_string());
    }
}
