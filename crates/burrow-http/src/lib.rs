//! Burrow's HTTP plumbing: the HTTP/1.1 server that runs on the shards (the Worker ingress and
//! the admin API both use it), the streaming [`Body`], the admin API's router, Cloudflare-shaped
//! envelope and bearer-token auth, and [`AdminClient`], the CLI's way in.
//!
//! [`websocket`] holds server-side WebSockets: the handshake, the upgrade from the ingress and
//! the driver of an upgraded connection.
//!
//! It knows nothing about Workers, objects or storage: the binary gives it a [`MakeHandler`] for
//! the ingress and an [`AdminRouter`] for the admin API.

pub mod admin;
mod body;
mod client;
mod server;
pub mod websocket;

pub use admin::{
    AdminAuth, AdminRequest, AdminResult, AdminRouter, ApiError, Envelope, serve_admin,
};
pub use body::{Body, BodyError, BodySender, BoxError, ReaderGone};
pub use client::{AdminClient, ClientError, MAX_RESPONSE_BYTES, RawResponse};
pub use server::{
    CONNECTION_QUEUE, Handler, LocalBoxFuture, MAX_PENDING_REJECTIONS, MakeHandler, PeerAddr,
    ServerHandle, ServerOptions, ServerStats, ShutdownReport, handler_fn, payload_too_large, serve,
    text_response,
};

/// Serves the Worker ingress: [`serve`] with a name that says so. See [`server`'s protocol](serve).
pub fn serve_ingress(
    listener: std::net::TcpListener,
    shards: &burrow_runtime::shard::Shards,
    handler: std::sync::Arc<dyn MakeHandler>,
    options: ServerOptions,
) -> std::io::Result<ServerHandle> {
    serve(listener, shards, handler, options)
}
