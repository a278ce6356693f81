//! The SQLite authorizer: which SQL a Durable Object's own code may run, following workerd's rules.
//!
//! SQLite asks the authorizer about every table, column, function and pragma a statement touches
//! while it prepares the statement (and again if it re-prepares it after a schema change). The
//! answer depends on who runs the statement, recorded in [`AuthState`]:
//!
//! - [`Mode::User`]: SQL from `sql.exec()`. The rules below apply.
//! - [`Mode::Trusted`]: Burrow's own statements (the KV table, transactions, metadata). Anything
//!   goes, except other databases than `main` and anything done on behalf of a trigger or view.
//! - [`Mode::Idle`]: nothing of ours is running, so nobody should be preparing anything. Deny all,
//!   as workerd does, so that a statement prepared behind our back can never slip through.
//!
//! The user rules, from workerd's `SqliteDatabase::isAuthorized` and `SqlStorageRegulator`:
//! - No name (table, index, trigger, view, virtual table, pragma argument) may start with `_cf_`,
//!   in any case: those are Burrow's hidden tables.
//! - No transactions or savepoints; they get [`TRANSACTION_MESSAGE`] instead of `not authorized`.
//! - No ATTACH/DETACH, nothing in `temp` but reads, no other database than `main`.
//! - Virtual tables only with the fts5, fts5vocab, rtree and rtree_i32 modules.
//! - Only the pragmas in [`PRAGMAS`], with their arguments checked; only the functions in
//!   [`FUNCTIONS`].
//!
//! One rule workerd enforces with a patched SQLite cannot be seen here: stock SQLite does not tell
//! the authorizer the new name of `ALTER TABLE … RENAME TO`. So the authorizer only records that a
//! statement alters a table ([`AuthState::take_altered`]) and the SQL layer checks the schema after
//! such a statement runs (see `sql.rs`).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};

/// What a user gets for BEGIN, COMMIT, ROLLBACK, SAVEPOINT or RELEASE (workerd's wording).
pub const TRANSACTION_MESSAGE: &str = "To execute a transaction, please use the \
state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN \
TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically \
roll back on exceptions, and because it interacts correctly with Durable Objects' automatic \
atomic write coalescing.";

/// The prefix reserved for Burrow's hidden tables, compared without regard to ASCII case.
pub const RESERVED_PREFIX: &str = "_cf_";

/// Who is preparing or running a statement right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Nothing of ours is running: deny everything.
    Idle = 0,
    /// The object's own SQL: the rules apply.
    User = 1,
    /// Burrow's internal statements: everything on `main` is allowed.
    Trusted = 2,
}

/// State shared between the [`crate::database::Database`] and the authorizer callback it installs.
///
/// The callback must be `Send + 'static`, so the state lives behind an `Arc` and uses atomics;
/// only one thread ever touches a connection, so the orderings are not load-bearing.
#[derive(Debug, Default)]
pub struct AuthState {
    mode: AtomicU8,
    transaction_denied: AtomicBool,
    altered: AtomicBool,
    writes_indirectly: AtomicBool,
}

impl AuthState {
    /// The current mode.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            1 => Mode::User,
            2 => Mode::Trusted,
            _ => Mode::Idle,
        }
    }

    /// Switches to `mode` until the returned guard is dropped, which restores the previous mode.
    pub fn enter(&self, mode: Mode) -> ModeGuard<'_> {
        let previous = self.mode();
        self.mode.store(mode as u8, Ordering::Relaxed);
        ModeGuard {
            state: self,
            previous,
        }
    }

    /// Forgets what the last preparation recorded; call before preparing a user statement.
    pub fn clear_flags(&self) {
        self.transaction_denied.store(false, Ordering::Relaxed);
        self.altered.store(false, Ordering::Relaxed);
        self.writes_indirectly.store(false, Ordering::Relaxed);
    }

    /// Whether a transaction statement was denied since [`AuthState::clear_flags`].
    pub fn take_transaction_denied(&self) -> bool {
        self.transaction_denied.swap(false, Ordering::Relaxed)
    }

    /// Whether a user statement prepared since [`AuthState::clear_flags`] alters a table.
    pub fn take_altered(&self) -> bool {
        self.altered.swap(false, Ordering::Relaxed)
    }

    /// Whether a user statement prepared since [`AuthState::clear_flags`] writes although SQLite
    /// calls it read-only: `PRAGMA optimize` runs ANALYZE, which writes `sqlite_stat1`.
    pub fn take_writes_indirectly(&self) -> bool {
        self.writes_indirectly.swap(false, Ordering::Relaxed)
    }
}

/// Restores the previous [`Mode`] when dropped.
#[derive(Debug)]
#[must_use = "the mode is restored as soon as the guard is dropped"]
pub struct ModeGuard<'a> {
    state: &'a AuthState,
    previous: Mode,
}

impl Drop for ModeGuard<'_> {
    fn drop(&mut self) {
        self.state
            .mode
            .store(self.previous as u8, Ordering::Relaxed);
    }
}

/// Whether `name` may be used by the object's own SQL: it must not start with `_cf_` in any case.
pub fn is_allowed_name(name: &str) -> bool {
    !name
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// The authorizer callback: decides one action for the statement being prepared.
pub fn authorize(state: &AuthState, context: AuthContext<'_>) -> Authorization {
    let allowed = match state.mode() {
        Mode::Idle => false,
        Mode::Trusted => trusted_allows(&context),
        Mode::User => {
            let allowed = user_allows(state, &context);
            if allowed {
                match context.action {
                    AuthAction::AlterTable { .. } => state.altered.store(true, Ordering::Relaxed),
                    AuthAction::Pragma { pragma_name, .. }
                        if pragma_name.eq_ignore_ascii_case("optimize") =>
                    {
                        state.writes_indirectly.store(true, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            allowed
        }
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

fn trusted_allows(context: &AuthContext<'_>) -> bool {
    // A trigger or view is the user's code: it must never run with Burrow's authority. Burrow's
    // statements touch only hidden tables, which carry no triggers, so this never fires in
    // practice; it is workerd's `isAllowedTrigger` defense in depth.
    if context.accessor.is_some() {
        return false;
    }
    // Only `main`: the storage engine captures one file per object, nothing else.
    match database_of(context) {
        Some(database) => database == "main",
        None => true,
    }
}

/// The database an action is about. SQLite passes it as the fifth argument, except for ALTER
/// TABLE, where it comes first (workerd calls this an SQLite quirk and swaps them too).
fn database_of<'c>(context: &AuthContext<'c>) -> Option<&'c str> {
    match context.action {
        AuthAction::AlterTable { database_name, .. } => Some(database_name),
        _ => context.database_name,
    }
}

fn user_allows(state: &AuthState, context: &AuthContext<'_>) -> bool {
    match database_of(context) {
        None | Some("main") => {}
        Some("temp") => return temp_allows(&context.action),
        Some(_) => return false,
    }
    match context.action {
        AuthAction::Select | AuthAction::Recursive => true,
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. }
        | AuthAction::AlterTable { table_name, .. } => is_allowed_name(table_name),
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            is_allowed_name(view_name)
        }
        AuthAction::Reindex { index_name } => is_allowed_name(index_name),
        AuthAction::CreateIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropIndex {
            index_name,
            table_name,
        } => is_allowed_name(index_name) && is_allowed_name(table_name),
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTrigger {
            trigger_name,
            table_name,
        } => is_allowed_name(trigger_name) && is_allowed_name(table_name),
        // `PRAGMA optimize` runs ANALYZE over every table, hidden ones included. sqlite_stat1 holds
        // statistics, not data, so workerd allows it, and so do we.
        AuthAction::Analyze { .. } => true,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => pragma_allows(pragma_name, pragma_value),
        AuthAction::Function { function_name } => FUNCTIONS
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(function_name)),
        AuthAction::CreateVtable {
            table_name,
            module_name,
        }
        | AuthAction::DropVtable {
            table_name,
            module_name,
        } => {
            VIRTUAL_TABLE_MODULES
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(module_name))
                && is_allowed_name(table_name)
        }
        AuthAction::Transaction { .. }
        | AuthAction::Savepoint {
            operation:
                TransactionOperation::Begin
                | TransactionOperation::Release
                | TransactionOperation::Rollback
                | TransactionOperation::Unknown,
            ..
        } => {
            state.transaction_denied.store(true, Ordering::Relaxed);
            false
        }
        // ATTACH, DETACH, everything temporary, and whatever SQLite adds later.
        _ => false,
    }
}

/// In `temp`, only reads and updates of allowed names (workerd's `isAuthorizedTemp`).
fn temp_allows(action: &AuthAction<'_>) -> bool {
    match action {
        AuthAction::Read { table_name, .. } | AuthAction::Update { table_name, .. } => {
            is_allowed_name(table_name)
        }
        _ => false,
    }
}

/// The virtual table modules a user may create or drop.
pub const VIRTUAL_TABLE_MODULES: &[&str] = &["fts5", "fts5vocab", "rtree", "rtree_i32"];

/// What argument an allowed pragma takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PragmaArgument {
    /// Read only: no argument at all.
    None,
    /// Optional; if present, a boolean spelled as SQLite accepts it.
    Boolean,
    /// Required: the name of a table or index the user may access.
    ObjectName,
    /// Optional: the name of a table or index the user may access.
    OptionalObjectName,
    /// Optional: a 32-bit integer (decimal, hex `0x…` or octal `0…`).
    OptionalNumber,
    /// Optional: an unsigned number, or else an object name the user may access.
    OptionalNumberOrObjectName,
    /// Required: an object name the user may access (`table_info`, `table_xinfo`).
    TableName,
    /// Anything (`table_list`: it names hidden tables, which is no secret).
    Any,
}

/// The pragmas a user may run, with what each accepts (workerd's `ALLOWED_PRAGMAS`).
pub const PRAGMAS: &[(&str, PragmaArgument)] = &[
    ("data_version", PragmaArgument::None),
    // R*Tree reads the page size itself; setting it stays forbidden.
    ("page_size", PragmaArgument::None),
    ("case_sensitive_like", PragmaArgument::Boolean),
    ("foreign_keys", PragmaArgument::Boolean),
    ("defer_foreign_keys", PragmaArgument::Boolean),
    ("ignore_check_constraints", PragmaArgument::Boolean),
    ("legacy_alter_table", PragmaArgument::Boolean),
    ("recursive_triggers", PragmaArgument::Boolean),
    ("reverse_unordered_selects", PragmaArgument::Boolean),
    ("foreign_key_check", PragmaArgument::OptionalObjectName),
    ("foreign_key_list", PragmaArgument::ObjectName),
    ("index_info", PragmaArgument::ObjectName),
    ("index_list", PragmaArgument::ObjectName),
    ("index_xinfo", PragmaArgument::ObjectName),
    ("quick_check", PragmaArgument::OptionalNumberOrObjectName),
    ("optimize", PragmaArgument::OptionalNumber),
    ("table_list", PragmaArgument::Any),
    ("table_info", PragmaArgument::TableName),
    ("table_xinfo", PragmaArgument::TableName),
];

/// Whether `PRAGMA name` or `PRAGMA name = value` / `PRAGMA name(value)` is allowed.
///
/// Pragma names compare without regard to case, as SQLite itself does (workerd compares them
/// exactly, which rejects `PRAGMA FOREIGN_KEYS`; accepting it cannot break a working program).
pub fn pragma_allows(name: &str, value: Option<&str>) -> bool {
    let Some(&(_, argument)) = PRAGMAS
        .iter()
        .find(|(allowed, _)| allowed.eq_ignore_ascii_case(name))
    else {
        return false;
    };
    match (argument, value) {
        (PragmaArgument::Any, _) => true,
        (PragmaArgument::None, value) => value.is_none(),
        (PragmaArgument::ObjectName | PragmaArgument::TableName, None) => false,
        (
            PragmaArgument::Boolean
            | PragmaArgument::OptionalObjectName
            | PragmaArgument::OptionalNumber
            | PragmaArgument::OptionalNumberOrObjectName,
            None,
        ) => true,
        (PragmaArgument::Boolean, Some(value)) => is_boolean(value),
        (
            PragmaArgument::ObjectName
            | PragmaArgument::TableName
            | PragmaArgument::OptionalObjectName,
            Some(value),
        ) => is_allowed_name(value),
        (PragmaArgument::OptionalNumber, Some(value)) => {
            parse_c_integer(value).is_some_and(|number| i32::try_from(number).is_ok())
        }
        (PragmaArgument::OptionalNumberOrObjectName, Some(value)) => {
            parse_c_integer(value).is_some_and(|number| u32::try_from(number).is_ok())
                || is_allowed_name(value)
        }
    }
}

/// A boolean as workerd accepts it: optionally quoted, then starting (in any case) with one of
/// SQLite's spellings. Starting with, not equal to: workerd compares only that many characters.
fn is_boolean(value: &str) -> bool {
    let bytes = value.as_bytes();
    let unquoted = match bytes {
        [first @ (b'\'' | b'"'), .., last] if first == last => &value[1..value.len() - 1],
        _ => value,
    };
    ["true", "false", "yes", "no", "on", "off", "1", "0"]
        .iter()
        .any(|spelling| {
            unquoted
                .get(..spelling.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(spelling))
        })
}

/// Parses an integer the way C's `strtoll(s, _, 0)` does when it must consume the whole string:
/// an optional sign, then `0x`/`0X` hexadecimal, `0` octal, or decimal.
pub fn parse_c_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).ok()
}

/// The SQL functions a user may call (workerd's `ALLOWED_SQLITE_FUNCTIONS`, less
/// `load_extension`, which is off on every connection anyway). Not here on purpose: `sqlite_*`
/// functions that reveal build details (`sqlite_version`, `sqlite_compileoption_used`, …).
pub const FUNCTIONS: &[&str] = &[
    // Core functions.
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max_scalar",
    "min_scalar",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "zeroblob",
    // Date and time.
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // Aggregates.
    "avg",
    "count",
    "group_concat",
    "max",
    "min",
    "string_agg",
    "sum",
    "total",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // Math.
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log2",
    "mod",
    "pi",
    "pow",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON.
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_extract",
    "jsonb_extract",
    "->",
    "->>",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "json_each",
    "json_tree",
    // Full-text search.
    "match",
    "highlight",
    "bm25",
    "snippet",
    // R*Tree.
    "rtreecheck",
    // What ALTER TABLE runs internally.
    "sqlite_rename_column",
    "sqlite_rename_table",
    "sqlite_rename_test",
    "sqlite_drop_column",
    "sqlite_rename_quotefix",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_in_any_case() {
        for name in ["_cf_KV", "_CF_kv", "_Cf_anything", "_cf_"] {
            assert!(!is_allowed_name(name), "{name}");
        }
        for name in ["", "_cf", "cf_KV", "x_cf_KV", "_c", "é_cf_"] {
            assert!(is_allowed_name(name), "{name}");
        }
    }

    #[test]
    fn booleans_as_workerd_reads_them() {
        for value in [
            "true", "FALSE", "yes", "No", "on", "off", "1", "0", "'true'", "\"yes\"", "\"0\"",
        ] {
            assert!(is_boolean(value), "{value}");
        }
        for value in ["abcd", "\"foo\"", "", "2", "'", "o"] {
            assert!(!is_boolean(value), "{value}");
        }
    }

    #[test]
    fn integers_as_strtol_reads_them() {
        assert_eq!(parse_c_integer("-1"), Some(-1));
        assert_eq!(parse_c_integer("0x10002"), Some(0x10002));
        assert_eq!(parse_c_integer("0x7fffffff"), Some(0x7fff_ffff));
        assert_eq!(parse_c_integer("010"), Some(8));
        assert_eq!(parse_c_integer("0"), Some(0));
        assert_eq!(parse_c_integer("+12"), Some(12));
        for bad in ["", "-", "0x", "12a", "myTable", "08", " 1"] {
            assert_eq!(parse_c_integer(bad), None, "{bad}");
        }
    }

    #[test]
    fn pragma_arguments() {
        assert!(pragma_allows("data_version", None));
        assert!(!pragma_allows("data_version", Some("5")));
        assert!(!pragma_allows("page_size", Some("8192")));
        assert!(pragma_allows("FOREIGN_KEYS", Some("off")));
        assert!(pragma_allows("optimize", Some("0x10002")));
        assert!(!pragma_allows("optimize", Some("0xffffffff")));
        assert!(pragma_allows("quick_check", Some("100")));
        assert!(pragma_allows("quick_check", Some("myTable")));
        assert!(!pragma_allows("quick_check", Some("_cf_KV")));
        assert!(!pragma_allows("table_info", Some("_cf_KV")));
        assert!(!pragma_allows("index_list", None));
        assert!(!pragma_allows("max_page_count", Some("1")));
        assert!(!pragma_allows("journal_mode", None));
    }

    #[test]
    fn modes_nest_and_restore() {
        let state = AuthState::default();
        assert_eq!(state.mode(), Mode::Idle);
        {
            let _user = state.enter(Mode::User);
            {
                let _trusted = state.enter(Mode::Trusted);
                assert_eq!(state.mode(), Mode::Trusted);
            }
            assert_eq!(state.mode(), Mode::User);
        }
        assert_eq!(state.mode(), Mode::Idle);
    }
}
