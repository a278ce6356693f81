//! [`Workflows`]: the node's workflow service (definitions, the two system classes, start-up
//! recovery) and the binding a Worker uses: [`Workflow`] (`create`, `create_batch`, `get`) and
//! [`WorkflowInstance`] (`status`, `pause`, `resume`, `terminate`, `restart`, `send_event`).

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use burrow_config::BurrowSettings;
use burrow_runtime::clock::Clock;
use burrow_runtime::guest::ObjectClass;
use burrow_runtime::{Namespace, Runtime, Stub};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::entrypoint::Definition;
use super::error::{Error, WorkflowError};
use super::instance::{self, InstanceClass};
use super::limits::{
    DAY_MS, DEFAULT_MAX_CONCURRENT_INSTANCES, DEFAULT_MAX_STEPS, DEFAULT_RETENTION_DAYS,
    MAX_BATCH_INSTANCES, MAX_VALUE_BYTES, is_valid_event_type, is_valid_instance_id,
};
use super::metrics::{Metrics, MetricsSnapshot};
use super::protocol::{
    self, CreateArgs, EventArgs, InitArgs, InstancePage, InstanceSummary, ListArgs, LookupArgs,
    NewInstance, RecoverArgs, StatusReply,
};
use super::registry::{self, RegistryClass};
use super::status::Status;

/// Service settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `step.do` calls per run of an instance (`[burrow] workflow_max_steps`, default 10,000).
    pub max_steps: u32,
    /// How long a finished instance is kept (`[burrow] workflow_retention_days`, default 30).
    pub retention: Duration,
    /// Instances of one workflow running at once, unless the workflow sets its own limit;
    /// more are queued. Waiting instances do not count.
    pub max_concurrent_instances: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_steps: DEFAULT_MAX_STEPS,
            retention: Duration::from_millis(u64::from(DEFAULT_RETENTION_DAYS) * DAY_MS),
            max_concurrent_instances: DEFAULT_MAX_CONCURRENT_INSTANCES,
        }
    }
}

impl Options {
    /// The settings from `[burrow]`.
    pub fn from_settings(settings: &BurrowSettings) -> Options {
        Options {
            max_steps: settings.workflow_max_steps,
            retention: Duration::from_millis(u64::from(settings.workflow_retention_days) * DAY_MS),
            ..Options::default()
        }
    }
}

struct Registered {
    definition: Arc<dyn Definition>,
    max_concurrent: Option<u32>,
}

struct Bound {
    instances: Namespace,
    registries: Namespace,
}

/// What the classes and the binding share.
pub(crate) struct Shared {
    workflows: HashMap<String, Registered>,
    pub(crate) options: Options,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    bound: OnceLock<Bound>,
}

impl Shared {
    pub(crate) fn definition(&self, workflow: &str) -> Option<Arc<dyn Definition>> {
        self.workflows
            .get(workflow)
            .map(|registered| registered.definition.clone())
    }

    pub(crate) fn max_concurrent(&self, workflow: &str) -> u32 {
        self.workflows
            .get(workflow)
            .and_then(|registered| registered.max_concurrent)
            .unwrap_or(self.options.max_concurrent_instances)
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        i64::try_from(self.options.retention.as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn instance_stub(&self, workflow: &str, id: &str) -> Option<Stub> {
        let bound = self.bound.get()?;
        Some(
            bound
                .instances
                .get_by_name(&instance::object_name(workflow, id)),
        )
    }

    pub(crate) fn registry_stub(&self, workflow: &str) -> Option<Stub> {
        Some(self.bound.get()?.registries.get_by_name(workflow))
    }
}

/// Puts a [`Workflows`] service together.
pub struct Builder {
    options: Options,
    workflows: HashMap<String, Registered>,
}

impl Builder {
    /// Adds workflow `name` (its `[[workflows]]` `name`), run by `definition`.
    pub fn workflow(mut self, name: &str, definition: Arc<dyn Definition>) -> Builder {
        self.workflows.insert(
            name.to_owned(),
            Registered {
                definition,
                max_concurrent: None,
            },
        );
        self
    }

    /// Caps how many instances of workflow `name` run at once (Cloudflare's per-workflow
    /// `concurrency.limit`); more are queued and start as running ones stop.
    pub fn concurrency_limit(mut self, name: &str, limit: u32) -> Builder {
        if let Some(registered) = self.workflows.get_mut(name) {
            registered.max_concurrent = Some(limit.max(1));
        }
        self
    }

    /// The service. `clock` must be the one the runtime is started with.
    pub fn build(self, clock: Arc<dyn Clock>) -> Workflows {
        Workflows {
            shared: Arc::new(Shared {
                workflows: self.workflows,
                options: self.options,
                clock,
                metrics: Arc::new(Metrics::default()),
                bound: OnceLock::new(),
            }),
        }
    }
}

/// The node's workflows. Cheap to clone.
///
/// Start-up: build it, pass [`Workflows::classes`] to `Runtime::start` with the other classes,
/// then [`Workflows::attach`] the runtime (which also resumes the instances that were running
/// when the node stopped).
#[derive(Clone)]
pub struct Workflows {
    shared: Arc<Shared>,
}

impl Workflows {
    /// A builder with these settings.
    pub fn builder(options: Options) -> Builder {
        Builder {
            options,
            workflows: HashMap::new(),
        }
    }

    /// The system classes to pass to `Runtime::start`.
    pub fn classes(&self) -> Vec<(String, Arc<dyn ObjectClass>)> {
        vec![
            (
                instance::CLASS_NAME.to_owned(),
                Arc::new(InstanceClass {
                    shared: self.shared.clone(),
                }) as Arc<dyn ObjectClass>,
            ),
            (
                registry::CLASS_NAME.to_owned(),
                Arc::new(RegistryClass {
                    shared: self.shared.clone(),
                }) as Arc<dyn ObjectClass>,
            ),
        ]
    }

    /// Connects the service to a runtime started with [`Workflows::classes`], and resumes every
    /// instance that held a slot when the node last stopped.
    pub async fn attach(&self, runtime: &Runtime) -> Result<(), Error> {
        let missing = |class: &str| {
            Error::Unavailable(format!(
                "the runtime has no {class} class: pass Workflows::classes() to Runtime::start"
            ))
        };
        let instances = runtime
            .namespace(instance::CLASS_NAME)
            .ok_or_else(|| missing(instance::CLASS_NAME))?;
        let registries = runtime
            .namespace(registry::CLASS_NAME)
            .ok_or_else(|| missing(registry::CLASS_NAME))?;
        let _ = self.shared.bound.set(Bound {
            instances,
            registries,
        });
        let mut names: Vec<&String> = self.shared.workflows.keys().collect();
        names.sort();
        for name in names {
            if let Some(registry) = self.shared.registry_stub(name) {
                protocol::call::<_, ()>(
                    &registry,
                    protocol::registry::RECOVER,
                    &RecoverArgs {
                        workflow: name.clone(),
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The binding of workflow `name`.
    pub fn get(&self, name: &str) -> Result<Workflow, Error> {
        if !self.shared.workflows.contains_key(name) {
            return Err(Error::UnknownWorkflow(name.to_owned()));
        }
        Ok(Workflow {
            shared: self.shared.clone(),
            name: name.to_owned(),
        })
    }

    /// The names of the registered workflows, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.workflows.keys().cloned().collect();
        names.sort();
        names
    }

    /// The node's workflow counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

/// `create`'s options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// The instance id; a random UUID when `None`.
    pub id: Option<String>,
    /// The params `run` gets as `event.payload` (JSON, at most 1 MiB).
    pub params: Value,
}

impl CreateOptions {
    /// An instance with this id and these params.
    pub fn new(id: Option<&str>, params: impl Serialize) -> Result<CreateOptions, Error> {
        Ok(CreateOptions {
            id: id.map(str::to_owned),
            params: serde_json::to_value(params)
                .map_err(|error| Error::Serialization(error.to_string()))?,
        })
    }
}

/// Which instances `list` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Only instances in this status.
    pub status: Option<Status>,
    /// The page, from 1.
    pub page: u32,
    /// Instances per page (1-1000).
    pub per_page: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            status: None,
            page: 1,
            per_page: 50,
        }
    }
}

/// An instance's status, output and error (`instance.status()`).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    /// The status.
    pub status: Status,
    /// `run`'s return value, once complete.
    pub output: Option<Value>,
    /// Why it errored.
    pub error: Option<WorkflowError>,
}

impl InstanceStatus {
    /// The output as `T`.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.output
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| Error::Serialization(error.to_string()))
    }
}

/// A workflow binding (`env.MY_WORKFLOW`). Cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    shared: Arc<Shared>,
    name: String,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Workflow")
            .field("name", &self.name)
            .finish()
    }
}

fn random_uuid() -> String {
    let bits: u128 = SmallRng::from_os_rng().random();
    // Version 4, variant 10.
    let bits = (bits & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Workflow {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn registry(&self) -> Result<Stub, Error> {
        self.shared
            .registry_stub(&self.name)
            .ok_or_else(|| Error::Unavailable("the workflow service is not attached".to_owned()))
    }

    fn new_instance(&self, options: CreateOptions) -> Result<NewInstance, Error> {
        let id = options.id.unwrap_or_else(random_uuid);
        if !is_valid_instance_id(&id) {
            return Err(Error::InvalidId(id));
        }
        let params = options.params.to_string();
        if params.len() > MAX_VALUE_BYTES {
            return Err(Error::ParamsTooLarge);
        }
        Ok(NewInstance {
            id,
            params,
            created_ms: self.shared.clock.now_ms(),
        })
    }

    /// `create({id?, params})`: stores the instance (durably) and queues it to start. Fails with
    /// `(instance.already_exists)` if the id is taken.
    pub async fn create(&self, options: CreateOptions) -> Result<WorkflowInstance, Error> {
        let mut created = self.create_batch(vec![options]).await?;
        created
            .pop()
            .ok_or_else(|| Error::Unavailable("no instance was created".to_owned()))
    }

    /// `createBatch([...])`: up to 100 instances, all or none.
    pub async fn create_batch(
        &self,
        batch: Vec<CreateOptions>,
    ) -> Result<Vec<WorkflowInstance>, Error> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if batch.len() > MAX_BATCH_INSTANCES {
            return Err(Error::BatchTooLarge);
        }
        let instances = batch
            .into_iter()
            .map(|options| self.new_instance(options))
            .collect::<Result<Vec<_>, _>>()?;
        let handles: Vec<WorkflowInstance> =
            instances.iter().map(|new| self.handle(&new.id)).collect();
        let granted: Vec<bool> = protocol::call(
            &self.registry()?,
            protocol::registry::CREATE,
            &CreateArgs {
                workflow: self.name.clone(),
                instances: instances.clone(),
            },
        )
        .await?;
        // The instances are durable in the registry: hand each its params (and its slot) now,
        // without waiting for the registry to do it.
        let inits = instances
            .into_iter()
            .zip(granted)
            .map(|(new, granted)| self.init(new, granted));
        join_all(inits).await;
        Ok(handles)
    }

    /// Sends an instance its `init`; on failure leaves it to the registry (`materialize` on the
    /// first call to the instance, or `recover` at the next start).
    async fn init(&self, new: NewInstance, granted: bool) {
        let Some(stub) = self.shared.instance_stub(&self.name, &new.id) else {
            return;
        };
        let args = InitArgs {
            workflow: self.name.clone(),
            instance_id: new.id,
            params: new.params,
            created_ms: new.created_ms,
            granted,
        };
        if let Err(error) = protocol::call::<_, ()>(&stub, protocol::instance::INIT, &args).await {
            tracing::warn!(workflow = %self.name, instance = %args.instance_id, %error, "workflow instance not initialised yet");
        }
    }

    /// `get(id)`: the instance, or `(instance.not_found)`.
    pub async fn get(&self, id: &str) -> Result<WorkflowInstance, Error> {
        let handle = self.handle(id);
        handle.status().await?;
        Ok(handle)
    }

    /// A handle without checking that the instance exists.
    pub fn handle(&self, id: &str) -> WorkflowInstance {
        WorkflowInstance {
            workflow: self.clone(),
            id: id.to_owned(),
        }
    }

    /// Instances, newest first.
    pub async fn list(&self, options: ListOptions) -> Result<InstancePage, Error> {
        protocol::call(
            &self.registry()?,
            protocol::registry::LIST,
            &ListArgs {
                workflow: self.name.clone(),
                status: options.status,
                page: options.page,
                per_page: options.per_page,
            },
        )
        .await
    }

    /// The registry's entry for one instance.
    pub async fn summary(&self, id: &str) -> Result<InstanceSummary, Error> {
        protocol::call(
            &self.registry()?,
            protocol::registry::LOOKUP,
            &LookupArgs {
                workflow: self.name.clone(),
                id: id.to_owned(),
            },
        )
        .await
    }
}

/// One instance (`await env.MY_WORKFLOW.get(id)`). Cheap to clone.
#[derive(Clone)]
pub struct WorkflowInstance {
    workflow: Workflow,
    id: String,
}

impl WorkflowInstance {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Calls the instance object. An instance the registry has created but not yet handed its
    /// params is given them first, so every method works right after `create`.
    async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R, Error> {
        let shared = &self.workflow.shared;
        let stub = shared
            .instance_stub(&self.workflow.name, &self.id)
            .ok_or_else(|| Error::Unavailable("the workflow service is not attached".to_owned()))?;
        match protocol::call(&stub, method, args).await {
            Err(Error::NotFound(_)) => {}
            other => return other,
        }
        let exists: bool = protocol::call(
            &self.workflow.registry()?,
            protocol::registry::MATERIALIZE,
            &LookupArgs {
                workflow: self.workflow.name.clone(),
                id: self.id.clone(),
            },
        )
        .await?;
        if !exists {
            return Err(Error::NotFound(self.id.clone()));
        }
        protocol::call(&stub, method, args)
            .await
            .map_err(|error| match error {
                Error::NotFound(_) => Error::NotFound(self.id.clone()),
                other => other,
            })
    }

    /// `status()`: the status, and the output or error once finished.
    pub async fn status(&self) -> Result<InstanceStatus, Error> {
        let reply: StatusReply = self.call(protocol::instance::STATUS, &()).await?;
        Ok(InstanceStatus {
            status: reply.status,
            output: reply
                .output
                .map(|json| serde_json::from_str(&json).unwrap_or(Value::String(json))),
            error: reply.error,
        })
    }

    /// The instance's history in the shape of Cloudflare's "Get instance" API result.
    pub async fn details(&self) -> Result<Value, Error> {
        self.call(protocol::instance::DETAILS, &()).await
    }

    /// `pause()`: a running step finishes first (`waitingForPause`), then nothing new starts.
    pub async fn pause(&self) -> Result<Status, Error> {
        self.call(protocol::instance::PAUSE, &()).await
    }

    /// `resume()`: a paused instance goes on; its pending timers move by the time it was paused.
    pub async fn resume(&self) -> Result<Status, Error> {
        self.call(protocol::instance::RESUME, &()).await
    }

    /// `terminate()`: stops the instance for good. Fails with `(instance.cannot_terminate)` if
    /// it already finished.
    pub async fn terminate(&self) -> Result<Status, Error> {
        self.call(protocol::instance::TERMINATE, &()).await
    }

    /// `restart()`: forgets every step and event and runs again from the start with the same
    /// params.
    pub async fn restart(&self) -> Result<Status, Error> {
        self.call(protocol::instance::RESTART, &()).await
    }

    /// `sendEvent({type, payload})`: delivers an event to a `wait_for_event` of that type, now
    /// or whenever the instance reaches one.
    pub async fn send_event(
        &self,
        event_type: &str,
        payload: &impl Serialize,
    ) -> Result<(), Error> {
        if !is_valid_event_type(event_type) {
            return Err(Error::InvalidEventType(event_type.to_owned()));
        }
        let payload = serde_json::to_string(payload)
            .map_err(|error| Error::Serialization(error.to_string()))?;
        if payload.len() > MAX_VALUE_BYTES {
            return Err(Error::EventTooLarge);
        }
        let args = EventArgs {
            event_type: event_type.to_owned(),
            payload,
            timestamp_ms: self.workflow.shared.clock.now_ms(),
        };
        self.call(protocol::instance::EVENT, &args).await
    }
}

/// Runs `futures` concurrently to completion (they live on one thread; no spawning needed).
async fn join_all<F: Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    poll_fn(|cx| {
        pending.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_version_4_uuids_and_valid_instance_ids() {
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert!(is_valid_instance_id(&id));
        assert_ne!(random_uuid(), id);
    }
}
