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

/// Runs the same diesel code on the concrete connection of either backend, for statements
/// the `MultiConnection` backend cannot express: multi-row INSERT and `ON CONFLICT`.
macro_rules! each_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Postgresql($c) => $body,
            $crate::store::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use each_backend;

/// Runs `work` in a transaction that may write. On SQLite it begins with `BEGIN IMMEDIATE`:
/// a deferred transaction that reads first and writes later fails at once with
/// `SQLITE_BUSY` when another connection wrote in between (WAL snapshots cannot be
/// upgraded), which the delivery workers make likely; taking the write lock up front makes
/// it wait its turn instead. Nested `transaction` calls inside become savepoints as usual.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(work);
    };
    let nested = AnsiTransactionManager::transaction_manager_status_mut(sqlite)
        .transaction_depth()?
        .is_some();
    if nested {
        // Inside a transaction already (which holds the lock): a savepoint.
        return conn.transaction(work);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match work(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The error that ended the work matters more than a failed rollback.
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
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

/// Per-connection SQLite settings: a busy timeout so concurrent writers wait instead of
/// failing, foreign keys enforced (off by default in SQLite), and `synchronous = NORMAL`,
/// which in WAL mode is durable across a process crash and costs one fsync per checkpoint
/// rather than per commit. `secure_delete` overwrites deleted content, so a deleted
/// tenant's wrapped data key does not linger in free pages of the file (crypto-shredding).
/// WAL (readers never block the writer) is set by `enable_wal`.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;";

/// Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
/// locked" at once (without its busy handler) when several processes open a fresh file
/// together; the mode persists in the file, so a few short retries settle it.
fn enable_wal(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let mut attempts = 0;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL") {
            Ok(()) => return Ok(()),
            Err(e) if attempts < 50 && e.to_string().contains("locked") => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20 + 10 * attempts));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

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
                enable_wal(&mut conn)?;
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
