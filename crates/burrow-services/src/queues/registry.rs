//! The node's list of queues and their settings: the `__burrow_queues` system class, one object
//! (`registry`) holding a row per queue.
//!
//! A queue's partition count is fixed when it is created, because its messages live in those
//! partitions; creating an existing queue returns the settings it already has.

use super::error::Error;
use super::limits::{
    DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_BACKLOG_MESSAGES, DEFAULT_RETENTION_SECONDS,
    MAX_DELAY_SECONDS, MAX_PARTITIONS, MAX_RETENTION_SECONDS, MIN_RETENTION_SECONDS,
};
use super::wire::{Reader, WireError, Writer};
use burrow_runtime::ObjectContext;
use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{
    AlarmInfo, ObjectClass, ObjectError, ObjectInstance, Request, Response,
};
use burrow_storage::sql::Value;
use bytes::Bytes;
use std::rc::Rc;

/// The system class name of the registry.
pub const CLASS_NAME: &str = "__burrow_queues";
/// The registry object's name.
pub(crate) const OBJECT_NAME: &str = "registry";

/// A queue's own settings (Cloudflare's queue settings plus Burrow's bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Default delay of every message sent to the queue, in seconds (0-43,200).
    pub delivery_delay_seconds: u32,
    /// How long an unacknowledged message is kept, in seconds (60 s to 14 days; default 4 days).
    pub retention_seconds: u32,
    /// Most messages held per partition before sends fail with `Storage Limit Exceeded`.
    pub max_backlog_messages: u64,
    /// Most body bytes held per partition before sends fail with `Storage Limit Exceeded`.
    pub max_backlog_bytes: u64,
    /// Partition objects the queue's messages are spread over (fixed at creation, 1-64).
    pub partitions: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            delivery_delay_seconds: 0,
            retention_seconds: DEFAULT_RETENTION_SECONDS,
            max_backlog_messages: DEFAULT_MAX_BACKLOG_MESSAGES,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            partitions: 1,
        }
    }
}

impl QueueSettings {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), Error> {
        let problem = if self.delivery_delay_seconds > MAX_DELAY_SECONDS {
            format!(
                "delivery_delay {} is over {MAX_DELAY_SECONDS} seconds",
                self.delivery_delay_seconds
            )
        } else if !(MIN_RETENTION_SECONDS..=MAX_RETENTION_SECONDS).contains(&self.retention_seconds)
        {
            format!(
                "message_retention_period {} is outside {MIN_RETENTION_SECONDS}-{MAX_RETENTION_SECONDS} seconds",
                self.retention_seconds
            )
        } else if self.max_backlog_messages == 0 || self.max_backlog_bytes == 0 {
            "backlog bounds must be positive".to_string()
        } else if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            format!(
                "partitions {} is outside 1-{MAX_PARTITIONS}",
                self.partitions
            )
        } else {
            return Ok(());
        };
        Err(Error::InvalidSettings(problem))
    }

    fn put(&self, writer: &mut Writer) {
        writer
            .u32(self.delivery_delay_seconds)
            .u32(self.retention_seconds)
            .u64(self.max_backlog_messages)
            .u64(self.max_backlog_bytes)
            .u32(self.partitions);
    }

    fn get(reader: &mut Reader) -> Result<QueueSettings, WireError> {
        Ok(QueueSettings {
            delivery_delay_seconds: reader.u32()?,
            retention_seconds: reader.u32()?,
            max_backlog_messages: reader.u64()?,
            max_backlog_bytes: reader.u64()?,
            partitions: reader.u32()?,
        })
    }
}

/// A queue as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The name.
    pub name: String,
    /// When it was created, in epoch milliseconds.
    pub created_ms: i64,
    /// Its settings.
    pub settings: QueueSettings,
}

impl QueueInfo {
    fn put(&self, writer: &mut Writer) {
        writer.str(&self.name).i64(self.created_ms);
        self.settings.put(writer);
    }

    fn get(reader: &mut Reader) -> Result<QueueInfo, WireError> {
        Ok(QueueInfo {
            name: reader.str()?,
            created_ms: reader.i64()?,
            settings: QueueSettings::get(reader)?,
        })
    }
}

pub(crate) mod method {
    pub(crate) const CREATE: &str = "create";
    pub(crate) const GET: &str = "get";
    pub(crate) const LIST: &str = "list";
    pub(crate) const DELETE: &str = "delete";
}

pub(crate) fn encode_create(name: &str, settings: &QueueSettings) -> Bytes {
    let mut writer = Writer::with_capacity(64);
    writer.str(name);
    settings.put(&mut writer);
    writer.finish()
}

pub(crate) fn encode_name(name: &str) -> Bytes {
    let mut writer = Writer::with_capacity(name.len() + 4);
    writer.str(name);
    writer.finish()
}

/// `create`'s answer: the queue, and whether this call created it.
pub(crate) fn decode_created(bytes: Bytes) -> Result<(QueueInfo, bool), WireError> {
    let mut reader = Reader::new(bytes);
    let info = QueueInfo::get(&mut reader)?;
    let created = reader.bool()?;
    reader.end()?;
    Ok((info, created))
}

pub(crate) fn decode_found(bytes: Bytes) -> Result<Option<QueueInfo>, WireError> {
    let mut reader = Reader::new(bytes);
    let info = if reader.bool()? {
        Some(QueueInfo::get(&mut reader)?)
    } else {
        None
    };
    reader.end()?;
    Ok(info)
}

pub(crate) fn decode_deleted(bytes: Bytes) -> Result<bool, WireError> {
    let mut reader = Reader::new(bytes);
    let deleted = reader.bool()?;
    reader.end()?;
    Ok(deleted)
}

pub(crate) fn decode_list(bytes: Bytes) -> Result<Vec<QueueInfo>, WireError> {
    let mut reader = Reader::new(bytes);
    let count = reader.count(40)?;
    let queues = (0..count)
        .map(|_| QueueInfo::get(&mut reader))
        .collect::<Result<_, _>>()?;
    reader.end()?;
    Ok(queues)
}

/// The registry class.
#[derive(Debug, Default)]
pub struct RegistryClass;

impl ObjectClass for RegistryClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        ctx.storage().with(|db| {
            db.exec(
                "CREATE TABLE IF NOT EXISTS queues(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, settings BLOB NOT NULL) WITHOUT ROWID",
                &[],
            )
            .map(drop)
        })?;
        Ok(Rc::new(Registry { ctx }))
    }
}

struct Registry {
    ctx: ObjectContext,
}

fn wire(error: WireError) -> ObjectError {
    ObjectError::internal(error.to_string())
}

fn row_info(row: &[Value]) -> Result<QueueInfo, ObjectError> {
    let (Value::Text(name), Value::Integer(created_ms), Value::Blob(settings)) =
        (&row[0], &row[1], &row[2])
    else {
        return Err(ObjectError::internal("corrupt queue registry row"));
    };
    let mut reader = Reader::new(Bytes::from(settings.clone()));
    Ok(QueueInfo {
        name: name.clone(),
        created_ms: *created_ms,
        settings: QueueSettings::get(&mut reader).map_err(wire)?,
    })
}

impl Registry {
    fn find(&self, name: &str) -> Result<Option<QueueInfo>, ObjectError> {
        let rows = self.ctx.storage().with(|db| {
            db.exec(
                "SELECT name, created_ms, settings FROM queues WHERE name = ?1",
                &[Value::Text(name.to_string())],
            )
        })?;
        rows.rows.first().map(|row| row_info(row)).transpose()
    }

    fn run(&self, method: &str, args: Bytes) -> Result<Bytes, ObjectError> {
        let mut reader = Reader::new(args);
        let mut writer = Writer::with_capacity(64);
        match method {
            method::CREATE => {
                let name = reader.str().map_err(wire)?;
                let settings = QueueSettings::get(&mut reader).map_err(wire)?;
                reader.end().map_err(wire)?;
                let (info, created) = match self.find(&name)? {
                    Some(info) => (info, false),
                    None => {
                        let info = QueueInfo {
                            name,
                            created_ms: self.ctx.now_ms(),
                            settings,
                        };
                        let mut blob = Writer::with_capacity(32);
                        info.settings.put(&mut blob);
                        self.ctx.storage().with(|db| {
                            db.exec(
                                "INSERT INTO queues(name, created_ms, settings) VALUES (?1, ?2, ?3)",
                                &[
                                    Value::Text(info.name.clone()),
                                    Value::Integer(info.created_ms),
                                    Value::Blob(blob.finish().to_vec()),
                                ],
                            )
                            .map(drop)
                        })?;
                        (info, true)
                    }
                };
                info.put(&mut writer);
                writer.bool(created);
            }
            method::GET => {
                let name = reader.str().map_err(wire)?;
                reader.end().map_err(wire)?;
                match self.find(&name)? {
                    Some(info) => {
                        writer.bool(true);
                        info.put(&mut writer);
                    }
                    None => {
                        writer.bool(false);
                    }
                }
            }
            method::DELETE => {
                let name = reader.str().map_err(wire)?;
                reader.end().map_err(wire)?;
                let deleted = self.ctx.storage().with(|db| {
                    db.exec(
                        "DELETE FROM queues WHERE name = ?1",
                        &[Value::Text(name.clone())],
                    )
                })?;
                writer.bool(deleted.rows_written > 0);
            }
            method::LIST => {
                let rows = self.ctx.storage().with(|db| {
                    db.exec(
                        "SELECT name, created_ms, settings FROM queues ORDER BY name",
                        &[],
                    )
                })?;
                writer.u32(rows.rows.len() as u32);
                for row in &rows.rows {
                    row_info(row)?.put(&mut writer);
                }
            }
            other => {
                return Err(ObjectError::internal(format!(
                    "queue registry has no method {other:?}"
                )));
            }
        }
        Ok(writer.finish())
    }
}

impl ObjectInstance for Registry {
    fn fetch(
        self: Rc<Self>,
        _request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>> {
        Box::pin(std::future::ready(Err(ObjectError::internal(
            "the queue registry has no fetch handler",
        ))))
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        let result = self.run(&method, args);
        Box::pin(std::future::ready(result))
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_ranges_are_checked() {
        assert!(QueueSettings::default().validate().is_ok());
        let bad = [
            QueueSettings {
                delivery_delay_seconds: 43_201,
                ..QueueSettings::default()
            },
            QueueSettings {
                retention_seconds: 59,
                ..QueueSettings::default()
            },
            QueueSettings {
                partitions: 0,
                ..QueueSettings::default()
            },
        ];
        for settings in bad {
            assert!(matches!(
                settings.validate(),
                Err(Error::InvalidSettings(_))
            ));
        }
    }
}
