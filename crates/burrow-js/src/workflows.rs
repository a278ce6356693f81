//! Workflows in JavaScript: a `[[workflows]]` entry's `class_name` is a class the main module
//! exports (`class X extends WorkflowEntrypoint { async run(event, step) }`), run by the Rust
//! engine of `burrow_services::workflows` through [`JsWorker::workflow_definition`]; and the
//! Workflow binding in `env` (`js/workflow.js` holds the JavaScript half).
//!
//! # One run
//! The engine replays `run` from the top after every wait and restart ([`Definition::run`]).
//! A run here starts `run(event, step)` on the isolate of the instance's shard. Each
//! `step.do`/`sleep`/`sleepUntil`/`waitForEvent` call sends a request (`native.wfStep`) that
//! becomes a call of the engine's [`WorkflowStep`]; this file's run future polls those step
//! futures itself, so the engine's driver sees every step park and ends the run when all of
//! them wait (a sleeping instance holds no JavaScript either: the run's promises are dropped).
//! A `step.do` whose result is not cached runs its callback in JavaScript once per attempt
//! (`internals.workflowCallback`), and its outcome comes back through `native.wfCallbackDone`.
//! Completed steps answer from the engine's cache without calling JavaScript back.
//!
//! Values cross as JSON, the format the engine stores: a step's result, the params, the
//! output and event payloads are what `JSON.stringify` keeps of them (Cloudflare keeps
//! structured clones; a `Date` comes back as its ISO string, `undefined` as `null`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use burrow_runtime::clock::LocalBoxFuture;
use burrow_services::workflows::{
    Backoff, CreateOptions, Definition, INTERNAL, RetryConfig, StepConfig, StepContext,
    WaitOptions, Workflow, WorkflowDuration, WorkflowError, WorkflowEvent, WorkflowStep,
    WorkflowStepEvent,
};
use rquickjs::function::Async;
use rquickjs::{Ctx, Exception, Function, Object};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::JsWorker;
use crate::isolate::{Isolate, Outcome};
use crate::script::Script;

/// The code of workflow runs and the binding (see the module documentation).
pub(crate) const WORKFLOW_JS: &str = include_str!("js/workflow.js");

/// Step calls one run may have waiting to start (a bound on the request queue; the engine's
/// own step limit applies to `step.do` calls as they start).
const MAX_PENDING_REQUESTS: usize = 10_000;

/// A step call from JavaScript.
enum Request {
    Do {
        name: String,
        config: StepConfig,
    },
    Sleep {
        name: String,
        duration: WorkflowDuration,
    },
    SleepUntil {
        name: String,
        at_ms: i64,
    },
    Wait {
        name: String,
        options: WaitOptions,
    },
}

/// One live run: the step calls JavaScript made that have not started yet.
#[derive(Default)]
struct Run {
    requests: RefCell<VecDeque<(u32, Request)>>,
    waker: RefCell<Option<Waker>>,
}

type Reply = Result<Value, WorkflowError>;

thread_local! {
    /// Live runs on this thread, by the key JavaScript calls them with.
    static RUNS: RefCell<HashMap<u32, Rc<Run>>> = RefCell::new(HashMap::new());
    static NEXT_RUN: Cell<u32> = const { Cell::new(1) };
    /// Step callbacks running in JavaScript, by call number.
    static CALLS: RefCell<HashMap<u32, oneshot::Sender<Reply>>> = RefCell::new(HashMap::new());
    static NEXT_CALL: Cell<u32> = const { Cell::new(1) };
    /// Runs that ended since the last run started (see [`Registered`]).
    static ENDED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn next(counter: &'static std::thread::LocalKey<Cell<u32>>) -> u32 {
    counter.with(|next| {
        let value = next.get();
        next.set(value.wrapping_add(1).max(1));
        value
    })
}

/// `step.do`'s configuration from JavaScript: Cloudflare's defaults for what it leaves out.
fn step_config(argument: &Value) -> Result<StepConfig, String> {
    let mut config = StepConfig::default();
    if let Some(retries) = argument.get("retries") {
        let defaults = RetryConfig::default();
        config.retries = RetryConfig {
            limit: match retries.get("limit") {
                Some(limit) => limit
                    .as_f64()
                    .filter(|limit| limit.is_finite() && *limit >= 0.0)
                    .map(|limit| limit.min(f64::from(u32::MAX)) as u32)
                    .ok_or("retries.limit must be a non-negative number")?,
                None => defaults.limit,
            },
            delay: match retries.get("delay") {
                Some(delay) => duration(delay)?,
                None => defaults.delay,
            },
            backoff: match retries.get("backoff") {
                Some(backoff) => serde_json::from_value::<Backoff>(backoff.clone()).map_err(|_| {
                    format!("retries.backoff must be \"constant\", \"linear\" or \"exponential\" (got {backoff})")
                })?,
                None => defaults.backoff,
            },
        };
    }
    if let Some(timeout) = argument.get("timeout") {
        config.timeout = Some(duration(timeout)?);
    }
    Ok(config)
}

fn duration(value: &Value) -> Result<WorkflowDuration, String> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| WorkflowDuration::Millis(ms.round() as u64))
            .ok_or_else(|| format!("{number} is not a duration")),
        Value::String(text) => Ok(WorkflowDuration::Text(text.clone())),
        other => Err(format!("{other} is not a duration")),
    }
}

fn request(kind: &str, name: String, argument: &Value) -> Result<Request, String> {
    Ok(match kind {
        "do" => Request::Do {
            name,
            config: step_config(argument)?,
        },
        "sleep" => Request::Sleep {
            name,
            duration: duration(argument)?,
        },
        "sleepUntil" => Request::SleepUntil {
            name,
            at_ms: argument
                .as_f64()
                .filter(|at| at.is_finite())
                .ok_or("step.sleepUntil needs a time")? as i64,
        },
        "waitForEvent" => {
            let event_type = argument
                .get("type")
                .and_then(Value::as_str)
                .ok_or("step.waitForEvent needs a type")?;
            let mut options = WaitOptions::new(event_type);
            if let Some(timeout) = argument.get("timeout") {
                options = options.with_timeout(duration(timeout)?);
            }
            Request::Wait { name, options }
        }
        other => return Err(format!("unknown step kind {other:?}")),
    })
}

/// A `{name, message}` error from JavaScript.
fn error_from(json: &str) -> WorkflowError {
    serde_json::from_str::<WorkflowError>(json)
        .unwrap_or_else(|_| WorkflowError::new(json.to_owned()))
}

fn internal(message: impl Into<String>) -> WorkflowError {
    WorkflowError::named(INTERNAL, message)
}

/// The binding's error as a JavaScript exception with Cloudflare's message.
fn binding_error(ctx: &Ctx<'_>, error: burrow_services::workflows::Error) -> rquickjs::Error {
    Exception::throw_message(ctx, &error.to_string())
}

fn binding(ctx: &Ctx<'_>, script: &Script, name: &str) -> rquickjs::Result<Workflow> {
    script
        .workflows
        .get(name)
        .cloned()
        .ok_or_else(|| Exception::throw_internal(ctx, &format!("no Workflow binding {name:?}")))
}

/// Adds `env.BINDING` for each Workflow binding.
pub(crate) fn add_bindings<'js>(
    internals: &Object<'js>,
    env: &Object<'js>,
    script: &Script,
) -> rquickjs::Result<()> {
    if script.workflows.is_empty() {
        return Ok(());
    }
    let make: Function = internals.get("workflow")?;
    for name in script.workflows.keys() {
        let workflow: Object = make.call((name.as_str(),))?;
        env.set(name.as_str(), workflow)?;
    }
    Ok(())
}

/// Adds the step and binding calls to the prelude's `native` object.
pub(crate) fn install_natives<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    script: &Arc<Script>,
) -> rquickjs::Result<()> {
    native.set(
        "wfStep",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, key: u32, token: u32, kind: String, name: String, argument: String| {
                let Some(run) = RUNS.with(|runs| runs.borrow().get(&key).cloned()) else {
                    return Ok(());
                };
                let argument: Value = serde_json::from_str(&argument).unwrap_or(Value::Null);
                let request = request(&kind, name, &argument)
                    .map_err(|message| Exception::throw_type(&ctx, &message))?;
                {
                    let mut requests = run.requests.borrow_mut();
                    if requests.len() >= MAX_PENDING_REQUESTS {
                        return Err(Exception::throw_range(
                            &ctx,
                            &format!(
                                "more than {MAX_PENDING_REQUESTS} step calls are waiting to start"
                            ),
                        ));
                    }
                    requests.push_back((token, request));
                }
                if let Some(waker) = run.waker.borrow_mut().take() {
                    waker.wake();
                }
                Ok(())
            },
        )?,
    )?;
    native.set(
        "wfCallbackDone",
        Function::new(ctx.clone(), |call: u32, ok: bool, json: String| {
            let reply = if ok {
                serde_json::from_str(&json).map_err(|error| internal(error.to_string()))
            } else {
                Err(error_from(&json))
            };
            if let Some(sender) = CALLS.with(|calls| calls.borrow_mut().remove(&call)) {
                let _ = sender.send(reply);
            }
        })?,
    )?;
    let s = script.clone();
    native.set(
        "wfCreate",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, name: String, batch: String| {
                let workflow = binding(&ctx, &s, &name);
                async move {
                    let workflow = workflow?;
                    let batch: Vec<Value> = serde_json::from_str(&batch)
                        .map_err(|error| Exception::throw_type(&ctx, &error.to_string()))?;
                    let options = batch
                        .into_iter()
                        .map(|options| CreateOptions {
                            id: options.get("id").and_then(Value::as_str).map(str::to_owned),
                            params: options.get("params").cloned().unwrap_or(Value::Null),
                        })
                        .collect();
                    let created = workflow
                        .create_batch(options)
                        .await
                        .map_err(|error| binding_error(&ctx, error))?;
                    let ids: Vec<&str> = created.iter().map(|instance| instance.id()).collect();
                    Ok::<_, rquickjs::Error>(Value::from(ids).to_string())
                }
            }),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "wfStatus",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, name: String, id: String| {
                let workflow = binding(&ctx, &s, &name);
                async move {
                    let status = workflow?
                        .handle(&id)
                        .status()
                        .await
                        .map_err(|error| binding_error(&ctx, error))?;
                    let mut object = json!({ "status": status.status.as_str() });
                    if let Some(error) = status.error {
                        object["error"] = json!({ "name": error.name, "message": error.message });
                    }
                    if let Some(output) = status.output {
                        object["output"] = output;
                    }
                    Ok::<_, rquickjs::Error>(object.to_string())
                }
            }),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "wfControl",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>, name: String, id: String, action: String| {
                    let workflow = binding(&ctx, &s, &name);
                    async move {
                        let instance = workflow?.handle(&id);
                        let result = match action.as_str() {
                            "pause" => instance.pause().await,
                            "resume" => instance.resume().await,
                            "terminate" => instance.terminate().await,
                            _ => instance.restart().await,
                        };
                        result.map(drop).map_err(|error| binding_error(&ctx, error))
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "wfSendEvent",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      name: String,
                      id: String,
                      event_type: String,
                      payload: String| {
                    let workflow = binding(&ctx, &s, &name);
                    async move {
                        let payload: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
                        workflow?
                            .handle(&id)
                            .send_event(&event_type, &payload)
                            .await
                            .map_err(|error| binding_error(&ctx, error))
                    }
                },
            ),
        )?,
    )?;
    Ok(())
}

/// Removes a run from the registry when the run ends (finished, suspended or cancelled), and
/// queues it for JavaScript to drop its promises.
struct Registered {
    key: u32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let key = self.key;
        RUNS.with(|runs| runs.borrow_mut().remove(&key));
        // Dropping cannot enter JavaScript (it may happen at shutdown, outside any task): the
        // next run on this thread tells JavaScript to forget this one.
        ENDED.with(|ended| ended.borrow_mut().push(key));
    }
}

/// Tells JavaScript to drop the promises of runs that ended on this thread.
async fn forget_ended(isolate: &Isolate) {
    let keys: Vec<u32> = ENDED.with(|ended| ended.borrow_mut().drain(..).collect());
    if keys.is_empty() {
        return;
    }
    let _ = isolate
        .enter(|_ctx, internals| {
            let forget: Function = internals.get("workflowForget")?;
            for key in keys {
                forget.call::<_, ()>((key,))?;
            }
            Ok(())
        })
        .await;
}

/// What woke the run loop.
enum Next {
    Finished(Outcome),
    Step(u32, Reply),
}

/// Runs attempt `attempt` of step `token`'s callback in JavaScript and waits for its outcome.
async fn callback(isolate: &Isolate, key: u32, token: u32, attempt: u32) -> Reply {
    let call = next(&NEXT_CALL);
    let (sender, receiver) = oneshot::channel();
    CALLS.with(|calls| calls.borrow_mut().insert(call, sender));
    let started = isolate
        .enter(|_ctx, internals| {
            let run: Function = internals.get("workflowCallback")?;
            run.call::<_, ()>((key, token, call, attempt))
        })
        .await;
    if let Err(error) = started {
        CALLS.with(|calls| calls.borrow_mut().remove(&call));
        return Err(WorkflowError::new(error));
    }
    let reply = receiver.await;
    CALLS.with(|calls| calls.borrow_mut().remove(&call));
    match reply {
        Ok(reply) => reply,
        Err(_) => Err(match isolate.condemned() {
            Some(exceeded) => internal(format!(
                "Worker exceeded resource limits ({})",
                exceeded.outcome()
            )),
            None => internal("the step's callback never finished"),
        }),
    }
}

/// The engine's call for one step request; resolves to the JSON JavaScript gets.
fn start_step(
    isolate: Rc<Isolate>,
    step: Rc<WorkflowStep>,
    key: u32,
    token: u32,
    request: Request,
) -> LocalBoxFuture<'static, Reply> {
    Box::pin(async move {
        match request {
            Request::Do { name, config } => {
                let isolate = &isolate;
                step.do_with::<Value, _>(&name, config, async |context: StepContext| {
                    callback(isolate, key, token, context.attempt).await
                })
                .await
            }
            Request::Sleep { name, duration } => {
                step.sleep(&name, duration).await.map(|()| Value::Null)
            }
            Request::SleepUntil { name, at_ms } => {
                step.sleep_until(&name, at_ms).await.map(|()| Value::Null)
            }
            Request::Wait { name, options } => {
                let event: WorkflowStepEvent<Value> = step.wait_for_event(&name, options).await?;
                serde_json::to_value(event).map_err(|error| internal(error.to_string()))
            }
        }
    })
}

impl Isolate {
    /// One run of workflow class `class`: starts `run(event, step)` and serves its step calls
    /// until it finishes (or the engine drops the run).
    async fn workflow_run(
        self: Rc<Self>,
        class: String,
        event: WorkflowEvent<Value>,
        step: WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let step = Rc::new(step);
        let run = Rc::new(Run::default());
        let key = next(&NEXT_RUN);
        tracing::debug!(key, "workflow run starts");
        RUNS.with(|runs| runs.borrow_mut().insert(key, run.clone()));
        forget_ended(&self).await;
        let _registered = Registered { key };
        let event_json = json!({
            "payload": event.payload,
            "timestamp": event.timestamp_ms,
            "instanceId": event.instance_id,
        })
        .to_string();
        let mut finished = pin!(self.event(move |_ctx, internals, _handlers, env, id| {
            let start: Function = internals.get("workflowRun")?;
            start.call::<_, ()>((id, env, key, class, event_json))
        }));
        let mut steps: Vec<(u32, LocalBoxFuture<'static, Reply>)> = Vec::new();
        loop {
            let next = poll_fn(|cx| {
                if let Poll::Ready(outcome) = finished.as_mut().poll(cx) {
                    return Poll::Ready(Next::Finished(outcome));
                }
                *run.waker.borrow_mut() = Some(cx.waker().clone());
                // Steps start in the order JavaScript called them: the engine numbers
                // occurrences of a name as they start.
                let requests: Vec<(u32, Request)> = run.requests.borrow_mut().drain(..).collect();
                for (token, request) in requests {
                    let future = start_step(self.clone(), step.clone(), key, token, request);
                    steps.push((token, future));
                }
                for index in 0..steps.len() {
                    if let Poll::Ready(reply) = steps[index].1.as_mut().poll(cx) {
                        let (token, _) = steps.remove(index);
                        return Poll::Ready(Next::Step(token, reply));
                    }
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Finished(outcome) => return finish(outcome),
                Next::Step(token, reply) => {
                    let (ok, json) = match reply {
                        Ok(value) => (true, value.to_string()),
                        Err(error) => (
                            false,
                            json!({"name": error.name, "message": error.message}).to_string(),
                        ),
                    };
                    let settled = self
                        .enter(|_ctx, internals| {
                            let settle: Function = internals.get("workflowSettle")?;
                            settle.call::<_, ()>((key, token, ok, json))
                        })
                        .await;
                    if let Err(error) = settled {
                        return Err(internal(error));
                    }
                }
            }
        }
    }
}

/// The run's result from how its event ended.
fn finish(outcome: Outcome) -> Result<Value, WorkflowError> {
    match outcome {
        Outcome::Done {
            status: 0, body, ..
        } => serde_json::from_slice(&body)
            .map_err(|error| internal(format!("the workflow's output is not JSON: {error}"))),
        Outcome::Done { body, .. } => Err(error_from(&String::from_utf8_lossy(&body))),
        Outcome::Streaming { .. } | Outcome::WebSocket { .. } => Err(internal(
            "a workflow run ended with a streaming or WebSocket response",
        )),
        Outcome::Exception(message) => Err(WorkflowError::new(message)),
        Outcome::Exceeded(exceeded) => Err(internal(format!(
            "Worker exceeded resource limits ({})",
            exceeded.outcome()
        ))),
    }
}

/// A workflow whose `run` is a JavaScript class's.
struct JsDefinition {
    worker: Arc<JsWorker>,
    class: String,
}

impl Definition for JsDefinition {
    fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: WorkflowStep,
    ) -> LocalBoxFuture<'static, Result<Value, WorkflowError>> {
        let worker = self.worker.clone();
        let class = self.class.clone();
        Box::pin(async move {
            let local = worker.ready_local().await.map_err(internal)?;
            let isolate = local.isolate().await.map_err(internal)?;
            isolate.workflow_run(class, event, step).await
        })
    }
}

impl JsWorker {
    /// The engine's definition of a workflow whose `class_name` is `class`: each run
    /// constructs the class exported by the main module and calls its `run(event, step)`.
    pub fn workflow_definition(self: &Arc<Self>, class: &str) -> Arc<dyn Definition> {
        Arc::new(JsDefinition {
            worker: self.clone(),
            class: class.to_owned(),
        })
    }

    /// The Workflow bindings of `env`, by binding name; set before [`JsWorker::start`].
    pub fn set_workflow_bindings(&self, bindings: BTreeMap<String, Workflow>) {
        let _ = self.workflows.set(bindings);
    }
}
