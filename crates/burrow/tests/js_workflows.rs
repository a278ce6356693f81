//! JavaScript Workflows under the real binary: a `WorkflowEntrypoint` class bound by
//! `[[workflows]]`, `step.do` (results cached across replays, retries with backoff,
//! `NonRetryableError`), `step.sleep`, `step.sleepUntil`, `step.waitForEvent`, and the binding in
//! `env` (create, createBatch, get, status, pause, resume, terminate, restart, sendEvent), seen
//! over HTTP.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, body, dev, http, write};

/// Generous bound for an instance to get somewhere on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn get_json(server: &Server, path: &str) -> Value {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    assert_eq!(status, 200, "{path}: {response}\nlog:\n{}", server.log);
    serde_json::from_str(body(&response)).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Polls `path` until `done` holds for its JSON; returns that JSON.
fn wait_json(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = get_json(server, path);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there; last: {value}\nlog:\n{}",
            server.log
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WORKER: &str = r#"
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

// Counts callback runs in KV (instances run on every shard's isolate): a completed step must
// not run again on replay.
async function count(env, name) {
  const n = Number((await env.RUNS.get(`run:${name}`)) || 0) + 1;
  await env.RUNS.put(`run:${name}`, String(n));
  return n;
}

export class Demo extends WorkflowEntrypoint {
  async run(event, step) {
    const first = await step.do("first", async () => {
      await count(this.env, `${event.instanceId}:first`);
      return { doubled: event.payload.n * 2, hasEnv: this.env.LABEL === "demo" };
    });
    await step.sleep("nap", 200);
    // A Date derived from the event, so every replay asks for the same time.
    await step.sleepUntil("until", new Date(event.timestamp.getTime() + 300));
    const flaky = await step.do(
      "flaky",
      { retries: { limit: 3, delay: 50, backoff: "constant" }, timeout: "1 minute" },
      async (ctx) => {
        await count(this.env, `${event.instanceId}:flaky`);
        if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} failed`);
        return ctx.attempt;
      },
    );
    const approval = await step.waitForEvent("approval", { type: "approve", timeout: "1 minute" });
    if (event.payload.fail) {
      await step.do("fatal", async () => {
        await count(this.env, `${event.instanceId}:fatal`);
        throw new NonRetryableError("not this time");
      });
    }
    return {
      first,
      flaky,
      approval: approval.payload,
      approvalType: approval.type,
      timestampIsDate: approval.timestamp instanceof Date,
      instanceId: event.instanceId,
      eventTimestampIsDate: event.timestamp instanceof Date,
    };
  }
}

export class Waiter extends WorkflowEntrypoint {
  async run(event, step) {
    const got = await step.waitForEvent("go", { type: "go" });
    await step.do("after", async () => count(this.env, `${event.instanceId}:after`));
    return got.payload;
  }
}

// Concurrent branches: a sleep beside steps that work, joined with Promise.all.
export class Parallel extends WorkflowEntrypoint {
  async run(event, step) {
    const [, a, b] = await Promise.all([
      step.sleep("rest", 300),
      step.do("a", async () => {
        await count(this.env, `${event.instanceId}:a`);
        return "A";
      }),
      step.do("b", async () => {
        await count(this.env, `${event.instanceId}:b`);
        return "B";
      }),
    ]);
    const c = await step.do("c", async () => `${a}${b}C`);
    return c;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const id = url.searchParams.get("id");
    const wf = { waiter: env.WAITER, parallel: env.PARALLEL }[url.searchParams.get("wf")] ?? env.DEMO;
    switch (url.pathname) {
      case "/create": {
        const params = JSON.parse(url.searchParams.get("params") || "{}");
        const instance = await wf.create(id ? { id, params } : { params });
        return Response.json({ id: instance.id });
      }
      case "/batch": {
        const instances = await wf.createBatch([{ id: "b1", params: {} }, { id: "b2", params: {} }]);
        return Response.json(instances.map((i) => i.id));
      }
      case "/status":
        return Response.json(await (await wf.get(id)).status());
      case "/event": {
        const payload = JSON.parse(url.searchParams.get("payload") || "null");
        await (await wf.get(id)).sendEvent({ type: url.searchParams.get("type"), payload });
        return Response.json({ sent: true });
      }
      case "/control": {
        const instance = await wf.get(id);
        try {
          await instance[url.searchParams.get("action")]();
          return Response.json({ ok: true });
        } catch (error) {
          return Response.json({ ok: false, error: String(error.message) });
        }
      }
      case "/missing":
        try {
          await wf.get("nobody");
          return Response.json({ found: true });
        } catch (error) {
          return Response.json({ error: error.message });
        }
      case "/runs":
      {
        const runs = {};
        for (const key of (await env.RUNS.list({ prefix: "run:" })).keys) {
          runs[key.name.slice(4)] = Number(await env.RUNS.get(key.name));
        }
        return Response.json(runs);
      }
    }
    return new Response("not found", { status: 404 });
  },
};
"#;

fn project(root: &Path) {
    write(
        root,
        "wrangler.toml",
        r#"name = "js-workflows"
main = "index.js"
[vars]
LABEL = "demo"
[[kv_namespaces]]
binding = "RUNS"
id = "runs"
[[workflows]]
name = "demo"
binding = "DEMO"
class_name = "Demo"
[[workflows]]
name = "waiter"
binding = "WAITER"
class_name = "Waiter"
[[workflows]]
name = "parallel"
binding = "PARALLEL"
class_name = "Parallel"
"#,
    );
    write(root, "index.js", WORKER);
}

fn status(server: &Server, wf: &str, id: &str) -> Value {
    get_json(server, &format!("/status?wf={wf}&id={id}"))
}

fn wait_status(server: &Server, wf: &str, id: &str, wanted: &str) -> Value {
    wait_json(server, &format!("/status?wf={wf}&id={id}"), |v| {
        v["status"] == wanted
    })
}

#[test]
fn steps_replay_retry_sleep_and_wait_for_events_and_errors_end_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    project(dir.path());
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(dir.path(), state.path());

    let created = get_json(&server, "/create?id=ok&params=%7B%22n%22%3A21%7D");
    assert_eq!(created, json!({"id": "ok"}));
    get_json(
        &server,
        "/create?id=bad&params=%7B%22n%22%3A1%2C%22fail%22%3Atrue%7D",
    );
    // Both sleep, retry and then wait for their event.
    wait_status(&server, "demo", "ok", "waiting");
    let runs = wait_json(&server, "/runs", |v| {
        v["ok:flaky"] == 3 && v["bad:flaky"] == 3
    });
    assert_eq!(runs["ok:first"], 1, "{runs}");

    get_json(
        &server,
        "/event?id=ok&type=approve&payload=%7B%22by%22%3A%22ada%22%7D",
    );
    let done = wait_status(&server, "demo", "ok", "complete");
    assert_eq!(
        done["output"],
        json!({
            "first": {"doubled": 42, "hasEnv": true},
            "flaky": 3,
            "approval": {"by": "ada"},
            "approvalType": "approve",
            "timestampIsDate": true,
            "instanceId": "ok",
            "eventTimestampIsDate": true,
        }),
        "{done}"
    );
    // Every replay after a sleep, a retry delay or the event found the completed steps cached.
    let runs = get_json(&server, "/runs");
    assert_eq!(
        (&runs["ok:first"], &runs["ok:flaky"]),
        (&json!(1), &json!(3)),
        "{runs}"
    );

    get_json(&server, "/event?id=bad&type=approve");
    let errored = wait_status(&server, "demo", "bad", "errored");
    assert_eq!(
        errored["error"],
        json!({"name": "NonRetryableError", "message": "not this time"}),
        "{errored}"
    );
    assert_eq!(
        get_json(&server, "/runs")["bad:fatal"],
        1,
        "no retries after NonRetryableError"
    );

    assert_eq!(
        get_json(&server, "/missing"),
        json!({"error": "(instance.not_found) Instance does not exist"})
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn the_binding_creates_batches_pauses_resumes_terminates_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    project(dir.path());
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(dir.path(), state.path());

    assert_eq!(get_json(&server, "/batch?wf=waiter"), json!(["b1", "b2"]));
    let generated = get_json(&server, "/create?wf=waiter");
    let generated = generated["id"].as_str().expect("id").to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    wait_status(&server, "waiter", "b1", "waiting");
    wait_status(&server, "waiter", &generated, "waiting");

    // Pause: an event arriving while paused is kept; resume lets it through.
    assert_eq!(
        get_json(&server, "/control?wf=waiter&id=b1&action=pause"),
        json!({"ok": true})
    );
    wait_status(&server, "waiter", "b1", "paused");
    get_json(&server, "/event?wf=waiter&id=b1&type=go&payload=1");
    assert_eq!(status(&server, "waiter", "b1")["status"], "paused");
    get_json(&server, "/control?wf=waiter&id=b1&action=resume");
    let done = wait_status(&server, "waiter", "b1", "complete");
    assert_eq!(done["output"], 1);

    // Terminate ends it for good; terminating again says why not.
    get_json(&server, "/control?wf=waiter&id=b2&action=terminate");
    wait_status(&server, "waiter", "b2", "terminated");
    assert_eq!(
        get_json(&server, "/control?wf=waiter&id=b2&action=terminate"),
        json!({
            "ok": false,
            "error": "(instance.cannot_terminate) Cannot terminate instance since its on a finite state"
        })
    );
    // Restart runs it again from the start: it waits for a new event.
    get_json(&server, "/control?wf=waiter&id=b2&action=restart");
    wait_status(&server, "waiter", "b2", "waiting");
    get_json(&server, "/event?wf=waiter&id=b2&type=go&payload=2");
    assert_eq!(
        wait_status(&server, "waiter", "b2", "complete")["output"],
        2
    );
    // The admin API (and so `burrow workflows`) serves the JavaScript workflows too.
    let (status, response) = http(
        server.admin,
        "GET",
        "/client/v4/accounts/local/workflows",
        &[],
    );
    assert_eq!(status, 200, "{response}");
    let listed: Value = serde_json::from_str(body(&response)).expect("JSON");
    let classes: Vec<(&str, &str)> = listed["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap(),
                w["class_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("demo", "Demo"),
            ("parallel", "Parallel"),
            ("waiter", "Waiter")
        ],
        "{listed}"
    );
    let (status, response) = http(
        server.admin,
        "GET",
        "/client/v4/accounts/local/workflows/waiter/instances/b2",
        &[],
    );
    assert_eq!(status, 200, "{response}");
    let instance: Value = serde_json::from_str(body(&response)).expect("JSON");
    assert_eq!(instance["result"]["status"], "complete", "{instance}");

    let runs = get_json(&server, "/runs");
    assert_eq!(
        (&runs["b1:after"], &runs["b2:after"]),
        (&json!(1), &json!(1)),
        "{runs}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn concurrent_branches_join_and_each_step_runs_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    project(dir.path());
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(dir.path(), state.path());
    get_json(&server, "/create?wf=parallel&id=p");
    let done = wait_status(&server, "parallel", "p", "complete");
    assert_eq!(done["output"], "ABC", "{done}");
    let runs = get_json(&server, "/runs");
    assert_eq!(
        (&runs["p:a"], &runs["p:b"]),
        (&json!(1), &json!(1)),
        "{runs}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
