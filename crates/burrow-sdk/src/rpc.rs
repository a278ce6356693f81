//! Typed RPC: [`crate::rpc!`] declares a class's RPC methods once and generates both ends, the
//! dispatch inside the object ([`Rpc`]) and a client trait implemented for the class's
//! [`crate::Stub`].
//!
//! # Wire format
//! A call carries the method's name and its arguments as one JSON array (`[1, "a"]`; `null` for
//! no arguments); the reply is the method's `Ok` value as JSON. An `Err` from the method reaches
//! the caller as an [`Error`] with [`Error::is_remote`] set and the same message. Arguments and
//! results must therefore implement `Serialize` and `DeserializeOwned` (take `String`, not
//! `&str`). JSON keeps calls readable in logs and lets a later JavaScript guest call Rust
//! objects.

use std::future::Future;

use burrow_runtime::ObjectError;
pub use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The server side of a class's RPC methods. [`crate::rpc!`] implements it; a class without RPC
/// methods writes `impl burrow::Rpc for MyClass {}`, which refuses every call.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare its RPC methods",
    note = "declare them with `burrow::rpc! {{ pub trait {Self}Rpc for {Self} {{ ... }} }}`, or write `impl burrow::Rpc for {Self} {{}}` if it has none"
)]
pub trait Rpc {
    /// Runs RPC method `method` with its JSON-encoded arguments; returns its JSON-encoded result.
    fn dispatch(
        &self,
        method: &str,
        args: Bytes,
    ) -> impl Future<Output = Result<Bytes, ObjectError>> {
        let _ = args;
        std::future::ready(Err(no_such_method(method)))
    }
}

/// What an RPC method returns: `Result<T, E>` with a serializable `T` and an error that converts
/// into [`Error`].
pub trait Return {
    /// The `Ok` type, which crosses the stub.
    type Value: Serialize + DeserializeOwned;
    /// The result with the SDK's error.
    fn into_result(self) -> Result<Self::Value>;
}

impl<T, E> Return for std::result::Result<T, E>
where
    T: Serialize + DeserializeOwned,
    E: Into<Error>,
{
    type Value = T;

    fn into_result(self) -> Result<T> {
        self.map_err(Into::into)
    }
}

/// Cloudflare's error for a method the object does not have.
pub fn no_such_method(method: &str) -> ObjectError {
    ObjectError::remote(format!(
        "The RPC receiver does not implement the method \"{method}\"."
    ))
}

/// Decodes a call's arguments (generated code calls this).
pub fn decode_args<A: DeserializeOwned>(method: &str, args: &[u8]) -> Result<A, ObjectError> {
    serde_json::from_slice(args).map_err(|error| {
        ObjectError::remote(format!(
            "RPC method \"{method}\" received arguments it cannot read: {error}"
        ))
    })
}

/// Encodes a method's result for the caller (generated code calls this).
pub fn encode_result<R: Return>(result: R) -> Result<Bytes, ObjectError> {
    let value = result.into_result().map_err(Error::into_remote)?;
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|error| ObjectError::remote(format!("cannot serialize the RPC result: {error}")))
}

/// Declares a Durable Object class's RPC methods: generates the dispatch inside the object and a
/// client trait for its stubs.
///
/// The methods themselves are ordinary `async fn`s in an `impl` block of the class, with the
/// signatures declared here. Each returns `Result<T, E>` (usually [`crate::Result<T>`]); its
/// arguments and `T` are serialized as JSON (see [the wire format](mod@crate::rpc)).
///
/// ```
/// use std::cell::Cell;
/// use burrow::{DurableObject, Env, ObjectContext, Result};
///
/// pub struct Counter {
///     value: Cell<i64>,
/// }
///
/// impl DurableObject for Counter {
///     fn new(_ctx: ObjectContext, _env: Env) -> Self {
///         Counter { value: Cell::new(0) }
///     }
/// }
///
/// impl Counter {
///     async fn add(&self, by: i64) -> Result<i64> {
///         self.value.set(self.value.get() + by);
///         Ok(self.value.get())
///     }
///
///     async fn label(&self, prefix: String) -> Result<String> {
///         Ok(format!("{prefix}{}", self.value.get()))
///     }
/// }
///
/// burrow::rpc! {
///     /// Calls on a `Counter` stub.
///     pub trait CounterRpc for Counter {
///         async fn add(&self, by: i64) -> Result<i64>;
///         async fn label(&self, prefix: String) -> Result<String>;
///     }
/// }
///
/// // With `CounterRpc` in scope, a `Stub<Counter>` has the methods:
/// async fn bump(env: burrow::Env) -> Result<i64> {
///     env.durable_object::<Counter>("COUNTER")?.get_by_name("a").add(1).await
/// }
/// ```
#[macro_export]
macro_rules! rpc {
    (
        $(#[$trait_attribute:meta])*
        $visibility:vis trait $client:ident for $class:ty {
            $(
                $(#[$method_attribute:meta])*
                async fn $method:ident(&self $(, $argument:ident : $argument_type:ty)* $(,)?) -> $return:ty;
            )*
        }
    ) => {
        $(#[$trait_attribute])*
        $visibility trait $client {
            $(
                $(#[$method_attribute])*
                fn $method(
                    &self
                    $(, $argument: $argument_type)*
                ) -> impl ::core::future::Future<
                    Output = $crate::Result<<$return as $crate::rpc::Return>::Value>,
                >;
            )*
        }

        impl $client for $crate::Stub<$class> {
            $(
                fn $method(
                    &self
                    $(, $argument: $argument_type)*
                ) -> impl ::core::future::Future<
                    Output = $crate::Result<<$return as $crate::rpc::Return>::Value>,
                > {
                    async move { self.call(::core::stringify!($method), &($($argument,)*)).await }
                }
            )*
        }

        impl $crate::Rpc for $class {
            async fn dispatch(
                &self,
                method: &str,
                args: $crate::rpc::Bytes,
            ) -> ::core::result::Result<$crate::rpc::Bytes, $crate::ObjectError> {
                let _ = &args;
                match method {
                    $(
                        ::core::stringify!($method) => {
                            let ($($argument,)*): ($($argument_type,)*) =
                                $crate::rpc::decode_args(::core::stringify!($method), &args)?;
                            let result: $return = <$class>::$method(self $(, $argument)*).await;
                            $crate::rpc::encode_result(result)
                        }
                    )*
                    other => ::core::result::Result::Err($crate::rpc::no_such_method(other)),
                }
            }
        }
    };
}
