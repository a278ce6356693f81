//! WebSockets in plain Workers (`js/websocket.js`): when a Worker answers with
//! `new Response(null, { status: 101, webSocket: client })`, the ingress accepts the upgrade and
//! burrow-http's WebSocket driver runs the connection on the shard; messages the Worker sends
//! go to the driver's [`Sender`] (bounded by its send buffer), and the connection's messages and
//! close come back as events on the pair's server end, one at a time (the driver reads nothing
//! more until the Worker's listeners have run).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use burrow_http::websocket::{Config, Driver, Event, Flow, Message, PendingConnection, Sender};
use rquickjs::{ArrayBuffer, Ctx, Function, Object, Value};

use crate::isolate::{Isolate, Outcome, Pending};

/// The WebSocket classes, evaluated after the prelude.
pub(crate) const WEBSOCKET_JS: &str = include_str!("js/websocket.js");

/// The open connections of one isolate's Workers, by socket id.
#[derive(Default)]
pub(crate) struct Sockets {
    senders: RefCell<HashMap<u32, Sender>>,
    next: Cell<u32>,
}

impl Sockets {
    /// The isolate is condemned: every socket closes with 1011.
    pub(crate) fn close_all(&self, reason: &str) {
        for (_, sender) in self.senders.borrow_mut().drain() {
            let _ = sender.close(1011, reason);
        }
    }

    fn remove(&self, socket: u32) {
        self.senders.borrow_mut().remove(&socket);
    }
}

/// Installs `wsAccept`, `wsSend` and `wsClose` on `native`.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    sockets: &Rc<Sockets>,
    pending: &Pending,
) -> rquickjs::Result<()> {
    let config = Arc::new(Config::default());
    let table = sockets.clone();
    let waiting = pending.clone();
    native.set(
        "wsAccept",
        Function::new(ctx.clone(), move |id: u32, headers: Vec<String>| {
            let (sender, driver) = Driver::new(config.clone());
            let socket = table.next.get().wrapping_add(1);
            table.next.set(socket);
            table.senders.borrow_mut().insert(socket, sender);
            if let Some(answer) = waiting.borrow_mut().remove(&id) {
                let _ = answer.send(Outcome::WebSocket {
                    headers,
                    socket,
                    driver,
                });
            }
            socket
        })?,
    )?;
    let table = sockets.clone();
    native.set(
        "wsSend",
        Function::new(ctx.clone(), move |socket: u32, data: Value<'js>| {
            let message = if let Some(text) = data.as_string() {
                Message::from(text.to_string()?)
            } else if let Some(buffer) = data
                .as_object()
                .and_then(|object| ArrayBuffer::from_object(object.clone()))
            {
                Message::from(buffer.as_bytes().unwrap_or_default().to_vec())
            } else {
                return Ok(());
            };
            if let Some(sender) = table.senders.borrow().get(&socket)
                && let Err(error) = sender.send(message)
            {
                tracing::debug!(socket, "WebSocket send dropped: {error}");
            }
            Ok::<(), rquickjs::Error>(())
        })?,
    )?;
    let table = sockets.clone();
    native.set(
        "wsClose",
        Function::new(
            ctx.clone(),
            move |socket: u32, code: u16, reason: String| {
                if let Some(sender) = table.senders.borrow().get(&socket) {
                    let _ = sender.close(code, &reason);
                }
            },
        )?,
    )?;
    Ok(())
}

/// Runs socket `socket` of `isolate` over the connection once the `101` is written, delivering
/// its events to the Worker.
pub(crate) async fn run(
    isolate: Rc<Isolate>,
    socket: u32,
    driver: Driver,
    connection: PendingConnection,
) {
    let connection = match connection.connect().await {
        Ok(connection) => connection,
        Err(error) => {
            deliver(&isolate, socket, Delivery::Gone(error.to_string())).await;
            return;
        }
    };
    let events = isolate.clone();
    driver
        .run(connection, move |event: Event| {
            let isolate = events.clone();
            Flow::Pause(Box::pin(async move {
                let delivery = match event {
                    Event::Message(message) => Delivery::Message(message),
                    Event::Closed(closed) => Delivery::Closed {
                        code: closed.code,
                        reason: closed.reason,
                        was_clean: closed.was_clean,
                        error: closed.error.map(|error| error.to_string()),
                    },
                };
                deliver(&isolate, socket, delivery).await;
            }))
        })
        .await;
}

/// Tells the Worker that a socket whose upgrade never happened is closed.
pub(crate) async fn abandoned(isolate: &Isolate, socket: u32, why: String) {
    deliver(isolate, socket, Delivery::Gone(why)).await;
}

enum Delivery {
    Message(Message),
    Closed {
        code: u16,
        reason: String,
        was_clean: bool,
        error: Option<String>,
    },
    /// The connection never came (the client left before the upgrade).
    Gone(String),
}

async fn deliver(isolate: &Isolate, socket: u32, delivery: Delivery) {
    let ends = !matches!(delivery, Delivery::Message(_));
    let result = isolate
        .with(move |ctx, internals, _env| {
            let dispatch: Function = internals.get("wsDispatch")?;
            let none = Value::new_undefined(ctx.clone());
            match delivery {
                Delivery::Message(Message::Text(text)) => {
                    dispatch.call::<_, ()>((socket, "message", text.as_str()))
                }
                Delivery::Message(Message::Binary(bytes)) => dispatch.call::<_, ()>((
                    socket,
                    "message",
                    ArrayBuffer::new_copy(ctx.clone(), &bytes[..])?,
                )),
                Delivery::Closed {
                    code,
                    reason,
                    was_clean,
                    error,
                } => {
                    if let Some(error) = error {
                        dispatch.call::<_, ()>((socket, "error", error))?;
                    }
                    dispatch.call::<_, ()>((socket, "close", none, code, reason, was_clean))
                }
                Delivery::Gone(why) => {
                    dispatch.call::<_, ()>((socket, "error", why))?;
                    dispatch.call::<_, ()>((socket, "close", none, 1006, "", false))
                }
            }
        })
        .await;
    if let Err(error) = result {
        tracing::debug!(socket, "WebSocket event not delivered: {error}");
    }
    if ends {
        isolate.sockets().remove(socket);
    }
}
