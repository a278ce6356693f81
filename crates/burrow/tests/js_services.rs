//! Service bindings between JavaScript Workers loaded together (`burrow serve -c front -c back`):
//! `fetch` through the binding, RPC to the default `WorkerEntrypoint` and to a named one, errors
//! re-thrown at the caller, and a Worker bound to itself.

mod support;

use support::{body, command, http, start, text, write};

const FRONT: &str = r#"
import { WorkerEntrypoint } from "cloudflare:workers";

export class Echo extends WorkerEntrypoint {
  echo(value) {
    return { echoed: value, worker: this.env.NAME };
  }
}

export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/fetch") {
      const response = await env.BACK.fetch("http://back.internal/hello?x=1", {
        method: "POST",
        headers: { "x-from": "front" },
        body: "payload",
      });
      return Response.json({ status: response.status, tag: response.headers.get("x-back"), text: await response.text() });
    }
    if (path === "/rpc") {
      const sum = await env.BACK.add(2, 3);
      const stats = await env.ADMIN.stats(new Map([["a", 1]]));
      let error;
      try {
        await env.BACK.explode("boom");
      } catch (e) {
        error = { name: e.name, message: e.message, remote: e.remote === true };
      }
      let missing;
      try {
        await env.BACK.nope();
      } catch (e) {
        missing = { name: e.name, message: e.message };
      }
      const self = await env.SELF.echo([1, "two"]);
      return Response.json({ sum, stats, error, missing, self });
    }
    return new Response("not found", { status: 404 });
  },
};
"#;

const BACK: &str = r#"
import { WorkerEntrypoint } from "cloudflare:workers";

export class Admin extends WorkerEntrypoint {
  stats(map) {
    return { size: map.size, a: map.get("a"), worker: this.env.NAME };
  }
}

export default class extends WorkerEntrypoint {
  async fetch(request) {
    const url = new URL(request.url);
    return new Response(`${request.method} ${url.host}${url.pathname}${url.search} from=${request.headers.get("x-from")} body=${await request.text()} name=${this.env.NAME}`, {
      status: 201,
      headers: { "x-back": "yes" },
    });
  }
  add(a, b) {
    return a + b;
  }
  explode(message) {
    throw new RangeError(message);
  }
}
"#;

#[test]
fn service_bindings_fetch_and_call_workers_loaded_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let front = dir.path().join("front");
    let back = dir.path().join("back");
    let front_config = write(
        &front,
        "wrangler.toml",
        "name = \"front\"\nmain = \"index.js\"\n[vars]\nNAME = \"front\"\n\
         [[services]]\nbinding = \"BACK\"\nservice = \"back\"\n\
         [[services]]\nbinding = \"ADMIN\"\nservice = \"back\"\nentrypoint = \"Admin\"\n\
         [[services]]\nbinding = \"SELF\"\nservice = \"front\"\nentrypoint = \"Echo\"\n",
    );
    write(&front, "index.js", FRONT);
    let back_config = write(
        &back,
        "wrangler.toml",
        "name = \"back\"\nmain = \"index.js\"\n[vars]\nNAME = \"back\"\n",
    );
    write(&back, "index.js", BACK);
    let state = tempfile::tempdir().expect("tempdir");
    let server = start(&mut command(&[
        "serve",
        "-c",
        text(&front_config),
        "-c",
        text(&back_config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state.path()),
    ]));
    let (status, response) = http(server.ingress, "GET", "/fetch", &[]);
    assert_eq!(status, 200, "{response}");
    let fetched: serde_json::Value = serde_json::from_str(body(&response)).expect("json");
    assert_eq!(
        fetched,
        serde_json::json!({
            "status": 201,
            "tag": "yes",
            "text": "POST back.internal/hello?x=1 from=front body=payload name=back",
        })
    );
    let (status, response) = http(server.ingress, "GET", "/rpc", &[]);
    assert_eq!(status, 200, "{response}");
    let called: serde_json::Value = serde_json::from_str(body(&response)).expect("json");
    assert_eq!(
        called,
        serde_json::json!({
            "sum": 5,
            "stats": {"size": 1, "a": 1, "worker": "back"},
            "error": {"name": "RangeError", "message": "boom", "remote": true},
            "missing": {"name": "TypeError", "message": "The RPC receiver does not implement the method \"nope\"."},
            "self": {"echoed": [1, "two"], "worker": "front"},
        })
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
