//! The Worker's `env`: `vars` (strings, or JSON values), secrets from `.dev.vars`, KV
//! namespaces (the KV API of spec §4 over `burrow_services::kv`) and queue producers (`send`,
//! `sendBatch` over `burrow_services::queues`). The JavaScript classes live in
//! the prelude; this file gives them their native calls.

use std::sync::Arc;

use burrow_services::kv::{KvNamespace, ListOptions, PutOptions};
use burrow_services::queues::{BatchOptions, Body, ContentType, Queue, SendOptions, SendRequest};
use bytes::Bytes;
use rquickjs::function::{Async, Opt};
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Value};

use crate::script::Script;

/// Builds `env` for one isolate.
pub(crate) fn env<'js>(
    ctx: &Ctx<'js>,
    internals: &Object<'js>,
    script: &Script,
) -> rquickjs::Result<Object<'js>> {
    let env = Object::new(ctx.clone())?;
    for (name, value) in &script.vars {
        let value: Value = match value {
            serde_json::Value::String(text) => {
                rquickjs::String::from_str(ctx.clone(), text)?.into_value()
            }
            other => ctx.json_parse(other.to_string())?,
        };
        env.set(name.as_str(), value)?;
    }
    for (name, value) in &script.secrets {
        env.set(name.as_str(), value.as_str())?;
    }
    if !script.queues.is_empty() {
        let make: Function = internals.get("queue")?;
        for binding in script.queues.keys() {
            let queue: Object = make.call((binding.as_str(),))?;
            env.set(binding.as_str(), queue)?;
        }
    }
    crate::workflows::add_bindings(internals, &env, script)?;
    if !script.kv.is_empty() {
        let make: Function = internals.get("kvNamespace")?;
        for binding in script.kv.keys() {
            let namespace: Object = make.call((binding.as_str(),))?;
            env.set(binding.as_str(), namespace)?;
        }
    }
    crate::objects::add_env(internals, &env, script)?;
    crate::services::add_env(internals, &env, script)?;
    Ok(env)
}

/// The KV namespace of `binding`, or a JavaScript error.
fn namespace(ctx: &Ctx<'_>, script: &Script, binding: &str) -> rquickjs::Result<KvNamespace> {
    script
        .kv
        .get(binding)
        .cloned()
        .ok_or_else(|| Exception::throw_internal(ctx, &format!("no KV binding {binding:?}")))
}

fn kv_error(ctx: &Ctx<'_>, error: burrow_services::kv::Error) -> rquickjs::Error {
    Exception::throw_message(ctx, &error.to_string())
}

/// The queue producer of `binding`, or a JavaScript error.
fn producer(ctx: &Ctx<'_>, script: &Script, binding: &str) -> rquickjs::Result<Queue> {
    script
        .queues
        .get(binding)
        .cloned()
        .ok_or_else(|| Exception::throw_internal(ctx, &format!("no queue binding {binding:?}")))
}

/// A message body from the prelude: its content type and bytes.
fn queue_body(
    ctx: &Ctx<'_>,
    content_type: &str,
    bytes: &ArrayBuffer<'_>,
) -> rquickjs::Result<Body> {
    let content_type = ContentType::parse(content_type)
        .map_err(|error| Exception::throw_type(ctx, &error.to_string()))?;
    Ok(Body::new(
        content_type,
        Bytes::copy_from_slice(bytes.as_bytes().unwrap_or_default()),
    ))
}

/// A `delaySeconds` option: a whole number of seconds (the queue checks the range).
fn delay(value: Option<f64>) -> Option<u32> {
    value
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// Adds the native KV and queue calls to the prelude's `native` object.
pub(crate) fn install_natives<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    script: &Arc<Script>,
) -> rquickjs::Result<()> {
    let s = script.clone();
    native.set(
        "queueSend",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      content_type: String,
                      bytes: ArrayBuffer<'js>,
                      delay_seconds: Opt<Option<f64>>| {
                    let queue = producer(&ctx, &s, &binding);
                    let body = queue_body(&ctx, &content_type, &bytes);
                    let options = SendOptions {
                        delay_seconds: delay(delay_seconds.0.flatten()),
                    };
                    async move {
                        queue?
                            .send(body?, options)
                            .await
                            .map_err(|error| Exception::throw_message(&ctx, &error.to_string()))
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "queueSendBatch",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      messages: rquickjs::Array<'js>,
                      delay_seconds: Opt<Option<f64>>| {
                    let queue = producer(&ctx, &s, &binding);
                    let requests = (|| -> rquickjs::Result<Vec<SendRequest>> {
                        let mut requests = Vec::with_capacity(messages.len());
                        for message in messages.iter::<rquickjs::Array>() {
                            let message = message?;
                            let content_type: String = message.get(0)?;
                            let bytes: ArrayBuffer = message.get(1)?;
                            let message_delay: Option<f64> = message.get(2)?;
                            requests.push(SendRequest {
                                body: queue_body(&ctx, &content_type, &bytes)?,
                                delay_seconds: delay(message_delay),
                            });
                        }
                        Ok(requests)
                    })();
                    let options = BatchOptions {
                        delay_seconds: delay(delay_seconds.0.flatten()),
                    };
                    async move {
                        queue?
                            .send_batch(requests?, options)
                            .await
                            .map_err(|error| Exception::throw_message(&ctx, &error.to_string()))
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "kvGet",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, binding: String, key: String| {
                let namespace = namespace(&ctx, &s, &binding);
                async move {
                    let value = namespace?.get(&key).await.map_err(|e| kv_error(&ctx, e))?;
                    match value {
                        Some(bytes) => Ok::<_, rquickjs::Error>(Some(ArrayBuffer::new_copy(
                            ctx.clone(),
                            &bytes[..],
                        )?)),
                        None => Ok(None),
                    }
                }
            }),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "kvGetWithMetadata",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, binding: String, key: String| {
                let namespace = namespace(&ctx, &s, &binding);
                async move {
                    let value = namespace?
                        .get_with_metadata(&key)
                        .await
                        .map_err(|e| kv_error(&ctx, e))?;
                    let Some(value) = value else {
                        return Ok::<_, rquickjs::Error>(None);
                    };
                    let pair = rquickjs::Array::new(ctx.clone())?;
                    pair.set(0, ArrayBuffer::new_copy(ctx.clone(), &value.value[..])?)?;
                    pair.set(1, value.metadata.map(|metadata| metadata.to_string()))?;
                    Ok(Some(pair))
                }
            }),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "kvPut",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      key: String,
                      value: ArrayBuffer<'js>,
                      expiration: Opt<Option<f64>>,
                      expiration_ttl: Opt<Option<f64>>,
                      metadata: Opt<Option<String>>| {
                    let namespace = namespace(&ctx, &s, &binding);
                    let value = Bytes::copy_from_slice(value.as_bytes().unwrap_or_default());
                    let metadata = metadata.0.flatten().map(|text| {
                        serde_json::from_str::<serde_json::Value>(&text)
                            .map_err(|error| error.to_string())
                    });
                    async move {
                        let metadata = match metadata {
                            Some(Ok(metadata)) => Some(metadata),
                            Some(Err(error)) => {
                                return Err(Exception::throw_message(
                                    &ctx,
                                    &format!("KV PUT failed: metadata is not JSON: {error}"),
                                ));
                            }
                            None => None,
                        };
                        let options = PutOptions {
                            expiration: expiration
                                .0
                                .flatten()
                                .filter(|v| v.is_finite())
                                .map(|v| v as i64),
                            expiration_ttl: expiration_ttl
                                .0
                                .flatten()
                                .filter(|v| v.is_finite())
                                .map(|v| v as i64),
                            metadata,
                        };
                        namespace?
                            .put_with(&key, &value, options)
                            .await
                            .map_err(|e| kv_error(&ctx, e))
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "kvDelete",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, binding: String, key: String| {
                let namespace = namespace(&ctx, &s, &binding);
                async move { namespace?.delete(&key).await.map_err(|e| kv_error(&ctx, e)) }
            }),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "kvList",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      prefix: Opt<Option<String>>,
                      limit: Opt<Option<f64>>,
                      cursor: Opt<Option<String>>| {
                    let namespace = namespace(&ctx, &s, &binding);
                    let options = ListOptions {
                        prefix: prefix.0.flatten(),
                        limit: limit.0.flatten().map(|limit| limit.max(0.0) as usize),
                        cursor: cursor.0.flatten().filter(|cursor| !cursor.is_empty()),
                    };
                    async move {
                        let page = namespace?
                            .list(options)
                            .await
                            .map_err(|e| kv_error(&ctx, e))?;
                        serde_json::to_string(&page)
                            .map_err(|error| Exception::throw_internal(&ctx, &error.to_string()))
                    }
                },
            ),
        )?,
    )?;
    Ok(())
}
