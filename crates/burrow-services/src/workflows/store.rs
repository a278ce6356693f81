//! An instance's state in its object's key-value storage, and every read and write the instance
//! makes.
//!
//! # Keys
//! ```text
//! meta                                      Meta, JSON
//! s\0<kind>\0<occurrence>\0<name>           one step: header JSON, then "\n" and its result
//! e\0<sequence, 20 digits>                  one pending event: header JSON, "\n", payload
//! ```
//! A step is keyed by its kind, its name and its occurrence (the n-th call with that name in
//! one run of `run`): that is the replay cache. Its header holds its state, configuration,
//! attempts (start, end, error each), the time it may go on (`wake_ms`: when a sleep ends, a
//! retry may start, or a `wait_for_event` times out) and `seq`, the order steps were first
//! reached in (the history's order). Results and payloads are stored as the JSON text they
//! are, after the header, so a 1 MiB result is not escaped into the header.
//!
//! An event stays until a `wait_for_event` of its type takes it (the step then holds it as its
//! result), so an event sent before anyone waits for it is not lost.
//!
//! # Why key-value and not tables
//! Every instance is its own object with its own SQLite database, so everything the instance
//! does is paid once per instance: creating tables and preparing statements dominated a
//! 3-step instance's CPU time. The key-value API's few statements are the engine's own,
//! prepared once per connection, and its one table exists in every object already.

use burrow_runtime::Storage;
use burrow_runtime::guest::ObjectError;
use burrow_storage::database::{Database, Error as DbError};
use burrow_storage::kv::ListOptions;
use serde::{Deserialize, Serialize};

use super::error::WorkflowError;
use super::status::Status;

const META: &str = "meta";
const STEP_PREFIX: &str = "s\0";
const EVENT_PREFIX: &str = "e\0";
/// Entries per list call (the engine's bound on keys per call).
const PAGE: usize = 128;

/// Step kinds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum StepKind {
    #[serde(rename = "do")]
    Do,
    #[serde(rename = "sleep")]
    Sleep,
    #[serde(rename = "waitForEvent")]
    WaitForEvent,
}

impl StepKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepKind::Do => "do",
            StepKind::Sleep => "sleep",
            StepKind::WaitForEvent => "waitForEvent",
        }
    }
}

/// Step states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepState {
    /// Sleeping, or waiting for an event.
    Waiting,
    /// Between attempts.
    Retrying,
    /// An attempt started and has not ended.
    Running,
    Complete,
    Failed,
}

/// The instance's state (key `meta`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) workflow: String,
    pub(crate) instance: String,
    /// JSON text.
    pub(crate) params: String,
    pub(crate) status: Status,
    /// JSON text.
    pub(crate) output: Option<String>,
    pub(crate) error: Option<WorkflowError>,
    pub(crate) created_ms: i64,
    pub(crate) started_ms: Option<i64>,
    pub(crate) ended_ms: Option<i64>,
    pub(crate) modified_ms: i64,
    pub(crate) paused_ms: Option<i64>,
    pub(crate) pause_requested: bool,
    pub(crate) wake_ms: Option<i64>,
    pub(crate) has_slot: bool,
    /// The sequence number of the last report to the registry.
    pub(crate) update_seq: i64,
    /// The `seq` the next new step gets.
    pub(crate) next_step: i64,
    /// The sequence number of the next event.
    pub(crate) next_event: i64,
}

/// One attempt of a `do` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
    pub(crate) error: Option<WorkflowError>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepRecord {
    pub(crate) seq: i64,
    pub(crate) kind: StepKind,
    pub(crate) name: String,
    pub(crate) occurrence: u32,
    pub(crate) state: StepState,
    /// `do`: the resolved configuration; `waitForEvent`: `[type, timeout_ms]`.
    pub(crate) config: Option<serde_json::Value>,
    pub(crate) error: Option<WorkflowError>,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) wake_ms: Option<i64>,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
    /// JSON text; stored after the header.
    #[serde(skip)]
    pub(crate) result: Option<String>,
}

impl StepRecord {
    pub(crate) fn new(
        seq: i64,
        kind: StepKind,
        name: &str,
        occurrence: u32,
        now_ms: i64,
    ) -> StepRecord {
        StepRecord {
            seq,
            kind,
            name: name.to_owned(),
            occurrence,
            state: StepState::Waiting,
            config: None,
            error: None,
            attempts: Vec::new(),
            wake_ms: None,
            start_ms: now_ms,
            end_ms: None,
            result: None,
        }
    }
}

/// An event taken by a `wait_for_event`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TakenEvent {
    /// JSON text.
    pub(crate) payload: String,
    pub(crate) timestamp_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct EventHeader {
    #[serde(rename = "type")]
    event_type: String,
    timestamp_ms: i64,
}

fn step_key(kind: StepKind, name: &str, occurrence: u32) -> String {
    format!("{STEP_PREFIX}{}\0{occurrence}\0{name}", kind.as_str())
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ObjectError {
    ObjectError::internal(format!("workflow instance {what} is unreadable: {error}"))
}

/// A header and the raw JSON after it.
fn encode(header: &impl Serialize, body: Option<&str>) -> Result<Vec<u8>, ObjectError> {
    let mut bytes = serde_json::to_vec(header).map_err(|error| corrupt("state", error))?;
    if let Some(body) = body {
        bytes.push(b'\n');
        bytes.extend_from_slice(body.as_bytes());
    }
    Ok(bytes)
}

/// Compact JSON never holds a raw newline, so the first one ends the header.
fn decode<T: for<'de> Deserialize<'de>>(
    what: &str,
    bytes: &[u8],
) -> Result<(T, Option<String>), ObjectError> {
    let (header, body) = match bytes.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    };
    let header = serde_json::from_slice(header).map_err(|error| corrupt(what, error))?;
    let body = body.map(|body| String::from_utf8_lossy(body).into_owned());
    Ok((header, body))
}

/// The instance's storage. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    storage: Storage,
}

impl Store {
    pub(crate) fn new(storage: Storage) -> Store {
        Store { storage }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, DbError>,
    ) -> Result<R, ObjectError> {
        self.storage.with(f)
    }

    /// Every entry under `prefix`, a page at a time.
    fn list_all(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, ObjectError> {
        let mut entries = Vec::new();
        loop {
            let options = ListOptions {
                prefix: Some(prefix.to_owned()),
                start_after: entries
                    .last()
                    .map(|(key, _): &(String, Vec<u8>)| key.clone()),
                limit: Some(PAGE),
                ..ListOptions::default()
            };
            let page = self.with(|db| db.list(&options))?;
            let done = page.len() < PAGE;
            entries.extend(page);
            if done {
                return Ok(entries);
            }
        }
    }

    pub(crate) fn meta(&self) -> Result<Option<Meta>, ObjectError> {
        match self.with(|db| db.get(META))? {
            Some(bytes) => Ok(Some(decode::<Meta>("state", &bytes)?.0)),
            None => Ok(None),
        }
    }

    pub(crate) fn save_meta(&self, meta: &Meta) -> Result<(), ObjectError> {
        let bytes = encode(meta, None)?;
        self.with(|db| db.put(META, &bytes))
    }

    pub(crate) fn step(
        &self,
        kind: StepKind,
        name: &str,
        occurrence: u32,
    ) -> Result<Option<StepRecord>, ObjectError> {
        let key = step_key(kind, name, occurrence);
        match self.with(|db| db.get(&key))? {
            Some(bytes) => {
                let (mut record, result) = decode::<StepRecord>("step", &bytes)?;
                record.result = result;
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn put_step(&self, record: &StepRecord) -> Result<(), ObjectError> {
        let key = step_key(record.kind, &record.name, record.occurrence);
        let bytes = encode(record, record.result.as_deref())?;
        self.with(|db| db.put(&key, &bytes))
    }

    /// Every step, in the order they were first reached.
    pub(crate) fn steps(&self) -> Result<Vec<StepRecord>, ObjectError> {
        let mut steps = self
            .list_all(STEP_PREFIX)?
            .into_iter()
            .map(|(_, bytes)| {
                let (mut record, result) = decode::<StepRecord>("step", &bytes)?;
                record.result = result;
                Ok(record)
            })
            .collect::<Result<Vec<StepRecord>, ObjectError>>()?;
        steps.sort_by_key(|step| (step.seq, step.start_ms));
        Ok(steps)
    }

    /// Consumes the oldest pending event of `event_type`.
    pub(crate) fn take_event(&self, event_type: &str) -> Result<Option<TakenEvent>, ObjectError> {
        for (key, bytes) in self.list_all(EVENT_PREFIX)? {
            let (header, payload) = decode::<EventHeader>("event", &bytes)?;
            if header.event_type == event_type {
                self.with(|db| db.delete(&key).map(drop))?;
                return Ok(Some(TakenEvent {
                    payload: payload.unwrap_or_else(|| "null".to_owned()),
                    timestamp_ms: header.timestamp_ms,
                }));
            }
        }
        Ok(None)
    }

    /// Stores event number `seq` (the caller takes it from `meta.next_event`).
    pub(crate) fn insert_event(
        &self,
        seq: i64,
        event_type: &str,
        payload: &str,
        timestamp_ms: i64,
    ) -> Result<(), ObjectError> {
        let header = EventHeader {
            event_type: event_type.to_owned(),
            timestamp_ms,
        };
        let bytes = encode(&header, Some(payload))?;
        let key = format!("{EVENT_PREFIX}{seq:020}");
        self.with(|db| db.put(&key, &bytes))
    }

    /// Forgets every step and event and the alarm (`restart`); keeps `meta`.
    pub(crate) fn wipe_run(&self, meta: &Meta) -> Result<(), ObjectError> {
        self.with(|db| db.delete_all().map(drop))?;
        self.save_meta(meta)
    }

    /// Moves every pending timer `by_ms` later (`resume` after a pause, as Miniflare does).
    pub(crate) fn shift_timers(&self, by_ms: i64) -> Result<(), ObjectError> {
        for mut step in self.steps()? {
            if let (Some(wake_ms), StepState::Waiting | StepState::Retrying) =
                (step.wake_ms, step.state)
            {
                step.wake_ms = Some(wake_ms.saturating_add(by_ms));
                self.put_step(&step)?;
            }
        }
        Ok(())
    }

    /// Deletes everything the instance stored, its alarm included (retention).
    pub(crate) fn purge(&self) -> Result<(), ObjectError> {
        self.storage.delete_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_raw_bodies_round_trip() {
        let mut record = StepRecord::new(3, StepKind::Do, "fetch \"quoted\"\nname", 2, 100);
        record.result = Some("{\"a\":\"line\\nbreak\"}".to_owned());
        let bytes = encode(&record, record.result.as_deref()).unwrap();
        let (mut back, result) = decode::<StepRecord>("step", &bytes).unwrap();
        back.result = result;
        assert_eq!(back, record);
        let (back, body) = decode::<StepRecord>("step", &encode(&back, None).unwrap()).unwrap();
        assert_eq!(body, None);
        assert_eq!(back.name, record.name);
    }

    #[test]
    fn event_keys_sort_in_sequence_order() {
        assert!(format!("{EVENT_PREFIX}{:020}", 9) < format!("{EVENT_PREFIX}{:020}", 10));
    }
}
