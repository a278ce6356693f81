//! The chat example: chat rooms on hibernatable WebSockets. Each room is a Durable Object named
//! after the room; its members' sockets are held by the runtime, so an idle room costs no
//! instance and its sockets stay open while it hibernates.
//!
//! - `GET /rooms/:room/ws?user=NAME` with `Upgrade: websocket` → the Worker forwards the request
//!   to room `:room` with `Stub::fetch` (as a Cloudflare Worker does); the room accepts the socket
//!   tagged `user:NAME`, keeps `NAME` in the socket's attachment, and answers `101`.
//! - On a socket: `ping` → `pong`, answered by the runtime without waking the room; `/who` → the
//!   members; `/to NAME TEXT` → `NAME` only (by tag); any other text → `NAME: TEXT` to everyone
//!   in the room, the sender included. A member leaving is announced to the others.
//! - `GET /rooms/:room` → the members, as JSON (a typed RPC call).
//! - `GET /hello` → `ok`.
//!
//! Run it from the repository root with `cargo run --release --example chat`.

use burrow::websocket::Message;
use burrow::{
    App, DurableObject, Env, Error, ObjectContext, Request, Response, Result, StatusCode, WebSocket,
};
use serde::{Deserialize, Serialize};

/// Longest user name.
const MAX_NAME_CHARS: usize = 64;

/// What a room keeps with each socket (its attachment): it survives hibernation.
#[derive(Serialize, Deserialize)]
struct Member {
    name: String,
}

/// One chat room. It holds nothing in memory: the sockets, their tags and attachments are the
/// runtime's, so the room can hibernate between messages.
pub struct Room {
    ctx: ObjectContext,
}

impl DurableObject for Room {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        // Kept by the runtime while the room hibernates; setting it again is harmless.
        ctx.set_websocket_auto_response(Some(("ping", "pong")))
            .expect("a short pair");
        Room { ctx }
    }

    /// The upgrade request the Worker forwarded.
    async fn fetch(&self, request: Request) -> Result<Response> {
        let name = request.query("user").unwrap_or_default().into_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains(' ') {
            return Err(Error::new(format!(
                "?user= must be 1 to {MAX_NAME_CHARS} characters without spaces"
            ))
            .with_status(StatusCode::BAD_REQUEST));
        }
        let (ws, response) = self
            .ctx
            .accept_websocket(&request, &[&format!("user:{name}")])?;
        ws.serialize_attachment(&Member { name })?;
        Ok(response)
    }

    async fn websocket_message(&self, ws: WebSocket, message: Message) -> Result<()> {
        let Message::Text(text) = message else {
            return ws.send("this room takes text messages only");
        };
        let text = text.as_str();
        let me = member(&ws)?;
        if text == "/who" {
            return ws.send(format!("members: {}", self.members()?.join(", ")));
        }
        if let Some(rest) = text.strip_prefix("/to ") {
            let (to, body) = rest.split_once(' ').unwrap_or((rest, ""));
            let peers = self.ctx.get_websockets(Some(&format!("user:{to}")));
            if peers.is_empty() {
                return ws.send(format!("{to} is not here"));
            }
            for peer in peers {
                peer.send(format!("{} (to you): {body}", me.name))?;
            }
            return Ok(());
        }
        let line = Message::from(format!("{}: {text}", me.name));
        for peer in self.ctx.get_websockets(None) {
            // A member whose socket just closed is skipped; the others still get the line.
            let _ = peer.send(line.clone());
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: u16,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.announce_leaving(&ws)
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        self.announce_leaving(&ws)
    }
}

impl Room {
    fn members(&self) -> Result<Vec<String>> {
        self.ctx
            .get_websockets(None)
            .iter()
            .map(|ws| member(ws).map(|member| member.name))
            .collect()
    }

    fn announce_leaving(&self, ws: &WebSocket) -> Result<()> {
        let me = member(ws)?;
        let line = Message::from(format!("* {} left", me.name));
        for peer in self.ctx.get_websockets(None) {
            if peer != *ws {
                let _ = peer.send(line.clone());
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.members()
    }
}

fn member(ws: &WebSocket) -> Result<Member> {
    ws.deserialize_attachment()?
        .ok_or_else(|| Error::new("a socket without its member attachment"))
}

burrow::rpc! {
    /// What a `Stub<Room>` can do besides `fetch`.
    pub trait RoomRpc for Room {
        async fn list(&self) -> Result<Vec<String>>;
    }
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path();
    if path == "/hello" {
        return Ok(Response::text("ok"));
    }
    if path == "/" {
        return Ok(Response::text(
            "Burrow chat example\nGET /rooms/:room/ws?user=NAME (WebSocket), GET /rooms/:room\n",
        ));
    }
    let Some(rest) = path.strip_prefix("/rooms/") else {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    };
    let (room, socket) = match rest.strip_suffix("/ws") {
        Some(room) => (room, true),
        None => (rest, false),
    };
    if room.is_empty() || room.contains('/') {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    }
    let stub = env.durable_object::<Room>("ROOMS")?.get_by_name(room);
    if !socket {
        return Response::json(&stub.list().await?);
    }
    let upgrade = request
        .header("upgrade")
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Ok(Response::error(
            "Expected Upgrade: websocket",
            StatusCode::UPGRADE_REQUIRED,
        ));
    }
    // The room accepts the socket and answers 101; the response travels back through here.
    stub.fetch(request).await
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/chat/wrangler.toml"
        ))
        .durable_object::<Room>("ROOMS")
        .fetch(fetch)
        .serve_from_args()
}
