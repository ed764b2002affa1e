//! One connection type for both backends, chosen from the URL scheme and opened directly,
//! so that connection errors are the driver's real errors (diesel's `MultiConnection`
//! establish tries every backend and throws their errors away).

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};

use super::StoreError;
use crate::config::DatabaseUrl;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Per-connection SQLite settings: WAL so readers never block the writer, a busy timeout
/// so concurrent writers wait instead of failing, foreign keys enforced (off by default in
/// SQLite), and `synchronous = NORMAL`, which in WAL mode is durable across a process crash
/// and costs one fsync per checkpoint rather than per commit.
/// The busy timeout comes first: switching to WAL takes a lock that another process may hold.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

pub struct ConnectionManager {
    backend: Backend,
    target: String,
}

impl ConnectionManager {
    pub fn new(database: &DatabaseUrl) -> Self {
        let backend = if database.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        Self {
            backend,
            target: database.connection_string(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn connect_once(&self) -> Result<(), StoreError> {
        self.open().map(drop)
    }

    fn open(&self) -> Result<DbConnection, StoreError> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target)
                .map(DbConnection::Postgresql)
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "PostgreSQL: {}",
                        redact(&e.to_string(), &self.target)
                    ))
                }),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target).map_err(|e| {
                    StoreError::Unavailable(format!("SQLite file {}: {e}", self.target))
                })?;
                conn.batch_execute(SQLITE_PRAGMAS)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// libpq error texts can quote the connection string; never let it reach a log.
fn redact(message: &str, target: &str) -> String {
    message.replace(target, "(database URL)")
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        conn.ping().map_err(StoreError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}
