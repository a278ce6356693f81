//! A borrowed view of a [`super::Database`] for one operation: the connection, its statements,
//! the authorizer state and the turn's transaction state, with the helpers every API needs.
#![forbid(unsafe_code)]

use rusqlite::{Connection, Params, Row};

use super::Error;
use super::statements::{Internal, Statements};
use crate::authorizer::{AuthState, Mode};

/// Where the current turn stands.
#[derive(Debug, Default)]
pub(crate) struct TurnState {
    /// Whether BEGIN has run in this turn (it runs lazily, before the first write).
    pub(crate) transaction_open: bool,
    /// One frame per open explicit transaction (savepoint), innermost last.
    pub(crate) frames: Vec<Frame>,
    /// Set when SQLite rolled back the whole transaction by itself; holds the error's message.
    /// Every operation fails until the engine calls `rollback_turn`.
    pub(crate) aborted: Option<String>,
}

/// An open explicit transaction.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    /// The closure asked for a rollback (`txn.rollback()`).
    pub(crate) rollback_requested: bool,
}

/// Everything one storage operation works with.
pub(crate) struct Session<'s, 'c> {
    pub(crate) conn: &'c Connection,
    pub(crate) statements: &'s mut Statements<'c>,
    pub(crate) auth: &'s AuthState,
    pub(crate) turn: &'s mut TurnState,
}

impl<'c> Session<'_, 'c> {
    /// Fails if SQLite aborted the turn's transaction earlier.
    pub(crate) fn check_usable(&self) -> Result<(), Error> {
        match &self.turn.aborted {
            Some(message) => Err(Error::TransactionAborted(message.clone())),
            None => Ok(()),
        }
    }

    /// Turns a failure into the error to report. If SQLite rolled back the whole transaction
    /// (it does so for disk full, I/O errors, `OR ROLLBACK` and `RAISE(ROLLBACK)`), the turn is
    /// gone: remember that, and report that the object must be reset.
    pub(crate) fn note_failure(&mut self, error: Error) -> Error {
        if self.turn.transaction_open && self.conn.is_autocommit() {
            let message = error.to_string();
            self.turn.transaction_open = false;
            self.turn.aborted = Some(message.clone());
            return Error::TransactionAborted(message);
        }
        error
    }

    /// Runs an internal statement that returns no rows; returns the number of rows changed.
    pub(crate) fn execute(&mut self, which: Internal, params: impl Params) -> Result<usize, Error> {
        let result = {
            let _trusted = self.auth.enter(Mode::Trusted);
            self.statements
                .internal(self.conn, which)
                .and_then(|statement| statement.execute(params))
        };
        result.map_err(|error| self.note_failure(Error::from(error)))
    }

    /// Runs an internal query and calls `each` for every row until it returns `false`.
    pub(crate) fn query(
        &mut self,
        which: Internal,
        params: impl Params,
        mut each: impl FnMut(&Row<'_>) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let result = (|| {
            let _trusted = self.auth.enter(Mode::Trusted);
            let statement = self.statements.internal(self.conn, which)?;
            let mut rows = statement.query(params)?;
            while let Some(row) = rows.next()? {
                if !each(row)? {
                    break;
                }
            }
            Ok(())
        })();
        result.map_err(|error| self.note_failure(error))
    }

    /// Runs an internal query that returns at most one row of interest.
    pub(crate) fn query_one<T>(
        &mut self,
        which: Internal,
        params: impl Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, Error> {
        let mut read = Some(read);
        let mut found = None;
        self.query(which, params, |row| {
            if let Some(read) = read.take() {
                found = Some(read(row)?);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// Opens the turn's transaction if it is not open yet. Every write calls this first.
    pub(crate) fn ensure_transaction(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        if !self.turn.transaction_open {
            self.execute(Internal::Begin, [])?;
            self.turn.transaction_open = true;
        }
        Ok(())
    }

    /// Opens a savepoint that makes one multi-step operation atomic within the turn.
    pub(crate) fn begin_guard_savepoint(&mut self) -> Result<(), Error> {
        self.ensure_transaction()?;
        self.execute(Internal::SavepointBegin, [])?;
        Ok(())
    }

    /// Closes the savepoint from [`Session::begin_guard_savepoint`], keeping or undoing its work.
    pub(crate) fn end_guard_savepoint(&mut self, keep: bool) -> Result<(), Error> {
        self.check_usable()?;
        if !keep {
            self.execute(Internal::SavepointRollback, [])?;
        }
        self.execute(Internal::SavepointRelease, [])?;
        Ok(())
    }

    /// Runs `operation` inside a guard savepoint: all of it happens, or none of it.
    pub(crate) fn atomically<T>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.begin_guard_savepoint()?;
        let result = operation(self);
        match result {
            Ok(value) => {
                self.end_guard_savepoint(true)?;
                Ok(value)
            }
            Err(error) => {
                if self.turn.aborted.is_none() {
                    self.end_guard_savepoint(false)?;
                }
                Err(error)
            }
        }
    }

    /// The names in the schema that start with `_cf_`, in any case.
    pub(crate) fn reserved_names(&mut self) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        self.query(Internal::ReservedNames, [], |row| {
            names.push(row.get::<_, String>(0)?);
            Ok(true)
        })?;
        Ok(names)
    }
}
