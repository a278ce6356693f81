//! JavaScript Workers under the real binary: modules (TypeScript, JSON, node_modules), the fetch
//! handler and its bindings (vars, secrets, KV), uncaught exceptions in `dev` and `serve`,
//! console lines in the log, the CPU and memory limits, the `scheduled` trigger, and isolation
//! from the host (no filesystem, processes, environment or sockets).

mod support;

use std::path::Path;

use support::{Server, body, command, dev, http, send, serve, start, text, write};

fn get(server: &Server, path: &str) -> (u16, String) {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    (status, body(&response).to_owned())
}

#[test]
fn the_hello_example_greets_counts_visits_in_kv_and_echoes_json() {
    let state = tempfile::tempdir().expect("tempdir");
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let server = dev(&hello, state.path());
    assert_eq!(get(&server, "/"), (200, "Hello from Burrow".to_owned()));
    assert_eq!(get(&server, "/visits"), (200, "visits: 1\n".to_owned()));
    assert_eq!(get(&server, "/visits"), (200, "visits: 2\n".to_owned()));
    let (status, response) = send(
        server.ingress,
        "POST",
        "/echo",
        &[("content-type", "application/json")],
        br#"{"b": 2, "a": [1, "x"]}"#,
    );
    assert_eq!(status, 200, "{response}");
    assert_eq!(response, r#"{"received":{"a":[1,"x"],"b":2}}"#);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A TypeScript project: relative imports without extensions, `.js` for `.ts`, a JSON import,
/// a package from node_modules through `exports`, vars, a secret and `cloudflare:workers`.
#[test]
fn typescript_modules_json_packages_vars_and_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "wrangler.toml",
        "name = \"ts-app\"\nmain = \"src/index.ts\"\n[vars]\nMODE = \"test\"\nLIMITS = { max = 3 }\n",
    );
    write(root, ".dev.vars", "API_KEY=s3cret\n");
    write(
        root,
        "src/index.ts",
        r#"import { greet } from "./lib/greet.js";
import config from "./config.json";
import { shout } from "shout";
import { WorkerEntrypoint, env as importedEnv } from "cloudflare:workers";

interface Env { MODE: string; LIMITS: { max: number }; API_KEY: string }

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const name: string = new URL(request.url).searchParams.get("name") ?? "nobody";
    return Response.json({
      greeting: shout(greet(name)),
      config: config.title,
      mode: env.MODE,
      max: env.LIMITS.max,
      key: env.API_KEY,
      entrypoint: typeof WorkerEntrypoint,
      sameEnv: importedEnv === env,
    });
  },
};
"#,
    );
    write(
        root,
        "src/lib/greet.ts",
        "export function greet(name: string): string { return `hello ${name}`; }\n",
    );
    write(root, "src/config.json", r#"{"title": "from json"}"#);
    write(
        root,
        "node_modules/shout/package.json",
        r#"{"name": "shout", "exports": {".": {"require": "./index.cjs", "import": "./esm/index.js"}}}"#,
    );
    write(
        root,
        "node_modules/shout/esm/index.js",
        "export const shout = (s) => s.toUpperCase() + '!';\n",
    );
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(root, state.path());
    let (status, text) = get(&server, "/?name=ada");
    assert_eq!(status, 200, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        value,
        serde_json::json!({
            "greeting": "HELLO ADA!", "config": "from json", "mode": "test", "max": 3,
            "key": "s3cret", "entrypoint": "function", "sameEnv": true,
        })
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A module that does not parse stops `serve` at start-up with the file and the line.
#[test]
fn a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "wrangler.toml",
        "name = \"broken\"\nmain = \"src/index.js\"\n",
    );
    write(
        dir.path(),
        "src/index.js",
        "import { helper } from './helper.js';\nexport default { fetch() { return helper(); } };\n",
    );
    write(
        dir.path(),
        "src/helper.js",
        "export function helper() {\n  return new Response('ok';\n}\n",
    );
    let output = command(&[
        "serve",
        "-c",
        text(&config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("state")),
    ])
    .output()
    .expect("burrow runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SyntaxError"), "{stderr}");
    assert!(stderr.contains("helper.js:2"), "{stderr}");

    // A TypeScript error too, and an import that does not resolve.
    write(
        dir.path(),
        "src/index.js",
        "import './types.ts';\nexport default {};\n",
    );
    write(
        dir.path(),
        "src/types.ts",
        "let a: number = 1;\nlet b: = 2;\n",
    );
    let output = command(&[
        "serve",
        "-c",
        text(&config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("state")),
    ])
    .output()
    .expect("burrow runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("types.ts:2:"), "{stderr}");
    write(
        dir.path(),
        "src/index.js",
        "import 'missing-package';\nexport default {};\n",
    );
    let output = command(&[
        "serve",
        "-c",
        text(&config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("state")),
    ])
    .output()
    .expect("burrow runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing-package"), "{stderr}");
}

const THROWING_WORKER: &str = r#"
function deep() {
  throw new Error("boom from the worker");
}
export default {
  fetch(request) {
    const path = new URL(request.url).pathname;
    console.log("handling", path, { n: 1 });
    if (path === "/throw") deep();
    if (path === "/reject") return Promise.reject(new TypeError("rejected"));
    if (path === "/not-a-response") return "text";
    return new Response("fine");
  },
};
"#;

#[test]
fn uncaught_exceptions_are_500s_with_the_stack_in_dev_and_plain_in_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "wrangler.toml",
        "name = \"thrower\"\nmain = \"index.js\"\n",
    );
    write(dir.path(), "index.js", THROWING_WORKER);

    let server = dev(dir.path(), &dir.path().join("dev-state"));
    let (status, page) = get(&server, "/throw");
    assert_eq!(status, 500);
    assert!(page.contains("boom from the worker"), "{page}");
    assert!(page.contains("index.js:3"), "{page}");
    let (status, page) = get(&server, "/reject");
    assert_eq!(status, 500);
    assert!(page.contains("TypeError: rejected"), "{page}");
    let (status, page) = get(&server, "/not-a-response");
    assert_eq!(status, 500);
    assert!(page.contains("did not resolve to 'Response'"), "{page}");
    assert_eq!(get(&server, "/"), (200, "fine".to_owned()));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("handling /throw { n: 1 }"), "{log}");
    assert!(log.contains("thrower"), "{log}");

    let server = serve(&config, &dir.path().join("serve-state"));
    let (status, page) = get(&server, "/throw");
    assert_eq!(status, 500);
    assert!(!page.contains("boom"), "{page}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("boom from the worker"), "{log}");
    assert!(log.contains("index.js:3"), "{log}");
}

#[test]
fn cpu_and_memory_limits_fail_the_event_and_the_next_request_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        // One shard, so that the module state shows which isolate answered.
        "name = \"limits\"\nmain = \"index.js\"\n[limits]\ncpu_ms = 300\n[burrow]\nshards = 1\n",
    );
    write(
        dir.path(),
        "index.js",
        r#"
let served = 0;
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    served++;
    if (path === "/loop") { for (;;) {} }
    if (path === "/loop-after-await") { await null; await new Promise((r) => setTimeout(r, 1)); while (true) {} }
    if (path === "/allocate") {
      const hoard = [];
      for (;;) hoard.push(new Array(100000).fill(served));
    }
    return new Response(`ok ${served}`);
  },
};
"#,
    );
    let server = dev(dir.path(), &dir.path().join("state"));
    assert_eq!(get(&server, "/").0, 200);
    for path in ["/loop", "/loop-after-await"] {
        let (status, text) = get(&server, path);
        assert_eq!(status, 503, "{path}: {text}");
        assert!(text.contains("exceededCpu"), "{path}: {text}");
        // The next request gets a fresh isolate.
        assert_eq!(get(&server, "/"), (200, "ok 1".to_owned()), "after {path}");
    }
    let (status, text) = get(&server, "/allocate");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("exceededMemory"), "{text}");
    assert_eq!(get(&server, "/"), (200, "ok 1".to_owned()));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("exceededCpu"), "{log}");
    assert!(log.contains("exceededMemory"), "{log}");
}

#[test]
fn worker_code_reaches_no_filesystem_process_environment_or_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"sandbox\"\nmain = \"index.js\"\n",
    );
    write(dir.path(), "secret.txt", "top secret");
    write(
        dir.path(),
        "index.js",
        r#"
async function attempt(specifier) {
  try { await import(specifier); return "imported"; } catch (e) { return "refused"; }
}
export default {
  async fetch() {
    const globals = {};
    for (const name of ["require", "process", "Deno", "Bun", "std", "os", "Buffer", "__filename", "module", "exports"]) {
      globals[name] = typeof globalThis[name];
    }
    const imports = {};
    for (const specifier of ["fs", "node:fs", "node:child_process", "child_process", "net", "node:net", "os", "std", "../../../../../../../etc/hostname", "/etc/hostname"]) {
      imports[specifier] = await attempt(specifier);
    }
    return Response.json({ globals, imports, secretFile: await attempt("./secret.txt") });
  },
};
"#,
    );
    // SAFETY of the test: this variable must not be visible to the Worker.
    let mut command = command(&[
        "dev",
        text(dir.path()),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("state")),
    ]);
    command.env("BURROW_TEST_HOST_SECRET", "host-secret-value");
    let server = start(&mut command);
    let (status, text) = get(&server, "/");
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("host-secret-value"));
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for (name, kind) in value["globals"].as_object().expect("globals") {
        assert_eq!(kind, "undefined", "{name} is reachable: {text}");
    }
    for (specifier, result) in value["imports"].as_object().expect("imports") {
        assert_eq!(result, "refused", "{specifier}: {text}");
    }
    // A text file is not a module: importing it fails to parse rather than exposing it.
    assert_eq!(value["secretFile"], "refused", "{text}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn the_scheduled_handler_runs_from_the_local_trigger() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"crons\"\nmain = \"index.js\"\n[triggers]\ncrons = [\"*/5 * * * *\"]\n\
         [[kv_namespaces]]\nbinding = \"RUNS\"\nid = \"runs\"\n",
    );
    write(
        dir.path(),
        "index.js",
        r#"
export default {
  async scheduled(controller, env, ctx) {
    await env.RUNS.put("last", JSON.stringify({ cron: controller.cron, type: controller.type, time: typeof controller.scheduledTime }));
  },
  async fetch(request, env) {
    return new Response(await env.RUNS.get("last") ?? "none");
  },
};
"#,
    );
    let server = dev(dir.path(), &dir.path().join("state"));
    assert_eq!(get(&server, "/"), (200, "none".to_owned()));
    let (status, text) = get(&server, "/__scheduled?cron=*/5+*+*+*+*");
    assert_eq!(status, 200, "{text}");
    let (status, text) = get(&server, "/");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
        serde_json::json!({"cron": "*/5 * * * *", "type": "scheduled", "time": "number"})
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn dev_reloads_the_worker_when_a_source_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"reloading\"\nmain = \"src/index.js\"\n",
    );
    write(
        dir.path(),
        "src/index.js",
        "import { word } from './word.js';\nexport default { fetch() { return new Response(word); } };\n",
    );
    write(dir.path(), "src/word.js", "export const word = 'first';\n");
    let mut server = dev(dir.path(), &dir.path().join("state"));
    assert_eq!(get(&server, "/"), (200, "first".to_owned()));

    // An imported module changes: the next requests see the new code, on every shard.
    write(dir.path(), "src/word.js", "export const word = 'second';\n");
    server.wait_for("source changed: reloading the Worker");
    for _ in 0..4 {
        assert_eq!(get(&server, "/"), (200, "second".to_owned()));
    }

    // A broken edit shows the error, the server stays up, and the fix is picked up.
    write(dir.path(), "src/word.js", "export const word = ;\n");
    server.wait_for("source changed: reloading the Worker");
    let (status, page) = get(&server, "/");
    assert_eq!(status, 500, "{page}");
    assert!(page.contains("word.js:1"), "{page}");
    write(dir.path(), "src/word.js", "export const word = 'third';\n");
    server.wait_for("source changed: reloading the Worker");
    assert_eq!(get(&server, "/"), (200, "third".to_owned()));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn dev_restarts_on_a_configuration_change_keeping_its_ports_and_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |greeting: &str, kv: bool| {
        let mut text = format!(
            "name = \"configured\"\nmain = \"index.js\"\n[vars]\nGREETING = \"{greeting}\"\n"
        );
        if kv {
            text.push_str("[[kv_namespaces]]\nbinding = \"STORE\"\nid = \"store\"\n");
        }
        text
    };
    write(dir.path(), "wrangler.toml", &config("one", false));
    write(
        dir.path(),
        "index.js",
        r#"
export default {
  async fetch(request, env) {
    if (!env.STORE) return new Response(`${env.GREETING} ${env.SECRET ?? "-"} no-kv`);
    const count = Number((await env.STORE.get("count")) ?? 0) + 1;
    await env.STORE.put("count", String(count));
    return new Response(`${env.GREETING} ${env.SECRET ?? "-"} ${count}`);
  },
};
"#,
    );
    let mut server = dev(dir.path(), &dir.path().join("state"));
    let ingress = server.ingress;
    assert_eq!(get(&server, "/"), (200, "one - no-kv".to_owned()));

    // A new var and a new binding: the server restarts with them, on the same port.
    write(dir.path(), "wrangler.toml", &config("two", true));
    server.wait_for("configuration changed: restarting the server with it");
    let listening = server.wait_for("Worker ingress listening");
    assert!(listening.contains(&ingress.to_string()), "{listening}");
    assert_eq!(get(&server, "/"), (200, "two - 1".to_owned()));

    // A secret in .dev.vars counts as configuration too; stored data survives the restart.
    write(dir.path(), ".dev.vars", "SECRET = \"s3cret\"\n");
    server.wait_for("configuration changed: restarting the server with it");
    server.wait_for("Worker ingress listening");
    assert_eq!(get(&server, "/"), (200, "two s3cret 2".to_owned()));

    // A configuration that does not load leaves the running server as it was.
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"configured\"\nmain = [\n",
    );
    server.wait_for("configuration changed but does not load");
    assert_eq!(get(&server, "/"), (200, "two s3cret 3".to_owned()));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn queue_producers_send_and_send_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"producer\"\nmain = \"index.js\"\n\
         [[queues.producers]]\nbinding = \"JOBS\"\nqueue = \"jobs\"\n\
         [[queues.consumers]]\nqueue = \"jobs\"\ntype = \"http_pull\"\n",
    );
    write(
        dir.path(),
        "index.js",
        r#"
export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/send") {
      await env.JOBS.send({ job: 1 });
      await env.JOBS.send("plain", { contentType: "text" });
      await env.JOBS.sendBatch([{ body: { job: 2 } }, { body: new Uint8Array([1, 2, 3]), contentType: "bytes" }]);
      return new Response("sent");
    }
    if (path === "/bad") {
      try { await env.JOBS.send("x", { contentType: "yaml" }); } catch (e) { return new Response(`${e.name}: ${e.message}`); }
    }
    return new Response("?");
  },
};
"#,
    );
    let server = dev(dir.path(), &dir.path().join("state"));
    assert_eq!(get(&server, "/send"), (200, "sent".to_owned()));
    let (status, text) = get(&server, "/bad");
    assert_eq!(status, 200);
    assert!(text.starts_with("TypeError"), "{text}");
    let admin = format!("http://{}", server.admin);
    let output = support::burrow(&[
        "queues",
        "pull",
        "jobs",
        "--batch-size",
        "10",
        "--admin",
        &admin,
    ]);
    assert!(output.status.success(), "{}", support::stderr(&output));
    let pulled: serde_json::Value = serde_json::from_str(&support::stdout(&output)).expect("JSON");
    let messages = pulled["messages"].as_array().expect("messages");
    let mut types: Vec<String> = messages
        .iter()
        .map(|m| {
            m["metadata"]["CF-Content-Type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["bytes", "json", "json", "text"], "{pulled}");
    let text_message = messages
        .iter()
        .find(|m| m["metadata"]["CF-Content-Type"] == "text")
        .expect("text message");
    assert_eq!(text_message["body"], "plain");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// examples/hono: an unmodified Hono app (hono from npm in its node_modules, which
/// `scripts/install-clients` installs) with routing, JSON bodies, middleware and a KV binding.
#[test]
fn the_hono_example_routes_json_middleware_and_kv() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hono");
    if !example.join("node_modules/hono/package.json").is_file() {
        let hint =
            "run `scripts/install-clients` (as .ci/run does) to install hono into examples/hono";
        if std::env::var_os("CI").is_some() {
            panic!("hono is not installed, and CI is set: {hint}");
        }
        eprintln!("\n!!!!! SKIPPED: hono is not installed; {hint} !!!!!\n");
        return;
    }
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(&example, state.path());
    let (status, response) = http(server.ingress, "GET", "/", &[]);
    assert_eq!(status, 200, "{response}");
    assert_eq!(body(&response), "Hono on Burrow");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("x-service: notes"),
        "our middleware: {response}"
    );
    assert!(
        lower.contains("x-frame-options: sameorigin"),
        "secureHeaders: {response}"
    );

    let (status, created) = send(
        server.ingress,
        "POST",
        "/notes",
        &[("content-type", "application/json")],
        br#"{"text": "buy milk"}"#,
    );
    assert_eq!(status, 201, "{created}");
    let note: serde_json::Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(note["text"], "buy milk");
    let id = note["id"].as_str().expect("id");
    let (status, fetched) = get(&server, &format!("/notes/{id}"));
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&fetched).expect("JSON"),
        note
    );
    let (status, listed) = get(&server, "/notes");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed).expect("JSON")["notes"],
        serde_json::json!([note])
    );
    let (status, refused) = send(server.ingress, "POST", "/notes", &[], b"{}");
    assert_eq!(
        (status, refused.as_str()),
        (400, r#"{"error":"text is required"}"#)
    );
    assert_eq!(
        get(&server, "/notes/missing"),
        (404, r#"{"error":"not found"}"#.to_owned())
    );
    assert_eq!(
        get(&server, "/nope"),
        (404, r#"{"error":"no route for /nope"}"#.to_owned())
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
