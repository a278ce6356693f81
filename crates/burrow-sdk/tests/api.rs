//! The SDK's API in one process: an app started with `App::start` on a temporary configuration,
//! driven over HTTP. Covers what the examples do not: errors crossing a stub (remote, unknown
//! method, a class without RPC or fetch), typed bindings, KV with serde values and `list`,
//! alarms set from RPC, `block_concurrency_while` in a constructor, and vars and secrets.

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;

use burrow::server::{Flags, Mode, ServeOptions, Server};
use burrow::{
    AlarmInfo, App, DurableObject, Env, ListOptions, ObjectContext, Request, Response, Result,
    StatusCode,
};
use serde::{Deserialize, Serialize};
use support::request;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    title: String,
    stars: u32,
}

/// A class with RPC methods, KV storage and an alarm.
pub struct Notes {
    ctx: ObjectContext,
    /// Set by the constructor's `block_concurrency_while`, before any event runs.
    ready: std::rc::Rc<Cell<bool>>,
}

impl DurableObject for Notes {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        let ready = std::rc::Rc::new(Cell::new(false));
        let flag = ready.clone();
        drop(ctx.block_concurrency_while(async move {
            tokio::task::yield_now().await;
            flag.set(true);
            Ok(())
        }));
        Notes { ctx, ready }
    }

    async fn alarm(&self, info: AlarmInfo) -> Result<()> {
        self.ctx.storage().put("alarm", &info.retry_count)?;
        Ok(())
    }
}

impl Notes {
    async fn add(&self, key: String, note: Note) -> Result<usize> {
        if !self.ready.get() {
            return Err(burrow::Error::new(
                "an event ran before the constructor finished",
            ));
        }
        let storage = self.ctx.storage();
        storage.put(&format!("note:{key}"), &note)?;
        let all: Vec<(String, Note)> = storage.list(&ListOptions {
            prefix: Some("note:".into()),
            ..ListOptions::default()
        })?;
        Ok(all.len())
    }

    async fn get(&self, key: String) -> Result<Option<Note>> {
        self.ctx.storage().get(&format!("note:{key}"))
    }

    async fn fail(&self, message: String) -> Result<()> {
        Err(burrow::Error::new(message))
    }

    async fn alarm_soon(&self) -> Result<()> {
        self.ctx.storage().set_alarm(self.ctx.now_ms())
    }

    async fn alarm_ran(&self) -> Result<Option<u32>> {
        self.ctx.storage().get("alarm")
    }
}

burrow::rpc! {
    pub trait NotesRpc for Notes {
        async fn add(&self, key: String, note: Note) -> Result<usize>;
        async fn get(&self, key: String) -> Result<Option<Note>>;
        async fn fail(&self, message: String) -> Result<()>;
        async fn alarm_soon(&self) -> Result<()>;
        async fn alarm_ran(&self) -> Result<Option<u32>>;
    }
}

/// A class with neither RPC methods nor a fetch handler.
pub struct Bare;

impl DurableObject for Bare {
    fn new(_ctx: ObjectContext, _env: Env) -> Self {
        Bare
    }
}

impl burrow::Rpc for Bare {}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let notes = env.durable_object::<Notes>("NOTES")?.get_by_name("n");
    let text = match request.path() {
        "/add" => {
            let count = notes
                .add(
                    "a".into(),
                    Note {
                        title: "first".into(),
                        stars: 3,
                    },
                )
                .await?;
            let count2 = notes
                .add(
                    "b".into(),
                    Note {
                        title: "second".into(),
                        stars: 5,
                    },
                )
                .await?;
            let note = notes.get("b".into()).await?;
            format!("{count} {count2} {note:?}")
        }
        "/remote-error" => match notes.fail("boom".into()).await {
            Err(error) => format!("remote={} {}", error.is_remote(), error.message()),
            Ok(()) => "no error".into(),
        },
        "/unknown-method" => match notes.call::<_, i64>("nope", &()).await {
            Err(error) => format!("remote={} {}", error.is_remote(), error.message()),
            Ok(_) => "no error".into(),
        },
        "/bare-rpc" => {
            let bare = env.durable_object::<Bare>("BARE")?.get_by_name("x");
            match bare.call::<_, ()>("anything", &(1, 2)).await {
                Err(error) => error.message().to_owned(),
                Ok(()) => "no error".into(),
            }
        }
        "/bare-fetch" => {
            let bare = env.durable_object::<Bare>("BARE")?.get_by_name("x");
            let response = bare.fetch(Request::get("http://bare/")?).await;
            match response {
                Err(error) => format!("remote={} {}", error.is_remote(), error.message()),
                Ok(response) => format!("status {}", response.status()),
            }
        }
        "/wrong-type" => match env.durable_object::<Bare>("NOTES") {
            Err(error) => error.message().to_owned(),
            Ok(_) => "no error".into(),
        },
        "/missing-binding" => match env.durable_object::<Notes>("NOPE") {
            Err(error) => error.message().to_owned(),
            Ok(_) => "no error".into(),
        },
        "/alarm" => {
            notes.alarm_soon().await?;
            let started = std::time::Instant::now();
            loop {
                if let Some(retry_count) = notes.alarm_ran().await? {
                    break format!("alarm ran, retry_count {retry_count}");
                }
                if started.elapsed() > support::STEP {
                    break "the alarm never ran".into();
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        "/env" => format!(
            "{:?} {:?} {:?} {:?}",
            env.var("NAME"),
            env.var_json::<Vec<u32>>("LIST")?,
            env.secret("TOKEN"),
            env.var("TOKEN")
        ),
        "/teapot" => {
            return Err(burrow::Error::new("short and stout").with_status(StatusCode::IM_A_TEAPOT));
        }
        _ => return Ok(Response::error("not found", StatusCode::NOT_FOUND)),
    };
    Ok(Response::text(text))
}

const CONFIG: &str = r#"
name = "api-test"

[vars]
NAME = "plain"
LIST = [1, 2]
TOKEN = "from vars"

[[durable_objects.bindings]]
name = "NOTES"
class_name = "Notes"

[[durable_objects.bindings]]
name = "BARE"
class_name = "Bare"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Notes", "Bare"]
"#;

fn start(dir: &Path) -> (tokio::runtime::Runtime, Server) {
    std::fs::write(dir.join("wrangler.toml"), CONFIG).expect("write config");
    std::fs::write(dir.join(".dev.vars"), "TOKEN=secret-value\n").expect("write .dev.vars");
    let loaded = burrow_config::load_files(
        &[dir.join("wrangler.toml")],
        &burrow_config::LoadOptions::default(),
    )
    .expect("config loads");
    let flags = Flags {
        port: Some(0),
        admin_address: Some("127.0.0.1:0".parse().expect("address")),
        persist_to: Some(dir.join("data")),
        ..Flags::default()
    };
    let options = ServeOptions::resolve(&loaded, &flags, Mode::Serve).expect("options");
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .durable_object::<Notes>("NOTES")
                .durable_object::<Bare>("BARE")
                .fetch(fetch)
                .start(&loaded, &options),
        )
        .expect("the app starts");
    (control, server)
}

fn get(address: SocketAddr, path: &str) -> (u16, String) {
    request(address, "GET", path, "")
}

#[test]
fn the_sdk_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let address = server.ingress_address();

    assert_eq!(
        get(address, "/add"),
        (
            200,
            "1 2 Some(Note { title: \"second\", stars: 5 })".to_owned()
        )
    );
    assert_eq!(
        get(address, "/remote-error"),
        (200, "remote=true boom".into())
    );
    assert_eq!(
        get(address, "/unknown-method"),
        (
            200,
            "remote=true The RPC receiver does not implement the method \"nope\".".into()
        )
    );
    assert_eq!(
        get(address, "/bare-rpc"),
        (
            200,
            "The RPC receiver does not implement the method \"anything\".".into()
        )
    );
    assert_eq!(
        get(address, "/bare-fetch"),
        (
            200,
            "remote=true Handler does not export a fetch() function.".into()
        )
    );
    let (status, body) = get(address, "/wrong-type");
    assert_eq!(status, 200);
    assert!(
        body.contains("\"NOTES\" (class \"Notes\") is implemented by api::Notes, not api::Bare"),
        "{body}"
    );
    let (_, body) = get(address, "/missing-binding");
    assert_eq!(
        body,
        "env has no Durable Object binding \"NOPE\" (bindings: BARE, NOTES)"
    );
    assert_eq!(
        get(address, "/alarm"),
        (200, "alarm ran, retry_count 0".into())
    );
    assert_eq!(
        get(address, "/env"),
        (
            200,
            "Some(\"plain\") Some([1, 2]) Some(\"secret-value\") Some(\"secret-value\")".into()
        )
    );
    assert_eq!(get(address, "/teapot"), (418, "short and stout\n".into()));

    control
        .block_on(server.shutdown(std::time::Duration::from_secs(5)))
        .expect("clean shutdown");
    assert!(std::net::TcpStream::connect(address).is_err());
}
