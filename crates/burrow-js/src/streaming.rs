//! Streaming bodies between the HTTP side and an isolate: `js/streams.js` (the WHATWG streams),
//! `js/body.js` (stream bodies on Request and Response), `js/formdata.js` (FormData and form
//! bodies), and their native helpers. A request
//! body is read as the Worker pulls (`readBody`); a Response whose body is a stream is sent chunk
//! by chunk (`head`, `push`, `end`, `abort`) through a bounded channel, so a slow client slows
//! the Worker's stream instead of growing memory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burrow_http::{Body, BodySender};
use bytes::Bytes;
use rquickjs::function::Async;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, TypedArray};

use crate::MAX_REQUEST_BODY_BYTES;
use crate::isolate::{Outcome, Pending};

/// The WHATWG streams, evaluated before the prelude.
const STREAMS: &str = include_str!("js/streams.js");
/// Request and Response bodies as streams, evaluated after streams.js.
const BODY: &str = include_str!("js/body.js");
/// FormData, its serialization and the parsing of form bodies, evaluated after body.js.
const FORMDATA: &str = include_str!("js/formdata.js");

/// Chunks (of at most 64 KiB, cut by body.js) waiting between a streaming Response and the
/// connection: at most 256 KiB are buffered per response.
const CHANNEL_CHUNKS: usize = 4;

/// A request body the Worker reads as it pulls.
struct RequestBody {
    /// `None` while a read is under way.
    body: Option<Body>,
    read: u64,
}

/// The streaming bodies of the events in flight on one isolate, by event id.
#[derive(Default)]
pub(crate) struct Streams {
    bodies: RefCell<HashMap<u32, RequestBody>>,
    senders: RefCell<HashMap<u32, Rc<BodySender>>>,
}

impl Streams {
    /// Event `id`'s request body, read by `native.readBody(id)`.
    pub(crate) fn add_request_body(&self, id: u32, body: Body) {
        self.bodies.borrow_mut().insert(
            id,
            RequestBody {
                body: Some(body),
                read: 0,
            },
        );
    }

    /// Event `id` is over (answered in one piece, failed, or its stream ended).
    pub(crate) fn finish(&self, id: u32) {
        self.bodies.borrow_mut().remove(&id);
        self.senders.borrow_mut().remove(&id);
    }

    /// The isolate is condemned: every streaming response fails, every request body goes.
    pub(crate) fn abort_all(&self, reason: &'static str) {
        self.bodies.borrow_mut().clear();
        let senders: Vec<_> = self.senders.borrow_mut().drain().collect();
        for (_, sender) in senders {
            abort(sender, reason.to_owned());
        }
    }
}

/// Fails a streaming response's body (the client sees a broken body, not a clean end).
fn abort(sender: Rc<BodySender>, reason: String) {
    if let Ok(sender) = Rc::try_unwrap(sender) {
        tokio::task::spawn_local(async move { sender.abort(reason).await });
    }
}

/// Installs the native helpers on `native`, then evaluates streams.js and body.js.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    streams: &Rc<Streams>,
    pending: &Pending,
    worker: &str,
) -> rquickjs::Result<()> {
    let state = streams.clone();
    native.set(
        "readBody",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, id: u32| {
                let state = state.clone();
                async move { read_body(ctx, &state, id).await }
            }),
        )?,
    )?;
    let state = streams.clone();
    native.set(
        "dropBody",
        Function::new(ctx.clone(), move |id: u32| {
            state.bodies.borrow_mut().remove(&id);
        })?,
    )?;
    let state = streams.clone();
    let waiting = pending.clone();
    native.set(
        "head",
        Function::new(
            ctx.clone(),
            move |id: u32, status: u16, headers: Vec<String>| {
                let Some(answer) = waiting.borrow_mut().remove(&id) else {
                    return;
                };
                let (sender, body) = Body::channel(CHANNEL_CHUNKS);
                state.senders.borrow_mut().insert(id, Rc::new(sender));
                let _ = answer.send(Outcome::Streaming {
                    status,
                    headers,
                    body,
                });
            },
        )?,
    )?;
    let state = streams.clone();
    native.set(
        "push",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, id: u32, chunk: TypedArray<'js, u8>| {
                let bytes = chunk.as_bytes().map(Bytes::copy_from_slice);
                let sender = state.senders.borrow().get(&id).cloned();
                async move {
                    let Some(sender) = sender else {
                        return Err(Exception::throw_type(
                            &ctx,
                            "The response stream has ended; the client may have disconnected.",
                        ));
                    };
                    let bytes = bytes.ok_or_else(|| {
                        Exception::throw_type(&ctx, "The chunk's buffer was detached.")
                    })?;
                    sender
                        .send(bytes)
                        .await
                        .map_err(|_| Exception::throw_type(&ctx, "The client disconnected."))
                }
            }),
        )?,
    )?;
    let state = streams.clone();
    native.set(
        "end",
        Function::new(ctx.clone(), move |id: u32| state.finish(id))?,
    )?;
    let state = streams.clone();
    let name = worker.to_owned();
    native.set(
        "abort",
        Function::new(ctx.clone(), move |id: u32, message: String| {
            tracing::error!(worker = %name, outcome = "exception", "streaming response failed: {message}");
            state.bodies.borrow_mut().remove(&id);
            let sender = state.senders.borrow_mut().remove(&id);
            if let Some(sender) = sender {
                abort(sender, message);
            }
        })?,
    )?;

    let streams: Function = ctx.eval(STREAMS)?;
    streams.call::<_, ()>((native.clone(),))?;
    let body: Function = ctx.eval(BODY)?;
    body.call::<_, ()>((native.clone(),))?;
    let forms: Function = ctx.eval(FORMDATA)?;
    forms.call::<_, ()>((native.clone(),))?;
    Ok(())
}

/// The next chunk of event `id`'s request body; `null` at its end.
async fn read_body<'js>(
    ctx: Ctx<'js>,
    streams: &Streams,
    id: u32,
) -> rquickjs::Result<Option<ArrayBuffer<'js>>> {
    let taken = streams
        .bodies
        .borrow_mut()
        .get_mut(&id)
        .and_then(|entry| entry.body.take());
    let Some(mut body) = taken else {
        return Ok(None);
    };
    match body.chunk().await {
        None => {
            streams.bodies.borrow_mut().remove(&id);
            Ok(None)
        }
        Some(Err(error)) => {
            streams.bodies.borrow_mut().remove(&id);
            Err(Exception::throw_type(
                &ctx,
                &format!("Cannot read the request body: {error}"),
            ))
        }
        Some(Ok(bytes)) => {
            let mut bodies = streams.bodies.borrow_mut();
            if let Some(entry) = bodies.get_mut(&id) {
                entry.read += bytes.len() as u64;
                if entry.read > MAX_REQUEST_BODY_BYTES {
                    bodies.remove(&id);
                    return Err(Exception::throw_range(
                        &ctx,
                        &format!("The request body is larger than {MAX_REQUEST_BODY_BYTES} bytes."),
                    ));
                }
                entry.body = Some(body);
            }
            Ok(Some(ArrayBuffer::new_copy(ctx.clone(), &bytes[..])?))
        }
    }
}
