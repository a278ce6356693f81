//! `burrow workflows …`: Workflow instances from the command line, through a running server's
//! admin API (the Cloudflare v4 Workflows endpoints).
//!
//! - `burrow workflows list` lists the workflows; `burrow workflows list WORKFLOW
//!   [--status S] [--page N] [--per-page N]` lists a workflow's instances, newest first.
//! - `burrow workflows status WORKFLOW ID` shows an instance: status, output or error, and each
//!   step with its attempts (`describe` is an alias, as in wrangler).
//! - `burrow workflows create WORKFLOW [--id ID] [--params JSON]` (alias `trigger`).
//! - `burrow workflows event WORKFLOW ID TYPE [--payload JSON]` sends an event.
//! - `burrow workflows terminate|pause|resume|restart WORKFLOW ID`.

use anyhow::Context;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use crate::cli::ClientArgs;
use crate::remote::{Remote, encode_segment, print_table, text};

#[derive(Debug, Args)]
pub(crate) struct WorkflowsArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,

    #[command(subcommand)]
    pub(crate) command: WorkflowsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowsCommand {
    /// List the workflows, or a workflow's instances.
    List {
        /// List this workflow's instances.
        workflow: Option<String>,
        /// Only instances in this status (queued, running, paused, errored, terminated,
        /// complete, waitingForPause, waiting).
        #[arg(long)]
        status: Option<String>,
        /// The page, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Instances per page.
        #[arg(long, default_value_t = 50)]
        per_page: u32,
    },
    /// An instance's status, output or error, and its steps with their attempts.
    #[command(alias = "describe")]
    Status {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Create an instance.
    #[command(alias = "trigger")]
    Create {
        /// The workflow's name.
        workflow: String,
        /// The instance id (default: a random UUID).
        #[arg(long)]
        id: Option<String>,
        /// The params, as JSON.
        #[arg(long, default_value = "{}")]
        params: String,
    },
    /// Send an event to an instance.
    Event {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
        /// The event type (what `wait_for_event` waits for).
        event_type: String,
        /// The payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
    },
    /// Stop an instance for good.
    Terminate {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Pause an instance (a running step finishes first).
    Pause {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Resume a paused instance.
    Resume {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Run an instance again from the start.
    Restart {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
}

fn json_argument(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag} is not valid JSON: {text}"))
}

fn instance_path(workflow: &str, id: &str) -> String {
    format!(
        "workflows/{}/instances/{}",
        encode_segment(workflow),
        encode_segment(id)
    )
}

/// Prints an instance's details: a summary, then one row per step.
fn print_details(workflow: &str, id: &str, details: &Value) {
    println!("Workflow:  {workflow}");
    println!("Instance:  {id}");
    println!("Status:    {}", text(&details["status"]));
    println!("Queued:    {}", text(&details["queued"]));
    println!("Started:   {}", text(&details["start"]));
    println!("Ended:     {}", text(&details["end"]));
    if !details["output"].is_null() {
        println!("Output:    {}", details["output"]);
    }
    if !details["error"].is_null() {
        println!(
            "Error:     {}: {}",
            text(&details["error"]["name"]),
            text(&details["error"]["message"])
        );
    }
    let rows: Vec<Vec<String>> = details["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| {
                    let kind = text(&step["type"]);
                    let state = match kind.as_str() {
                        "step" => match &step["success"] {
                            Value::Bool(true) => "complete".to_owned(),
                            Value::Bool(false) => "failed".to_owned(),
                            _ => "running".to_owned(),
                        },
                        "termination" => "terminated".to_owned(),
                        _ if step["finished"] == json!(true) => "finished".to_owned(),
                        _ => "waiting".to_owned(),
                    };
                    let attempts = step["attempts"]
                        .as_array()
                        .map_or("-".to_owned(), |attempts| attempts.len().to_string());
                    let last_error = step["attempts"]
                        .as_array()
                        .and_then(|attempts| attempts.iter().rev().find(|a| !a["error"].is_null()))
                        .map(|attempt| text(&attempt["error"]["message"]))
                        .or_else(|| {
                            (!step["error"].is_null()).then(|| text(&step["error"]["message"]))
                        })
                        .unwrap_or_else(|| "-".to_owned());
                    vec![
                        kind,
                        text(&step["name"]),
                        state,
                        attempts,
                        text(&step["start"]),
                        text(&step["end"]),
                        last_error,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    println!();
    print_table(
        &[
            "TYPE",
            "NAME",
            "STATE",
            "ATTEMPTS",
            "START",
            "END",
            "LAST ERROR",
        ],
        rows,
    );
}

pub(crate) fn run(args: WorkflowsArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.client)?;
    match args.command {
        WorkflowsCommand::List { workflow: None, .. } => {
            let envelope = remote.call(Method::GET, "workflows", None)?;
            remote.print(&envelope, |result| {
                let rows = result
                    .as_array()
                    .map(|workflows| {
                        workflows
                            .iter()
                            .map(|workflow| {
                                vec![
                                    text(&workflow["name"]),
                                    text(&workflow["class_name"]),
                                    text(&workflow["script_name"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(&["NAME", "CLASS", "SCRIPT"], rows);
            });
        }
        WorkflowsCommand::List {
            workflow: Some(workflow),
            status,
            page,
            per_page,
        } => {
            let mut rest = format!(
                "workflows/{}/instances?page={page}&per_page={per_page}",
                encode_segment(&workflow)
            );
            if let Some(status) = status {
                rest.push_str(&format!("&status={}", encode_segment(&status)));
            }
            let envelope = remote.call(Method::GET, &rest, None)?;
            remote.print(&envelope, |result| {
                let rows = result
                    .as_array()
                    .map(|instances| {
                        instances
                            .iter()
                            .map(|instance| {
                                vec![
                                    text(&instance["id"]),
                                    text(&instance["status"]),
                                    text(&instance["created_on"]),
                                    text(&instance["ended_on"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(&["ID", "STATUS", "CREATED", "ENDED"], rows);
                if let Some(info) = &envelope.result_info {
                    println!(
                        "\n{} of {} (page {})",
                        text(&info["count"]),
                        text(&info["total_count"]),
                        text(&info["page"])
                    );
                }
            });
        }
        WorkflowsCommand::Status { workflow, id } => {
            let envelope = remote.call(Method::GET, &instance_path(&workflow, &id), None)?;
            remote.print(&envelope, |result| print_details(&workflow, &id, result));
        }
        WorkflowsCommand::Create {
            workflow,
            id,
            params,
        } => {
            let mut body = json!({"params": json_argument("--params", &params)?});
            if let Some(id) = id {
                body["instance_id"] = json!(id);
            }
            let envelope = remote.call(
                Method::POST,
                &format!("workflows/{}/instances", encode_segment(&workflow)),
                Some(&body),
            )?;
            remote.print(&envelope, |result| {
                println!(
                    "Created instance {} of {workflow} ({}).",
                    text(&result["id"]),
                    text(&result["status"])
                );
            });
        }
        WorkflowsCommand::Event {
            workflow,
            id,
            event_type,
            payload,
        } => {
            let payload = json_argument("--payload", &payload)?;
            let envelope = remote.call(
                Method::POST,
                &format!(
                    "{}/events/{}",
                    instance_path(&workflow, &id),
                    encode_segment(&event_type)
                ),
                Some(&payload),
            )?;
            remote.print(&envelope, |_| {
                println!("Sent event {event_type} to {id}.");
            });
        }
        WorkflowsCommand::Terminate { workflow, id } => {
            change(&remote, &workflow, &id, "terminate")?;
        }
        WorkflowsCommand::Pause { workflow, id } => change(&remote, &workflow, &id, "pause")?,
        WorkflowsCommand::Resume { workflow, id } => change(&remote, &workflow, &id, "resume")?,
        WorkflowsCommand::Restart { workflow, id } => change(&remote, &workflow, &id, "restart")?,
    }
    Ok(())
}

/// `PATCH …/status {status: action}`.
fn change(remote: &Remote, workflow: &str, id: &str, action: &str) -> anyhow::Result<()> {
    let envelope = remote.call(
        Method::PATCH,
        &format!("{}/status", instance_path(workflow, id)),
        Some(&json!({"status": action})),
    )?;
    remote.print(&envelope, |result| {
        println!("{id}: {}", text(&result["status"]));
    });
    Ok(())
}
