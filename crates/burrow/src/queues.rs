//! `burrow queues …`: queues from the command line, through a running server's admin API (the
//! Cloudflare v4 Queues endpoints).
//!
//! - `burrow queues list`
//! - `burrow queues create NAME [--delivery-delay-secs S] [--message-retention-period-secs S]`
//! - `burrow queues send QUEUE BODY [--content-type text|json] [--delay-secs S]`
//! - `burrow queues stats QUEUE`: backlog, in flight, acked, retried, dead-lettered, latency
//! - `burrow queues pull QUEUE [--batch-size N] [--visibility-timeout-ms MS]` prints the
//!   messages and their lease ids as JSON
//! - `burrow queues ack QUEUE [LEASE_ID…] [--retry LEASE_ID…] [--retry-delay-secs S]`
//! - `burrow queues purge QUEUE`

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use crate::cli::ClientArgs;
use crate::remote::{Remote, encode_segment, print_table, text};

#[derive(Debug, Args)]
pub(crate) struct QueuesArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,

    #[command(subcommand)]
    pub(crate) command: QueuesCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueuesCommand {
    /// List the queues.
    List,
    /// Create a queue (an existing one is left as it is).
    Create {
        /// The queue's name.
        name: String,
        /// Seconds every message waits before delivery.
        #[arg(long)]
        delivery_delay_secs: Option<u32>,
        /// Seconds an unacknowledged message is kept (60 to 1209600; default 345600).
        #[arg(long)]
        message_retention_period_secs: Option<u32>,
    },
    /// Send one message.
    Send {
        /// The queue's name.
        queue: String,
        /// The body (JSON text with --content-type json).
        body: String,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        content_type: String,
        /// Seconds before the message may be delivered.
        #[arg(long)]
        delay_secs: Option<u32>,
    },
    /// Backlog and delivery figures of a queue.
    Stats {
        /// The queue's name.
        queue: String,
    },
    /// Lease messages (as an HTTP pull consumer), printed as JSON with their lease ids.
    Pull {
        /// The queue's name.
        queue: String,
        /// Messages to lease (1-100).
        #[arg(long, default_value_t = 5)]
        batch_size: u32,
        /// How long the leased messages stay hidden.
        #[arg(long, default_value_t = 30_000)]
        visibility_timeout_ms: u64,
    },
    /// Acknowledge (and retry) pulled messages by lease id.
    Ack {
        /// The queue's name.
        queue: String,
        /// Leases to acknowledge.
        lease_ids: Vec<String>,
        /// Leases to retry.
        #[arg(long = "retry")]
        retries: Vec<String>,
        /// Seconds before retried messages come back.
        #[arg(long)]
        retry_delay_secs: Option<u32>,
    },
    /// Delete every message of a queue.
    Purge {
        /// The queue's name.
        queue: String,
    },
    /// Delete a queue and its messages (refused for a queue the configuration binds).
    Delete {
        /// The queue's name.
        queue: String,
    },
}

pub(crate) fn run(args: QueuesArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.client)?;
    match args.command {
        QueuesCommand::List => {
            let envelope = remote.get("queues")?;
            remote.print(&envelope, |result| {
                let rows = result
                    .as_array()
                    .map(|queues| {
                        queues
                            .iter()
                            .map(|queue| {
                                vec![
                                    text(&queue["queue_name"]),
                                    text(&queue["queue_id"]),
                                    text(&queue["created_on"]),
                                    text(&queue["settings"]["delivery_delay"]),
                                    text(&queue["settings"]["message_retention_period"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(
                    &["NAME", "ID", "CREATED", "DELIVERY DELAY", "RETENTION"],
                    rows,
                );
            });
        }
        QueuesCommand::Create {
            name,
            delivery_delay_secs,
            message_retention_period_secs,
        } => {
            let mut settings = json!({});
            if let Some(delay) = delivery_delay_secs {
                settings["delivery_delay"] = json!(delay);
            }
            if let Some(retention) = message_retention_period_secs {
                settings["message_retention_period"] = json!(retention);
            }
            let envelope = remote.call(
                Method::POST,
                "queues",
                Some(&json!({"queue_name": name, "settings": settings})),
            )?;
            remote.print(&envelope, |result| {
                println!(
                    "Created queue {} (id {}).",
                    text(&result["queue_name"]),
                    text(&result["queue_id"])
                );
            });
        }
        QueuesCommand::Send {
            queue,
            body,
            content_type,
            delay_secs,
        } => {
            let body = match content_type.as_str() {
                "json" => serde_json::from_str::<Value>(&body)
                    .context("the body is not valid JSON (--content-type json)")?,
                "text" => Value::String(body),
                other => bail!("--content-type {other}: use text or json"),
            };
            let mut message = json!({"body": body, "content_type": content_type});
            if let Some(delay) = delay_secs {
                message["delay_seconds"] = json!(delay);
            }
            let envelope = remote.call(
                Method::POST,
                &format!("queues/{}/messages", encode_segment(&queue)),
                Some(&message),
            )?;
            remote.print(&envelope, |result| {
                println!(
                    "Sent to {queue}; backlog {} messages.",
                    text(&result["metadata"]["metrics"]["backlog_count"])
                );
            });
        }
        QueuesCommand::Stats { queue } => {
            let envelope = remote.get(&format!("queues/{}/metrics", encode_segment(&queue)))?;
            remote.print(&envelope, |result| {
                let keys = [
                    ("backlog_count", "backlog"),
                    ("backlog_bytes", "backlog bytes"),
                    ("in_flight", "in flight"),
                    ("delayed", "delayed"),
                    ("acked", "acked"),
                    ("retried", "retried"),
                    ("dead_lettered", "dead-lettered"),
                    ("dropped", "dropped"),
                    ("expired", "expired"),
                    ("oldest_message_timestamp_ms", "oldest message (ms)"),
                    ("delivery_latency_p50_ms", "delivery p50 (ms)"),
                    ("delivery_latency_p99_ms", "delivery p99 (ms)"),
                ];
                let rows = keys
                    .iter()
                    .map(|(key, label)| vec![(*label).to_owned(), text(&result[*key])])
                    .collect();
                print_table(&["QUEUE", &queue], rows);
            });
        }
        QueuesCommand::Pull {
            queue,
            batch_size,
            visibility_timeout_ms,
        } => {
            let envelope = remote.call(
                Method::POST,
                &format!("queues/{}/messages/pull", encode_segment(&queue)),
                Some(&json!({"batch_size": batch_size, "visibility_timeout_ms": visibility_timeout_ms})),
            )?;
            let result = envelope.result.unwrap_or(Value::Null);
            println!("{}", serde_json::to_string_pretty(&result)?);
        }
        QueuesCommand::Ack {
            queue,
            lease_ids,
            retries,
            retry_delay_secs,
        } => {
            let acks: Vec<Value> = lease_ids
                .iter()
                .map(|lease| json!({"lease_id": lease}))
                .collect();
            let retries: Vec<Value> = retries
                .iter()
                .map(|lease| match retry_delay_secs {
                    Some(delay) => json!({"lease_id": lease, "delay_seconds": delay}),
                    None => json!({"lease_id": lease}),
                })
                .collect();
            let envelope = remote.call(
                Method::POST,
                &format!("queues/{}/messages/ack", encode_segment(&queue)),
                Some(&json!({"acks": acks, "retries": retries})),
            )?;
            remote.print(&envelope, |result| {
                println!(
                    "Acknowledged {}, retried {}.",
                    text(&result["ackCount"]),
                    text(&result["retryCount"])
                );
                if let Some(warnings) = result["warnings"].as_array() {
                    for warning in warnings {
                        eprintln!("warning: {}", text(warning));
                    }
                }
            });
        }
        QueuesCommand::Purge { queue } => {
            let envelope = remote.call(
                Method::POST,
                &format!("queues/{}/purge", encode_segment(&queue)),
                Some(&json!({"delete_messages_permanently": true})),
            )?;
            remote.print(&envelope, |_| println!("Purged {queue}."));
        }
        QueuesCommand::Delete { queue } => {
            let envelope = remote.call(
                Method::DELETE,
                &format!("queues/{}", encode_segment(&queue)),
                None,
            )?;
            remote.print(&envelope, |_| println!("Deleted {queue}."));
        }
    }
    Ok(())
}
