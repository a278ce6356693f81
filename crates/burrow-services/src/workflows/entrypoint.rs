//! What a workflow is: [`WorkflowEntrypoint`] (Cloudflare's `class X extends
//! WorkflowEntrypoint { async run(event, step) }`), the [`WorkflowEvent`] its `run` gets, and the
//! type-erased [`Definition`] the instance objects run.

use std::future::Future;
use std::sync::Arc;

use burrow_runtime::clock::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::WorkflowError;
use super::step::WorkflowStep;

/// What `run` is given: the instance's params and identity.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowEvent<P> {
    /// The params the instance was created with.
    pub payload: P,
    /// When the instance was created, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// The instance's id.
    pub instance_id: String,
}

/// A workflow: durable, multi-step code.
///
/// `run` is replayed from the top whenever the instance resumes (after a sleep, a retry delay,
/// an event, a restart of the server). Every step that already completed returns its stored
/// result without running again, so `run` must reach its steps in the same order with the same
/// names each time: decide with step results, not with the clock or random numbers outside
/// steps. `run`'s `Ok` value is the instance's output; an `Err` ends it `errored`.
///
/// ```
/// use burrow_services::workflows::{WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep};
///
/// struct Greet;
///
/// impl WorkflowEntrypoint for Greet {
///     type Params = String;
///     type Output = String;
///
///     async fn run(
///         &self,
///         event: WorkflowEvent<String>,
///         step: &WorkflowStep,
///     ) -> Result<String, WorkflowError> {
///         let greeting = step
///             .do_("greet", async |_| Ok::<_, WorkflowError>(format!("hello {}", event.payload)))
///             .await?;
///         step.sleep("wait a day", "1 day").await?;
///         Ok(greeting)
///     }
/// }
/// ```
pub trait WorkflowEntrypoint: 'static {
    /// The params instances are created with (JSON).
    type Params: DeserializeOwned;
    /// The instance's output (JSON, at most 1 MiB).
    type Output: Serialize;

    /// The workflow's code.
    fn run(
        &self,
        event: WorkflowEvent<Self::Params>,
        step: &WorkflowStep,
    ) -> impl Future<Output = Result<Self::Output, WorkflowError>>;
}

/// A workflow with its types erased: params and output as JSON. One value serves every shard;
/// each run builds the workflow afresh on the instance's shard, so the workflow type itself
/// need not be `Send`.
pub trait Definition: Send + Sync + 'static {
    /// Runs the workflow once, from the top.
    fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: WorkflowStep,
    ) -> LocalBoxFuture<'static, Result<Value, WorkflowError>>;
}

/// A [`Definition`] from a constructor of a [`WorkflowEntrypoint`].
pub fn definition<W, F>(make: F) -> Arc<dyn Definition>
where
    W: WorkflowEntrypoint,
    F: Fn() -> W + Send + Sync + 'static,
{
    Arc::new(Typed { make })
}

struct Typed<F> {
    make: F,
}

impl<W, F> Definition for Typed<F>
where
    W: WorkflowEntrypoint,
    F: Fn() -> W + Send + Sync + 'static,
{
    fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: WorkflowStep,
    ) -> LocalBoxFuture<'static, Result<Value, WorkflowError>> {
        let workflow = (self.make)();
        Box::pin(async move {
            let payload: W::Params = serde_json::from_value(event.payload).map_err(|error| {
                WorkflowError::new(format!(
                    "the instance's params are not the type the workflow expects: {error}"
                ))
            })?;
            let event = WorkflowEvent {
                payload,
                timestamp_ms: event.timestamp_ms,
                instance_id: event.instance_id,
            };
            let output = workflow.run(event, &step).await?;
            serde_json::to_value(output).map_err(|error| {
                WorkflowError::fatal(format!(
                    "the workflow's output is not serialisable: {error}"
                ))
            })
        })
    }
}
