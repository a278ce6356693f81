//! The SQL API (`sql.exec`): values, cursors, splitting a query into statements, the bounded
//! cache of the object's own prepared statements, and running them under the authorizer.
//!
//! # What `exec` does (workerd's rules)
//! A query may hold several statements. Every statement but the last runs first, once, with no
//! bindings; its rows are discarded (workerd steps it once). The bindings and the returned
//! [`Cursor`] belong to the last statement. A query with no statement at all, or with only a
//! comment after the last `;`, is [`Error::NoStatement`]. Unlike workerd, Burrow checks all of
//! this before running anything, so such a query has no effect at all.
//!
//! # Why statements are split here
//! rusqlite does not expose SQLite's "tail" pointer, so [`split_statements`] finds the statement
//! boundaries with the same state machine as `sqlite3_complete()` (which knows that the `;`
//! inside `CREATE TRIGGER … BEGIN … END` does not end the statement). Each piece is then prepared
//! on its own; if the split were ever wrong, the piece fails to prepare, and nothing is
//! authorized that should not be.
//!
//! # Statement cache
//! Single-statement queries keep their prepared statement in [`UserStatements`], a least recently
//! used cache of at most [`USER_CACHE_CAPACITY`] statements and [`USER_CACHE_MAX_SQL_BYTES`] of
//! SQL text. It only ever holds statements prepared in [`Mode::User`]: Burrow's own statements
//! live in a separate cache (`database::statements`), so user SQL that happens to equal an
//! internal statement's text is prepared, and refused, on its own. A cached statement that SQLite
//! re-prepares after a schema change is authorized again, in user mode.
//!
//! # Row counters
//! workerd counts rows with a patched SQLite. Stock SQLite has no such counter, so Burrow
//! approximates: `rows_written` is the number of rows inserted, updated or deleted (SQLite's
//! change counter, triggers included; index entries are not counted, unlike Cloudflare), and
//! `rows_read` is the larger of the rows returned and the rows a full table scan stepped over.
//! Index lookups, `count(*)` and sorting are not counted.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Statement, StatementStatus, ffi};

use crate::authorizer::Mode;
use crate::database::Error;
use crate::database::session::Session;

/// The longest query `exec` accepts, in bytes (Cloudflare: 100 KB per statement).
pub const MAX_STATEMENT_BYTES: usize = 100_000;
/// The most bytes a materialized [`Cursor`] may hold (values plus 16 bytes per value).
pub const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;
/// How many single-statement queries keep their prepared statement.
pub const USER_CACHE_CAPACITY: usize = 100;
/// How much SQL text the statement cache may hold in total (workerd: 1 MiB).
pub const USER_CACHE_MAX_SQL_BYTES: usize = 1024 * 1024;

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text. Text that SQLite holds as invalid UTF-8 is read with replacement characters.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    pub(crate) fn from_sqlite(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(integer) => Value::Integer(integer),
            ValueRef::Real(real) => Value::Real(real),
            ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        }
    }

    /// Bytes this value accounts for against [`MAX_RESULT_BYTES`].
    fn result_bytes(&self) -> usize {
        16 + match self {
            Value::Text(text) => text.len(),
            Value::Blob(bytes) => bytes.len(),
            Value::Null | Value::Integer(_) | Value::Real(_) => 0,
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput::Borrowed;
        Ok(Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(integer) => ValueRef::Integer(*integer),
            Value::Real(real) => ValueRef::Real(*real),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

/// The result of `exec`: the last statement's columns and rows, materialized.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cursor {
    /// Column names in order; duplicates are kept (`SELECT * FROM a, b`).
    pub column_names: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Rows read by the last statement (an approximation: see the module docs).
    pub rows_read: u64,
    /// Rows written by the last statement (an approximation: see the module docs).
    pub rows_written: u64,
}

impl Cursor {
    /// The only row, or Cloudflare's error for none or several.
    pub fn one(&self) -> Result<&[Value], OneRowError> {
        match self.rows.as_slice() {
            [row] => Ok(row),
            [] => Err(OneRowError::None),
            _ => Err(OneRowError::Several),
        }
    }
}

/// Why [`Cursor::one`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OneRowError {
    /// The query returned no rows.
    #[error("Expected exactly one result from SQL query, but got no results.")]
    None,
    /// The query returned more than one row.
    #[error("Expected exactly one result from SQL query, but got multiple results.")]
    Several,
}

/// A prepared user statement and what the authorizer learned while preparing it.
pub(crate) struct UserStatement<'c> {
    statement: Statement<'c>,
    alters_schema: bool,
    /// Writes although `sqlite3_stmt_readonly` says it does not (`PRAGMA optimize`).
    writes_indirectly: bool,
    last_used: u64,
}

/// The least recently used cache of the object's own single-statement queries.
#[derive(Default)]
pub(crate) struct UserStatements<'c> {
    entries: HashMap<Box<str>, UserStatement<'c>>,
    sql_bytes: usize,
    clock: u64,
}

impl<'c> UserStatements<'c> {
    fn take(&mut self, sql: &str) -> Option<UserStatement<'c>> {
        let entry = self.entries.remove(sql)?;
        self.sql_bytes -= sql.len();
        Some(entry)
    }

    fn put(&mut self, sql: &str, mut entry: UserStatement<'c>) {
        if sql.len() > USER_CACHE_MAX_SQL_BYTES {
            return;
        }
        while self.entries.len() >= USER_CACHE_CAPACITY
            || self.sql_bytes + sql.len() > USER_CACHE_MAX_SQL_BYTES
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
            self.sql_bytes -= oldest.len();
        }
        self.clock += 1;
        entry.last_used = self.clock;
        self.sql_bytes += sql.len();
        self.entries.insert(sql.into(), entry);
    }

    /// Drops every cached statement (after `deleteAll`, whose tables they named).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.sql_bytes = 0;
    }

    /// How many statements are cached.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Runs `sql` with `params` as the object's own SQL. See the module docs.
pub(crate) fn exec(
    session: &mut Session<'_, '_>,
    sql: &str,
    params: &[Value],
) -> Result<Cursor, Error> {
    session.check_usable()?;
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(Error::sqlite(
            "statement too long",
            None,
            ffi::SQLITE_TOOBIG,
        ));
    }
    let auth = session.auth;
    let _user = auth.enter(Mode::User);

    if let Some(mut cached) = session.statements.user.take(sql) {
        let result = run_last(session, &mut cached, params);
        session.statements.user.put(sql, cached);
        return result;
    }

    let pieces = split_statements(sql);
    if pieces.is_empty() || pieces.iter().any(|piece| !piece.has_tokens) {
        return Err(Error::NoStatement);
    }
    let (last, earlier) = pieces.split_last().ok_or(Error::NoStatement)?;
    for piece in earlier {
        let mut statement = prepare(session, piece.text)?;
        if statement.statement.parameter_count() > 0 {
            return Err(Error::ParametersBeforeLastStatement);
        }
        run(session, &mut statement, RowLimit::FirstStepOnly)?;
    }
    let mut statement = prepare(session, last.text)?;
    let result = run_last(session, &mut statement, params);
    if earlier.is_empty() {
        session.statements.user.put(sql, statement);
    }
    result
}

/// Prepares one user statement, turning an authorizer refusal into the right message.
fn prepare<'c>(session: &mut Session<'_, 'c>, text: &str) -> Result<UserStatement<'c>, Error> {
    session.auth.clear_flags();
    let prepared = session.conn.prepare(text);
    let alters_schema = session.auth.take_altered();
    let writes_indirectly = session.auth.take_writes_indirectly();
    let transaction_denied = session.auth.take_transaction_denied();
    match prepared {
        Ok(statement) => Ok(UserStatement {
            statement,
            alters_schema,
            writes_indirectly,
            last_used: 0,
        }),
        Err(error) => {
            let is_auth = error
                .sqlite_error()
                .map(|failure| failure.extended_code & 0xff)
                == Some(ffi::SQLITE_AUTH);
            if is_auth && transaction_denied {
                Err(Error::TransactionStatement)
            } else {
                Err(Error::from(error))
            }
        }
    }
}

fn run_last(
    session: &mut Session<'_, '_>,
    statement: &mut UserStatement<'_>,
    params: &[Value],
) -> Result<Cursor, Error> {
    if params.len() != statement.statement.parameter_count() {
        return Err(Error::WrongParameterCount);
    }
    let bound = params
        .iter()
        .enumerate()
        .try_for_each(|(index, value)| statement.statement.raw_bind_parameter(index + 1, value));
    let result = match bound {
        Ok(()) => run(session, statement, RowLimit::All),
        Err(error) => Err(Error::from(error)),
    };
    // A cached statement must not keep up to 2 MB per binding alive until its next use.
    statement.statement.clear_bindings();
    result
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RowLimit {
    /// A statement before the last: step once, as workerd does, and drop what it returns.
    FirstStepOnly,
    /// The last statement: collect every row, up to [`MAX_RESULT_BYTES`].
    All,
}

/// Runs a prepared user statement: opens the turn's transaction first if it writes, and guards
/// an ALTER TABLE against renaming anything into the reserved `_cf_` namespace.
fn run(
    session: &mut Session<'_, '_>,
    statement: &mut UserStatement<'_>,
    limit: RowLimit,
) -> Result<Cursor, Error> {
    if statement.writes_indirectly || !statement.statement.readonly() {
        session.ensure_transaction()?;
    }
    if !statement.alters_schema {
        return step(session, &mut statement.statement, limit);
    }
    let before = session.reserved_names()?;
    session.begin_guard_savepoint()?;
    let result = step(session, &mut statement.statement, limit).and_then(|cursor| {
        let after = session.reserved_names()?;
        if after.iter().any(|name| !before.contains(name)) {
            Err(Error::sqlite("not authorized", None, ffi::SQLITE_AUTH))
        } else {
            Ok(cursor)
        }
    });
    session.end_guard_savepoint(result.is_ok())?;
    result
}

fn step(
    session: &mut Session<'_, '_>,
    statement: &mut Statement<'_>,
    limit: RowLimit,
) -> Result<Cursor, Error> {
    statement.reset_status(StatementStatus::FullscanStep);
    let changes_before = session.conn.total_changes();
    let mut rows = Vec::new();
    let mut result_bytes = 0usize;
    let outcome = (|| -> Result<(), Error> {
        let mut cursor = statement.raw_query();
        while let Some(row) = cursor.next().map_err(Error::from)? {
            if limit == RowLimit::FirstStepOnly {
                break;
            }
            let column_count = row.as_ref().column_count();
            let mut values = Vec::with_capacity(column_count);
            for index in 0..column_count {
                let value = Value::from_sqlite(row.get_ref(index).map_err(Error::from)?);
                result_bytes += value.result_bytes();
                values.push(value);
            }
            if result_bytes > MAX_RESULT_BYTES {
                return Err(Error::ResultTooLarge {
                    limit_bytes: MAX_RESULT_BYTES,
                });
            }
            rows.push(values);
        }
        Ok(())
    })();
    if let Err(error) = outcome {
        return Err(session.note_failure(error));
    }
    // Read the names only now: stepping re-prepares a statement whose tables changed (a cached
    // `SELECT *` after `ALTER TABLE … ADD COLUMN`), and the names change with it.
    let column_names = statement
        .column_names()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let rows_written = session.conn.total_changes().saturating_sub(changes_before);
    let scanned = u64::try_from(statement.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
    let scanned = if scanned > 0 { scanned + 1 } else { 0 };
    let rows_read = scanned.max(rows.len() as u64);
    Ok(Cursor {
        column_names,
        rows,
        rows_read,
        rows_written,
    })
}

/// One statement of a query, as [`split_statements`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The statement's text, from its first non-whitespace byte through its `;` (if any).
    pub text: &'a str,
    /// Whether it holds anything but comments. A piece without tokens is only ever the last.
    pub has_tokens: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Semicolon,
    Space,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// The states of `sqlite3_complete()`'s recognizer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Nothing but whitespace so far.
    Invalid,
    /// Right after a `;` that ended a statement.
    Start,
    /// Inside an ordinary statement.
    Normal,
    /// After a leading EXPLAIN.
    Explain,
    /// After CREATE (maybe TEMP): a trigger may follow.
    Create,
    /// Inside a trigger body, where `;` does not end the statement.
    Trigger,
    /// After a `;` inside a trigger body.
    TriggerSemicolon,
    /// After END following such a `;`: the next `;` ends the CREATE TRIGGER.
    TriggerEnd,
}

impl State {
    fn next(self, token: Token) -> State {
        use State::*;
        use Token as T;
        match (self, token) {
            (Trigger, T::Semicolon) | (TriggerSemicolon, T::Semicolon) => TriggerSemicolon,
            (Trigger, _) => Trigger,
            (TriggerSemicolon, T::Space) => TriggerSemicolon,
            (TriggerSemicolon, T::End) => TriggerEnd,
            (TriggerSemicolon, _) => Trigger,
            (TriggerEnd, T::Semicolon) => Start,
            (TriggerEnd, T::Space) => TriggerEnd,
            (TriggerEnd, _) => Trigger,
            (_, T::Semicolon) => Start,
            (Invalid | Start | Normal | Explain | Create, T::Space) => self,
            (Invalid | Start, T::Explain) => Explain,
            (Invalid | Start | Explain, T::Create) => Create,
            // EXPLAIN QUERY PLAN CREATE TRIGGER …: words after EXPLAIN keep waiting for CREATE.
            (Explain, T::Other) => Explain,
            (Explain, T::Temp | T::Trigger | T::End | T::Explain) => Normal,
            (Create, T::Temp) => Create,
            (Create, T::Trigger) => Trigger,
            (Create, _) => Normal,
            (Invalid | Start | Normal, _) => Normal,
        }
    }
}

/// Splits a query into statements. Stray `;`s between statements are skipped; a trailing piece
/// that holds only whitespace is dropped, one with comments is kept with `has_tokens: false`.
pub fn split_statements(sql: &str) -> Vec<Piece<'_>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut state = State::Invalid;
    let mut piece_start = 0;
    let mut has_tokens = false;
    let mut position = 0;
    while position < bytes.len() {
        let (token, length) = next_token(&bytes[position..]);
        let previous = state;
        state = state.next(token);
        position += length;
        match token {
            Token::Semicolon if matches!(previous, State::Invalid | State::Start) => {
                // An empty statement: skip it rather than hand SQLite a lone `;`.
                piece_start = position;
            }
            Token::Semicolon if state == State::Start => {
                pieces.push(make_piece(&sql[piece_start..position], true));
                piece_start = position;
                has_tokens = false;
            }
            Token::Space | Token::Semicolon => {}
            _ => has_tokens = true,
        }
    }
    let rest = &sql[piece_start..];
    if has_tokens || !trim_space(rest).is_empty() {
        pieces.push(make_piece(rest, has_tokens));
    }
    pieces
}

fn make_piece(text: &str, has_tokens: bool) -> Piece<'_> {
    Piece {
        text: trim_space(text),
        has_tokens,
    }
}

/// Skips the whitespace workerd skips between statements (SQLite's offsets count from there).
fn trim_space(text: &str) -> &str {
    text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// The token at the start of `bytes` and its length. Comments count as whitespace.
fn next_token(bytes: &[u8]) -> (Token, usize) {
    let end_of = |from: usize, found: Option<usize>| found.map_or(bytes.len(), |at| from + at);
    match bytes {
        [b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c', ..] => (Token::Space, 1),
        [b';', ..] => (Token::Semicolon, 1),
        [b'-', b'-', rest @ ..] => {
            let newline = rest.iter().position(|&byte| byte == b'\n').map(|at| at + 1);
            (Token::Space, end_of(2, newline))
        }
        [b'/', b'*', rest @ ..] => {
            let close = rest
                .windows(2)
                .position(|pair| pair == b"*/")
                .map(|at| at + 2);
            (Token::Space, end_of(2, close))
        }
        [b'[', rest @ ..] => {
            let close = rest.iter().position(|&byte| byte == b']').map(|at| at + 1);
            (Token::Other, end_of(1, close))
        }
        [quote @ (b'\'' | b'"' | b'`'), ..] => {
            // A doubled quote is an escaped quote, so scanning to the next quote and going on
            // from there handles it: the second quote opens a new string, as SQLite sees it.
            let close = bytes[1..]
                .iter()
                .position(|byte| byte == quote)
                .map(|at| at + 1);
            (Token::Other, end_of(1, close))
        }
        [first, ..] if is_identifier_byte(*first) => {
            let length = bytes
                .iter()
                .position(|&byte| !is_identifier_byte(byte))
                .unwrap_or(bytes.len());
            let word = &bytes[..length];
            let token = if word.eq_ignore_ascii_case(b"create") {
                Token::Create
            } else if word.eq_ignore_ascii_case(b"temp") || word.eq_ignore_ascii_case(b"temporary")
            {
                Token::Temp
            } else if word.eq_ignore_ascii_case(b"trigger") {
                Token::Trigger
            } else if word.eq_ignore_ascii_case(b"explain") {
                Token::Explain
            } else if word.eq_ignore_ascii_case(b"end") {
                Token::End
            } else {
                Token::Other
            };
            (token, length)
        }
        _ => (Token::Other, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(&str, bool)> {
        split_statements(sql)
            .into_iter()
            .map(|piece| (piece.text, piece.has_tokens))
            .collect()
    }

    #[test]
    fn splits_plain_statements() {
        assert_eq!(
            texts("SELECT 1; SELECT 2"),
            [("SELECT 1;", true), ("SELECT 2", true)]
        );
        assert_eq!(texts("SELECT 1;\n\t "), [("SELECT 1;", true)]);
        assert_eq!(texts(""), []);
        assert_eq!(texts(";;"), []);
        assert_eq!(
            texts("SELECT 1;;SELECT 2;"),
            [("SELECT 1;", true), ("SELECT 2;", true)]
        );
    }

    #[test]
    fn keeps_trailing_comments_as_empty_pieces() {
        assert_eq!(
            texts("SELECT 1; -- trailing"),
            [("SELECT 1;", true), ("-- trailing", false)]
        );
        assert_eq!(texts("-- only\n/* c */"), [("-- only\n/* c */", false)]);
        assert_eq!(texts("-- c\nSELECT 1"), [("-- c\nSELECT 1", true)]);
    }

    #[test]
    fn quotes_and_comments_hide_semicolons() {
        assert_eq!(
            texts("SELECT ';', \"a;\", `b;`, [c;] -- ;\n"),
            [("SELECT ';', \"a;\", `b;`, [c;] -- ;\n", true)]
        );
        assert_eq!(
            texts("SELECT 'it''s;'; SELECT 2"),
            [("SELECT 'it''s;';", true), ("SELECT 2", true)]
        );
        assert_eq!(
            texts("SELECT 1 /* ; */; SELECT 2"),
            [("SELECT 1 /* ; */;", true), ("SELECT 2", true)]
        );
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES(1); \
                       UPDATE b SET x = CASE WHEN 1 THEN 2 END; END;";
        let sql = format!("{trigger} SELECT 1");
        assert_eq!(texts(&sql), [(trigger, true), ("SELECT 1", true)]);
        let temp = "create temp trigger t after delete on a begin select 1; end;";
        assert_eq!(texts(temp), [(temp, true)]);
        assert_eq!(
            texts("EXPLAIN CREATE TRIGGER x AFTER INSERT ON a BEGIN SELECT 1; END; SELECT 2").len(),
            2
        );
    }

    #[test]
    fn keywords_inside_identifiers_do_not_count() {
        assert_eq!(
            texts("SELECT created, trigger_x FROM ends; SELECT 2").len(),
            2
        );
    }
}
