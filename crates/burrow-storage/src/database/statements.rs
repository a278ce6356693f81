//! Burrow's own (trusted) statements, and the cell that keeps prepared statements next to the
//! connection they belong to.
//!
//! A prepared `rusqlite::Statement` borrows its `Connection`, and the `Database` owns that
//! connection, so keeping statements across calls needs a self-referential struct. `self_cell`
//! provides one without unsafe code in this crate. The cell holds two separate caches: one slot
//! per [`Internal`] statement, prepared in [`crate::authorizer::Mode::Trusted`], and the user
//! statement cache of [`crate::sql`], prepared in user mode. No statement ever moves between them.

use rusqlite::{Connection, Statement};

use crate::sql::UserStatements;

/// The hidden tables Burrow creates in every object database.
pub(crate) const HIDDEN_TABLES: &str = "
CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _cf_METADATA (key INTEGER PRIMARY KEY, value BLOB);
";

macro_rules! internal_statements {
    ($($name:ident => $sql:expr,)*) => {
        /// Every statement Burrow runs on its own behalf, with its SQL.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Internal { $($name,)* }

        impl Internal {
            const ALL: &'static [Internal] = &[$(Internal::$name,)*];

            /// The statement's SQL.
            pub(crate) fn sql(self) -> &'static str {
                match self { $(Internal::$name => $sql,)* }
            }
        }
    };
}

internal_statements! {
    KvGet => "SELECT value FROM _cf_KV WHERE key = ?1",
    KvPut => "INSERT INTO _cf_KV (key, value) VALUES (?1, ?2) \
              ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    KvDelete => "DELETE FROM _cf_KV WHERE key = ?1",
    // LIMIT -1 means no limit. Separate statements with and without an end bound, so that both
    // bounds become a range on the primary key.
    KvListForward => "SELECT key, value FROM _cf_KV WHERE key >= ?1 ORDER BY key LIMIT ?2",
    KvListForwardEnd =>
        "SELECT key, value FROM _cf_KV WHERE key >= ?1 AND key < ?3 ORDER BY key LIMIT ?2",
    KvListReverse => "SELECT key, value FROM _cf_KV WHERE key >= ?1 ORDER BY key DESC LIMIT ?2",
    KvListReverseEnd =>
        "SELECT key, value FROM _cf_KV WHERE key >= ?1 AND key < ?3 ORDER BY key DESC LIMIT ?2",
    KvCount => "SELECT count(*) FROM _cf_KV",
    KvClear => "DELETE FROM _cf_KV",
    MetadataGet => "SELECT value FROM _cf_METADATA WHERE key = ?1",
    MetadataSet => "INSERT INTO _cf_METADATA (key, value) VALUES (?1, ?2) \
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    MetadataDelete => "DELETE FROM _cf_METADATA WHERE key = ?1",
    Begin => "BEGIN",
    Commit => "COMMIT",
    Rollback => "ROLLBACK",
    // One name serves every nesting depth: RELEASE and ROLLBACK TO pick the innermost savepoint
    // of that name, which is always the one being closed.
    SavepointBegin => "SAVEPOINT _cf_savepoint",
    SavepointRelease => "RELEASE _cf_savepoint",
    SavepointRollback => "ROLLBACK TO _cf_savepoint",
    UsedPages => "SELECT (SELECT * FROM pragma_page_count) - (SELECT * FROM pragma_freelist_count)",
    PageSize => "PRAGMA page_size",
    ReservedNames => "SELECT name FROM sqlite_schema WHERE lower(substr(name, 1, 4)) = '_cf_'",
}

/// The statements kept next to the connection.
pub(crate) struct Statements<'c> {
    internal: Vec<Option<Statement<'c>>>,
    /// The object's own single-statement queries.
    pub(crate) user: UserStatements<'c>,
}

impl<'c> Statements<'c> {
    fn new() -> Statements<'c> {
        Statements {
            internal: Internal::ALL.iter().map(|_| None).collect(),
            user: UserStatements::default(),
        }
    }

    /// The prepared statement for `which`, prepared on first use. The caller must be in
    /// trusted mode, since preparing runs the authorizer.
    pub(crate) fn internal(
        &mut self,
        connection: &'c Connection,
        which: Internal,
    ) -> rusqlite::Result<&mut Statement<'c>> {
        let slot = &mut self.internal[which as usize];
        if slot.is_none() {
            *slot = Some(connection.prepare(which.sql())?);
        }
        Ok(slot.as_mut().expect("the slot was filled just above"))
    }
}

self_cell::self_cell!(
    /// A connection and its prepared statements.
    pub(crate) struct Cell {
        owner: Connection,
        #[covariant]
        dependent: Statements,
    }
);

impl Cell {
    /// Wraps `connection` with empty statement caches.
    pub(crate) fn wrap(connection: Connection) -> Cell {
        Cell::new(connection, |_| Statements::new())
    }
}
