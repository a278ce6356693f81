//! Cron Triggers for Rust apps: [`crate::App::scheduled`] registers the Worker's `scheduled`
//! handler, the server runs it on the `triggers.crons` of `wrangler.toml` (see
//! [`burrow_services::cron`] for when it fires), and `burrow dev` adds the local trigger
//! endpoints `/__scheduled?cron=…` (wrangler's `--test-scheduled`) and
//! `/cdn-cgi/handler/scheduled?cron=…&time=…` (Miniflare's) to the Worker's ingress.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::{Body, Handler, LocalBoxFuture, MakeHandler, text_response};
use burrow_runtime::clock::{Clock, SystemClock};
use burrow_runtime::shard::Shards;
use burrow_services::cron::{Options, ScheduledHandler, Scheduler, Trigger};
use http::StatusCode;
use tracing::{info, warn};

pub use burrow_services::cron::ScheduledController;

use crate::env::Env;

/// Builds the guest's scheduled handler once its `Env` exists.
pub(crate) type MakeScheduled = Box<dyn FnOnce(Env) -> Arc<dyn ScheduledHandler> + Send>;

/// Wraps an app's `scheduled` function as the services' handler.
pub(crate) fn make_scheduled<F, Fut>(handler: F) -> MakeScheduled
where
    F: Fn(ScheduledController, Env) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = crate::Result<()>> + 'static,
{
    Box::new(move |env: Env| {
        Arc::new(move |controller: ScheduledController| {
            let run = handler(controller, env.clone());
            async move { run.await.map_err(|error| error.to_string()) }
        }) as Arc<dyn ScheduledHandler>
    })
}

/// What runs when a trigger fires and the Worker has no `scheduled` handler (Cloudflare's
/// message).
fn missing_handler() -> Arc<dyn ScheduledHandler> {
    Arc::new(|_controller: ScheduledController| async {
        Err("Handler does not export a scheduled() function".to_owned())
    })
}

/// Starts the node's scheduler on the primary Worker's `triggers.crons`.
pub(crate) fn start(
    loaded: &LoadedConfig,
    shards: &Shards,
    handler: Option<Arc<dyn ScheduledHandler>>,
) -> Result<Scheduler, crate::server::Error> {
    let crons = &loaded.primary.config.crons;
    if !crons.is_empty() && handler.is_none() {
        warn!(
            crons = crons.len(),
            "triggers.crons is set but the Worker has no scheduled handler; each fire will fail"
        );
    }
    let scheduler = Scheduler::start(
        Trigger::from_config(crons),
        handler.unwrap_or_else(missing_handler),
        shards.clone(),
        Arc::new(SystemClock),
        Options::default(),
    )
    .map_err(|error| crate::server::Error::Guest(error.to_string()))?;
    for trigger in crons {
        info!(cron = %trigger.expression, "cron trigger registered");
    }
    Ok(scheduler)
}

/// The Worker's ingress handler with the local trigger endpoints in front of it.
pub(crate) fn with_trigger_endpoints(
    worker: Arc<dyn MakeHandler>,
    scheduler: Scheduler,
) -> Arc<dyn MakeHandler> {
    Arc::new(TriggerEndpoints { worker, scheduler })
}

struct TriggerEndpoints {
    worker: Arc<dyn MakeHandler>,
    scheduler: Scheduler,
}

impl MakeHandler for TriggerEndpoints {
    fn make(&self, shard: usize) -> Rc<dyn Handler> {
        Rc::new(TriggerHandler {
            worker: self.worker.make(shard),
            scheduler: self.scheduler.clone(),
        })
    }
}

struct TriggerHandler {
    worker: Rc<dyn Handler>,
    scheduler: Scheduler,
}

/// The value of `name` in a query string, percent-decoded (`+` is a space).
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 2;
                    }
                    None => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

impl Handler for TriggerHandler {
    fn call(&self, request: http::Request<Body>) -> LocalBoxFuture<'static, http::Response<Body>> {
        let path = request.uri().path();
        let miniflare = path == "/cdn-cgi/handler/scheduled";
        if !miniflare && path != "/__scheduled" {
            return self.worker.call(request);
        }
        let query = request.uri().query().unwrap_or("");
        let cron = query_value(query, "cron").unwrap_or_default();
        let scheduled_time_ms = query_value(query, "time")
            .and_then(|time| time.parse::<i64>().ok())
            .unwrap_or_else(|| SystemClock.now_ms());
        let scheduler = self.scheduler.clone();
        Box::pin(async move {
            let result = scheduler
                .run_now(ScheduledController {
                    cron: cron.clone(),
                    scheduled_time_ms,
                })
                .await;
            if let Err(error) = &result {
                warn!(%cron, %error, "scheduled handler failed");
            }
            match (result, miniflare) {
                (Ok(()), true) => text_response(StatusCode::OK, "ok"),
                (Ok(()), false) => text_response(StatusCode::OK, "Ran scheduled event"),
                (Err(_), _) => text_response(StatusCode::INTERNAL_SERVER_ERROR, "exception"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_strings_are_decoded_from_the_query() {
        assert_eq!(
            query_value("cron=*%2F5+*+*+*+*&time=5", "cron").as_deref(),
            Some("*/5 * * * *")
        );
        assert_eq!(query_value("cron=0+0+*+*+*", "time"), None);
        assert_eq!(query_value("x=1&time=42", "time").as_deref(), Some("42"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
