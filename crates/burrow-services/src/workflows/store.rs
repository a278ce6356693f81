//! An instance's SQLite tables and every statement the instance runs on them.
//!
//! # Tables
//! ```sql
//! wf_meta(id = 1, workflow, instance, params, status, output, error, created_ms, started_ms,
//!         ended_ms, modified_ms, paused_ms, pause_requested, wake_ms, has_slot, update_seq)
//! wf_steps(seq PK, kind, name, occurrence, state, config, result, error, attempts, wake_ms,
//!          start_ms, end_ms, UNIQUE(kind, name, occurrence))
//! wf_attempts(step, attempt, start_ms, end_ms, success, error, PK(step, attempt))
//! wf_events(seq PK, type, payload, timestamp_ms, consumed_by)
//! ```
//! A step is keyed by its kind, its name and its occurrence (the n-th call with that name in
//! one run of `run`): that is the replay cache. `wake_ms` is when a sleep ends, when a retry may
//! start, or when a `wait_for_event` times out. Events stay in `wf_events` until a
//! `wait_for_event` of their type consumes them (`consumed_by` = the step's `seq`), so an event
//! sent before anyone waits for it is not lost. Values (params, results, payloads, output) are
//! JSON text; errors are `{"name","message"}` JSON.

use burrow_runtime::Storage;
use burrow_runtime::guest::ObjectError;
use burrow_storage::database::{Database, Error as DbError};
use burrow_storage::sql::Value;

use super::error::WorkflowError;
use super::status::Status;

const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS wf_meta(id INTEGER PRIMARY KEY CHECK (id = 1), workflow TEXT NOT NULL, \
instance TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, output TEXT, error TEXT, \
created_ms INTEGER NOT NULL, started_ms INTEGER, ended_ms INTEGER, modified_ms INTEGER NOT NULL, \
paused_ms INTEGER, pause_requested INTEGER NOT NULL DEFAULT 0, wake_ms INTEGER, \
has_slot INTEGER NOT NULL DEFAULT 0, update_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS wf_steps(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, \
name TEXT NOT NULL, occurrence INTEGER NOT NULL, state TEXT NOT NULL, config TEXT, result TEXT, \
error TEXT, attempts INTEGER NOT NULL DEFAULT 0, wake_ms INTEGER, start_ms INTEGER NOT NULL, \
end_ms INTEGER, UNIQUE(kind, name, occurrence));
CREATE TABLE IF NOT EXISTS wf_attempts(step INTEGER NOT NULL, attempt INTEGER NOT NULL, \
start_ms INTEGER NOT NULL, end_ms INTEGER, success INTEGER, error TEXT, \
PRIMARY KEY(step, attempt)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wf_events(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, \
payload TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, consumed_by INTEGER);
CREATE INDEX IF NOT EXISTS wf_events_pending ON wf_events(type, seq) WHERE consumed_by IS NULL";

const SELECT_META: &str = "SELECT workflow, instance, params, status, output, error, created_ms, \
started_ms, ended_ms, modified_ms, paused_ms, pause_requested, wake_ms, has_slot, update_seq \
FROM wf_meta WHERE id = 1";
const INSERT_META: &str = "INSERT INTO wf_meta(id, workflow, instance, params, status, \
created_ms, modified_ms, has_slot) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?5, ?6)";
const UPDATE_META: &str = "UPDATE wf_meta SET status = ?1, output = ?2, error = ?3, \
started_ms = ?4, ended_ms = ?5, modified_ms = ?6, paused_ms = ?7, pause_requested = ?8, \
wake_ms = ?9, has_slot = ?10, update_seq = ?11 WHERE id = 1";
const SELECT_STEP: &str = "SELECT seq, state, config, result, error, attempts, wake_ms \
FROM wf_steps WHERE kind = ?1 AND name = ?2 AND occurrence = ?3";
const INSERT_STEP: &str = "INSERT INTO wf_steps(kind, name, occurrence, state, config, wake_ms, \
start_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq";
const START_ATTEMPT_STEP: &str =
    "UPDATE wf_steps SET state = 'running', attempts = ?2, wake_ms = NULL WHERE seq = ?1";
const INSERT_ATTEMPT: &str =
    "INSERT OR REPLACE INTO wf_attempts(step, attempt, start_ms) VALUES (?1, ?2, ?3)";
const FINISH_ATTEMPT: &str = "UPDATE wf_attempts SET end_ms = ?3, success = ?4, error = ?5 \
WHERE step = ?1 AND attempt = ?2";
const COMPLETE_STEP: &str =
    "UPDATE wf_steps SET state = 'complete', result = ?2, end_ms = ?3 WHERE seq = ?1";
const FAIL_STEP: &str =
    "UPDATE wf_steps SET state = 'failed', error = ?2, end_ms = ?3 WHERE seq = ?1";
const RETRY_STEP: &str = "UPDATE wf_steps SET state = 'retrying', wake_ms = ?2 WHERE seq = ?1";
const TAKE_EVENT: &str = "UPDATE wf_events SET consumed_by = ?2 WHERE seq = (SELECT seq \
FROM wf_events WHERE type = ?1 AND consumed_by IS NULL ORDER BY seq LIMIT 1) \
RETURNING payload, timestamp_ms";
const INSERT_EVENT: &str = "INSERT INTO wf_events(type, payload, timestamp_ms) VALUES (?1, ?2, ?3)";
const WIPE_RUN: &str = "DELETE FROM wf_steps; DELETE FROM wf_attempts; DELETE FROM wf_events";
const SHIFT_TIMERS: &str = "UPDATE wf_steps SET wake_ms = wake_ms + ?1 \
WHERE wake_ms IS NOT NULL AND state IN ('waiting', 'retrying')";
const SELECT_STEPS: &str = "SELECT seq, kind, name, state, config, result, error, wake_ms, \
start_ms, end_ms FROM wf_steps ORDER BY seq";
const SELECT_ATTEMPTS: &str =
    "SELECT step, start_ms, end_ms, success, error FROM wf_attempts ORDER BY step, attempt";

/// Step kinds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StepKind {
    Do,
    Sleep,
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

/// Step states, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepState {
    /// Not started, or between attempts (`retrying`), or sleeping/waiting (`waiting`).
    Waiting,
    Retrying,
    /// An attempt started and has not ended.
    Running,
    Complete,
    Failed,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::Retrying => "retrying",
            StepState::Running => "running",
            StepState::Complete => "complete",
            StepState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> StepState {
        match text {
            "retrying" => StepState::Retrying,
            "running" => StepState::Running,
            "complete" => StepState::Complete,
            "failed" => StepState::Failed,
            _ => StepState::Waiting,
        }
    }
}

/// `wf_meta`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub(crate) workflow: String,
    pub(crate) instance: String,
    pub(crate) params: String,
    pub(crate) status: Status,
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
    pub(crate) update_seq: i64,
}

/// One step's row, as a run needs it.
#[derive(Debug, Clone)]
pub(crate) struct StepRow {
    pub(crate) seq: i64,
    pub(crate) state: StepState,
    pub(crate) config: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<WorkflowError>,
    pub(crate) attempts: u32,
    pub(crate) wake_ms: Option<i64>,
}

/// One step's row, for the history.
#[derive(Debug, Clone)]
pub(crate) struct HistoryStep {
    pub(crate) seq: i64,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) state: StepState,
    pub(crate) config: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<WorkflowError>,
    pub(crate) wake_ms: Option<i64>,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
}

/// One attempt's row, for the history.
#[derive(Debug, Clone)]
pub(crate) struct HistoryAttempt {
    pub(crate) step: i64,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: Option<i64>,
    pub(crate) success: Option<bool>,
    pub(crate) error: Option<WorkflowError>,
}

/// An event taken by a `wait_for_event`.
#[derive(Debug, Clone)]
pub(crate) struct TakenEvent {
    pub(crate) payload: String,
    pub(crate) timestamp_ms: i64,
}

/// The instance's tables, over its storage. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    storage: Storage,
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Blob(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Integer(n) => n.to_string(),
        _ => String::new(),
    }
}

fn optional_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(text(other)),
    }
}

fn integer(value: &Value) -> i64 {
    match value {
        Value::Integer(n) => *n,
        _ => 0,
    }
}

fn optional_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

fn optional_error(value: &Value) -> Option<WorkflowError> {
    let json = optional_text(value)?;
    Some(serde_json::from_str(&json).unwrap_or_else(|_| WorkflowError::new(json)))
}

fn error_json(error: &WorkflowError) -> Value {
    Value::Text(serde_json::to_string(error).unwrap_or_default())
}

fn optional(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::Integer)
}

fn optional_string(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |text| Value::Text(text.to_owned()))
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

    /// Creates the tables (idempotent).
    pub(crate) fn prepare(&self) -> Result<(), ObjectError> {
        self.with(|db| db.exec(SCHEMA, &[]).map(drop))
    }

    pub(crate) fn meta(&self) -> Result<Option<Meta>, ObjectError> {
        self.with(|db| {
            let rows = db.exec(SELECT_META, &[])?.rows;
            Ok(rows.first().map(|row| Meta {
                workflow: text(&row[0]),
                instance: text(&row[1]),
                params: text(&row[2]),
                status: text(&row[3]).parse().unwrap_or(Status::Unknown),
                output: optional_text(&row[4]),
                error: optional_error(&row[5]),
                created_ms: integer(&row[6]),
                started_ms: optional_integer(&row[7]),
                ended_ms: optional_integer(&row[8]),
                modified_ms: integer(&row[9]),
                paused_ms: optional_integer(&row[10]),
                pause_requested: integer(&row[11]) != 0,
                wake_ms: optional_integer(&row[12]),
                has_slot: integer(&row[13]) != 0,
                update_seq: integer(&row[14]),
            }))
        })
    }

    pub(crate) fn insert_meta(
        &self,
        workflow: &str,
        instance: &str,
        params: &str,
        created_ms: i64,
        has_slot: bool,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                INSERT_META,
                &[
                    Value::Text(workflow.to_owned()),
                    Value::Text(instance.to_owned()),
                    Value::Text(params.to_owned()),
                    Value::Text(Status::Queued.as_str().to_owned()),
                    Value::Integer(created_ms),
                    Value::Integer(i64::from(has_slot)),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn save_meta(&self, meta: &Meta) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                UPDATE_META,
                &[
                    Value::Text(meta.status.as_str().to_owned()),
                    optional_string(meta.output.as_deref()),
                    meta.error.as_ref().map_or(Value::Null, error_json),
                    optional(meta.started_ms),
                    optional(meta.ended_ms),
                    Value::Integer(meta.modified_ms),
                    optional(meta.paused_ms),
                    Value::Integer(i64::from(meta.pause_requested)),
                    optional(meta.wake_ms),
                    Value::Integer(i64::from(meta.has_slot)),
                    Value::Integer(meta.update_seq),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn step(
        &self,
        kind: StepKind,
        name: &str,
        occurrence: u32,
    ) -> Result<Option<StepRow>, ObjectError> {
        self.with(|db| {
            let rows = db
                .exec(
                    SELECT_STEP,
                    &[
                        Value::Text(kind.as_str().to_owned()),
                        Value::Text(name.to_owned()),
                        Value::Integer(i64::from(occurrence)),
                    ],
                )?
                .rows;
            Ok(rows.first().map(|row| StepRow {
                seq: integer(&row[0]),
                state: StepState::parse(&text(&row[1])),
                config: optional_text(&row[2]),
                result: optional_text(&row[3]),
                error: optional_error(&row[4]),
                attempts: u32::try_from(integer(&row[5])).unwrap_or(0),
                wake_ms: optional_integer(&row[6]),
            }))
        })
    }

    pub(crate) fn insert_step(
        &self,
        kind: StepKind,
        name: &str,
        occurrence: u32,
        config: Option<&str>,
        wake_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<StepRow, ObjectError> {
        let seq = self.with(|db| {
            let rows = db
                .exec(
                    INSERT_STEP,
                    &[
                        Value::Text(kind.as_str().to_owned()),
                        Value::Text(name.to_owned()),
                        Value::Integer(i64::from(occurrence)),
                        Value::Text(StepState::Waiting.as_str().to_owned()),
                        optional_string(config),
                        optional(wake_ms),
                        Value::Integer(now_ms),
                    ],
                )?
                .rows;
            Ok(rows.first().map_or(0, |row| integer(&row[0])))
        })?;
        Ok(StepRow {
            seq,
            state: StepState::Waiting,
            config: config.map(str::to_owned),
            result: None,
            error: None,
            attempts: 0,
            wake_ms,
        })
    }

    pub(crate) fn start_attempt(
        &self,
        step: i64,
        attempt: u32,
        now_ms: i64,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                START_ATTEMPT_STEP,
                &[Value::Integer(step), Value::Integer(i64::from(attempt))],
            )?;
            db.exec(
                INSERT_ATTEMPT,
                &[
                    Value::Integer(step),
                    Value::Integer(i64::from(attempt)),
                    Value::Integer(now_ms),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn finish_attempt(
        &self,
        step: i64,
        attempt: u32,
        now_ms: i64,
        error: Option<&WorkflowError>,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                FINISH_ATTEMPT,
                &[
                    Value::Integer(step),
                    Value::Integer(i64::from(attempt)),
                    Value::Integer(now_ms),
                    Value::Integer(i64::from(error.is_none())),
                    error.map_or(Value::Null, error_json),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn complete_step(
        &self,
        step: i64,
        result: &str,
        now_ms: i64,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                COMPLETE_STEP,
                &[
                    Value::Integer(step),
                    Value::Text(result.to_owned()),
                    Value::Integer(now_ms),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn fail_step(
        &self,
        step: i64,
        error: &WorkflowError,
        now_ms: i64,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                FAIL_STEP,
                &[
                    Value::Integer(step),
                    error_json(error),
                    Value::Integer(now_ms),
                ],
            )
            .map(drop)
        })
    }

    pub(crate) fn retry_step(&self, step: i64, retry_at_ms: i64) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                RETRY_STEP,
                &[Value::Integer(step), Value::Integer(retry_at_ms)],
            )
            .map(drop)
        })
    }

    /// Consumes the oldest pending event of `event_type` for step `step`.
    pub(crate) fn take_event(
        &self,
        event_type: &str,
        step: i64,
    ) -> Result<Option<TakenEvent>, ObjectError> {
        self.with(|db| {
            let rows = db
                .exec(
                    TAKE_EVENT,
                    &[Value::Text(event_type.to_owned()), Value::Integer(step)],
                )?
                .rows;
            Ok(rows.first().map(|row| TakenEvent {
                payload: text(&row[0]),
                timestamp_ms: integer(&row[1]),
            }))
        })
    }

    pub(crate) fn insert_event(
        &self,
        event_type: &str,
        payload: &str,
        timestamp_ms: i64,
    ) -> Result<(), ObjectError> {
        self.with(|db| {
            db.exec(
                INSERT_EVENT,
                &[
                    Value::Text(event_type.to_owned()),
                    Value::Text(payload.to_owned()),
                    Value::Integer(timestamp_ms),
                ],
            )
            .map(drop)
        })
    }

    /// Forgets every step, attempt and event (`restart`).
    pub(crate) fn wipe_run(&self) -> Result<(), ObjectError> {
        self.with(|db| db.exec(WIPE_RUN, &[]).map(drop))
    }

    /// Moves every pending timer `by_ms` later (`resume` after a pause, as Miniflare does).
    pub(crate) fn shift_timers(&self, by_ms: i64) -> Result<(), ObjectError> {
        self.with(|db| db.exec(SHIFT_TIMERS, &[Value::Integer(by_ms)]).map(drop))
    }

    pub(crate) fn history(&self) -> Result<(Vec<HistoryStep>, Vec<HistoryAttempt>), ObjectError> {
        self.with(|db| {
            let steps = db
                .exec(SELECT_STEPS, &[])?
                .rows
                .iter()
                .map(|row| HistoryStep {
                    seq: integer(&row[0]),
                    kind: text(&row[1]),
                    name: text(&row[2]),
                    state: StepState::parse(&text(&row[3])),
                    config: optional_text(&row[4]),
                    result: optional_text(&row[5]),
                    error: optional_error(&row[6]),
                    wake_ms: optional_integer(&row[7]),
                    start_ms: integer(&row[8]),
                    end_ms: optional_integer(&row[9]),
                })
                .collect();
            let attempts = db
                .exec(SELECT_ATTEMPTS, &[])?
                .rows
                .iter()
                .map(|row| HistoryAttempt {
                    step: integer(&row[0]),
                    start_ms: integer(&row[1]),
                    end_ms: optional_integer(&row[2]),
                    success: optional_integer(&row[3]).map(|n| n != 0),
                    error: optional_error(&row[4]),
                })
                .collect();
            Ok((steps, attempts))
        })
    }

    /// Deletes everything the instance stored, its alarm included (retention).
    pub(crate) fn purge(&self) -> Result<(), ObjectError> {
        self.storage.delete_all()
    }
}
