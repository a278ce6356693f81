//! JavaScript Durable Objects under the real binary: the examples (`js_counter`,
//! `js_alarm_task_queue`) driven over HTTP, the storage API (KV, SQL, transactions, alarms) from a
//! project written here, and what survives a restart.

mod support;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use support::{Server, body, command, http, send, start, text};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Starts `burrow dev` on a project directory with its state in `state`.
fn dev(project: &Path, state: &Path) -> Server {
    start(&mut command(&[
        "dev",
        text(project),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state),
    ]))
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    (status, body(&response).to_owned())
}

fn post(server: &Server, path: &str) -> (u16, String) {
    send(server.ingress, "POST", path, &[], b"")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text:?}"))
}

#[test]
fn the_counter_example_counts_over_rpc_rethrows_errors_and_survives_a_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let project = example("js_counter");
    let server = dev(&project, state.path());
    assert_eq!(
        post(&server, "/counter/a/increment"),
        (200, r#"{"name":"a","count":1}"#.to_owned())
    );
    assert_eq!(
        post(&server, "/counter/a/increment?by=5"),
        (200, r#"{"name":"a","count":6}"#.to_owned())
    );
    assert_eq!(
        post(&server, "/counter/b/increment"),
        (200, r#"{"name":"b","count":1}"#.to_owned())
    );
    let (status, state_a) = get(&server, "/counter/a");
    assert_eq!(status, 200, "{state_a}");
    let state_a = json(&state_a);
    assert_eq!(state_a["count"], 6);
    assert_eq!(state_a["loads"], 1, "blockConcurrencyWhile ran once");
    assert_eq!(
        state_a["idMatches"], true,
        "ctx.id is the id the Worker made"
    );
    // An error thrown in the object comes back to the caller with its class and message.
    let (status, failure) = get(&server, "/counter/a/fail");
    assert_eq!(status, 200, "{failure}");
    assert_eq!(
        json(&failure),
        serde_json::json!({"name": "RangeError", "message": "counter says no", "remote": true})
    );
    // fetch() on the stub reaches the object's own fetch handler.
    let (status, raw) = get(&server, "/counter/a/raw");
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        json(&raw),
        serde_json::json!({"path": "/counter/a/raw", "count": 6})
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    // After a restart the constructor runs again and loads the persisted count.
    let server = dev(&project, state.path());
    let after = json(&get(&server, "/counter/a").1);
    assert_eq!(after["count"], 6);
    assert_eq!(after["loads"], 1);
    assert_eq!(
        post(&server, "/counter/a/increment"),
        (200, r#"{"name":"a","count":7}"#.to_owned())
    );
    // deleteAll through the object's fetch.
    let (status, _) = http(server.ingress, "DELETE", "/counter/b", &[]);
    assert_eq!(status, 204);
    assert_eq!(json(&get(&server, "/counter/b").1)["count"], 0);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn the_alarm_task_queue_example_processes_one_task_per_alarm_in_order_across_a_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let project = example("js_alarm_task_queue");
    let server = dev(&project, state.path());
    for name in ["resize", "encode", "notify"] {
        let (status, answer) = send(
            server.ingress,
            "POST",
            "/enqueue",
            &[("content-type", "application/json")],
            format!(r#"{{"name":"{name}"}}"#).as_bytes(),
        );
        assert_eq!((status, answer.as_str()), (200, r#"{"success":true}"#));
    }
    let (status, queued) = get(&server, "/status");
    assert_eq!(status, 200, "{queued}");
    assert!(json(&queued)["alarm"].is_number(), "{queued}");
    // Restart before the queue drains: the alarm survives in storage and carries on.
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let server = dev(&project, state.path());
    let done = wait_until(&server, "/status", |value| {
        value["done"].as_array().is_some_and(|done| done.len() == 3)
    });
    assert_eq!(
        done["done"],
        serde_json::json!(["resize", "encode", "notify"])
    );
    assert_eq!(done["queued"], serde_json::json!([]));
    let idle = wait_until(&server, "/status", |value| value["alarm"].is_null());
    assert_eq!(idle["done"].as_array().map(Vec::len), Some(3));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// Hibernation drops the JavaScript object: the next event runs the constructor again, and
/// storage is still there.
#[test]
fn hibernation_drops_the_javascript_object_and_the_next_event_constructs_it_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    support::write(
        root,
        "wrangler.toml",
        "name = \"lab\"\nmain = \"index.js\"\n[[durable_objects.bindings]]\nname = \"LAB\"\nclass_name = \"Lab\"\n[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Lab\"]\n",
    );
    support::write(root, "index.js", LAB);
    let state = tempfile::tempdir().expect("tempdir");
    let mut dev = command(&[
        "dev",
        text(root),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state.path()),
    ]);
    let server = start(dev.env("BURROW_HIBERNATE_AFTER_MS", "200"));
    let first = json(&get(&server, "/h/visit").1);
    let again = json(&get(&server, "/h/visit").1);
    assert_eq!(first["stored"], 1);
    assert_eq!(again["stored"], 2);
    // Back to back, the same instance (it rarely idles 200 ms in between; if it did, a new one is
    // also correct, so only the later change is asserted).
    let deadline = Instant::now() + Duration::from_secs(60);
    let woken = loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = json(&get(&server, "/h/instance").1);
        if now["instance"] != again["instance"] {
            break now;
        }
        assert!(Instant::now() < deadline, "the object never hibernated");
    };
    assert_eq!(woken["stored"], 2, "storage survives hibernation");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// Polls `path` until `done` accepts the body, for up to a minute.
fn wait_until(
    server: &Server,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = get(server, path);
        if status == 200 {
            let value = json(&text);
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected state; last: {value}"
            );
        } else {
            assert!(Instant::now() < deadline, "{path}: {status} {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Durable Object that runs one storage scenario per RPC call and reports what it saw.
const LAB: &str = r#"
import { DurableObject } from "cloudflare:workers";

function caught(f) {
  try {
    const value = f();
    if (value && typeof value.then === "function") {
      return value.then((v) => ({ ok: v }), (e) => ({ name: e.name, message: e.message }));
    }
    return { ok: value };
  } catch (e) {
    return { name: e.name, message: e.message };
  }
}
const entries = (map) => [...map].map(([k, v]) => [k, v]);

export class Lab extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.instanceId = crypto.randomUUID();
  }

  async instance() {
    return { instance: this.instanceId, stored: (await this.ctx.storage.get("visits")) ?? 0 };
  }

  async visit() {
    const visits = ((await this.ctx.storage.get("visits")) ?? 0) + 1;
    await this.ctx.storage.put("visits", visits);
    return { instance: this.instanceId, stored: visits };
  }

  async kv() {
    const s = this.ctx.storage;
    await s.put("b", 2);
    await s.put({ a: 1, c: 3, "c/1": "x", "c/2": "y", d: 4 });
    const out = {};
    out.one = await s.get("a");
    out.missing = await s.get("zz");
    out.many = entries(await s.get(["d", "zz", "a"]));
    out.all = [...(await s.list()).keys()];
    out.range = [...(await s.list({ start: "b", end: "d" })).keys()];
    out.after = [...(await s.list({ startAfter: "b", limit: 2 })).keys()];
    out.prefix = [...(await s.list({ prefix: "c/" })).keys()];
    out.reverse = [...(await s.list({ reverse: true, limit: 2 })).keys()];
    out.deleted = await s.delete("a");
    out.deletedAgain = await s.delete("a");
    out.deletedMany = await s.delete(["b", "c", "nope"]);
    out.left = [...(await s.list()).keys()];
    out.bothStarts = await caught(() => s.list({ start: "a", startAfter: "b" }));
    out.zeroLimit = await caught(() => s.list({ limit: 0 }));
    out.tooMany = await caught(() => s.get(Array.from({ length: 129 }, (_, i) => `k${i}`)));
    out.bigKey = await caught(() => s.put("k".repeat(2049), 1));
    out.sync = [this.ctx.storage.kv.put("s", { n: 1 }), this.ctx.storage.kv.get("s"), this.ctx.storage.kv.delete("s"), this.ctx.storage.kv.get("s")];
    await s.sync();
    return out;
  }

  async values() {
    const s = this.ctx.storage;
    const shared = { x: 1 };
    const cyclic = { name: "loop", shared, again: shared };
    cyclic.self = cyclic;
    const value = {
      map: new Map([["k", [1, 2]]]),
      set: new Set(["a", "b"]),
      date: new Date(1700000000000),
      bytes: new Uint8Array([1, 2, 255]),
      big: 12345678901234567890n,
      nothing: undefined,
      negativeZero: -0,
      nan: NaN,
      cyclic,
    };
    await s.put("v", value);
    const back = await s.get("v");
    return {
      map: back.map instanceof Map && back.map.get("k")[1],
      set: back.set instanceof Set && [...back.set],
      date: back.date instanceof Date && back.date.getTime(),
      bytes: back.bytes instanceof Uint8Array && [...back.bytes],
      big: typeof back.big === "bigint" && back.big.toString(),
      nothing: "nothing" in back && back.nothing === undefined,
      negativeZero: Object.is(back.negativeZero, -0),
      nan: Number.isNaN(back.nan),
      cycle: back.cyclic.self === back.cyclic && back.cyclic.shared === back.cyclic.again,
      functionRefused: await caught(() => s.put("f", { f() {} })),
      rpcMap: new Map([["via", "rpc"]]),
    };
  }

  async sql() {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)");
    const inserted = sql.exec("INSERT INTO items (name, data) VALUES (?, ?), (?, ?)", "one", new Uint8Array([7]).buffer, "two", null);
    const cursor = sql.exec("SELECT id, name, data FROM items ORDER BY id");
    const columns = cursor.columnNames;
    const rows = cursor.toArray().map((r) => [r.id, r.name, r.data instanceof ArrayBuffer ? [...new Uint8Array(r.data)] : r.data]);
    const raw = [...sql.exec("SELECT name FROM items ORDER BY id").raw()];
    const one = sql.exec("SELECT count(*) AS n FROM items").one();
    const iterated = [];
    for (const row of sql.exec("SELECT name FROM items WHERE id > ?", 1)) iterated.push(row.name);
    return {
      columns,
      rows,
      raw,
      one,
      iterated,
      written: inserted.rowsWritten,
      size: sql.databaseSize > 0,
      noneForOne: caught(() => sql.exec("SELECT 1 WHERE 0").one()),
      begin: caught(() => sql.exec("BEGIN TRANSACTION")),
      hidden: caught(() => sql.exec("SELECT * FROM _cf_KV")),
      wrongBindings: caught(() => sql.exec("SELECT ?", 1, 2)),
    };
  }

  async transactions() {
    const s = this.ctx.storage;
    await s.put("t", 0);
    const thrown = await caught(() => s.transaction(async (txn) => {
      await txn.put("t", 1);
      throw new Error("undo");
    }));
    const afterThrow = await s.get("t");
    await s.transaction(async (txn) => {
      await txn.put("t", 2);
      txn.rollback();
    });
    const afterRollback = await s.get("t");
    const committed = await s.transaction(async (txn) => {
      await txn.put("t", 3);
      return (await txn.get("t")) * 10;
    });
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS tx (v)");
    const sync = caught(() => s.transactionSync(() => {
      this.ctx.storage.sql.exec("INSERT INTO tx VALUES (1)");
      throw new TypeError("sync undo");
    }));
    const rows = this.ctx.storage.sql.exec("SELECT count(*) AS n FROM tx").one().n;
    return { thrown, afterThrow, afterRollback, committed, final: await s.get("t"), sync, rows };
  }

  async armAlarm(failFirst) {
    await this.ctx.storage.put("failFirst", failFirst);
    await this.ctx.storage.put("runs", []);
    await this.ctx.storage.setAlarm(Date.now() + 50);
    return await this.ctx.storage.getAlarm() !== null;
  }

  async alarmState() {
    return { runs: (await this.ctx.storage.get("runs")) || [], alarm: await this.ctx.storage.getAlarm() };
  }

  async alarm(info) {
    const runs = (await this.ctx.storage.get("runs")) || [];
    runs.push({ retryCount: info.retryCount, isRetry: info.isRetry, during: await this.ctx.storage.getAlarm() });
    await this.ctx.storage.put("runs", runs);
    if (runs.length === 1 && (await this.ctx.storage.get("failFirst"))) {
      throw new Error("first run fails");
    }
  }

  async wipe() {
    await this.ctx.storage.put("x", 1);
    await this.ctx.storage.setAlarm(Date.now() + 3600000);
    await this.ctx.storage.deleteAll();
    return { keys: (await this.ctx.storage.list()).size, alarm: await this.ctx.storage.getAlarm() };
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, name, step, arg] = url.pathname.split("/");
    const stub = env.LAB.getByName(name);
    const result = await stub[step](arg === "true");
    if (step === "values") result.rpcMap = result.rpcMap instanceof Map && result.rpcMap.get("via");
    return Response.json(result);
  },
};
"#;

#[test]
fn storage_kv_values_sql_transactions_and_alarms_behave_as_on_cloudflare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    support::write(
        root,
        "wrangler.toml",
        "name = \"lab\"\nmain = \"index.js\"\n[[durable_objects.bindings]]\nname = \"LAB\"\nclass_name = \"Lab\"\n[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Lab\"]\n",
    );
    support::write(root, "index.js", LAB);
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(root, state.path());

    let (status, kv) = get(&server, "/kv/kv");
    assert_eq!(status, 200, "{kv}");
    let expected = serde_json::json!({
        "one": 1,
        "many": [["a", 1], ["d", 4]],
        "all": ["a", "b", "c", "c/1", "c/2", "d"],
        "range": ["b", "c", "c/1", "c/2"],
        "after": ["c", "c/1"],
        "prefix": ["c/1", "c/2"],
        "reverse": ["d", "c/2"],
        "deleted": true,
        "deletedAgain": false,
        "deletedMany": 2,
        "left": ["c/1", "c/2", "d"],
        "bothStarts": {"name": "TypeError", "message": "list() cannot be called with both start and startAfter values."},
        "zeroLimit": {"name": "TypeError", "message": "List limit must be positive."},
        "tooMany": {"name": "RangeError", "message": "Maximum number of key value pairs is 128. 129 pairs were provided."},
        "bigKey": {"name": "RangeError", "message": "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."},
        "sync": [null, {"n": 1}, true, null],
    });
    assert_eq!(json(&kv), expected);

    let (status, values) = get(&server, "/values/values");
    assert_eq!(status, 200, "{values}");
    let values = json(&values);
    for field in ["nothing", "negativeZero", "nan", "cycle"] {
        assert_eq!(values[field], true, "{field}: {values}");
    }
    assert_eq!(values["map"], 2);
    assert_eq!(values["set"], serde_json::json!(["a", "b"]));
    assert_eq!(values["date"], 1_700_000_000_000_i64);
    assert_eq!(values["bytes"], serde_json::json!([1, 2, 255]));
    assert_eq!(values["big"], "12345678901234567890");
    assert_eq!(values["rpcMap"], "rpc");
    assert_eq!(
        values["functionRefused"]["name"], "DataCloneError",
        "{values}"
    );

    let (status, sql) = get(&server, "/sql/sql");
    assert_eq!(status, 200, "{sql}");
    let sql = json(&sql);
    assert_eq!(sql["columns"], serde_json::json!(["id", "name", "data"]));
    assert_eq!(
        sql["rows"],
        serde_json::json!([[1, "one", [7]], [2, "two", null]])
    );
    assert_eq!(sql["raw"], serde_json::json!([["one"], ["two"]]));
    assert_eq!(sql["one"], serde_json::json!({"n": 2}));
    assert_eq!(sql["iterated"], serde_json::json!(["two"]));
    assert_eq!(sql["written"], 2);
    assert_eq!(sql["size"], true);
    assert_eq!(
        sql["noneForOne"]["message"],
        "Expected exactly one result from SQL query, but got no results."
    );
    assert!(
        sql["begin"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("To execute a transaction, please use the state.storage.transaction()"),
        "{sql}"
    );
    assert!(sql["hidden"]["message"].is_string(), "{sql}");
    assert_eq!(
        sql["wrongBindings"]["message"],
        "Wrong number of parameter bindings for SQL query."
    );

    let (status, transactions) = get(&server, "/tx/transactions");
    assert_eq!(status, 200, "{transactions}");
    assert_eq!(
        json(&transactions),
        serde_json::json!({
            "thrown": {"name": "Error", "message": "undo"},
            "afterThrow": 0,
            "afterRollback": 0,
            "committed": 30,
            "final": 3,
            "sync": {"name": "TypeError", "message": "sync undo"},
            "rows": 0,
        })
    );

    // An alarm runs the handler (getAlarm() is null while it runs); a failing run is retried
    // with isRetry and a retry count.
    assert_eq!(
        get(&server, "/alarm/armAlarm/true"),
        (200, "true".to_owned())
    );
    let state_after = wait_until(&server, "/alarm/alarmState", |value| {
        value["runs"].as_array().is_some_and(|runs| runs.len() == 2)
    });
    assert_eq!(
        state_after["runs"],
        serde_json::json!([
            {"retryCount": 0, "isRetry": false, "during": null},
            {"retryCount": 1, "isRetry": true, "during": null},
        ])
    );
    let settled = wait_until(&server, "/alarm/alarmState", |value| {
        value["alarm"].is_null()
    });
    assert_eq!(settled["runs"].as_array().map(Vec::len), Some(2));

    assert_eq!(
        json(&get(&server, "/wipe/wipe").1),
        serde_json::json!({"keys": 0, "alarm": null})
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A ledger object: every acknowledged `record(n)` is a SQL row and a KV entry.
const LEDGER: &str = r#"
import { DurableObject } from "cloudflare:workers";

export class Ledger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS entries (n INTEGER PRIMARY KEY)");
  }
  async record(n) {
    this.ctx.storage.sql.exec("INSERT INTO entries VALUES (?)", n);
    await this.ctx.storage.put(`n:${String(n).padStart(8, "0")}`, n);
    return n;
  }
  async entries() {
    const sql = this.ctx.storage.sql.exec("SELECT n FROM entries ORDER BY n").toArray().map((row) => row.n);
    const kv = [];
    let after;
    for (;;) {
      const page = await this.ctx.storage.list({ prefix: "n:", startAfter: after, limit: 128 });
      if (page.size === 0) break;
      for (const [key, value] of page) {
        kv.push(value);
        after = key;
      }
    }
    return { sql, kv };
  }
}

export default {
  async fetch(request, env) {
    const [, action, name, n] = new URL(request.url).pathname.split("/");
    const stub = env.LEDGER.getByName(name);
    if (action === "record") return new Response(String(await stub.record(Number(n))));
    return Response.json(await stub.entries());
  },
};
"#;

/// One request on a fresh connection; `None` if the server went away before answering.
fn try_post(address: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    Some((status, body(&response).to_owned()))
}

fn serve(config: &Path, state: &Path) -> Server {
    start(&mut command(&[
        "serve",
        "-c",
        text(config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state),
    ]))
}

/// `kill -9` of `burrow serve` while JavaScript objects take writes: after the restart, every
/// write a client saw acknowledged is there, in SQL and in KV.
#[test]
fn every_acknowledged_javascript_write_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let config = support::write(
        root,
        "wrangler.toml",
        "name = \"ledger\"\nmain = \"index.js\"\n[[durable_objects.bindings]]\nname = \"LEDGER\"\nclass_name = \"Ledger\"\n[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Ledger\"]\n",
    );
    support::write(root, "index.js", LEDGER);
    let state = tempfile::tempdir().expect("tempdir");
    let server = serve(&config, state.path());
    let address = server.ingress;
    const CLIENTS: usize = 4;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let stop = stop.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut confirmed = Vec::new();
                let mut n = 1u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match try_post(address, &format!("/record/ledger-{client}/{n}")) {
                        Some((200, answer)) => {
                            assert_eq!(answer, n.to_string());
                            confirmed.push(n);
                            acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Some((status, answer)) => panic!("record {n}: {status} {answer}"),
                        // The server is gone: what was not answered may or may not be there.
                        None => break,
                    }
                    n += 1;
                }
                confirmed
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(std::sync::atomic::Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "the writes did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Dropping the server kills it with SIGKILL, in the middle of the clients' writes.
    drop(server);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let confirmed: Vec<Vec<u64>> = clients
        .into_iter()
        .map(|client| client.join().expect("client"))
        .collect();

    let server = serve(&config, state.path());
    for (client, confirmed) in confirmed.iter().enumerate() {
        let (status, entries) = get(&server, &format!("/entries/ledger-{client}"));
        assert_eq!(status, 200, "{entries}");
        let entries = json(&entries);
        for store in ["sql", "kv"] {
            let present: std::collections::BTreeSet<u64> = entries[store]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            let lost: Vec<u64> = confirmed
                .iter()
                .copied()
                .filter(|n| !present.contains(n))
                .collect();
            assert!(
                lost.is_empty(),
                "client {client}: acknowledged writes missing from {store} after kill -9: {lost:?}"
            );
            // Each object's writes are applied in order: nothing beyond a gap.
            let expected: Vec<u64> = (1..=present.len() as u64).collect();
            assert_eq!(
                present.iter().copied().collect::<Vec<_>>(),
                expected,
                "client {client}: {store} holds a gap"
            );
        }
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
