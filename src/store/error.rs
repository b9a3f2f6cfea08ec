//! What a store operation can fail with, sorted so that callers can act on it without
//! knowing the database driver.

use sqlx::error::DatabaseError;

use crate::error::Error;

/// The unique index on `users.email`.
pub const USERS_EMAIL_KEY: &str = "users_email_key";
/// The unique index on `users.name_key` (names are unique regardless of case).
pub const USERS_NAME_KEY: &str = "users_name_key";

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement that needs a row found none (the row went away meanwhile).
    #[error("no such row")]
    NotFound,
    /// A write hit a unique constraint, named as in the PostgreSQL schema on every backend
    /// (e.g. [`USERS_NAME_KEY`]), so that a service can say which value is taken.
    #[error("unique constraint {0} violated")]
    Unique(String),
    /// No connection could be had: none freed up in time, the database refused or dropped
    /// it, or the store is closing. Worth a retry later.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The database did something the store relies on it not doing (e.g. an append that
    /// took other seqs than the locked row said): the transaction is abandoned.
    #[error("store invariant broken: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl StoreError {
    /// Sorts a driver error. `unique_constraint` names the constraint of a unique violation
    /// the way the backend reports it; when it cannot, the database's message stands in.
    pub(super) fn from_sqlx(
        err: sqlx::Error,
        unique_constraint: fn(&dyn DatabaseError) -> Option<String>,
    ) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Unique(unique_constraint(&*db).unwrap_or_else(|| db.message().to_owned()))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            err => Self::Other(err),
        }
    }

    /// Whether this is a violation of the unique constraint `name`.
    pub fn is_unique(&self, name: &str) -> bool {
        matches!(self, Self::Unique(constraint) if constraint == name)
    }
}

/// How a store failure reaches a client: the store knows what each failure means, the
/// error envelope does not need to know the store.
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::not_found("Resource"),
            // No connection freed up in time, or the database is unreachable: overload or
            // an outage, not a fault of this request; the client may retry.
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "database unavailable");
                Error::Unavailable(
                    "The service is temporarily unavailable; try again shortly".into(),
                )
            }
            // A unique violation that the service did not map to a conflict is a bug.
            StoreError::Unique(_) | StoreError::Inconsistent(_) | StoreError::Other(_) => {
                Error::Internal(err.into())
            }
        }
    }
}
