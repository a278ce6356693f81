//! The Worker's `env`: `vars` (strings, or JSON values), secrets from `.dev.vars`, and KV
//! namespaces (the KV API of spec §4 over `burrow_services::kv`). The JavaScript classes live in
//! the prelude; this file gives them their native calls.

use std::sync::Arc;

use burrow_services::kv::{KvNamespace, ListOptions, PutOptions};
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
    if !script.kv.is_empty() {
        let make: Function = internals.get("kvNamespace")?;
        for binding in script.kv.keys() {
            let namespace: Object = make.call((binding.as_str(),))?;
            env.set(binding.as_str(), namespace)?;
        }
    }
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

/// Adds the native KV calls to the prelude's `native` object.
pub(crate) fn install_natives<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    script: &Arc<Script>,
) -> rquickjs::Result<()> {
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
