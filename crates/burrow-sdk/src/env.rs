//! [`Env`], what handlers and constructors get: Durable Object bindings as typed
//! [`Namespace`]s, and the Worker's `vars` and secrets from `wrangler.toml` and `.dev.vars`;
//! and the [`Stub`] that reaches one object.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use burrow_config::VarValue;
use burrow_runtime::id::ObjectId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::fetch::{Request, Response};

/// The bindings and values a Worker and its objects see. Cheap to clone (shared).
#[derive(Clone)]
pub struct Env {
    inner: Arc<EnvInner>,
}

struct EnvInner {
    /// `vars`, overridden by secrets of the same name, as `wrangler dev` does.
    values: BTreeMap<String, VarValue>,
    secrets: BTreeMap<String, String>,
    /// Durable Object bindings; filled once the runtime has started.
    bindings: OnceLock<HashMap<String, Binding>>,
    /// KV namespace bindings (`crate::kv`); filled once the runtime has started.
    kv: OnceLock<crate::kv::Bindings>,
    /// Workflow bindings (`crate::workflow`); filled before the runtime starts.
    workflows: OnceLock<crate::workflow::Bindings>,
    /// Queue producer bindings (`crate::queue`); filled once the runtime has started.
    queues: OnceLock<crate::queue::Bindings>,
}

/// One Durable Object binding: the runtime's namespace and the Rust type that implements it.
pub(crate) struct Binding {
    pub(crate) namespace: Arc<burrow_runtime::Namespace>,
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

impl Env {
    /// An `Env` with these values and secrets and no bindings yet.
    pub(crate) fn new(
        values: BTreeMap<String, VarValue>,
        secrets: BTreeMap<String, String>,
    ) -> Env {
        Env {
            inner: Arc::new(EnvInner {
                values,
                secrets,
                bindings: OnceLock::new(),
                kv: OnceLock::new(),
                workflows: OnceLock::new(),
                queues: OnceLock::new(),
            }),
        }
    }

    /// Installs the Durable Object bindings (once, after the runtime started).
    pub(crate) fn set_bindings(&self, bindings: HashMap<String, Binding>) {
        let _ = self.inner.bindings.set(bindings);
    }

    /// The KV namespace bindings (see `crate::kv`).
    pub(crate) fn kv_bindings(&self) -> &OnceLock<crate::kv::Bindings> {
        &self.inner.kv
    }

    /// The queue producer bindings (see `crate::queue`).
    pub(crate) fn queue_bindings(&self) -> &OnceLock<crate::queue::Bindings> {
        &self.inner.queues
    }

    /// The Workflow bindings (see `crate::workflow`).
    pub(crate) fn workflow_bindings(&self) -> &OnceLock<crate::workflow::Bindings> {
        &self.inner.workflows
    }

    /// The namespace behind Durable Object binding `binding`, whose class is implemented by `T`.
    pub fn durable_object<T: 'static>(&self, binding: &str) -> Result<Namespace<T>> {
        let bindings = self.inner.bindings.get().ok_or_else(|| {
            Error::new("Durable Object bindings are not available until the runtime has started")
        })?;
        let found = bindings.get(binding).ok_or_else(|| {
            let mut known: Vec<&str> = bindings.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::new(format!(
                "env has no Durable Object binding {binding:?} (bindings: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        if found.type_id != TypeId::of::<T>() {
            return Err(Error::new(format!(
                "Durable Object binding {binding:?} (class {:?}) is implemented by {}, not {}",
                found.namespace.class_name(),
                found.type_name,
                std::any::type_name::<T>()
            )));
        }
        Ok(Namespace {
            inner: found.namespace.clone(),
            _class: PhantomData,
        })
    }

    /// A `vars` value as text: strings as they are, other values (numbers, tables) as JSON. A
    /// secret of the same name in `.dev.vars` takes its place, as in `wrangler dev`.
    pub fn var(&self, name: &str) -> Option<String> {
        match self.inner.values.get(name)? {
            VarValue::Text(text) => Some(text.clone()),
            VarValue::Json(value) => Some(value.to_string()),
        }
    }

    /// A `vars` value deserialized from its JSON form (a string var is a JSON string).
    pub fn var_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.inner.values.get(name) {
            None => Ok(None),
            Some(value) => Ok(Some(serde_json::from_value(value.to_json())?)),
        }
    }

    /// A secret: from `.dev.vars` (or the `.env` files `wrangler` reads).
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.inner.secrets.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs: names only.
        formatter
            .debug_struct("Env")
            .field("vars", &self.inner.values.keys().collect::<Vec<_>>())
            .field("secrets", &self.inner.secrets.keys().collect::<Vec<_>>())
            .field(
                "durable_objects",
                &self
                    .inner
                    .bindings
                    .get()
                    .map(|bindings| bindings.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// A Durable Object namespace whose class is implemented by `T`: makes IDs and stubs.
pub struct Namespace<T> {
    inner: Arc<burrow_runtime::Namespace>,
    _class: PhantomData<fn() -> T>,
}

impl<T> Clone for Namespace<T> {
    fn clone(&self) -> Self {
        Namespace {
            inner: self.inner.clone(),
            _class: PhantomData,
        }
    }
}

impl<T> Namespace<T> {
    /// `idFromName`: the same name always gives the same object.
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        self.inner.id_from_name(name)
    }

    /// `newUniqueId`: a fresh object.
    pub fn new_unique_id(&self) -> ObjectId {
        self.inner.new_unique_id()
    }

    /// `idFromString`: parses an ID's 64 hex digits, with Cloudflare's errors for text that is not
    /// an ID of this namespace.
    pub fn id_from_string(&self, text: &str) -> Result<ObjectId> {
        Ok(self.inner.id_from_string(text)?)
    }

    /// A stub for object `id`; the object is constructed on its first event.
    pub fn get(&self, id: ObjectId) -> Stub<T> {
        Stub {
            inner: self.inner.get(id),
            _class: PhantomData,
        }
    }

    /// `getByName(name)` = `get(idFromName(name))`.
    pub fn get_by_name(&self, name: &str) -> Stub<T> {
        Stub {
            inner: self.inner.get_by_name(name),
            _class: PhantomData,
        }
    }

    /// The class's name in `wrangler.toml`.
    pub fn class_name(&self) -> &str {
        self.inner.class_name()
    }
}

/// A stub: a way to reach one object of class `T`. Calls through one stub arrive in order. The
/// class's RPC methods are on its client trait (see [`crate::rpc!`]).
pub struct Stub<T> {
    inner: burrow_runtime::Stub,
    _class: PhantomData<fn() -> T>,
}

impl<T> Clone for Stub<T> {
    fn clone(&self) -> Self {
        Stub {
            inner: self.inner.clone(),
            _class: PhantomData,
        }
    }
}

impl<T> Stub<T> {
    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        self.inner.id()
    }

    /// Sends `request` to the object's `fetch` handler. The request and response bodies are
    /// buffered whole (see [`crate::fetch`]).
    pub async fn fetch(&self, request: Request) -> Result<Response> {
        let request = request.into_buffered().await?;
        Ok(Response::from(self.inner.fetch(request).await?))
    }

    /// Calls RPC method `method` with `args` (a tuple, serialized as a JSON array) and returns
    /// its result. The typed client methods generated by [`crate::rpc!`] call this.
    pub async fn call<A, R>(&self, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let args = serde_json::to_vec(args)?;
        let reply = self.inner.call(method, args.into()).await?;
        serde_json::from_slice(&reply).map_err(|error| {
            Error::new(format!(
                "the result of RPC method \"{method}\" is not the type expected: {error}"
            ))
        })
    }
}

impl<T> fmt::Debug for Stub<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Stub")
            .field("class", &std::any::type_name::<T>())
            .field("id", self.inner.id())
            .finish()
    }
}
