//! The storage API's error type, with Cloudflare's messages, and SQLite errors formatted as workerd does.
#![forbid(unsafe_code)]

use rusqlite::ffi;

use crate::authorizer::TRANSACTION_MESSAGE;

/// Everything the Durable Object storage API can refuse or fail with.
///
/// `Display` gives the message a user sees; where Cloudflare has one, it is Cloudflare's wording.
/// [`Error::js_class`] says which JavaScript error class the guest layer should throw.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite refused or failed, formatted as workerd does:
    /// `<message>[ at offset <n>]: SQLITE_<CODE>[ (extended: SQLITE_<CODE>_<DETAIL>)]`.
    #[error("{message}")]
    Sqlite {
        /// The formatted message.
        message: String,
        /// SQLite's extended result code (the primary code is its low byte).
        extended_code: i32,
    },
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT or RELEASE in user SQL.
    #[error("{}", TRANSACTION_MESSAGE)]
    TransactionStatement,
    /// `exec` got no statement at all (empty, only comments, or a comment after the last `;`).
    #[error("SQL code did not contain a statement.")]
    NoStatement,
    /// Bindings were given for a statement that is not the last.
    #[error(
        "When executing multiple SQL statements in a single call, only the last statement can have parameters."
    )]
    ParametersBeforeLastStatement,
    /// The number of bindings differs from the statement's parameters.
    #[error("Wrong number of parameter bindings for SQL query.")]
    WrongParameterCount,
    /// A result set bigger than [`crate::sql::MAX_RESULT_BYTES`].
    #[error(
        "SQL query result set is too large to fit in memory (over {limit_bytes} bytes). Add a LIMIT clause or select fewer columns."
    )]
    ResultTooLarge {
        /// The bound that was crossed.
        limit_bytes: usize,
    },
    /// A KV key over [`crate::kv::MAX_KEY_BYTES`].
    #[error("Keys cannot be larger than {max} bytes. A key of size {size} was provided.")]
    KeyTooLarge {
        /// The limit.
        max: usize,
        /// The key's size in bytes.
        size: usize,
    },
    /// A KV key and value over [`crate::kv::MAX_ENTRY_BYTES`] together.
    #[error("Values cannot be larger than {max} bytes. A value of size {size} was provided.")]
    ValueTooLarge {
        /// The largest value allowed next to this key.
        max: usize,
        /// The value's size in bytes.
        size: usize,
    },
    /// More than [`crate::kv::MAX_KEYS_PER_CALL`] keys or pairs in one call.
    #[error("Maximum number of key value pairs is {max}. {count} pairs were provided.")]
    TooManyKeys {
        /// The limit.
        max: usize,
        /// How many were given.
        count: usize,
    },
    /// `list()` with both `start` and `startAfter`.
    #[error("list() cannot be called with both start and startAfter values.")]
    StartAndStartAfter,
    /// `list()` with `limit: 0`.
    #[error("List limit must be positive.")]
    ListLimitNotPositive,
    /// A `list()` without a limit whose result would exceed [`crate::kv::MAX_LIST_BYTES`].
    #[error(
        "list() result is too large to fit in memory (over {limit_bytes} bytes). Pass a limit and list in pages."
    )]
    ListTooLarge {
        /// The bound that was crossed.
        limit_bytes: usize,
    },
    /// `deleteAll()` inside an explicit transaction (Cloudflare's wording).
    #[error("Cannot call deleteAll() within a transaction")]
    DeleteAllInTransaction,
    /// A turn was committed or rolled back from inside an explicit transaction: an engine bug.
    #[error("cannot end a turn while an explicit transaction is open")]
    TurnEndedInsideTransaction,
    /// COMMIT found violated (deferred) constraints; the turn was rolled back. The object must be
    /// reset: its last committed state is intact.
    #[error(
        "Durable Object was reset and rolled back to its last known good state because the application left the database in a state where constraints were violated: {0}"
    )]
    ConstraintsViolated(String),
    /// SQLite rolled back the whole transaction by itself (disk full, I/O error, `OR ROLLBACK`,
    /// `RAISE(ROLLBACK)`). Every write of the turn is gone, so the object must be reset; until
    /// the engine calls `rollback_turn`, every operation fails with this error.
    #[error(
        "Durable Object was reset and rolled back to its last known good state because its transaction was aborted: {0}"
    )]
    TransactionAborted(String),
}

/// The JavaScript error class a guest layer should throw for an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsClass {
    /// `Error`.
    Error,
    /// `TypeError`.
    TypeError,
    /// `RangeError`.
    RangeError,
}

impl Error {
    /// The JavaScript class workerd throws for this error.
    pub fn js_class(&self) -> JsClass {
        match self {
            Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. } | Error::TooManyKeys { .. } => {
                JsClass::RangeError
            }
            Error::StartAndStartAfter | Error::ListLimitNotPositive => JsClass::TypeError,
            _ => JsClass::Error,
        }
    }

    /// Whether the object must be reset: the current turn's writes are gone.
    pub fn requires_reset(&self) -> bool {
        matches!(
            self,
            Error::ConstraintsViolated(_) | Error::TransactionAborted(_)
        )
    }

    /// SQLite's primary result code, if SQLite produced this error.
    pub fn sqlite_code(&self) -> Option<i32> {
        match self {
            Error::Sqlite { extended_code, .. } => Some(extended_code & 0xff),
            _ => None,
        }
    }

    /// Builds an SQLite error with workerd's formatting from a message, an optional offset into
    /// the statement, and the extended result code.
    pub(crate) fn sqlite(message: &str, offset: Option<i32>, extended_code: i32) -> Error {
        let mut formatted = message.to_owned();
        if let Some(offset) = offset {
            formatted.push_str(&format!(" at offset {offset}"));
        }
        let primary = extended_code & 0xff;
        formatted.push_str(": ");
        formatted.push_str(code_name(primary).unwrap_or("SQLITE_UNKNOWN"));
        if extended_code != primary
            && let Some(extended) = code_name(extended_code)
        {
            formatted.push_str(&format!(" (extended: {extended})"));
        }
        Error::Sqlite {
            message: formatted,
            extended_code,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        match error {
            rusqlite::Error::SqliteFailure(failure, message) => {
                let text = message.unwrap_or_else(|| default_message(failure.extended_code));
                Error::sqlite(&text, None, failure.extended_code)
            }
            rusqlite::Error::SqlInputError {
                error, msg, offset, ..
            } => Error::sqlite(&msg, Some(offset), error.extended_code),
            rusqlite::Error::InvalidParameterCount(..) => Error::WrongParameterCount,
            rusqlite::Error::MultipleStatement => Error::sqlite(
                "A prepared SQL statement must contain only one statement.",
                None,
                ffi::SQLITE_ERROR,
            ),
            rusqlite::Error::Empty => Error::NoStatement,
            other => Error::sqlite(&other.to_string(), None, ffi::SQLITE_ERROR),
        }
    }
}

fn default_message(code: i32) -> String {
    ffi::code_to_str(code).to_owned()
}

/// SQLite's name for a (primary or extended) result code, as workerd prints it.
pub(crate) fn code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_EMPTY => "SQLITE_EMPTY",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
        ffi::SQLITE_AUTH => "SQLITE_AUTH",
        ffi::SQLITE_FORMAT => "SQLITE_FORMAT",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        ffi::SQLITE_NOTICE => "SQLITE_NOTICE",
        ffi::SQLITE_WARNING => "SQLITE_WARNING",
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_CONSTRAINT_COMMITHOOK => "SQLITE_CONSTRAINT_COMMITHOOK",
        ffi::SQLITE_CONSTRAINT_DATATYPE => "SQLITE_CONSTRAINT_DATATYPE",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "SQLITE_CONSTRAINT_FOREIGNKEY",
        ffi::SQLITE_CONSTRAINT_FUNCTION => "SQLITE_CONSTRAINT_FUNCTION",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_PINNED => "SQLITE_CONSTRAINT_PINNED",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_ROWID => "SQLITE_CONSTRAINT_ROWID",
        ffi::SQLITE_CONSTRAINT_TRIGGER => "SQLITE_CONSTRAINT_TRIGGER",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_VTAB => "SQLITE_CONSTRAINT_VTAB",
        ffi::SQLITE_IOERR_READ => "SQLITE_IOERR_READ",
        ffi::SQLITE_IOERR_SHORT_READ => "SQLITE_IOERR_SHORT_READ",
        ffi::SQLITE_IOERR_WRITE => "SQLITE_IOERR_WRITE",
        ffi::SQLITE_IOERR_FSYNC => "SQLITE_IOERR_FSYNC",
        ffi::SQLITE_IOERR_TRUNCATE => "SQLITE_IOERR_TRUNCATE",
        ffi::SQLITE_IOERR_NOMEM => "SQLITE_IOERR_NOMEM",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        ffi::SQLITE_ERROR_MISSING_COLLSEQ => "SQLITE_ERROR_MISSING_COLLSEQ",
        ffi::SQLITE_ERROR_RETRY => "SQLITE_ERROR_RETRY",
        ffi::SQLITE_ERROR_SNAPSHOT => "SQLITE_ERROR_SNAPSHOT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_workerd() {
        assert_eq!(
            Error::sqlite("no such table: foo", None, ffi::SQLITE_ERROR).to_string(),
            "no such table: foo: SQLITE_ERROR"
        );
        assert_eq!(
            Error::sqlite("near \"bunk\": syntax error", Some(9), ffi::SQLITE_ERROR).to_string(),
            "near \"bunk\": syntax error at offset 9: SQLITE_ERROR"
        );
        assert_eq!(
            Error::sqlite(
                "FOREIGN KEY constraint failed",
                None,
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            )
            .to_string(),
            "FOREIGN KEY constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)"
        );
    }
}
