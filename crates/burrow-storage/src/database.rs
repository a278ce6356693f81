//! One Durable Object's database: the KV and SQL APIs, the alarm slot, turns and transactions,
//! over one SQLite connection that the engine opens and hands over.
//!
//! # Turns and transactions
//! The engine marks turn boundaries; all storage operations between two boundaries commit as one
//! atomic unit, which is how Cloudflare coalesces writes made with no `await` between them.
//! - The turn's transaction opens lazily, with BEGIN, right before its first write. Reads before
//!   that run in autocommit mode and see the same data. Starting late also lets
//!   `PRAGMA foreign_keys`, which SQLite ignores inside a transaction, work as in workerd.
//! - [`Database::commit_turn`] runs COMMIT. If deferred constraints (`PRAGMA defer_foreign_keys`)
//!   are violated, it rolls back and returns [`Error::ConstraintsViolated`] with Cloudflare's
//!   message: the database is back at its last good state and the object must be reset.
//! - [`Database::transaction`] is `storage.transaction()` / `transactionSync()`: a savepoint inside
//!   the turn's transaction, released when the closure succeeds and rolled back when it fails or
//!   asked for it ([`Database::rollback_transaction`]). It nests. Every storage operation inside
//!   it, SQL included, belongs to it.
//! - If SQLite rolls back the whole transaction by itself (disk full, I/O error, `OR ROLLBACK`),
//!   every operation fails with [`Error::TransactionAborted`] until the engine ends the turn.
//!
//! # Trust
//! Every statement runs under the authorizer ([`crate::authorizer`]). Burrow's own statements run
//! in trusted mode, user SQL in user mode, and anything prepared while neither is active (for
//! example by the engine through [`Database::connection`]) is denied: use
//! [`Database::with_trusted_connection`] for that.
//!
//! # Setup
//! [`Database::new`] enables SQLite's defensive mode, sets workerd's limits (plus Cloudflare's
//! 2 MB row and 10 GB database limits), turns foreign keys on (workerd builds SQLite so), installs
//! the authorizer, and creates the hidden tables `_cf_KV` and `_cf_METADATA` if they are missing.
//! That creation is the one write made outside a turn, and only in a brand-new database.
//!
//! A `Database` is not `Send`: its prepared statements borrow the connection. It lives on the
//! object's shard thread.
#![forbid(unsafe_code)]

mod error;
pub(crate) mod session;
pub(crate) mod statements;

use std::sync::Arc;

use rusqlite::config::DbConfig;
use rusqlite::hooks::AuthContext;
use rusqlite::limits::Limit;
use rusqlite::{Connection, params};

pub use self::error::{Error, JsClass};
use self::session::{Frame, Session, TurnState};
use self::statements::{Cell, HIDDEN_TABLES, Internal};
use crate::authorizer::{self, AuthState, Mode};
use crate::kv::{self, ALARM_METADATA_KEY, ListOptions, MAX_ROW_BYTES};
use crate::sql::{self, Cursor, MAX_STATEMENT_BYTES, Value};

/// The largest an object's database may grow (Cloudflare: 10 GB per object).
pub const MAX_DATABASE_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// The most columns a table or result may have (Cloudflare: 100).
pub const MAX_COLUMNS: i32 = 100;
/// The most bound parameters a statement may have (Cloudflare: 100).
pub const MAX_PARAMETERS: i32 = 100;

/// One Durable Object's storage. See the module docs.
pub struct Database {
    cell: Cell,
    auth: Arc<AuthState>,
    turn: TurnState,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Database")
            .field("turn", &self.turn)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Takes over `connection`: sets it up (see the module docs) and wraps it.
    ///
    /// Works on any connection; the engine's has its own VFS and journal settings.
    pub fn new(mut connection: Connection) -> Result<Database, Error> {
        let auth = Arc::new(AuthState::default());
        configure(&mut connection, &auth)?;
        Ok(Database {
            cell: Cell::wrap(connection),
            auth,
            turn: TurnState::default(),
        })
    }

    fn session<R>(&mut self, operation: impl FnOnce(&mut Session<'_, '_>) -> R) -> R {
        let Database { cell, auth, turn } = self;
        cell.with_dependent_mut(|conn, statements| {
            operation(&mut Session {
                conn,
                statements,
                auth,
                turn,
            })
        })
    }

    // ---------------------------------------------------------------------------------------
    // Turns and transactions.

    /// Marks the start of a turn. Nothing runs until the turn's first write opens its
    /// transaction; the call exists so that the engine's turn boundaries read symmetrically.
    pub fn begin_turn(&mut self) {}

    /// Whether the current turn has opened its transaction (it wrote, or may have).
    pub fn has_open_turn(&self) -> bool {
        self.turn.transaction_open
    }

    /// Commits the turn's writes as one atomic unit. Does nothing if the turn wrote nothing.
    ///
    /// On [`Error::ConstraintsViolated`] or [`Error::TransactionAborted`] the turn was rolled
    /// back: the database holds its last committed state, and the object must be reset.
    pub fn commit_turn(&mut self) -> Result<(), Error> {
        if !self.turn.frames.is_empty() {
            return Err(Error::TurnEndedInsideTransaction);
        }
        if let Some(message) = self.turn.aborted.take() {
            self.turn = TurnState::default();
            return Err(Error::TransactionAborted(message));
        }
        if !self.turn.transaction_open {
            return Ok(());
        }
        let result = self.session(|session| {
            let committed = session.execute(Internal::Commit, []);
            if committed.is_err() && !session.conn.is_autocommit() {
                // A failed COMMIT leaves the transaction open; the turn is over all the same.
                // If even the rollback fails, the connection is unusable and the engine resets it.
                let _ = session.execute(Internal::Rollback, []);
            }
            committed
        });
        self.turn = TurnState::default();
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.sqlite_code() == Some(rusqlite::ffi::SQLITE_CONSTRAINT) => {
                Err(Error::ConstraintsViolated(error.to_string()))
            }
            Err(Error::TransactionAborted(message)) => Err(Error::TransactionAborted(message)),
            Err(error) => Err(error),
        }
    }

    /// Discards the turn's writes (the object is being reset, or its event failed).
    pub fn rollback_turn(&mut self) -> Result<(), Error> {
        if !self.turn.frames.is_empty() {
            return Err(Error::TurnEndedInsideTransaction);
        }
        let open = self.turn.transaction_open;
        let result = self.session(|session| {
            if open && !session.conn.is_autocommit() {
                session.execute(Internal::Rollback, []).map(drop)
            } else {
                Ok(())
            }
        });
        self.turn = TurnState::default();
        result
    }

    /// Runs `body` as an explicit transaction (`storage.transaction()`): its storage operations
    /// take effect if it returns `Ok` and has not called [`Database::rollback_transaction`], and
    /// are undone otherwise. Transactions nest.
    pub fn transaction<T, E>(
        &mut self,
        body: impl FnOnce(&mut Database) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let depth = self.begin_transaction()?;
        let result = body(self);
        // Nested calls close their own frames before returning, so ours is the innermost.
        assert_eq!(
            self.turn.frames.len(),
            depth,
            "transaction frames must nest"
        );
        let ended = self.end_transaction(result.is_ok());
        match (result, ended) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(error), _) => Err(error),
            (Ok(_), Err(error)) => Err(E::from(error)),
        }
    }

    /// Opens an explicit transaction for a guest whose body does not fit in one closure (a
    /// JavaScript callback): every storage operation until the matching
    /// [`Database::end_transaction`] belongs to it. Returns the new nesting depth. The guest must
    /// end it before the turn ends, innermost first.
    pub fn begin_transaction(&mut self) -> Result<usize, Error> {
        self.session(|session| {
            session.ensure_transaction()?;
            session.execute(Internal::SavepointBegin, []).map(drop)
        })?;
        self.turn.frames.push(Frame::default());
        Ok(self.turn.frames.len())
    }

    /// Ends the innermost explicit transaction: keeps its operations if `keep` and no
    /// [`Database::rollback_transaction`] asked otherwise, undoes them else.
    pub fn end_transaction(&mut self, keep: bool) -> Result<(), Error> {
        let Some(frame) = self.turn.frames.pop() else {
            return Ok(());
        };
        if let Some(message) = &self.turn.aborted {
            // SQLite rolled back everything, our savepoint included.
            return Err(Error::TransactionAborted(message.clone()));
        }
        let keep = keep && !frame.rollback_requested;
        self.session(|session| session.end_guard_savepoint(keep))
    }

    /// Asks that the innermost explicit transaction be rolled back when its closure returns
    /// (`txn.rollback()`). Returns `false` if no explicit transaction is open.
    pub fn rollback_transaction(&mut self) -> bool {
        match self.turn.frames.last_mut() {
            Some(frame) => {
                frame.rollback_requested = true;
                true
            }
            None => false,
        }
    }

    /// How many explicit transactions are open.
    pub fn transaction_depth(&self) -> usize {
        self.turn.frames.len()
    }

    // ---------------------------------------------------------------------------------------
    // Key-value API.

    /// `storage.get(key)`.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.session(|session| kv::get(session, key))
    }

    /// `storage.get(keys)`: at most 128 keys; the entries found, in UTF-8 byte order of their
    /// keys, each once.
    pub fn get_many<K: AsRef<str>>(&mut self, keys: &[K]) -> Result<Vec<(String, Vec<u8>)>, Error> {
        self.session(|session| kv::get_many(session, keys))
    }

    /// `storage.put(key, value)`.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.session(|session| kv::put(session, key, value))
    }

    /// `storage.put(entries)`: at most 128 pairs, all stored or none. A later pair with the same
    /// key wins.
    pub fn put_many<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        entries: &[(K, V)],
    ) -> Result<(), Error> {
        self.session(|session| kv::put_many(session, entries))
    }

    /// `storage.delete(key)`: whether the key existed.
    pub fn delete(&mut self, key: &str) -> Result<bool, Error> {
        self.session(|session| kv::delete(session, key))
    }

    /// `storage.delete(keys)`: at most 128 keys; how many existed.
    pub fn delete_many<K: AsRef<str>>(&mut self, keys: &[K]) -> Result<usize, Error> {
        self.session(|session| kv::delete_many(session, keys))
    }

    /// `storage.list(options)`: entries in UTF-8 byte order of their keys (descending with
    /// `reverse`), at most [`kv::MAX_LIST_BYTES`] of them.
    pub fn list(&mut self, options: &ListOptions) -> Result<Vec<(String, Vec<u8>)>, Error> {
        self.session(|session| kv::list(session, options))
    }

    /// `storage.deleteAll()`: deletes every KV entry, every SQL table, index, trigger and view,
    /// and the alarm, atomically with the rest of the turn. Returns how many KV keys there were.
    /// Not allowed inside an explicit transaction.
    pub fn delete_all(&mut self) -> Result<u64, Error> {
        self.session(kv::delete_all)
    }

    // ---------------------------------------------------------------------------------------
    // SQL API.

    /// `sql.exec(query, ...params)`. See [`crate::sql`].
    pub fn exec(&mut self, query: &str, params: &[Value]) -> Result<Cursor, Error> {
        self.session(|session| sql::exec(session, query, params))
    }

    /// `sql.databaseSize`: (page_count − freelist_count) × page_size, in bytes.
    pub fn database_size(&mut self) -> Result<u64, Error> {
        self.session(|session| {
            session.check_usable()?;
            let pages = session.query_one(Internal::UsedPages, [], |row| row.get::<_, i64>(0))?;
            let page_size =
                session.query_one(Internal::PageSize, [], |row| row.get::<_, i64>(0))?;
            let bytes = pages.unwrap_or(0).saturating_mul(page_size.unwrap_or(0));
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
    }

    /// How many prepared user statements are cached (at most [`sql::USER_CACHE_CAPACITY`]).
    pub fn cached_statement_count(&mut self) -> usize {
        self.session(|session| session.statements.user.len())
    }

    // ---------------------------------------------------------------------------------------
    // Alarm and metadata.

    /// The alarm time in milliseconds since the Unix epoch, if one is set.
    pub fn get_alarm(&mut self) -> Result<Option<i64>, Error> {
        match self.metadata(ALARM_METADATA_KEY)? {
            Some(Value::Integer(time_ms)) => Ok(Some(time_ms)),
            _ => Ok(None),
        }
    }

    /// Sets (`Some`) or deletes (`None`) the alarm, within the current turn.
    pub fn set_alarm(&mut self, time_ms: Option<i64>) -> Result<(), Error> {
        self.set_metadata(ALARM_METADATA_KEY, time_ms.map(Value::Integer).as_ref())
    }

    /// A value of the engine's own metadata in `_cf_METADATA`. Key 1 is the alarm.
    pub fn metadata(&mut self, key: i64) -> Result<Option<Value>, Error> {
        self.session(|session| {
            session.check_usable()?;
            session.query_one(Internal::MetadataGet, [key], |row| {
                row.get_ref(0).map(Value::from_sqlite)
            })
        })
    }

    /// Sets (`Some`) or deletes (`None`) a metadata value, within the current turn.
    pub fn set_metadata(&mut self, key: i64, value: Option<&Value>) -> Result<(), Error> {
        self.session(|session| {
            session.ensure_transaction()?;
            match value {
                Some(value) => session.execute(Internal::MetadataSet, params![key, value]),
                None => session.execute(Internal::MetadataDelete, [key]),
            }
            .map(drop)
        })
    }

    // ---------------------------------------------------------------------------------------
    // The connection.

    /// The connection, for inspection. Statements prepared through it are denied by the
    /// authorizer; use [`Database::with_trusted_connection`] to run the engine's own SQL.
    pub fn connection(&self) -> &Connection {
        self.cell.borrow_owner()
    }

    /// Runs `operation` with the authorizer in trusted mode. It must not begin, commit or roll
    /// back transactions: turns belong to this type.
    pub fn with_trusted_connection<R>(&mut self, operation: impl FnOnce(&Connection) -> R) -> R {
        let _trusted = self.auth.enter(Mode::Trusted);
        operation(self.cell.borrow_owner())
    }

    /// Rolls back an open turn, removes the authorizer and returns the connection.
    pub fn into_connection(mut self) -> Result<Connection, Error> {
        self.rollback_turn()?;
        let mut connection = self.cell.into_owner();
        connection.authorizer(None::<fn(AuthContext<'_>) -> rusqlite::hooks::Authorization>)?;
        Ok(connection)
    }
}

/// Sets a connection up for an object: defensive mode, limits, foreign keys, the authorizer,
/// the hidden tables and the size limit.
fn configure(connection: &mut Connection, auth: &Arc<AuthState>) -> Result<(), Error> {
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    let to_i32 = |value: usize| i32::try_from(value).unwrap_or(i32::MAX);
    // workerd's limits (sqlite.org/security.html), with Cloudflare's documented sizes.
    let limits = [
        (Limit::SQLITE_LIMIT_LENGTH, to_i32(MAX_ROW_BYTES)),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, to_i32(MAX_STATEMENT_BYTES)),
        (Limit::SQLITE_LIMIT_COLUMN, MAX_COLUMNS),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMETERS),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 5),
        (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 127),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
        (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
    ];
    for (limit, value) in limits {
        connection.set_limit(limit, value)?;
    }
    let state = Arc::clone(auth);
    connection.authorizer(Some(move |context: AuthContext<'_>| {
        authorizer::authorize(&state, context)
    }))?;

    let _trusted = auth.enter(Mode::Trusted);
    connection.execute_batch("PRAGMA foreign_keys = ON")?;
    let hidden: i64 = connection.query_row(
        "SELECT count(*) FROM main.sqlite_schema WHERE name IN ('_cf_KV', '_cf_METADATA')",
        [],
        |row| row.get(0),
    )?;
    if hidden < 2 {
        connection.execute_batch(&format!("BEGIN; {HIDDEN_TABLES} COMMIT;"))?;
    }
    let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let max_pages = MAX_DATABASE_BYTES / u64::try_from(page_size.max(512)).unwrap_or(4096);
    connection.execute_batch(&format!("PRAGMA max_page_count = {max_pages}"))?;
    Ok(())
}
