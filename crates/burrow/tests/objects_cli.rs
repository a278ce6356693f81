//! `burrow objects list` and the Durable Objects admin endpoints against a running server that
//! hosts a class (a Rust app started in this process with the SDK): the namespace is listed with
//! its id, the objects that stored data are listed in pages with a cursor, and bad input gets
//! Cloudflare-shaped 4xx errors.

mod support;

use std::time::Duration;

use burrow_sdk::{App, DurableObject, Env, ObjectContext, Request, Response, Result};
use serde_json::Value;
use support::{app_options, burrow, send, stderr, stdout};

/// Writes one row when asked.
pub struct Note {
    ctx: ObjectContext,
}

impl DurableObject for Note {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        Note { ctx }
    }
}

impl Note {
    async fn write(&self, text: String) -> Result<()> {
        let sql = self.ctx.storage().sql();
        sql.exec("CREATE TABLE IF NOT EXISTS notes(text TEXT)", ())?;
        sql.exec("INSERT INTO notes VALUES (?1)", (text,))?;
        Ok(())
    }
}

burrow_sdk::rpc! {
    /// What a `Stub<Note>` can do.
    pub trait NoteRpc for Note {
        async fn write(&self, text: String) -> Result<()>;
    }
}

const CONFIG: &str = r#"
name = "notes"
compatibility_date = "2025-04-01"

[[durable_objects.bindings]]
name = "NOTES"
class_name = "Note"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Note"]
"#;

const TOKEN: &str = "objects-token";

#[test]
fn objects_are_listed_by_namespace_with_a_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (loaded, options) = app_options(dir.path(), CONFIG, &[TOKEN]);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .durable_object::<Note>("NOTES")
                .fetch(|request: Request, env: Env| async move {
                    let name = request.path().trim_start_matches('/').to_owned();
                    env.durable_object::<Note>("NOTES")?
                        .get_by_name(&name)
                        .write(name.clone())
                        .await?;
                    Ok(Response::text("ok"))
                })
                .start(&loaded, &options),
        )
        .expect("the app starts");
    let (ingress, admin) = (server.ingress_address(), server.admin_address());
    for n in 0..15 {
        let (status, text) = send(ingress, "POST", &format!("/note-{n}"), &[], b"");
        assert_eq!(status, 200, "{text}");
    }
    let admin_url = format!("http://{admin}");
    let objects = |args: &[&str]| {
        let mut all = vec!["objects"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &admin_url, "--token", TOKEN]);
        burrow(&all)
    };
    let ok = |output: std::process::Output| {
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };

    let table = ok(objects(&["list"]));
    assert!(table.contains("Note") && table.contains("notes"), "{table}");
    let namespaces: Value = serde_json::from_str(&ok(objects(&["list", "--json"]))).expect("JSON");
    let namespace = namespaces["result"][0]["id"]
        .as_str()
        .expect("namespace id")
        .to_owned();
    assert_eq!(namespace.len(), 32, "{namespaces}");

    // Two pages of 10 and 5 by class name; the ids are the objects' 64-hex-digit ids, once each.
    let first: Value =
        serde_json::from_str(&ok(objects(&["list", "Note", "--limit", "10", "--json"])))
            .expect("JSON");
    assert_eq!(
        first["result"].as_array().map(Vec::len),
        Some(10),
        "{first}"
    );
    let cursor = first["result_info"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    assert_eq!(cursor.len(), 64, "{first}");
    let second: Value = serde_json::from_str(&ok(objects(&[
        "list", &namespace, "--limit", "10", "--cursor", &cursor, "--json",
    ])))
    .expect("JSON");
    assert_eq!(
        second["result"].as_array().map(Vec::len),
        Some(5),
        "{second}"
    );
    assert_eq!(
        second["result_info"]["cursor"], "",
        "the last page: {second}"
    );
    let mut ids: Vec<&str> = first["result"]
        .as_array()
        .into_iter()
        .chain(second["result"].as_array())
        .flatten()
        .map(|object| {
            assert_eq!(object["hasStoredData"], true);
            object["id"].as_str().expect("id")
        })
        .collect();
    let listed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((listed, ids.len()), (15, 15));
    let table = ok(objects(&["list", "Note", "--limit", "10"]));
    assert!(
        table.contains(&format!("more: --cursor {cursor}")),
        "{table}"
    );

    // Read-only SQL on one object, by name or id; writes are refused and not kept; querying an
    // object without data does not create it.
    let table = ok(objects(&[
        "sql",
        "Note",
        "note-3",
        "SELECT text FROM notes",
    ]));
    assert!(
        table.contains("text") && table.contains("note-3"),
        "{table}"
    );
    let rows: Value = serde_json::from_str(&ok(objects(&[
        "sql",
        &namespace,
        "note-4",
        "SELECT count(*) AS n, max(text) AS last FROM notes",
        "--json",
    ])))
    .expect("JSON");
    assert_eq!(rows["result"][0]["results"][0]["n"], 1, "{rows}");
    assert_eq!(rows["result"][0]["results"][0]["last"], "note-4", "{rows}");
    let id = first["result"][0]["id"].as_str().expect("id");
    let by_id: Value = serde_json::from_str(&ok(objects(&[
        "sql",
        "Note",
        id,
        "SELECT count(*) AS n FROM notes",
        "--json",
    ])))
    .expect("JSON");
    assert_eq!(by_id["result"][0]["results"][0]["n"], 1, "{by_id}");
    for write in [
        "INSERT INTO notes VALUES ('sneaky')",
        "DELETE FROM notes",
        "DROP TABLE notes",
    ] {
        let refused = objects(&["sql", "Note", "note-3", write]);
        assert!(!refused.status.success(), "{write} was accepted");
        assert!(stderr(&refused).contains("400"), "{}", stderr(&refused));
    }
    let table = ok(objects(&[
        "sql",
        "Note",
        "note-3",
        "SELECT text FROM notes",
    ]));
    assert!(
        table.contains("note-3") && !table.contains("sneaky"),
        "{table}"
    );
    let bad = objects(&["sql", "Note", "note-3", "SELEC nonsense"]);
    assert!(stderr(&bad).contains("400"), "{}", stderr(&bad));
    let missing = objects(&["sql", "Note", "never-written", "SELECT 1"]);
    assert!(
        stderr(&missing).contains("no stored data"),
        "{}",
        stderr(&missing)
    );
    let all: Value = serde_json::from_str(&ok(objects(&["list", "Note", "--json"]))).expect("JSON");
    assert_eq!(all["result"].as_array().map(Vec::len), Some(15), "{all}");

    // Errors: an unknown namespace, a bad limit, a bad cursor, malformed query bodies.
    let unknown = objects(&["list", "Nope"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("Nope"), "{}", stderr(&unknown));
    let bearer = format!("Bearer {TOKEN}");
    let base = "/client/v4/accounts/acc/workers/durable_objects/namespaces";
    for (path, status, needle) in [
        (
            format!("{base}/0123456789abcdef0123456789abcdef/objects"),
            404,
            "not found",
        ),
        (format!("{base}/{namespace}/objects?limit=5"), 400, "limit"),
        (format!("{base}/{namespace}/objects?limit=x"), 400, "limit"),
        (
            format!("{base}/{namespace}/objects?cursor=zz"),
            400,
            "cursor",
        ),
        (format!("{base}?page=0"), 400, "page"),
    ] {
        let (got, text) = send(admin, "GET", &path, &[("authorization", &bearer)], b"");
        assert_eq!(got, status, "{path}: {text}");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["success"], false);
        assert!(
            value["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains(needle)),
            "{path}: {text}"
        );
    }
    let query = format!("{base}/{namespace}/objects/note-1/query");
    for (body, status, needle) in [
        (&br#"{"sql": 1}"#[..], 400, "sql"),
        (&b"{}"[..], 400, "sql"),
        (&br#"{"sql": "   "}"#[..], 400, "sql"),
        (&b"not json"[..], 400, "Malformed"),
    ] {
        let (got, text) = send(admin, "POST", &query, &[("authorization", &bearer)], body);
        assert_eq!(got, status, "{body:?}: {text}");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["success"], false);
        assert!(
            value["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains(needle)),
            "{body:?}: {text}"
        );
    }

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
