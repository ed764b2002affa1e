use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong below the repositories, in terms callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row in this tenant (also: it exists, but in another tenant).
    #[error("not found")]
    NotFound,
    /// A rule about the stored data would be broken (a uniqueness rule, the last admin).
    /// `code` is the stable machine-readable name, `detail` says it for a person.
    #[error("conflict {code}: {detail}")]
    Conflict { code: &'static str, detail: String },
    /// A row the request refers to (a team, a user) does not exist in this tenant.
    #[error("{0} not found in this tenant")]
    MissingReference(&'static str),
    /// The database cannot be reached or no connection is free.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value does not parse: a bug or a hand-edited row.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A key or sealed value does not open (wrong or missing master key, tampering).
    #[error("{0}")]
    Vault(#[from] crate::vault::VaultError),
    #[error("database error: {0}")]
    Database(DieselError),
    #[error("{0}")]
    Internal(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to a named conflict; leaves other errors alone.
    pub fn on_unique(e: DieselError, code: &'static str, detail: impl FnOnce() -> String) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict {
                    code,
                    detail: detail(),
                }
            }
            other => other.into(),
        }
    }

    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}
