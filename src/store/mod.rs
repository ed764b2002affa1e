//! Persistence through diesel on SQLite (embedded default) or PostgreSQL, one schema and one
//! set of models for both. Repositories take the tenant id on every tenant-owned query.
//! May import `domain` and `vault`.

pub mod audit;
pub mod channel_health;
pub mod channel_stats;
pub mod channels;
mod connection;
pub mod delivery;
pub mod dkim_keys;
pub mod domain_health;
pub mod domains;
mod error;
pub mod gmail_volume;
pub mod health;
pub mod kind_stats;
pub mod messages;
pub mod migrations;
pub mod notifications;
pub mod oauth;
pub mod operator;
pub mod pacing;
pub mod pauses;
pub mod processes;
pub mod quotas;
mod schema;
pub mod secrets;
pub mod sessions;
pub mod suppressions;
pub mod teams;
pub mod tenant_keys;
pub mod tenants;
mod time;
pub mod tokens;
pub mod users;
pub mod webhooks;

pub use connection::{Backend, DbConnection, write_transaction};
pub use error::StoreError;

use std::time::Duration;

use diesel::r2d2::Pool;

use crate::config::DatabaseUrl;
use connection::ConnectionManager;

/// A pool of connections to the configured database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager>,
    backend: Backend,
}

impl Store {
    /// Opens the database and checks that one connection can be made, so a wrong URL or a
    /// server that is down is reported at start with the driver's own error.
    pub fn open(database: &DatabaseUrl, pool_size: u32) -> Result<Self, StoreError> {
        let manager = ConnectionManager::new(database);
        let backend = manager.backend();
        // Fail fast with the driver's error instead of r2d2's generic time-out.
        manager.connect_once()?;
        let pool = Pool::builder()
            .max_size(pool_size)
            // No connections opened in the background: r2d2 keeps `min_idle` topped up from
            // worker threads, and a command-line process that exits while one of them is
            // inside libpq's connect can crash at exit. Connections open on demand instead.
            .min_idle(Some(0))
            // Short: a request waiting longer than this for a connection is better answered
            // 503 than left hanging.
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `work` with a pooled connection on the blocking thread pool: diesel is
    /// synchronous and must never run on an async worker thread.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
    }

    /// The same as `run`, for callers that are not on an async runtime (the command line).
    pub fn run_blocking<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        work(&mut conn)
    }
}
