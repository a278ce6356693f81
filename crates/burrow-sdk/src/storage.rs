//! An object's storage from Rust: the SQL API ([`Sql::exec`] → [`Rows`] → [`Row::get`]), the
//! key-value API with serde values, and the alarm. A thin layer over the runtime's
//! `Storage::with`: every call is synchronous and joins the object's current turn, so writes made
//! with no `.await` between them commit together, and nothing the object answers leaves before
//! they are durable.
//!
//! # How key-value values are stored
//! [`Storage::put`] stores a value as its JSON text (`serde_json`), and [`Storage::get`] parses it
//! back: readable with `burrow sql` and `SELECT value FROM _cf_KV`, stable across SDK versions,
//! and the same bytes whatever the Rust type. Use [`Storage::put_bytes`] / [`Storage::get_bytes`]
//! to store bytes as they are. (Cloudflare's JavaScript API stores V8-serialized values; a value
//! written by one guest language is not meant to be read by the other.)

use std::fmt;

use burrow_storage::database::Database;
use burrow_storage::sql::{Cursor, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use burrow_storage::kv::ListOptions;

use crate::error::{Error, Result};

/// One object's storage. Cheap to clone; get it with [`crate::ObjectContext::storage`].
#[derive(Clone)]
pub struct Storage {
    inner: burrow_runtime::Storage,
}

impl Storage {
    pub(crate) fn new(inner: burrow_runtime::Storage) -> Self {
        Storage { inner }
    }

    /// The SQL API.
    pub fn sql(&self) -> Sql {
        Sql {
            storage: self.clone(),
        }
    }

    /// `storage.get(key)`: the value stored under `key`, parsed from JSON.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get_bytes(key)? {
            Some(bytes) => Ok(Some(decode_value(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// `storage.put(key, value)`: stores `value` as JSON.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.put_bytes(key, &bytes)
    }

    /// The bytes stored under `key`, as they are.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.with(|db| db.get(key))?)
    }

    /// Stores `value` under `key` as it is.
    pub fn put_bytes(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(self.inner.with(|db| db.put(key, value))?)
    }

    /// `storage.delete(key)`: whether the key existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.inner.with(|db| db.delete(key))?)
    }

    /// `storage.list(options)`: entries in key order, values parsed from JSON.
    pub fn list<T: DeserializeOwned>(&self, options: &ListOptions) -> Result<Vec<(String, T)>> {
        let entries = self.inner.with(|db| db.list(options))?;
        entries
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode_value(&key, &bytes)?;
                Ok((key, value))
            })
            .collect()
    }

    /// The alarm's time in epoch milliseconds, if one is set.
    pub fn get_alarm(&self) -> Result<Option<i64>> {
        Ok(self.inner.get_alarm()?)
    }

    /// Sets the alarm (replacing any other). A time in the past fires as soon as possible.
    pub fn set_alarm(&self, at_ms: i64) -> Result<()> {
        Ok(self.inner.set_alarm(at_ms)?)
    }

    /// Cancels the alarm.
    pub fn delete_alarm(&self) -> Result<()> {
        Ok(self.inner.delete_alarm()?)
    }

    /// `storage.deleteAll()`: every key, table and the alarm, atomically.
    pub fn delete_all(&self) -> Result<()> {
        Ok(self.inner.delete_all()?)
    }

    /// Commits what is pending and waits until it is durable. Handlers need not call this: the
    /// output gate already holds every reply until the writes before it are durable.
    pub async fn sync(&self) -> Result<()> {
        Ok(self.inner.sync().await?)
    }

    /// Runs `f` on the object's database, for what the helpers do not cover (explicit
    /// transactions, `get_many`, `database_size`). Do not call other storage methods inside `f`.
    pub fn database<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, burrow_storage::database::Error>,
    ) -> Result<R> {
        Ok(self.inner.with(f)?)
    }
}

fn decode_value<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| {
        Error::new(format!(
            "the value of key {key:?} is not the JSON expected: {error}"
        ))
    })
}

/// The SQL API of one object (`ctx.storage.sql`).
#[derive(Clone)]
pub struct Sql {
    storage: Storage,
}

impl Sql {
    /// `sql.exec(query, ...params)`: runs `query` (several statements may be separated by `;`;
    /// `params` bind to the last) and returns the last statement's rows. `params` is `()`, a
    /// tuple of values (`(1, "a")`), or a slice of [`Value`]s.
    pub fn exec(&self, query: &str, params: impl Params) -> Result<Rows> {
        let cursor = params.with_values(|values| {
            self.storage
                .inner
                .with(|db: &mut Database| db.exec(query, values))
        })?;
        Ok(Rows { cursor })
    }

    /// `sql.databaseSize`, in bytes.
    pub fn database_size(&self) -> Result<u64> {
        Ok(self.storage.inner.with(|db| db.database_size())?)
    }
}

/// The rows of one `exec`, materialized.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    cursor: Cursor,
}

impl Rows {
    /// The only row, or Cloudflare's error when there are none or several.
    pub fn one(&self) -> Result<Row<'_>> {
        let values = self.cursor.one()?;
        Ok(Row {
            columns: &self.cursor.column_names,
            values,
        })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// Every row, in order.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.cursor.rows.iter().map(|values| Row {
            columns: &self.cursor.column_names,
            values,
        })
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.cursor.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.cursor.rows.is_empty()
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.cursor.column_names
    }

    /// `cursor.rowsRead` (see `burrow_storage::sql` for how Burrow counts).
    pub fn rows_read(&self) -> u64 {
        self.cursor.rows_read
    }

    /// `cursor.rowsWritten`.
    pub fn rows_written(&self) -> u64 {
        self.cursor.rows_written
    }

    /// The storage layer's cursor.
    pub fn into_cursor(self) -> Cursor {
        self.cursor
    }
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value of column `name` (the first column of that name), converted to `T`.
    pub fn get<T: FromSql>(&self, name: &str) -> Result<T> {
        let index = self
            .columns
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| Error::new(format!("the result has no column {name:?}")))?;
        T::from_sql(&self.values[index]).map_err(|expected| {
            mismatch(&format!("column {name:?}"), expected, &self.values[index])
        })
    }

    /// The value of the column at `index` (from 0), converted to `T`.
    pub fn get_index<T: FromSql>(&self, index: usize) -> Result<T> {
        let value = self.values.get(index).ok_or_else(|| {
            Error::new(format!(
                "the result has {} columns; there is no column {index}",
                self.values.len()
            ))
        })?;
        T::from_sql(value).map_err(|expected| mismatch(&format!("column {index}"), expected, value))
    }

    /// The raw values, in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_map()
            .entries(self.columns.iter().zip(self.values))
            .finish()
    }
}

fn mismatch(what: &str, expected: &str, found: &Value) -> Error {
    let found = match found {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    };
    Error::new(format!("{what}: expected {expected}, found {found}"))
}

/// A Rust value that binds to a SQL parameter.
pub trait ToSql {
    /// The SQL value.
    fn to_sql(&self) -> Value;
}

/// A Rust value read from a SQL column.
pub trait FromSql: Sized {
    /// Converts `value`; on a mismatch, says what was expected ("an integer").
    fn from_sql(value: &Value) -> Result<Self, &'static str>;
}

impl ToSql for Value {
    fn to_sql(&self) -> Value {
        self.clone()
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> Value {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_sql)
    }
}

macro_rules! integer_to_sql {
    ($($type:ty),*) => {$(
        impl ToSql for $type {
            fn to_sql(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_sql!(i8, i16, i32, i64, u8, u16, u32, bool);

impl ToSql for f64 {
    fn to_sql(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToSql for f32 {
    fn to_sql(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}

impl ToSql for str {
    fn to_sql(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToSql for String {
    fn to_sql(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl FromSql for Value {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        Ok(value.clone())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

macro_rules! integer_from_sql {
    ($($type:ty),*) => {$(
        impl FromSql for $type {
            fn from_sql(value: &Value) -> Result<Self, &'static str> {
                match value {
                    Value::Integer(integer) => <$type>::try_from(*integer)
                        .map_err(|_| concat!("an integer that fits ", stringify!($type))),
                    _ => Err("an integer"),
                }
            }
        }
    )*};
}
integer_from_sql!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromSql for bool {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Integer(integer) => Ok(*integer != 0),
            _ => Err("an integer (0 or 1)"),
        }
    }
}

impl FromSql for f64 {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Real(real) => Ok(*real),
            // SQLite stores whole REAL values as integers when it can.
            Value::Integer(integer) => Ok(*integer as f64),
            _ => Err("a number"),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            _ => Err("text"),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Blob(bytes) => Ok(bytes.clone()),
            Value::Text(text) => Ok(text.as_bytes().to_vec()),
            _ => Err("a blob"),
        }
    }
}

/// The parameters of one [`Sql::exec`]: `()`, a tuple of [`ToSql`] values, or a slice of
/// [`Value`]s.
pub trait Params {
    /// Calls `f` with the values, without a heap allocation for tuples.
    fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R;
}

impl Params for &[Value] {
    fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R {
        f(self)
    }
}

impl Params for &Vec<Value> {
    fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R {
        f(self)
    }
}

impl<const N: usize> Params for [Value; N] {
    fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R {
        f(&self)
    }
}

impl Params for () {
    fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R {
        f(&[])
    }
}

macro_rules! tuple_params {
    ($(($($name:ident),+)),+ $(,)?) => {$(
        impl<$($name: ToSql),+> Params for ($($name,)+) {
            #[allow(non_snake_case)] // The tuple's fields are named after their type parameters.
            fn with_values<R>(self, f: impl FnOnce(&[Value]) -> R) -> R {
                let ($($name,)+) = self;
                f(&[$($name.to_sql()),+])
            }
        }
    )+};
}
tuple_params!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_bind_in_order() {
        let values = (1_i64, "a", Some(2.5_f64), None::<i64>, vec![7_u8], true)
            .with_values(|values| values.to_vec());
        assert_eq!(
            values,
            [
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Real(2.5),
                Value::Null,
                Value::Blob(vec![7]),
                Value::Integer(1),
            ]
        );
        assert!(().with_values(|values| values.is_empty()));
    }

    #[test]
    fn rows_convert_columns_and_say_what_went_wrong() {
        let rows = Rows {
            cursor: Cursor {
                column_names: vec!["n".into(), "name".into(), "gone".into()],
                rows: vec![vec![
                    Value::Integer(3),
                    Value::Text("a".into()),
                    Value::Null,
                ]],
                rows_read: 1,
                rows_written: 0,
            },
        };
        let row = rows.one().expect("one row");
        assert_eq!(row.get::<i64>("n").expect("n"), 3);
        assert_eq!(row.get::<f64>("n").expect("n as f64"), 3.0);
        assert_eq!(row.get::<String>("name").expect("name"), "a");
        assert_eq!(row.get::<Option<i64>>("gone").expect("gone"), None);
        assert_eq!(row.get_index::<i64>(0).expect("index 0"), 3);
        let error = row.get::<i64>("name").expect_err("text is not an integer");
        assert_eq!(
            error.message(),
            "column \"name\": expected an integer, found text"
        );
        let error = row.get::<i64>("missing").expect_err("no such column");
        assert_eq!(error.message(), "the result has no column \"missing\"");

        let empty = Rows {
            cursor: Cursor::default(),
        };
        let error = empty.one().expect_err("no rows");
        assert_eq!(
            error.message(),
            "Expected exactly one result from SQL query, but got no results."
        );
    }
}
