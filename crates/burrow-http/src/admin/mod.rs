//! The admin API listener: a Cloudflare v4-compatible subset under
//! `/client/v4/accounts/{account_id}/…`, plus `/healthz` and `/metrics`. Later features register
//! their endpoints on an [`AdminRouter`]; this module serves them on the shards with bearer-token
//! auth ([`AdminAuth`]) and Cloudflare's envelope ([`envelope`]).
//!
//! Order of checks for every request: public routes (`/healthz`) are served as they are;
//! everything else needs the token first, so that nobody without one learns which paths exist;
//! then an unknown path is 404 and a known path with another method 405, both in Cloudflare's
//! "Could not route" shape. A handler that panics gives a 500 envelope, never a dropped
//! connection.

mod auth;
pub mod envelope;
mod page;
mod router;

use std::rc::Rc;
use std::sync::Arc;

use burrow_runtime::shard::Shards;
use http::{Request, Response};

pub use self::auth::{AdminAuth, TOKEN_VARIABLE, TokenRequired};
pub use self::envelope::{ApiError, ApiMessage, Envelope, success, success_with_info};
pub use self::page::Page;
pub use self::router::{AdminRequest, AdminResult, AdminRouter, MAX_JSON_BODY_BYTES};
use crate::body::Body;
use crate::server::{self, Handler, LocalBoxFuture, MakeHandler, ServerHandle, ServerOptions};

/// Why the admin listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No token, and the address is not loopback.
    #[error(transparent)]
    TokenRequired(#[from] TokenRequired),
    /// The listener or its threads could not be set up.
    #[error("cannot start the admin listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `router` on `listener` (on the shards), behind `auth`. Refuses to start without a token
/// on an address other than loopback.
pub fn serve_admin(
    listener: std::net::TcpListener,
    shards: &Shards,
    router: AdminRouter,
    auth: AdminAuth,
    options: ServerOptions,
) -> Result<ServerHandle, ServeError> {
    auth.check_listen_address(listener.local_addr()?)?;
    let make = Arc::new(AdminService {
        router: Arc::new(router),
        auth,
    });
    Ok(server::serve(listener, shards, make, options)?)
}

struct AdminService {
    router: Arc<AdminRouter>,
    auth: AdminAuth,
}

impl MakeHandler for AdminService {
    fn make(&self, _shard: usize) -> Rc<dyn Handler> {
        Rc::new(AdminService {
            router: Arc::clone(&self.router),
            auth: self.auth.clone(),
        })
    }
}

impl Handler for AdminService {
    fn call(&self, request: Request<Body>) -> LocalBoxFuture<'static, Response<Body>> {
        let router = Arc::clone(&self.router);
        let auth = self.auth.clone();
        Box::pin(async move {
            match dispatch(&router, &auth, request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        })
    }
}

async fn dispatch(router: &AdminRouter, auth: &AdminAuth, request: Request<Body>) -> AdminResult {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let (route, params) = match router.find(&parts.method, &path) {
        router::Found::Route(route, params) => (route.clone(), params),
        router::Found::WrongMethod => {
            auth.verify(&parts.headers)?;
            return Err(ApiError::method_not_allowed(&path));
        }
        router::Found::Nothing => {
            auth.verify(&parts.headers)?;
            return Err(ApiError::no_route(&path));
        }
    };
    if !route.public {
        auth.verify(&parts.headers)?;
    }
    let future = (route.handler)(AdminRequest::new(parts, params, body));
    match server::catch_unwind(future).await {
        Ok(result) => result,
        Err(message) => {
            tracing::error!(path, panic = message, "an admin handler panicked");
            Err(ApiError::internal(format!(
                "the handler for {path} failed unexpectedly: {message}"
            )))
        }
    }
}
