//! Errors of the PostgreSQL backend and their mapping to [`ColdError`].
//!
//! Inside backend calls every failure becomes a [`ColdError`]:
//! SQLSTATE `57014` (`query_canceled`, which is what `statement_timeout`
//! raises) and any failure after the call's deadline passed become
//! [`ColdError::Timeout`] naming the operation, exactly as in the other
//! backends; undecodable stored bytes become [`ColdError::Codec`]; everything
//! else is [`ColdError::Backend`] wrapping a [`PgError`].

use coldchain::{ColdError, Deadline, codec::CodecError};
use tokio_postgres::error::SqlState;

/// A failure of the PostgreSQL backend outside the [`coldchain`] traits
/// (opening, migrating, measuring), or the source of a
/// [`ColdError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// No connection could be taken from the pool (server down, bad
    /// credentials, pool timeout).
    #[error("cannot get a PostgreSQL connection: {0}")]
    Connect(String),
    /// A statement failed (the message is the server's, with its
    /// SQLSTATE, or the driver's with its cause).
    #[error("PostgreSQL: {}", describe(.0))]
    Db(tokio_postgres::Error),
    /// The database holds a schema written by a newer coldchain.
    #[error(
        "the database holds coldchain schema version {found}, but this build knows versions up \
         to {supported}: it was written by a newer coldchain; upgrade coldchain (refusing to open \
         it rather than misread it)"
    )]
    NewerSchema {
        /// The version found in `coldchain.schema_version`.
        found: i32,
        /// The newest version this build can apply and read.
        supported: i32,
    },
    /// A read-only open found no coldchain schema, or one that must be
    /// migrated first.
    #[error(
        "the database holds coldchain schema version {found} (0: none), and this build reads \
         version {supported}; a read-only open changes nothing: open it once for writing (for \
         example `coldchain import`) to create or migrate the schema"
    )]
    NeedsMigration {
        /// The version found (0 when there is no coldchain schema).
        found: i32,
        /// The version this build reads.
        supported: i32,
    },
    /// The database holds blocks written before schema version 3 whose
    /// ommers or withdrawals were dropped: they cannot be migrated.
    #[error(
        "the database holds blocks written by coldchain schema version {found}, which kept no \
         ommer (uncle) headers and no withdrawals; {blocks} of them had some (the first is block \
         {first}), which are not in the database: re-import the chain into a new database (or \
         `DROP SCHEMA coldchain CASCADE` and import again). Nothing was changed"
    )]
    LostBlockData {
        /// The schema version the database holds.
        found: i32,
        /// How many stored blocks had ommers or withdrawals.
        blocks: u64,
        /// The lowest such block.
        first: u64,
    },
    /// A value does not fit the column it must be stored in.
    #[error("{0}")]
    OutOfRange(String),
    /// The stored data is inconsistent (for example a receipt whose logs are
    /// missing).
    #[error("inconsistent stored data: {0}")]
    Corrupt(String),
    /// A `disk_bytes`, `analyze` or `explain` call took longer than allowed.
    #[error("{0} timed out")]
    Timeout(&'static str),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// A driver error in one clause: the server's message and SQLSTATE (the
/// driver's own text is only "db error"), or the driver's text and causes.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            out.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            out.push_str(&format!("; {hint}"));
        }
        return out;
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl PgError {
    /// The SQLSTATE of a database error, if any.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            Self::Db(e) => e.code(),
            _ => None,
        }
    }
}

impl From<PgError> for ColdError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Timeout(op) => ColdError::Timeout { op },
            other => ColdError::backend(other),
        }
    }
}

/// Maps a driver error met while serving `deadline`'s operation.
pub(crate) fn db_err(e: tokio_postgres::Error, deadline: &Deadline) -> ColdError {
    if e.code() == Some(&SqlState::QUERY_CANCELED) || deadline.is_expired() {
        return ColdError::Timeout { op: deadline.op() };
    }
    if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
        // A replica, or a role whose sessions are read-only.
        return ColdError::ReadOnly {
            store: "the PostgreSQL database (a read-only session)".into(),
        };
    }
    ColdError::backend(PgError::Db(e))
}

/// Stored data that does not decode or does not add up.
pub(crate) fn corrupt(msg: impl Into<String>) -> ColdError {
    ColdError::Codec(CodecError(msg.into()))
}
