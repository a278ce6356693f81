//! Workflows in a Rust app: a workflow class implements [`WorkflowEntrypoint`] (Cloudflare's
//! `class X extends WorkflowEntrypoint`), [`crate::App::workflow`] binds it to a
//! `[[workflows]]` entry of `wrangler.toml`, and `env.workflow("BINDING")` is the binding that
//! creates and manages instances. The admin API serves Cloudflare's v4 Workflows endpoints,
//! which `burrow workflows …` uses.
//!
//! The engine is [`burrow_services::workflows`]: each instance is a system Durable Object, `run`
//! is replayed from the top after every wait and restart, completed steps return their stored
//! results, and sleeps, retry delays and event timeouts are alarms.
//!
//! ```no_run
//! use burrow::workflow::{WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep};
//! use burrow::{App, Env, Request, Response, Result};
//!
//! struct Welcome {
//!     env: Env,
//! }
//!
//! impl WorkflowEntrypoint for Welcome {
//!     type Params = String;
//!     type Output = ();
//!
//!     fn new(env: Env) -> Self {
//!         Welcome { env }
//!     }
//!
//!     async fn run(&self, event: WorkflowEvent<String>, step: &WorkflowStep) -> Result<(), WorkflowError> {
//!         step.do_("send welcome", async |_| Ok(format!("hello {}", event.payload))).await?;
//!         step.sleep("a day later", "1 day").await?;
//!         step.do_("send nudge", async |_| Ok(())).await
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // wrangler.toml: [[workflows]] binding = "WELCOME", name = "welcome", class_name = "Welcome"
//!     App::new()
//!         .workflow::<Welcome>("WELCOME")
//!         .fetch(|request: Request, env: Env| async move {
//!             let instance = env
//!                 .workflow("WELCOME")?
//!                 .create(burrow::workflow::CreateOptions::new(None, "ada")?)
//!                 .await?;
//!             Ok(Response::text(instance.id().to_owned()))
//!         })
//!         .serve_from_args()
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::admin::envelope::codes;
use burrow_http::admin::{self, AdminRequest, AdminRouter, ApiError};
use burrow_services::workflows::{Definition, Options, definition};
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::warn;

pub use burrow_services::workflows::{
    Backoff, CreateOptions, Error, InstancePage, InstanceStatus, InstanceSummary, ListOptions,
    MetricsSnapshot, RetryConfig, Status, StepConfig, StepContext, WaitOptions, Workflow,
    WorkflowDuration, WorkflowError, WorkflowEvent, WorkflowInstance, WorkflowStep,
    WorkflowStepEvent, Workflows, rfc3339,
};

use crate::app::App;
use crate::env::Env;
use crate::server;

/// A workflow class.
///
/// `run` is replayed from the top whenever the instance resumes (after a sleep, a retry delay,
/// an event, a restart of the server); every step that already completed returns its stored
/// result without running again. So `run` must reach its steps in the same order with the same
/// names each time, and decide only with step results, never with the clock or random numbers
/// outside steps. A new value is made (with [`WorkflowEntrypoint::new`]) for every run.
pub trait WorkflowEntrypoint: Sized + 'static {
    /// The params instances are created with (JSON).
    type Params: DeserializeOwned;
    /// The instance's output (JSON, at most 1 MiB).
    type Output: Serialize;

    /// Builds the workflow for one run.
    fn new(env: Env) -> Self;

    /// The workflow's code: `Ok` is the instance's output, `Err` ends it `errored`.
    fn run(
        &self,
        event: WorkflowEvent<Self::Params>,
        step: &WorkflowStep,
    ) -> impl Future<Output = Result<Self::Output, WorkflowError>>;
}

struct Adapter<W>(W);

impl<W: WorkflowEntrypoint> burrow_services::workflows::WorkflowEntrypoint for Adapter<W> {
    type Params = W::Params;
    type Output = W::Output;

    fn run(
        &self,
        event: WorkflowEvent<W::Params>,
        step: &WorkflowStep,
    ) -> impl Future<Output = Result<W::Output, WorkflowError>> {
        self.0.run(event, step)
    }
}

/// A workflow class the app declared.
pub(crate) struct Registration {
    binding: String,
    type_name: &'static str,
    make: fn(Env) -> Arc<dyn Definition>,
    concurrency_limit: Option<u32>,
}

/// The workflow bindings of the Worker, by binding name.
pub(crate) type Bindings = HashMap<String, Workflow>;

impl App {
    /// Declares that `W` implements the workflow of binding `binding` (its `[[workflows]]`
    /// entry names the workflow and its class).
    pub fn workflow<W: WorkflowEntrypoint>(mut self, binding: &str) -> App {
        fn make<W: WorkflowEntrypoint>(env: Env) -> Arc<dyn Definition> {
            definition(move || Adapter(W::new(env.clone())))
        }
        self.workflows.push(Registration {
            binding: binding.to_owned(),
            type_name: std::any::type_name::<W>(),
            make: make::<W>,
            concurrency_limit: None,
        });
        self
    }

    /// Caps how many instances of the workflow of binding `binding` run at once (Cloudflare's
    /// `concurrency.limit`); more are queued. Waiting instances do not count.
    pub fn workflow_concurrency(mut self, binding: &str, limit: u32) -> App {
        for registration in &mut self.workflows {
            if registration.binding == binding {
                registration.concurrency_limit = Some(limit);
            }
        }
        self
    }
}

impl Env {
    /// The workflow of binding `binding` (`[[workflows]]` in `wrangler.toml`).
    pub fn workflow(&self, binding: &str) -> crate::Result<Workflow> {
        let bindings = self.workflow_bindings().get().ok_or_else(|| {
            crate::Error::new("Workflow bindings are not available until the runtime has started")
        })?;
        bindings.get(binding).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = bindings.keys().map(String::as_str).collect();
            known.sort_unstable();
            crate::Error::new(format!(
                "env has no Workflow binding {binding:?} (Workflow bindings: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }
}

impl From<crate::Error> for WorkflowError {
    fn from(error: crate::Error) -> Self {
        WorkflowError::new(error.message())
    }
}

/// The workflow service of the app's registrations and `[[workflows]]`, and its bindings
/// installed in `env`; `None` when the app has no workflows.
pub(crate) fn service(
    registrations: &[Registration],
    loaded: &LoadedConfig,
    env: &Env,
) -> Result<Option<Workflows>, server::Error> {
    let primary = &loaded.primary;
    let file = primary.file.display();
    let mut builder = Workflows::builder(Options::from_settings(loaded.burrow()));
    let mut names = Vec::new();
    for registration in registrations {
        let entry = primary
            .config
            .workflows
            .iter()
            .find(|entry| entry.binding == registration.binding)
            .ok_or_else(|| {
                server::Error::Guest(format!(
                    "the app implements Workflow binding {:?} with {}, but {file} has no \
                     [[workflows]] entry with binding = {:?}",
                    registration.binding, registration.type_name, registration.binding
                ))
            })?;
        if let Some(script) = &entry.script_name {
            return Err(server::Error::Guest(format!(
                "Workflow binding {:?} in {file} names script_name {script:?}: a Rust app \
                 implements only its own workflows",
                entry.binding
            )));
        }
        builder = builder.workflow(&entry.name, (registration.make)(env.clone()));
        if let Some(limit) = registration.concurrency_limit {
            builder = builder.concurrency_limit(&entry.name, limit);
        }
        names.push((entry.binding.clone(), entry.name.clone()));
    }
    for entry in &primary.config.workflows {
        if entry.script_name.is_none()
            && !registrations
                .iter()
                .any(|registration| registration.binding == entry.binding)
        {
            warn!(
                "Workflow binding {} ({}, class {}) has no Rust implementation: register one with \
                 App::workflow::<T>({:?})",
                entry.binding, entry.name, entry.class_name, entry.binding
            );
        }
    }
    if names.is_empty() {
        let _ = env.workflow_bindings().set(Bindings::new());
        return Ok(None);
    }
    let workflows = builder.build(Arc::new(burrow_runtime::clock::SystemClock));
    let mut bindings = Bindings::new();
    for (binding, name) in names {
        let workflow = workflows
            .get(&name)
            .map_err(|error| server::Error::Guest(error.to_string()))?;
        bindings.insert(binding, workflow);
    }
    let _ = env.workflow_bindings().set(bindings);
    Ok(Some(workflows))
}

// ---------------------------------------------------------------------------------------------
// Admin API: Cloudflare's v4 Workflows endpoints.

const WORKFLOWS_PATH: &str = "/client/v4/accounts/:account/workflows";
const WORKFLOW_PATH: &str = "/client/v4/accounts/:account/workflows/:workflow";
const INSTANCES_PATH: &str = "/client/v4/accounts/:account/workflows/:workflow/instances";
const BATCH_PATH: &str = "/client/v4/accounts/:account/workflows/:workflow/instances/batch";
const INSTANCE_PATH: &str = "/client/v4/accounts/:account/workflows/:workflow/instances/:id";
const STATUS_PATH: &str = "/client/v4/accounts/:account/workflows/:workflow/instances/:id/status";
const EVENT_PATH: &str =
    "/client/v4/accounts/:account/workflows/:workflow/instances/:id/events/:event_type";

/// The Workflows API's error codes.
mod workflow_codes {
    /// A request the Workflows API refuses (invalid id, bad status, oversized params, ...).
    pub(super) const INVALID: u32 = 10_001;
    /// `workflows.api.error.workflow.not_found`.
    pub(super) const WORKFLOW_NOT_FOUND: u32 = 10_200;
    /// `workflows.api.error.instance.not_found`.
    pub(super) const INSTANCE_NOT_FOUND: u32 = 10_400;
    /// `instance.already_exists`.
    pub(super) const INSTANCE_EXISTS: u32 = 10_401;
}

fn api_error(error: Error) -> ApiError {
    let (status, code) = match &error {
        Error::NotFound(_) => (StatusCode::NOT_FOUND, workflow_codes::INSTANCE_NOT_FOUND),
        Error::UnknownWorkflow(_) => (StatusCode::NOT_FOUND, workflow_codes::WORKFLOW_NOT_FOUND),
        Error::AlreadyExists(_) => (StatusCode::CONFLICT, workflow_codes::INSTANCE_EXISTS),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::INTERNAL),
        _ => (StatusCode::BAD_REQUEST, workflow_codes::INVALID),
    };
    ApiError::new(status, code, error.to_string())
}

/// `POST …/instances` (and each entry of `…/instances/batch`).
#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    instance_id: Option<String>,
    #[serde(default)]
    params: Value,
}

impl From<CreateBody> for CreateOptions {
    fn from(body: CreateBody) -> Self {
        CreateOptions {
            id: body.instance_id,
            params: body.params,
        }
    }
}

/// `PATCH …/instances/:id/status`.
#[derive(Debug, Deserialize)]
struct StatusBody {
    status: String,
}

fn created(workflow: &str, id: &str) -> Value {
    json!({"id": id, "status": "queued", "version_id": "", "workflow_id": workflow})
}

fn listed(workflow: &str, summary: &InstanceSummary) -> Value {
    let time = |ms: Option<i64>| ms.map(rfc3339);
    json!({
        "id": summary.id,
        "status": summary.status,
        "created_on": rfc3339(summary.created_ms),
        "modified_on": rfc3339(summary.modified_ms),
        "started_on": time(summary.started_ms),
        "ended_on": time(summary.ended_ms),
        "version_id": "",
        "workflow_id": workflow,
    })
}

#[derive(Clone)]
struct Api {
    workflows: Workflows,
    /// name → (binding, class name, script name).
    declared: Arc<BTreeMap<String, (String, String, String)>>,
}

impl Api {
    fn workflow(&self, request: &AdminRequest) -> Result<Workflow, ApiError> {
        let name = request.param("workflow").unwrap_or_default();
        self.workflows.get(name).map_err(api_error)
    }

    fn instance(&self, request: &AdminRequest) -> Result<WorkflowInstance, ApiError> {
        let workflow = self.workflow(request)?;
        Ok(workflow.handle(request.param("id").unwrap_or_default()))
    }

    fn describe(&self, name: &str) -> Value {
        let (_, class_name, script_name) = self.declared.get(name).cloned().unwrap_or_default();
        json!({
            "id": name,
            "name": name,
            "class_name": class_name,
            "script_name": script_name,
            "created_on": rfc3339(0),
            "modified_on": rfc3339(0),
            "triggered_on": Value::Null,
        })
    }
}

/// Adds the Workflows endpoints for `workflows` to the admin router.
pub(crate) fn admin_routes(router: &mut AdminRouter, loaded: &LoadedConfig, workflows: &Workflows) {
    let declared = loaded
        .primary
        .config
        .workflows
        .iter()
        .map(|entry| {
            (
                entry.name.clone(),
                (
                    entry.binding.clone(),
                    entry.class_name.clone(),
                    entry
                        .script_name
                        .clone()
                        .unwrap_or_else(|| loaded.primary.name().to_owned()),
                ),
            )
        })
        .collect();
    let api = Api {
        workflows: workflows.clone(),
        declared: Arc::new(declared),
    };
    let list_api = api.clone();
    router.route(Method::GET, WORKFLOWS_PATH, move |request| {
        let api = list_api.clone();
        async move {
            let page = admin::Page::from_request(&request, 20, 1000)?;
            let all: Vec<Value> = api
                .workflows
                .names()
                .iter()
                .map(|name| api.describe(name))
                .collect();
            let (result, info) = page.slice(all);
            Ok(admin::success_with_info(result, Some(info)))
        }
    });
    let get_api = api.clone();
    router.route(Method::GET, WORKFLOW_PATH, move |request| {
        let api = get_api.clone();
        async move {
            let workflow = api.workflow(&request)?;
            Ok(admin::success(api.describe(workflow.name())))
        }
    });
    let list_instances = api.clone();
    router.route(Method::GET, INSTANCES_PATH, move |request| {
        let api = list_instances.clone();
        async move {
            let workflow = api.workflow(&request)?;
            let status = match request.query("status") {
                Some(text) => Some(text.parse::<Status>().map_err(|message| {
                    ApiError::new(StatusCode::BAD_REQUEST, workflow_codes::INVALID, message)
                })?),
                None => None,
            };
            let page = admin::Page::from_request(&request, 50, 1000)?;
            let options = ListOptions {
                status,
                page: u32::try_from(page.page).unwrap_or(u32::MAX),
                per_page: u32::try_from(page.per_page).unwrap_or(1000),
            };
            let page = workflow.list(options.clone()).await.map_err(api_error)?;
            let result: Vec<Value> = page
                .instances
                .iter()
                .map(|summary| listed(workflow.name(), summary))
                .collect();
            let info = json!({
                "page": options.page,
                "per_page": options.per_page,
                "count": result.len(),
                "total_count": page.total,
            });
            Ok(admin::success_with_info(result, Some(info)))
        }
    });
    let create_api = api.clone();
    router.route(Method::POST, INSTANCES_PATH, move |request| {
        let api = create_api.clone();
        async move {
            let workflow = api.workflow(&request)?;
            let body: CreateBody = request.json().await?;
            let instance = workflow.create(body.into()).await.map_err(api_error)?;
            Ok(admin::success(created(workflow.name(), instance.id())))
        }
    });
    let batch_api = api.clone();
    router.route(Method::POST, BATCH_PATH, move |request| {
        let api = batch_api.clone();
        async move {
            let workflow = api.workflow(&request)?;
            let bodies: Vec<CreateBody> = request.json().await?;
            let instances = workflow
                .create_batch(bodies.into_iter().map(CreateOptions::from).collect())
                .await
                .map_err(api_error)?;
            let result: Vec<Value> = instances
                .iter()
                .map(|instance| created(workflow.name(), instance.id()))
                .collect();
            Ok(admin::success(result))
        }
    });
    let get_instance = api.clone();
    router.route(Method::GET, INSTANCE_PATH, move |request| {
        let api = get_instance.clone();
        async move {
            let instance = api.instance(&request)?;
            let details = instance.details().await.map_err(api_error)?;
            Ok(admin::success(details))
        }
    });
    let status_api = api.clone();
    router.route(Method::PATCH, STATUS_PATH, move |request| {
        let api = status_api.clone();
        async move {
            let instance = api.instance(&request)?;
            let body: StatusBody = request.json().await?;
            let status = match body.status.as_str() {
                "pause" => instance.pause().await,
                "resume" => instance.resume().await,
                "terminate" => instance.terminate().await,
                "restart" => instance.restart().await,
                other => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        workflow_codes::INVALID,
                        format!(
                            "status {other:?} is not an action: use pause, resume, terminate or \
                             restart"
                        ),
                    ));
                }
            }
            .map_err(api_error)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(0));
            Ok(admin::success(
                json!({"status": status, "timestamp": rfc3339(now)}),
            ))
        }
    });
    router.route(Method::POST, EVENT_PATH, move |request| {
        let api = api.clone();
        async move {
            let instance = api.instance(&request)?;
            let event_type = request.param("event_type").unwrap_or_default().to_owned();
            let bytes = request
                .into_body()
                .collect_limited(admin::MAX_JSON_BODY_BYTES)
                .await
                .map_err(|error| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        workflow_codes::INVALID,
                        error.to_string(),
                    )
                })?;
            // The body is optional: an event without one has a null payload.
            let payload: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(ApiError::malformed_json)?
            };
            instance
                .send_event(&event_type, &payload)
                .await
                .map_err(api_error)?;
            Ok(admin::success(Value::Null))
        }
    });
}
