//! Migrations for both backends, embedded in the binary and applied at start and by
//! `switchboard migrate`.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, StoreError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Applies every pending migration; returns how many were applied.
pub fn run_pending(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(|v| v.len()),
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES).map(|v| v.len()),
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
