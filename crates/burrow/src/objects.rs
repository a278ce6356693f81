//! `burrow objects …`: Durable Objects from the command line, through a running server's admin
//! API (Cloudflare's Durable Objects namespace endpoints).
//!
//! - `burrow objects list`: the namespaces (id, class, Worker)
//! - `burrow objects list NAMESPACE [--limit N] [--cursor C]`: the objects with stored data in a
//!   namespace, given by id or class name; prints the cursor of the next page when there is one
//! - `burrow objects sql NAMESPACE OBJECT QUERY`: read-only SQL on one object's database (by id or
//!   name), for debugging; nothing the query would change is kept

use anyhow::bail;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::Value;

use crate::cli::ClientArgs;
use crate::remote::{Remote, print_table, text};

#[derive(Debug, Args)]
pub(crate) struct ObjectsArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,

    #[command(subcommand)]
    pub(crate) command: ObjectsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ObjectsCommand {
    /// List the Durable Object namespaces, or the objects of one.
    List {
        /// A namespace id or class name; without it, the namespaces are listed.
        namespace: Option<String>,
        /// Objects per page (10 to 10000; default 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after the page that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Run read-only SQL on one object's database (for debugging).
    Sql {
        /// A namespace id or class name.
        namespace: String,
        /// The object: its 64-hex-digit id, or the name it was reached by.
        object: String,
        /// The query (Durable Object SQL rules; a query that writes is refused).
        query: String,
    },
}

pub(crate) fn run(args: ObjectsArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.client)?;
    match args.command {
        ObjectsCommand::List {
            namespace: None, ..
        } => {
            let envelope = remote.get("workers/durable_objects/namespaces?per_page=1000")?;
            remote.print(&envelope, |result| {
                let rows = rows(result, |namespace| {
                    vec![
                        text(&namespace["id"]),
                        text(&namespace["class"]),
                        text(&namespace["script"]),
                    ]
                });
                print_table(&["ID", "CLASS", "WORKER"], rows);
            });
        }
        ObjectsCommand::List {
            namespace: Some(namespace),
            limit,
            cursor,
        } => {
            let id = resolve(&remote, &namespace)?;
            let mut query = Vec::new();
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            if let Some(cursor) = cursor {
                query.push(format!("cursor={cursor}"));
            }
            let envelope = remote.get(&format!(
                "workers/durable_objects/namespaces/{id}/objects?{}",
                query.join("&")
            ))?;
            remote.print(&envelope, |result| {
                let rows = rows(result, |object| vec![text(&object["id"])]);
                print_table(&["OBJECT ID"], rows);
                let next = envelope
                    .result_info
                    .as_ref()
                    .and_then(|info| info["cursor"].as_str())
                    .unwrap_or_default();
                if !next.is_empty() {
                    println!("more: --cursor {next}");
                }
            });
        }
        ObjectsCommand::Sql {
            namespace,
            object,
            query,
        } => {
            let id = resolve(&remote, &namespace)?;
            let body = serde_json::json!({"sql": query});
            let envelope = remote.call(
                Method::POST,
                &format!(
                    "workers/durable_objects/namespaces/{id}/objects/{}/query",
                    crate::remote::encode_segment(&object)
                ),
                Some(&body),
            )?;
            remote.print(&envelope, |result| {
                let meta = &result[0]["meta"];
                let columns: Vec<String> = meta["columns"]
                    .as_array()
                    .map(|columns| columns.iter().map(text).collect())
                    .unwrap_or_default();
                let rows = rows(&result[0]["results"], |row| {
                    columns.iter().map(|column| text(&row[column])).collect()
                });
                let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
                print_table(&headers, rows);
                if meta["truncated"] == true {
                    println!("(more rows than shown: the API returns at most 1000)");
                }
            });
        }
    }
    Ok(())
}

fn rows(result: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    result
        .as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// A namespace id as given, or the id of the namespace whose class is `name`.
fn resolve(remote: &Remote, name: &str) -> anyhow::Result<String> {
    if name.len() == 32 && name.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(name.to_owned());
    }
    let envelope = remote.get("workers/durable_objects/namespaces?per_page=1000")?;
    let found = envelope
        .result
        .as_ref()
        .and_then(Value::as_array)
        .and_then(|namespaces| {
            namespaces
                .iter()
                .find(|namespace| namespace["class"] == name)
                .and_then(|namespace| namespace["id"].as_str())
                .map(str::to_owned)
        });
    match found {
        Some(id) => Ok(id),
        None => bail!("no Durable Object namespace has id or class {name:?}"),
    }
}
