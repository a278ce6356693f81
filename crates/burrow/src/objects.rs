//! `burrow objects …`: Durable Objects from the command line, through a running server's admin
//! API (Cloudflare's Durable Objects namespace endpoints).
//!
//! - `burrow objects list`: the namespaces (id, class, Worker)
//! - `burrow objects list NAMESPACE [--limit N] [--cursor C]`: the objects with stored data in a
//!   namespace, given by id or class name; prints the cursor of the next page when there is one

use anyhow::bail;
use clap::{Args, Subcommand};
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
