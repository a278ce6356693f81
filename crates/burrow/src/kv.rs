//! `burrow kv …`: Workers KV from the command line, shaped like wrangler's `kv` commands, through a
//! running server's admin API (the Cloudflare v4 KV endpoints).
//!
//! - `burrow kv namespace list | create TITLE | delete --namespace-id ID`
//! - `burrow kv key put KEY [VALUE] (--namespace-id ID | --binding NAME) [--path FILE]
//!   [--ttl S] [--expiration EPOCH_S] [--metadata JSON]`
//! - `burrow kv key get KEY (--namespace-id ID | --binding NAME)` prints the value as stored
//! - `burrow kv key list (--namespace-id ID | --binding NAME) [--prefix P]` prints every key as
//!   JSON, following cursors
//! - `burrow kv key delete KEY (--namespace-id ID | --binding NAME)`
//! - `burrow kv bulk put FILE (--namespace-id ID | --binding NAME)`: FILE is wrangler's JSON array
//!   of `{key, value, expiration?, expiration_ttl?, metadata?, base64?}`, sent in batches of
//!   [`BULK_BATCH`] with progress on stderr
//! - `burrow kv bulk delete FILE (--namespace-id ID | --binding NAME)`: FILE is a JSON array of keys

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use burrow_http::RawResponse;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::Value;

use crate::cli::ClientArgs;
use crate::remote::{Remote, print_table, text};

/// Cloudflare's code for `get: 'key not found'`.
const KEY_NOT_FOUND: u32 = 10_009;
/// The most list pages `key list` follows (1000 keys each).
const MAX_LIST_PAGES: usize = 100_000;
/// Pairs or keys per bulk request (the API takes up to 10,000).
const BULK_BATCH: usize = 1_000;

#[derive(Debug, Args)]
pub(crate) struct KvArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,

    #[command(subcommand)]
    pub(crate) command: KvCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KvCommand {
    /// KV namespaces (those of the `[[kv_namespaces]]` the server loaded).
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Keys of one namespace.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Many keys at once, from a JSON file.
    #[command(subcommand)]
    Bulk(BulkCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum BulkCommand {
    /// Write the pairs of a JSON file: `[{"key": …, "value": …}, …]`.
    Put {
        /// The JSON file.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Delete the keys of a JSON file: `["key", …]`.
    Delete {
        /// The JSON file.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NamespaceCommand {
    /// List the namespaces.
    List,
    /// Create a namespace.
    Create {
        /// Its title.
        title: String,
    },
    /// Delete a namespace created through the API, with its keys.
    Delete {
        /// The namespace's id.
        #[arg(long)]
        namespace_id: String,
    },
}

/// Which namespace: by id, or by the binding name of a loaded Worker.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The namespace's id (`kv_namespaces[].id`).
    #[arg(long, conflicts_with = "binding", required_unless_present = "binding")]
    namespace_id: Option<String>,
    /// The namespace's binding name (`kv_namespaces[].binding`).
    #[arg(long)]
    binding: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a value.
    Put {
        /// The key.
        key: String,
        /// The value (or use --path).
        #[arg(required_unless_present = "path", conflicts_with = "path")]
        value: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Read the value from this file.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Seconds until the key expires (at least 60).
        #[arg(long)]
        ttl: Option<i64>,
        /// When the key expires, in seconds since the epoch.
        #[arg(long)]
        expiration: Option<i64>,
        /// Metadata to keep with the key, as JSON.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Print a value.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// List keys, as JSON.
    List {
        #[command(flatten)]
        target: Target,
        /// Only keys that start with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Percent-encodes one path segment or query value (everything but unreserved characters).
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

const NAMESPACES: &str = "storage/kv/namespaces";

/// The namespace id a target names; a binding is looked up in the namespaces list, whose titles
/// are `<worker>-<binding>`.
fn namespace_id(remote: &Remote, target: &Target) -> anyhow::Result<String> {
    if let Some(id) = &target.namespace_id {
        return Ok(id.clone());
    }
    let binding = target.binding.as_deref().unwrap_or_default();
    let envelope = remote.get(NAMESPACES)?;
    let namespaces = envelope
        .result
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let matching: Vec<&Value> = namespaces
        .iter()
        .filter(|namespace| {
            namespace["title"]
                .as_str()
                .is_some_and(|title| title.ends_with(&format!("-{binding}")))
        })
        .collect();
    match matching.as_slice() {
        [namespace] => Ok(namespace["id"].as_str().unwrap_or_default().to_owned()),
        [] => bail!("no KV namespace is bound as {binding:?}; see `burrow kv namespace list`"),
        _ => bail!("several Workers bind a KV namespace as {binding:?}; use --namespace-id"),
    }
}

/// A raw call's body, or its envelope's errors as the error.
fn check(raw: RawResponse) -> anyhow::Result<Vec<u8>> {
    if raw.status.is_success() {
        return Ok(raw.body.to_vec());
    }
    let message = serde_json::from_slice::<Value>(&raw.body)
        .ok()
        .and_then(|envelope| {
            let errors = envelope["errors"].as_array()?.clone();
            Some(
                errors
                    .iter()
                    .map(|error| {
                        format!(
                            "{} [code: {}]",
                            error["message"].as_str().unwrap_or_default(),
                            error["code"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&raw.body).into_owned());
    bail!("{}: {message}", raw.status)
}

pub(crate) fn run(args: KvArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.client)?;
    match args.command {
        KvCommand::Namespace(NamespaceCommand::List) => {
            let envelope = remote.get(NAMESPACES)?;
            remote.print(&envelope, |result| {
                let rows = result
                    .as_array()
                    .map(|namespaces| {
                        namespaces
                            .iter()
                            .map(|namespace| {
                                vec![
                                    namespace["id"].as_str().unwrap_or("-").to_owned(),
                                    namespace["title"].as_str().unwrap_or("-").to_owned(),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(&["ID", "TITLE"], rows);
            });
        }
        KvCommand::Namespace(NamespaceCommand::Create { title }) => {
            let envelope = remote.call(
                Method::POST,
                NAMESPACES,
                Some(&serde_json::json!({"title": title})),
            )?;
            remote.print(&envelope, |result| {
                println!(
                    "Created namespace {} (id {}).",
                    text(&result["title"]),
                    text(&result["id"])
                );
            });
        }
        KvCommand::Namespace(NamespaceCommand::Delete { namespace_id }) => {
            let envelope = remote.call(
                Method::DELETE,
                &format!("{NAMESPACES}/{}", encode(&namespace_id)),
                None,
            )?;
            remote.print(&envelope, |_| {
                println!("Deleted namespace {namespace_id}.");
            });
        }
        KvCommand::Bulk(BulkCommand::Put { file, target }) => {
            let id = namespace_id(&remote, &target)?;
            let pairs: Vec<Value> = read_json_array(&file)?;
            let rest = format!("{NAMESPACES}/{}/bulk", encode(&id));
            let mut progress = Progress::new("Uploaded", pairs.len());
            for batch in pairs.chunks(BULK_BATCH) {
                remote.call(Method::PUT, &rest, Some(&Value::Array(batch.to_vec())))?;
                progress.advance(batch.len());
            }
            progress.finish();
            if remote.json() {
                println!(
                    "{}",
                    serde_json::json!({"successful_key_count": pairs.len()})
                );
            }
        }
        KvCommand::Bulk(BulkCommand::Delete { file, target }) => {
            let id = namespace_id(&remote, &target)?;
            let keys: Vec<Value> = read_json_array(&file)?;
            let rest = format!("{NAMESPACES}/{}/bulk/delete", encode(&id));
            let mut progress = Progress::new("Deleted", keys.len());
            for batch in keys.chunks(BULK_BATCH) {
                remote.call(Method::POST, &rest, Some(&Value::Array(batch.to_vec())))?;
                progress.advance(batch.len());
            }
            progress.finish();
            if remote.json() {
                println!(
                    "{}",
                    serde_json::json!({"successful_key_count": keys.len()})
                );
            }
        }
        KvCommand::Key(KeyCommand::Put {
            key,
            value,
            target,
            path,
            ttl,
            expiration,
            metadata,
        }) => {
            let id = namespace_id(&remote, &target)?;
            let value = match (value, path) {
                (Some(value), _) => value.into_bytes(),
                (None, Some(path)) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => bail!("give a value or --path"),
            };
            let mut query = Vec::new();
            if let Some(ttl) = ttl {
                query.push(format!("expiration_ttl={ttl}"));
            }
            if let Some(expiration) = expiration {
                query.push(format!("expiration={expiration}"));
            }
            if let Some(metadata) = metadata {
                serde_json::from_str::<Value>(&metadata).context("--metadata is not valid JSON")?;
                query.push(format!("metadata={}", encode(&metadata)));
            }
            let mut rest = format!("{NAMESPACES}/{}/values/{}", encode(&id), encode(&key));
            if !query.is_empty() {
                rest = format!("{rest}?{}", query.join("&"));
            }
            let body = check(remote.raw(
                Method::PUT,
                &rest,
                Some(("application/octet-stream", value)),
            )?)?;
            if remote.json() {
                // The server's envelope, as it answered.
                std::io::stdout().write_all(&body)?;
                println!();
            } else {
                eprintln!("Writing the value to the key {key:?} in namespace {id}.");
            }
        }
        KvCommand::Key(KeyCommand::Get { key, target }) => {
            let id = namespace_id(&remote, &target)?;
            let rest = format!("{NAMESPACES}/{}/values/{}", encode(&id), encode(&key));
            let raw = remote.raw(Method::GET, &rest, None)?;
            let key_not_found = raw.status == http::StatusCode::NOT_FOUND
                && serde_json::from_slice::<Value>(&raw.body)
                    .is_ok_and(|envelope| envelope["errors"][0]["code"] == KEY_NOT_FOUND);
            if key_not_found {
                if remote.json() {
                    println!("{}", serde_json::json!({"key": key, "found": false}));
                } else {
                    // wrangler prints "Value not found" and succeeds.
                    println!("Value not found");
                }
                return Ok(());
            }
            let value = check(raw)?;
            if remote.json() {
                // Text values as a string; other bytes as an array of numbers.
                let value = match std::str::from_utf8(&value) {
                    Ok(text) => Value::from(text),
                    Err(_) => Value::from(value.to_vec()),
                };
                println!(
                    "{}",
                    serde_json::json!({"key": key, "found": true, "value": value})
                );
                return Ok(());
            }
            std::io::stdout().write_all(&value)?;
            std::io::stdout().flush()?;
        }
        KvCommand::Key(KeyCommand::List { target, prefix }) => {
            let id = namespace_id(&remote, &target)?;
            let mut keys: Vec<Value> = Vec::new();
            let mut cursor = String::new();
            for _ in 0..MAX_LIST_PAGES {
                let mut rest = format!("{NAMESPACES}/{}/keys?limit=1000", encode(&id));
                if let Some(prefix) = &prefix {
                    rest.push_str(&format!("&prefix={}", encode(prefix)));
                }
                if !cursor.is_empty() {
                    rest.push_str(&format!("&cursor={}", encode(&cursor)));
                }
                let envelope = remote.get(&rest)?;
                if let Some(page) = envelope.result.as_ref().and_then(Value::as_array) {
                    keys.extend(page.iter().cloned());
                }
                cursor = envelope
                    .result_info
                    .as_ref()
                    .and_then(|info| info["cursor"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                if cursor.is_empty() {
                    break;
                }
            }
            println!("{}", serde_json::to_string_pretty(&keys)?);
        }
        KvCommand::Key(KeyCommand::Delete { key, target }) => {
            let id = namespace_id(&remote, &target)?;
            let rest = format!("{NAMESPACES}/{}/values/{}", encode(&id), encode(&key));
            let body = check(remote.raw(Method::DELETE, &rest, None)?)?;
            if remote.json() {
                std::io::stdout().write_all(&body)?;
                println!();
            } else {
                eprintln!("Deleted the key {key:?} from namespace {id}.");
            }
        }
    }
    Ok(())
}

/// A JSON file holding an array.
fn read_json_array(file: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a JSON array", file.display()))
}

/// A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise.
struct Progress {
    verb: &'static str,
    done: usize,
    total: usize,
    terminal: bool,
}

impl Progress {
    fn new(verb: &'static str, total: usize) -> Progress {
        use std::io::IsTerminal;
        Progress {
            verb,
            done: 0,
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, count: usize) {
        self.done += count;
        let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let filled = percent / 5;
        let bar = format!("[{}{}]", "#".repeat(filled), " ".repeat(20 - filled));
        let line = format!(
            "{bar} {} {percent}% ({} out of {})",
            self.verb, self.done, self.total
        );
        if self.terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
        eprintln!("Success: {} {} keys.", self.verb.to_lowercase(), self.done);
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(encode("ü"), "%C3%BC");
        assert_eq!(encode("key-1_.~"), "key-1_.~");
    }
}
