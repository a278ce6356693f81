//! [`WorkflowStep`]: `step.do`, `step.sleep`, `step.sleepUntil` and `step.waitForEvent`, each a
//! durable checkpoint keyed by its name and occurrence (see [`super::run`] for how waiting ends
//! a run and [`super::store`] for the cache).

use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::{ResolvedConfig, StepConfig, WorkflowDuration};
use super::error::{WorkflowError, message};
use super::limits::{DEFAULT_EVENT_TIMEOUT_MS, MAX_SLEEP_MS, MAX_VALUE_BYTES, is_valid_event_type};
use super::run::{Parked, RunCore};
use super::store::{Attempt, StepKind, StepRecord, StepState};

/// What a `step.do` callback is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    /// This attempt's number, from 1.
    pub attempt: u32,
}

/// `wait_for_event`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOptions {
    /// The event type to wait for.
    pub event_type: String,
    /// How long to wait (default 24 hours); past it the step fails with a
    /// `WorkflowTimeoutError` the workflow can catch.
    pub timeout: Option<WorkflowDuration>,
}

impl WaitOptions {
    /// Waits for `event_type` for up to 24 hours.
    pub fn new(event_type: impl Into<String>) -> Self {
        WaitOptions {
            event_type: event_type.into(),
            timeout: None,
        }
    }

    /// The same with this timeout.
    pub fn with_timeout(mut self, timeout: impl Into<WorkflowDuration>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }
}

/// An event `wait_for_event` received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStepEvent<T> {
    /// The payload sent with it.
    pub payload: T,
    /// When it was sent, in epoch milliseconds.
    pub timestamp: i64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
}

/// The step API a workflow's `run` gets.
///
/// Every method is a checkpoint: the first time a run reaches it, it does its work and stores
/// the result; every later replay of `run` gets the stored result back at once. Steps are keyed
/// by name and occurrence, so two calls with the same name in one run are two steps.
pub struct WorkflowStep {
    pub(crate) core: Rc<RunCore>,
}

enum Attempted<T> {
    Done(T),
    Failed(WorkflowError),
}

impl WorkflowStep {
    /// `step.do(name, callback)` with Cloudflare's default retries (5, 10 s, exponential) and
    /// timeout (10 minutes). The callback runs until it succeeds or its retries run out; its
    /// result (JSON, at most 1 MiB) is stored before the next step starts.
    pub async fn do_<T, F>(&self, name: &str, callback: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: AsyncFnMut(StepContext) -> Result<T, WorkflowError>,
    {
        self.do_with(name, StepConfig::default(), callback).await
    }

    /// Reads step `(kind, name, occurrence)` from the cache.
    async fn load(&self, kind: StepKind, name: &str, occurrence: u32) -> Option<StepRecord> {
        let core = &self.core;
        let record = core.storage(core.store.step(kind, name, occurrence)).await;
        if let Some(record) = &record {
            core.known_step(record);
        }
        record
    }

    async fn save(&self, record: &StepRecord) {
        let core = &self.core;
        core.storage(core.store.put_step(record)).await;
    }

    /// `step.do(name, config, callback)`. A [`WorkflowError::non_retryable`] error from the
    /// callback fails the step at once; any other error is retried after
    /// delay·2^(attempt−1) (exponential), delay·attempt (linear) or delay (constant), until
    /// `config.retries.limit` retries have failed. The step's error is then returned, and the
    /// workflow may handle it. Each attempt may run for `config.timeout`.
    pub async fn do_with<T, F>(
        &self,
        name: &str,
        config: StepConfig,
        mut callback: F,
    ) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: AsyncFnMut(StepContext) -> Result<T, WorkflowError>,
    {
        let core = &self.core;
        let _active = core.enter();
        let occurrence = core.occurrence(StepKind::Do, name)?;
        let mut row = match self.load(StepKind::Do, name, occurrence).await {
            Some(row) if row.state == StepState::Complete => {
                return decode_result(name, row.result.as_deref());
            }
            Some(row) if row.state == StepState::Failed => {
                return Err(row
                    .error
                    .unwrap_or_else(|| WorkflowError::new("the step failed")));
            }
            Some(row) => row,
            None => {
                let resolved = config.resolve()?;
                let mut row = core.new_step(StepKind::Do, name, occurrence);
                row.config = serde_json::to_value(resolved).ok();
                row
            }
        };
        let config: ResolvedConfig = match row.config.clone().map(serde_json::from_value) {
            Some(Ok(config)) => config,
            _ => config.resolve()?,
        };
        if row.state == StepState::Running {
            // An attempt started and never ended: the server stopped during it. It counts as a
            // failed attempt, and the next one starts without a delay.
            let error = WorkflowError::internal(message::INTERRUPTED_ATTEMPT);
            let now = core.now_ms();
            if let Some(attempt) = row.attempts.last_mut() {
                attempt.end_ms = Some(now);
                attempt.error = Some(error.clone());
            }
            if row.attempts.len() > config.retries.limit as usize {
                return self.fail(row, error).await;
            }
            row.state = StepState::Retrying;
            row.wake_ms = None;
        }
        loop {
            let retry_at = row.wake_ms;
            core.park(|core| {
                Ok(if core.paused() {
                    Parked::Wait(None)
                } else {
                    match retry_at {
                        Some(at) if core.now_ms() < at => Parked::Wait(Some(at)),
                        _ => Parked::Ready(()),
                    }
                })
            })
            .await?;
            let started = core.now_ms();
            row.attempts.push(Attempt {
                start_ms: started,
                end_ms: None,
                error: None,
            });
            row.state = StepState::Running;
            row.wake_ms = None;
            self.save(&row).await;
            let attempt = u32::try_from(row.attempts.len()).unwrap_or(u32::MAX);
            core.callback_starts();
            let deadline =
                started.saturating_add(i64::try_from(config.timeout).unwrap_or(i64::MAX));
            let sleep = core.clock.sleep_until(deadline);
            let outcome = tokio::select! {
                result = callback(StepContext { attempt }) => match result {
                    Ok(value) => Attempted::Done(value),
                    Err(error) => Attempted::Failed(error),
                },
                () = sleep => Attempted::Failed(WorkflowError::timeout(config.timeout)),
            };
            let now = core.now_ms();
            let error = match outcome {
                Attempted::Done(value) => match serde_json::to_string(&value) {
                    Ok(json) if json.len() <= MAX_VALUE_BYTES => {
                        if let Some(attempt) = row.attempts.last_mut() {
                            attempt.end_ms = Some(now);
                        }
                        row.state = StepState::Complete;
                        row.result = Some(json);
                        row.end_ms = Some(now);
                        self.save(&row).await;
                        core.sync().await;
                        core.metrics.step_completed();
                        return Ok(value);
                    }
                    Ok(_) => {
                        // Retrying cannot make the same result smaller: the step fails now.
                        let error =
                            WorkflowError::internal(message::output_too_large(name, occurrence));
                        if let Some(attempt) = row.attempts.last_mut() {
                            attempt.end_ms = Some(now);
                            attempt.error = Some(error.clone());
                        }
                        return self.fail(row, error).await;
                    }
                    Err(_) => {
                        let error = WorkflowError::fatal(message::not_serialisable(name));
                        if let Some(attempt) = row.attempts.last_mut() {
                            attempt.end_ms = Some(now);
                            attempt.error = Some(error.clone());
                        }
                        let _ = self.fail::<()>(row, error).await;
                        return core
                            .abort(WorkflowError::fatal(message::instance_not_serialisable(
                                name,
                            )))
                            .await;
                    }
                },
                Attempted::Failed(error) => error,
            };
            if let Some(attempt) = row.attempts.last_mut() {
                attempt.end_ms = Some(now);
                attempt.error = Some(error.clone());
            }
            if error.is_non_retryable() || attempt > config.retries.limit {
                return self.fail(row, error).await;
            }
            let delay = i64::try_from(config.retry_delay_ms(attempt)).unwrap_or(i64::MAX);
            row.state = StepState::Retrying;
            row.wake_ms = Some(now.saturating_add(delay));
            self.save(&row).await;
        }
    }

    /// Stores a step's final failure, durably, and returns it.
    async fn fail<T>(&self, mut row: StepRecord, error: WorkflowError) -> Result<T, WorkflowError> {
        let core = &self.core;
        row.state = StepState::Failed;
        row.error = Some(error.clone());
        row.end_ms = Some(core.now_ms());
        self.save(&row).await;
        core.sync().await;
        Err(error)
    }

    /// `step.sleep(name, duration)`: the instance waits, holding no memory, and goes on not
    /// before `duration` has passed. Durations are milliseconds or text (`"24 hours"`), at most
    /// 365 days.
    pub async fn sleep(
        &self,
        name: &str,
        duration: impl Into<WorkflowDuration>,
    ) -> Result<(), WorkflowError> {
        let duration = duration.into();
        self.sleep_step(name, |now| {
            let ms = duration.to_millis()?;
            if ms > MAX_SLEEP_MS {
                return Err(WorkflowError::new(
                    "step.sleep's duration must be at most 365 days",
                ));
            }
            Ok(now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
        })
        .await
    }

    /// `step.sleepUntil(name, at)`: sleeps until `at_ms` (epoch milliseconds), which must not
    /// be in the past when the step is first reached, nor more than 365 days ahead.
    pub async fn sleep_until(&self, name: &str, at_ms: i64) -> Result<(), WorkflowError> {
        self.sleep_step(name, |now| {
            if at_ms < now {
                return Err(WorkflowError::new(message::SLEEP_IN_THE_PAST));
            }
            if at_ms - now > i64::try_from(MAX_SLEEP_MS).unwrap_or(i64::MAX) {
                return Err(WorkflowError::new(
                    "step.sleepUntil's time must be at most 365 days ahead",
                ));
            }
            Ok(at_ms)
        })
        .await
    }

    async fn sleep_step(
        &self,
        name: &str,
        wake_at: impl FnOnce(i64) -> Result<i64, WorkflowError>,
    ) -> Result<(), WorkflowError> {
        let core = &self.core;
        let _active = core.enter();
        let occurrence = core.occurrence(StepKind::Sleep, name)?;
        let mut row = match self.load(StepKind::Sleep, name, occurrence).await {
            Some(row) if row.state == StepState::Complete => return Ok(()),
            Some(row) => row,
            None => {
                let wake = wake_at(core.now_ms())?;
                let mut row = core.new_step(StepKind::Sleep, name, occurrence);
                row.wake_ms = Some(wake);
                self.save(&row).await;
                row
            }
        };
        let wake = row.wake_ms.unwrap_or(i64::MIN);
        core.park(|core| {
            Ok(if core.paused() {
                Parked::Wait(None)
            } else if core.now_ms() < wake {
                Parked::Wait(Some(wake))
            } else {
                Parked::Ready(())
            })
        })
        .await?;
        row.state = StepState::Complete;
        row.end_ms = Some(core.now_ms());
        self.save(&row).await;
        Ok(())
    }

    /// `step.waitForEvent(name, {type, timeout})`: waits for an event of `options.event_type`
    /// sent with `send_event`, holding no memory. Events sent before the instance waits are
    /// kept and delivered in order. Past the timeout the step fails with a
    /// `WorkflowTimeoutError`, which the workflow can handle.
    pub async fn wait_for_event<T: DeserializeOwned>(
        &self,
        name: &str,
        options: WaitOptions,
    ) -> Result<WorkflowStepEvent<T>, WorkflowError> {
        let core = &self.core;
        let _active = core.enter();
        let occurrence = core.occurrence(StepKind::WaitForEvent, name)?;
        let (mut row, event_type, timeout_ms) =
            match self.load(StepKind::WaitForEvent, name, occurrence).await {
                Some(row) if row.state == StepState::Complete => {
                    return decode_result(name, row.result.as_deref());
                }
                Some(row) if row.state == StepState::Failed => {
                    return Err(row
                        .error
                        .unwrap_or_else(|| WorkflowError::new("the step failed")));
                }
                Some(row) => {
                    let (event_type, timeout_ms) = row
                        .config
                        .clone()
                        .and_then(|config| serde_json::from_value::<(String, u64)>(config).ok())
                        .unwrap_or((options.event_type.clone(), DEFAULT_EVENT_TIMEOUT_MS));
                    (row, event_type, timeout_ms)
                }
                None => {
                    if !is_valid_event_type(&options.event_type) {
                        return Err(WorkflowError::new(
                            super::error::Error::InvalidEventType(options.event_type).to_string(),
                        ));
                    }
                    let timeout_ms = match &options.timeout {
                        Some(timeout) => timeout.to_millis()?,
                        None => DEFAULT_EVENT_TIMEOUT_MS,
                    };
                    let mut row = core.new_step(StepKind::WaitForEvent, name, occurrence);
                    row.wake_ms = Some(
                        row.start_ms
                            .saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX)),
                    );
                    row.config = serde_json::to_value((&options.event_type, timeout_ms)).ok();
                    self.save(&row).await;
                    (row, options.event_type, timeout_ms)
                }
            };
        let deadline = row.wake_ms.unwrap_or(i64::MAX);
        let received = core
            .park(|core| {
                if core.paused() {
                    return Ok(Parked::Wait(None));
                }
                match core.store.take_event(&event_type) {
                    Err(error) => Err(WorkflowError::internal(error.message)),
                    Ok(Some(event)) => Ok(Parked::Ready(Some(event))),
                    Ok(None) if core.now_ms() >= deadline => Ok(Parked::Ready(None)),
                    Ok(None) => Ok(Parked::Wait(Some(deadline))),
                }
            })
            .await;
        let received = match received {
            Ok(received) => received,
            Err(error) => return core.abort(error).await,
        };
        row.end_ms = Some(core.now_ms());
        match received {
            Some(event) => {
                let result = format!(
                    "{{\"payload\":{},\"timestamp\":{},\"type\":{}}}",
                    event.payload,
                    event.timestamp_ms,
                    serde_json::Value::String(event_type.clone())
                );
                row.state = StepState::Complete;
                row.result = Some(result);
                self.save(&row).await;
                core.sync().await;
                decode_result(name, row.result.as_deref())
            }
            None => {
                let error = WorkflowError::timeout(timeout_ms);
                row.state = StepState::Failed;
                row.error = Some(error.clone());
                self.save(&row).await;
                core.sync().await;
                Err(error)
            }
        }
    }
}

fn decode_result<T: DeserializeOwned>(name: &str, json: Option<&str>) -> Result<T, WorkflowError> {
    serde_json::from_str(json.unwrap_or("null")).map_err(|error| {
        WorkflowError::new(format!(
            "the stored result of step \"{name}\" is not the type expected: {error}"
        ))
    })
}
