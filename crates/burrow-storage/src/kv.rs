//! The Durable Object key-value API over the hidden `_cf_KV` table, with Cloudflare's limits.
//!
//! Keys are strings kept in `_cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID`, as in
//! workerd. Keys are always bound as TEXT and the column uses SQLite's default BINARY collation,
//! which compares with `memcmp`: the table's order is the UTF-8 byte order Cloudflare promises
//! (the same order as Rust's `str`), and a NUL inside a key compares like any other byte.
//! Values are opaque bytes; the guest layers serialize them.
//!
//! `list` follows workerd's `compileListOptions`: `startAfter` becomes an inclusive start by
//! appending a NUL (the smallest key after it), a prefix narrows `start` and `end` to the keys
//! that carry it, and `reverse` only changes the order, never what `start` and `end` mean.
#![forbid(unsafe_code)]

use rusqlite::params;

use crate::authorizer::Mode;
use crate::database::Error;
use crate::database::session::Session;
use crate::database::statements::Internal;

/// The longest key, in bytes (Cloudflare: 2048).
pub const MAX_KEY_BYTES: usize = 2048;
/// The longest string, BLOB or row SQLite accepts on an object's connection (Cloudflare: 2 MB).
pub const MAX_ROW_BYTES: usize = 2 * 1024 * 1024;
/// The most a key and its value may take together: a row, less the few bytes of SQLite's record
/// header, so that every entry that passes this check also fits the row limit.
pub const MAX_ENTRY_BYTES: usize = MAX_ROW_BYTES - 16;
/// The most keys or pairs one call may name (Cloudflare: 128).
pub const MAX_KEYS_PER_CALL: usize = 128;
/// The most bytes of keys and values one `list` may return.
pub const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// The `_cf_METADATA` key of the alarm slot; `delete_all` clears it.
pub const ALARM_METADATA_KEY: i64 = 1;

/// The options of `storage.list()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// List keys at or after this one.
    pub start: Option<String>,
    /// List keys strictly after this one. Excludes `start`.
    pub start_after: Option<String>,
    /// List keys strictly before this one.
    pub end: Option<String>,
    /// List only keys that start with this.
    pub prefix: Option<String>,
    /// Return keys in descending order. The range stays the same.
    pub reverse: bool,
    /// Return at most this many entries; must be positive.
    pub limit: Option<usize>,
}

/// The key range a [`ListOptions`] selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key included.
    pub start: String,
    /// The first key excluded, if any.
    pub end: Option<String>,
}

impl ListOptions {
    /// Validates the options and computes the key range they select; `None` if it is empty.
    pub fn key_range(&self) -> Result<Option<KeyRange>, Error> {
        if self.start.is_some() && self.start_after.is_some() {
            return Err(Error::StartAndStartAfter);
        }
        if self.limit == Some(0) {
            return Err(Error::ListLimitNotPositive);
        }
        let mut start = match (&self.start, &self.start_after) {
            (Some(start), _) => start.clone(),
            (None, Some(after)) => format!("{after}\0"),
            (None, None) => String::new(),
        };
        let mut end = self.end.clone();
        if let Some(prefix) = self.prefix.as_deref().filter(|prefix| !prefix.is_empty()) {
            if start.as_str() < prefix {
                start = prefix.to_owned();
            } else if !start.starts_with(prefix) {
                return Ok(None);
            }
            if let Some(after_prefix) = first_key_after_prefix(prefix) {
                end = match end {
                    Some(end) if end.as_str() <= prefix => return Ok(None),
                    Some(end) if end.starts_with(prefix) => Some(end),
                    _ => Some(after_prefix),
                };
            }
        }
        if end.as_ref().is_some_and(|end| *end <= start) {
            return Ok(None);
        }
        Ok(Some(KeyRange { start, end }))
    }
}

/// The smallest string greater than every string that starts with `prefix`, or `None` if no
/// string is (the prefix is all U+10FFFF). In UTF-8 byte order this is the prefix with its last
/// character replaced by the next one, after dropping trailing U+10FFFFs.
fn first_key_after_prefix(prefix: &str) -> Option<String> {
    let mut key = prefix.trim_end_matches(char::MAX).to_owned();
    let last = key.pop()?;
    let next = match last {
        '\u{D7FF}' => '\u{E000}',
        other => char::from_u32(u32::from(other) + 1)?,
    };
    key.push(next);
    Some(key)
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLarge {
            max: MAX_KEY_BYTES,
            size: key.len(),
        });
    }
    Ok(())
}

fn check_entry(key: &str, value: &[u8]) -> Result<(), Error> {
    check_key(key)?;
    let max = MAX_ENTRY_BYTES - key.len();
    if value.len() > max {
        return Err(Error::ValueTooLarge {
            max,
            size: value.len(),
        });
    }
    Ok(())
}

fn check_count(count: usize) -> Result<(), Error> {
    if count > MAX_KEYS_PER_CALL {
        return Err(Error::TooManyKeys {
            max: MAX_KEYS_PER_CALL,
            count,
        });
    }
    Ok(())
}

pub(crate) fn get(session: &mut Session<'_, '_>, key: &str) -> Result<Option<Vec<u8>>, Error> {
    session.check_usable()?;
    check_key(key)?;
    session.query_one(Internal::KvGet, [key], |row| row.get(0))
}

pub(crate) fn get_many<K: AsRef<str>>(
    session: &mut Session<'_, '_>,
    keys: &[K],
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    session.check_usable()?;
    check_count(keys.len())?;
    let mut keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    for key in &keys {
        check_key(key)?;
    }
    keys.sort_unstable();
    keys.dedup();
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(value) = session.query_one(Internal::KvGet, [key], |row| row.get(0))? {
            found.push((key.to_owned(), value));
        }
    }
    Ok(found)
}

pub(crate) fn put(session: &mut Session<'_, '_>, key: &str, value: &[u8]) -> Result<(), Error> {
    session.check_usable()?;
    check_entry(key, value)?;
    session.ensure_transaction()?;
    session.execute(Internal::KvPut, params![key, value])?;
    Ok(())
}

pub(crate) fn put_many<K: AsRef<str>, V: AsRef<[u8]>>(
    session: &mut Session<'_, '_>,
    entries: &[(K, V)],
) -> Result<(), Error> {
    session.check_usable()?;
    check_count(entries.len())?;
    for (key, value) in entries {
        check_entry(key.as_ref(), value.as_ref())?;
    }
    session.atomically(|session| {
        for (key, value) in entries {
            session.execute(Internal::KvPut, params![key.as_ref(), value.as_ref()])?;
        }
        Ok(())
    })
}

pub(crate) fn delete(session: &mut Session<'_, '_>, key: &str) -> Result<bool, Error> {
    session.check_usable()?;
    check_key(key)?;
    session.ensure_transaction()?;
    Ok(session.execute(Internal::KvDelete, [key])? > 0)
}

pub(crate) fn delete_many<K: AsRef<str>>(
    session: &mut Session<'_, '_>,
    keys: &[K],
) -> Result<usize, Error> {
    session.check_usable()?;
    check_count(keys.len())?;
    for key in keys {
        check_key(key.as_ref())?;
    }
    session.atomically(|session| {
        let mut deleted = 0;
        for key in keys {
            deleted += session.execute(Internal::KvDelete, [key.as_ref()])?;
        }
        Ok(deleted)
    })
}

pub(crate) fn list(
    session: &mut Session<'_, '_>,
    options: &ListOptions,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    session.check_usable()?;
    let Some(range) = options.key_range()? else {
        return Ok(Vec::new());
    };
    let statement = match (options.reverse, range.end.is_some()) {
        (false, false) => Internal::KvListForward,
        (false, true) => Internal::KvListForwardEnd,
        (true, false) => Internal::KvListReverse,
        (true, true) => Internal::KvListReverseEnd,
    };
    let limit = options
        .limit
        .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    let mut too_large = false;
    let each = |row: &rusqlite::Row<'_>| -> Result<bool, Error> {
        let key: String = row.get(0)?;
        let value: Vec<u8> = row.get(1)?;
        bytes += key.len() + value.len();
        if bytes > MAX_LIST_BYTES {
            too_large = true;
            return Ok(false);
        }
        entries.push((key, value));
        Ok(true)
    };
    match &range.end {
        Some(end) => session.query(statement, params![range.start, limit, end], each)?,
        None => session.query(statement, params![range.start, limit], each)?,
    }
    if too_large {
        return Err(Error::ListTooLarge {
            limit_bytes: MAX_LIST_BYTES,
        });
    }
    Ok(entries)
}

/// Deletes everything the object stored: every KV entry, every table, index, trigger and view of
/// its own SQL, and the alarm. Burrow's other metadata stays. Returns how many KV keys there were.
///
/// workerd deletes the whole database file; Burrow cannot (the engine owns the file and its
/// journal), so it drops every object inside the turn's transaction, which makes the deletion
/// atomic with the rest of the turn. Connection settings (pragmas) are kept.
pub(crate) fn delete_all(session: &mut Session<'_, '_>) -> Result<u64, Error> {
    session.check_usable()?;
    if !session.turn.frames.is_empty() {
        return Err(Error::DeleteAllInTransaction);
    }
    let count = session
        .query_one(Internal::KvCount, [], |row| row.get::<_, i64>(0))?
        .unwrap_or(0);
    session.atomically(|session| {
        drop_user_schema(session)?;
        session.execute(Internal::KvClear, [])?;
        session.execute(Internal::MetadataDelete, [ALARM_METADATA_KEY])?;
        Ok(())
    })?;
    session.statements.user.clear();
    Ok(u64::try_from(count).unwrap_or(0))
}

/// What the user created: (type, name, is a virtual table).
fn user_objects(session: &mut Session<'_, '_>) -> Result<Vec<(String, String, bool)>, Error> {
    let _trusted = session.auth.enter(Mode::Trusted);
    let mut statement = session.conn.prepare(
        "SELECT type, name, coalesce(sql, '') LIKE 'CREATE VIRTUAL%' FROM main.sqlite_schema \
         WHERE type IN ('table', 'view') \
         AND lower(substr(name, 1, 7)) <> 'sqlite_' AND lower(substr(name, 1, 4)) <> '_cf_'",
    )?;
    let objects = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(objects)
}

fn drop_user_schema(session: &mut Session<'_, '_>) -> Result<(), Error> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let run = |session: &mut Session<'_, '_>, sql: &str| -> Result<(), Error> {
        let _trusted = session.auth.enter(Mode::Trusted);
        session.conn.execute_batch(sql).map_err(Error::from)
    };
    // Dropping a parent table before its children must not trip immediate foreign keys: every
    // child goes too, so nothing is left violated by the time the turn commits.
    run(session, "PRAGMA defer_foreign_keys = ON")?;
    let objects = user_objects(session)?;
    for (kind, name, _) in objects.iter().filter(|(kind, ..)| kind == "view") {
        run(
            session,
            &format!(
                "DROP {} IF EXISTS main.{}",
                kind.to_uppercase(),
                quote(name)
            ),
        )?;
    }
    // Virtual tables first: dropping one drops its shadow tables.
    for (_, name, _) in objects.iter().filter(|(_, _, is_virtual)| *is_virtual) {
        run(
            session,
            &format!("DROP TABLE IF EXISTS main.{}", quote(name)),
        )?;
    }
    for (_, name, _) in user_objects(session)? {
        run(
            session,
            &format!("DROP TABLE IF EXISTS main.{}", quote(&name)),
        )?;
    }
    run(session, "DROP TABLE IF EXISTS main.sqlite_stat1")?;
    run(session, "DROP TABLE IF EXISTS main.sqlite_stat4")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(options: ListOptions) -> Option<(String, Option<String>)> {
        options
            .key_range()
            .expect("valid options")
            .map(|range| (range.start, range.end))
    }

    #[test]
    fn prefix_narrows_the_range() {
        let prefix = |prefix: &str| ListOptions {
            prefix: Some(prefix.into()),
            ..ListOptions::default()
        };
        assert_eq!(range(prefix("ab")), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(
            range(prefix("a\u{7f}")),
            Some(("a\u{7f}".into(), Some("a\u{80}".into())))
        );
        assert_eq!(
            range(prefix("\u{D7FF}")),
            Some(("\u{D7FF}".into(), Some("\u{E000}".into())))
        );
        assert_eq!(
            range(prefix("\u{10FFFF}")),
            Some(("\u{10FFFF}".into(), None))
        );
        assert_eq!(range(prefix("")), Some((String::new(), None)));
    }

    #[test]
    fn prefix_combines_with_start_and_end() {
        let options = |start: Option<&str>, end: Option<&str>| ListOptions {
            start: start.map(Into::into),
            end: end.map(Into::into),
            prefix: Some("b".into()),
            ..ListOptions::default()
        };
        assert_eq!(
            range(options(Some("a"), None)),
            Some(("b".into(), Some("c".into())))
        );
        assert_eq!(
            range(options(Some("bx"), None)),
            Some(("bx".into(), Some("c".into())))
        );
        assert_eq!(range(options(Some("c"), None)), None);
        assert_eq!(
            range(options(None, Some("bm"))),
            Some(("b".into(), Some("bm".into())))
        );
        assert_eq!(range(options(None, Some("b"))), None);
        assert_eq!(
            range(options(None, Some("z"))),
            Some(("b".into(), Some("c".into())))
        );
    }

    #[test]
    fn start_after_and_errors() {
        let after = ListOptions {
            start_after: Some("k".into()),
            ..ListOptions::default()
        };
        assert_eq!(range(after), Some(("k\0".into(), None)));
        let both = ListOptions {
            start: Some("a".into()),
            start_after: Some("b".into()),
            ..ListOptions::default()
        };
        assert_eq!(both.key_range(), Err(Error::StartAndStartAfter));
        let zero = ListOptions {
            limit: Some(0),
            ..ListOptions::default()
        };
        assert_eq!(zero.key_range(), Err(Error::ListLimitNotPositive));
        let empty = ListOptions {
            start: Some("b".into()),
            end: Some("a".into()),
            ..ListOptions::default()
        };
        assert_eq!(empty.key_range(), Ok(None));
    }
}
