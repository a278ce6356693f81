//! The RPCs between the binding, the registry object of each workflow and the instance objects,
//! and their JSON encoding.
//!
//! Every reply is a JSON `Result<T, Error>`: a refusal the caller must see (not found, already
//! exists, ...) travels inside a successful RPC, so `ObjectError` means only that the platform
//! failed. Arguments are JSON objects; params, payloads and outputs travel as JSON text, checked
//! for size once, at the binding.

use burrow_runtime::Stub;
use burrow_runtime::guest::ObjectError;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Error, WorkflowError};
use super::status::Status;

/// Instance object methods.
pub(crate) mod instance {
    pub(crate) const INIT: &str = "init";
    pub(crate) const GRANT: &str = "grant";
    pub(crate) const RECOVER: &str = "recover";
    pub(crate) const STATUS: &str = "status";
    pub(crate) const DETAILS: &str = "details";
    pub(crate) const PAUSE: &str = "pause";
    pub(crate) const RESUME: &str = "resume";
    pub(crate) const TERMINATE: &str = "terminate";
    pub(crate) const RESTART: &str = "restart";
    pub(crate) const EVENT: &str = "event";
    pub(crate) const PURGE: &str = "purge";
}

/// Registry object methods.
pub(crate) mod registry {
    pub(crate) const CREATE: &str = "create";
    pub(crate) const UPDATE: &str = "update";
    pub(crate) const LOOKUP: &str = "lookup";
    pub(crate) const LIST: &str = "list";
    pub(crate) const RECOVER: &str = "recover";
    /// Make sure the instance object has its params (`init`); reply whether it exists.
    pub(crate) const MATERIALIZE: &str = "materialize";
}

/// `init`: the instance learns who it is and its params. Idempotent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitArgs {
    pub(crate) workflow: String,
    pub(crate) instance_id: String,
    /// JSON text.
    pub(crate) params: String,
    pub(crate) created_ms: i64,
    /// The registry reserved a slot for this instance.
    pub(crate) granted: bool,
}

/// `grant`'s reply: whether the instance took the slot.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Granted {
    pub(crate) granted: bool,
}

/// `event`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventArgs {
    pub(crate) event_type: String,
    /// JSON text.
    pub(crate) payload: String,
    pub(crate) timestamp_ms: i64,
}

/// `status`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatusReply {
    pub(crate) status: Status,
    /// JSON text.
    pub(crate) output: Option<String>,
    pub(crate) error: Option<WorkflowError>,
}

/// One instance to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NewInstance {
    pub(crate) id: String,
    /// JSON text.
    pub(crate) params: String,
    pub(crate) created_ms: i64,
}

/// `create` (the registry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CreateArgs {
    pub(crate) workflow: String,
    pub(crate) instances: Vec<NewInstance>,
}

/// `update`: an instance reports its status and whether it needs a slot to run. `seq` orders
/// the reports of one instance; older ones are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UpdateArgs {
    pub(crate) workflow: String,
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) status: Status,
    pub(crate) wants_slot: bool,
    pub(crate) started_ms: Option<i64>,
    pub(crate) ended_ms: Option<i64>,
}

/// `lookup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LookupArgs {
    pub(crate) workflow: String,
    pub(crate) id: String,
}

/// `list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ListArgs {
    pub(crate) workflow: String,
    pub(crate) status: Option<Status>,
    pub(crate) page: u32,
    pub(crate) per_page: u32,
}

/// `recover`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecoverArgs {
    pub(crate) workflow: String,
}

/// The registry's view of one instance: Cloudflare's instance list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSummary {
    /// The instance id.
    pub id: String,
    /// Its status as last reported.
    pub status: Status,
    /// Created, in epoch milliseconds.
    pub created_ms: i64,
    /// Last changed, in epoch milliseconds.
    pub modified_ms: i64,
    /// First started, in epoch milliseconds.
    pub started_ms: Option<i64>,
    /// Finished (complete, errored, terminated), in epoch milliseconds.
    pub ended_ms: Option<i64>,
}

/// `list`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePage {
    /// This page, newest first.
    pub instances: Vec<InstanceSummary>,
    /// Instances matching the filter.
    pub total: u64,
}

/// Encodes a reply.
pub(crate) fn reply<T: Serialize>(result: Result<T, Error>) -> Result<Bytes, ObjectError> {
    serde_json::to_vec(&result)
        .map(Bytes::from)
        .map_err(|error| ObjectError::internal(format!("cannot encode a workflow reply: {error}")))
}

/// Decodes arguments.
pub(crate) fn args<T: DeserializeOwned>(method: &str, bytes: &[u8]) -> Result<T, ObjectError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ObjectError::internal(format!("malformed workflow RPC {method}: {error}")))
}

/// Calls `method` on `stub` and decodes the reply.
pub(crate) async fn call<A: Serialize, R: DeserializeOwned>(
    stub: &Stub,
    method: &str,
    args: &A,
) -> Result<R, Error> {
    let bytes =
        serde_json::to_vec(args).map_err(|error| Error::Serialization(error.to_string()))?;
    let reply = stub
        .call(method, Bytes::from(bytes))
        .await
        .map_err(|error| Error::Unavailable(error.message))?;
    let result: Result<R, Error> = serde_json::from_slice(&reply).map_err(|error| {
        Error::Unavailable(format!("malformed reply to workflow RPC {method}: {error}"))
    })?;
    result
}
