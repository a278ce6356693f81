//! Client subcommands: they talk to a running server through its admin API only
//! ([`burrow_http::AdminClient`]), print tables for people and the API's JSON with `--json`.
//! `burrow workers list` is the first; `kv`, `queues`, `workflows` and `objects` verbs build on
//! [`Remote`] the same way.

use anyhow::{Context, bail};
use burrow_http::{AdminClient, Envelope};
use serde_json::Value;

use crate::cli::{ClientArgs, WorkersArgs, WorkersCommand};

/// A connection to a running server's admin API, for one command.
pub(crate) struct Remote {
    runtime: tokio::runtime::Runtime,
    client: AdminClient,
    account: String,
    json: bool,
}

impl Remote {
    pub(crate) fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the client runtime")?;
        let client = AdminClient::new(&args.admin, args.token.clone())?;
        Ok(Remote {
            runtime,
            client,
            account: args.account.clone(),
            json: args.json,
        })
    }

    /// `/client/v4/accounts/{account}/{rest}`.
    pub(crate) fn account_path(&self, rest: &str) -> String {
        format!(
            "/client/v4/accounts/{}/{}",
            encode_segment(&self.account),
            rest.trim_start_matches('/')
        )
    }

    /// `GET` under the account.
    pub(crate) fn get(&self, rest: &str) -> anyhow::Result<Envelope> {
        let path = self.account_path(rest);
        Ok(self.runtime.block_on(self.client.get(&path))?)
    }

    /// Any call under the account, answered raw (KV values are not in an envelope).
    pub(crate) fn raw(
        &self,
        method: http::Method,
        rest: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> anyhow::Result<burrow_http::RawResponse> {
        let path = self.account_path(rest);
        let body = body.map(|(content_type, bytes)| (content_type, bytes.into()));
        Ok(self
            .runtime
            .block_on(self.client.send(method, &path, body))?)
    }

    /// One call under the account with an optional JSON body; an error envelope (or a body that
    /// is not one) becomes the error, with the status and Cloudflare's codes.
    pub(crate) fn call(
        &self,
        method: http::Method,
        rest: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Envelope> {
        let body = body
            .map(|body| serde_json::to_vec(body).map(|bytes| ("application/json", bytes)))
            .transpose()?;
        let raw = self.raw(method, rest, body)?;
        let envelope: Envelope = serde_json::from_slice(&raw.body).with_context(|| {
            format!(
                "{}: {}",
                raw.status,
                String::from_utf8_lossy(&raw.body).trim()
            )
        })?;
        if !raw.status.is_success() || !envelope.success {
            let message = envelope
                .errors
                .iter()
                .map(|error| format!("{} [code: {}]", error.message, error.code))
                .collect::<Vec<_>>()
                .join("; ");
            bail!("{}: {message}", raw.status);
        }
        Ok(envelope)
    }

    /// Whether `--json` was given.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `envelope` as JSON when `--json` was given; otherwise runs `table`.
    pub(crate) fn print(&self, envelope: &Envelope, table: impl FnOnce(&Value)) {
        if self.json {
            // Envelope serializes infallibly: it holds only JSON values and strings.
            println!(
                "{}",
                serde_json::to_string_pretty(envelope).unwrap_or_default()
            );
        } else {
            table(envelope.result.as_ref().unwrap_or(&Value::Null));
        }
    }
}

pub(crate) fn workers(args: WorkersArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.client)?;
    match args.command {
        WorkersCommand::List => {
            let envelope = remote.get("workers/scripts")?;
            remote.print(&envelope, |result| {
                let rows = result
                    .as_array()
                    .map(|scripts| {
                        scripts
                            .iter()
                            .map(|script| {
                                vec![
                                    text(&script["id"]),
                                    text(&script["compatibility_date"]),
                                    text(&script["created_on"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(&["NAME", "COMPATIBILITY DATE", "CREATED"], rows);
            });
        }
    }
    Ok(())
}

/// A JSON value as a table cell: strings bare, `null` as `-`.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|header| (*header).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

/// Percent-encodes one path segment.
pub(crate) fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
