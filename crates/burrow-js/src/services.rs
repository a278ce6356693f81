//! Service bindings between JavaScript Workers loaded together (several `-c` configurations, or a
//! Worker bound to itself): `env.SERVICE.fetch()` runs the target Worker's `fetch`, and RPC calls
//! a method of its default export or of the named `WorkerEntrypoint` the binding's `entrypoint`
//! names, with the same structured-clone encoding as Durable Object RPC (`js/service.js`).
//!
//! The target runs on the caller's shard, in its own isolate there: a service call never leaves
//! the thread. The caller's ingress handler on the shard owns the target's per-shard state (an
//! auxiliary Worker has no ingress of its own), so it goes away with the ingress at shutdown.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use rquickjs::function::{Async, Opt};
use rquickjs::{Array, ArrayBuffer, Ctx, Exception, Function, Object};

use crate::isolate::Outcome;
use crate::script::Script;
use crate::{JsWorker, MAX_REQUEST_BODY_BYTES, ShardWorker};

/// The JavaScript half: the binding's object and the RPC dispatch function.
const SERVICE_JS: &str = include_str!("js/service.js");

/// A service binding's target: a Worker and the export its calls go to.
pub(crate) struct Target {
    pub(crate) worker: Arc<JsWorker>,
    pub(crate) entrypoint: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "Service({}, {:?})",
            self.worker.name(),
            self.entrypoint
        )
    }
}

/// This shard's state of the target Worker.
fn shard(ctx: &Ctx<'_>, target: &Target) -> rquickjs::Result<Rc<ShardWorker>> {
    let worker = &target.worker;
    worker.local().ok_or_else(|| {
        Exception::throw_message(
            ctx,
            &format!("the Worker {:?} has not started yet", worker.name()),
        )
    })
}

fn target<'a>(ctx: &Ctx<'_>, script: &'a Script, binding: &str) -> rquickjs::Result<&'a Target> {
    script
        .services
        .get(binding)
        .ok_or_else(|| Exception::throw_internal(ctx, &format!("no service binding {binding:?}")))
}

fn failure<'js>(ctx: &Ctx<'js>, message: &str, remote: bool) -> rquickjs::Result<Array<'js>> {
    let answer = Array::new(ctx.clone())?;
    answer.set(0, true)?;
    let info = Array::new(ctx.clone())?;
    info.set(0, message)?;
    info.set(1, remote)?;
    info.set(2, false)?;
    info.set(3, false)?;
    answer.set(1, info)?;
    Ok(answer)
}

/// Adds the service bindings to `env`.
pub(crate) fn add_env<'js>(
    internals: &Object<'js>,
    env: &Object<'js>,
    script: &Script,
) -> rquickjs::Result<()> {
    if script.services.is_empty() {
        return Ok(());
    }
    let make: Function = internals.get("serviceBinding")?;
    for binding in script.services.keys() {
        let service: Object = make.call((binding.as_str(),))?;
        env.set(binding.as_str(), service)?;
    }
    Ok(())
}

/// Evaluates `js/service.js` with the natives and the prelude's internals.
pub(crate) fn install_js<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    internals: &Object<'js>,
) -> rquickjs::Result<()> {
    let install: Function = ctx.eval(SERVICE_JS)?;
    install.call::<_, ()>((native.clone(), internals.clone()))
}

/// Adds `svcFetch` and `svcCall` to the prelude's `native` object.
pub(crate) fn install_natives<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    script: &Arc<Script>,
) -> rquickjs::Result<()> {
    let s = script.clone();
    native.set(
        "svcFetch",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      url: String,
                      method: String,
                      headers: Vec<String>,
                      body: Opt<Option<ArrayBuffer<'js>>>| {
                    let worker = target(&ctx, &s, &binding).and_then(|t| shard(&ctx, t));
                    let body = body
                        .0
                        .flatten()
                        .map(|b| Bytes::copy_from_slice(b.as_bytes().unwrap_or_default()))
                        .unwrap_or_default();
                    let mut request = http::Request::builder()
                        .method(method.as_str())
                        .uri(url.as_str());
                    let mut has_host = false;
                    for pair in headers.chunks_exact(2) {
                        has_host |= pair[0].eq_ignore_ascii_case("host");
                        request = request.header(pair[0].as_str(), pair[1].as_str());
                    }
                    // The target sees the URL the caller gave (its host comes from this header).
                    if !has_host
                        && let Some(authority) = url
                            .parse::<http::Uri>()
                            .ok()
                            .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()))
                    {
                        request = request.header(http::header::HOST, authority);
                    }
                    let request = request.body(burrow_http::Body::from_bytes(body));
                    async move {
                        let worker = worker?;
                        let request = request.map_err(|error| {
                            Exception::throw_type(&ctx, &format!("invalid request: {error}"))
                        })?;
                        // In a task of its own: this future is polled by the calling isolate's
                        // driver, which holds that isolate's lock, and the target may be the same
                        // isolate (a Worker bound to itself).
                        let response =
                            match tokio::task::spawn_local(
                                async move { worker.fetch(request).await },
                            )
                            .await
                            {
                                Ok(response) => response,
                                Err(_) => {
                                    return failure(&ctx, "the service call was cancelled", false);
                                }
                            };
                        let (parts, body) = response.into_parts();
                        let body = match body.collect_limited(MAX_REQUEST_BODY_BYTES).await {
                            Ok(body) => body,
                            Err(error) => {
                                return failure(
                                    &ctx,
                                    &format!("the service's response body failed: {error}"),
                                    false,
                                );
                            }
                        };
                        let answer = Array::new(ctx.clone())?;
                        answer.set(0, false)?;
                        answer.set(1, parts.status.as_u16())?;
                        let headers = Array::new(ctx.clone())?;
                        let mut index = 0;
                        for (name, value) in &parts.headers {
                            headers.set(index, name.as_str())?;
                            headers.set(
                                index + 1,
                                String::from_utf8_lossy(value.as_bytes()).into_owned(),
                            )?;
                            index += 2;
                        }
                        answer.set(2, headers)?;
                        answer.set(3, ArrayBuffer::new_copy(ctx.clone(), &body[..])?)?;
                        Ok::<_, rquickjs::Error>(answer)
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "svcCall",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>, binding: String, method: String, payload: String| {
                    let found = target(&ctx, &s, &binding)
                        .and_then(|t| Ok((shard(&ctx, t)?, t.entrypoint.clone())));
                    async move {
                        let (worker, entrypoint) = found?;
                        // In a task of its own, as for fetch: the target may be this isolate.
                        let outcome = tokio::task::spawn_local(async move {
                            let isolate = worker.isolate().await?;
                            Ok::<_, String>(
                                isolate
                                    .event(move |_ctx, internals, _handlers, env, id| {
                                        let call: Function = internals.get("entrypointCall")?;
                                        call.call::<_, ()>((id, entrypoint, method, payload, env))
                                    })
                                    .await,
                            )
                        })
                        .await;
                        let outcome = match outcome {
                            Ok(Ok(outcome)) => outcome,
                            Ok(Err(message)) => {
                                return failure(
                                    &ctx,
                                    &format!("the service did not load: {message}"),
                                    false,
                                );
                            }
                            Err(_) => {
                                return failure(&ctx, "the service call was cancelled", false);
                            }
                        };
                        match outcome {
                            Outcome::Done { body, .. } => {
                                let answer = Array::new(ctx.clone())?;
                                answer.set(0, false)?;
                                answer.set(1, String::from_utf8_lossy(&body).into_owned())?;
                                Ok::<_, rquickjs::Error>(answer)
                            }
                            Outcome::Exception(message) => failure(&ctx, &message, true),
                            Outcome::Exceeded(exceeded) => failure(
                                &ctx,
                                &format!(
                                    "Worker exceeded resource limits ({})",
                                    exceeded.outcome()
                                ),
                                false,
                            ),
                            _ => failure(&ctx, "the RPC call produced no result", false),
                        }
                    }
                },
            ),
        )?,
    )?;
    Ok(())
}
