// Durable Object storage, the same under Burrow and workerd: each path runs one scenario in a
// fresh object and answers what it saw as JSON (crates/burrow/tests/js_objects_differential.rs).
//
// Left out, because workerd run locally does not do what Cloudflare documents (Burrow follows
// the documentation; crates/burrow/tests/js_objects.rs checks it): the 128-key and 2048-byte key
// limits (workerd accepts both), and deleteAll() deleting the alarm (workerd keeps it at this
// compatibility date).
import { DurableObject } from "cloudflare:workers";

async function caught(f) {
  try {
    return { ok: await f() };
  } catch (e) {
    return { name: e.name, message: e.message };
  }
}
const keys = (map) => [...map.keys()];

export class Lab extends DurableObject {
  async kv() {
    const s = this.ctx.storage;
    await s.put("b", 2);
    await s.put({ a: 1, c: 3, "c/1": "x", "c/2": "y", d: 4, "\u00e9": 5, "\u{1F600}": 6, Z: 7 });
    return {
      one: await s.get("a"),
      missing: (await s.get("zz")) === undefined,
      many: [...(await s.get(["d", "zz", "a", "\u00e9"]))],
      all: keys(await s.list()),
      range: keys(await s.list({ start: "b", end: "d" })),
      after: keys(await s.list({ startAfter: "b", limit: 2 })),
      prefix: keys(await s.list({ prefix: "c/" })),
      reverse: keys(await s.list({ reverse: true, limit: 3 })),
      reverseRange: keys(await s.list({ reverse: true, start: "b", end: "c/2" })),
      deleted: await s.delete("a"),
      deletedAgain: await s.delete("a"),
      deletedMany: await s.delete(["b", "c", "nope"]),
      left: keys(await s.list()),
      bothStarts: await caught(() => s.list({ start: "a", startAfter: "b" })),
      sync: [s.kv.put("s", { n: 1 }) ?? null, s.kv.get("s"), s.kv.delete("s"), s.kv.get("s") ?? null],
      syncList: [...s.kv.list({ prefix: "c/" })],
    };
  }

  async values() {
    const s = this.ctx.storage;
    const shared = { x: 1 };
    const cyclic = { name: "loop", shared, again: shared };
    cyclic.self = cyclic;
    await s.put("v", {
      map: new Map([["k", [1, 2]]]),
      set: new Set(["a", "b"]),
      date: new Date(1700000000000),
      bytes: new Uint8Array([1, 2, 255]),
      big: 12345678901234567890n,
      nothing: undefined,
      negativeZero: -0,
      nan: NaN,
      cyclic,
    });
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
    };
  }

  async sql() {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)");
    sql.exec("INSERT INTO items (name, score, data) VALUES (?, ?, ?), (?, ?, ?)", "one", 1.5, new Uint8Array([7]).buffer, "two", 2, null);
    const rows = sql.exec("SELECT id, name, score, data, typeof(score) AS t FROM items ORDER BY id").toArray();
    return {
      columns: sql.exec("SELECT id, name AS label FROM items").columnNames,
      rows: rows.map((r) => [r.id, r.name, r.score, r.data instanceof ArrayBuffer ? [...new Uint8Array(r.data)] : r.data, r.t]),
      raw: [...sql.exec("SELECT name, id FROM items ORDER BY id").raw()],
      one: sql.exec("SELECT count(*) AS n, sum(score) AS total FROM items").one(),
      bound: sql.exec("SELECT ? AS a, ? AS b, ? AS c", 1, "x", null).one(),
      noneForOne: await caught(() => sql.exec("SELECT 1 WHERE 0").one()),
      manyForOne: await caught(() => sql.exec("SELECT id FROM items").one()),
      begin: await caught(() => sql.exec("BEGIN TRANSACTION")),
      wrongBindings: await caught(() => sql.exec("SELECT ?", 1, 2)),
      multi: sql.exec("INSERT INTO items (name) VALUES ('three'); SELECT count(*) AS n FROM items").one(),
      syntax: await caught(() => sql.exec("SELEC 1")),
    };
  }

  async transactions() {
    const s = this.ctx.storage;
    await s.put("t", 0);
    const thrown = await caught(() =>
      s.transaction(async (txn) => {
        await txn.put("t", 1);
        throw new Error("undo");
      }),
    );
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
    this.ctx.storage.sql.exec("CREATE TABLE tx (v)");
    const sync = await caught(() =>
      s.transactionSync(() => {
        this.ctx.storage.sql.exec("INSERT INTO tx VALUES (1)");
        throw new TypeError("sync undo");
      }),
    );
    const kept = s.transactionSync(() => {
      this.ctx.storage.sql.exec("INSERT INTO tx VALUES (2)");
      return "kept";
    });
    const rows = this.ctx.storage.sql.exec("SELECT v FROM tx").toArray();
    return { thrown, afterThrow, afterRollback, committed, final: await s.get("t"), sync, kept, rows };
  }

  async armAlarm() {
    await this.ctx.storage.setAlarm(Date.now() + 100);
    return { set: (await this.ctx.storage.getAlarm()) !== null };
  }

  async alarmState() {
    return { runs: (await this.ctx.storage.get("runs")) ?? [], alarm: await this.ctx.storage.getAlarm() };
  }

  async alarm(info) {
    const runs = (await this.ctx.storage.get("runs")) ?? [];
    runs.push({ retryCount: info.retryCount, isRetry: info.isRetry, during: await this.ctx.storage.getAlarm() });
    await this.ctx.storage.put("runs", runs);
  }

  async wipe() {
    await this.ctx.storage.put("x", 1);
    this.ctx.storage.sql.exec("CREATE TABLE gone (v)");
    await this.ctx.storage.setAlarm(Date.now() + 3600000);
    await this.ctx.storage.deleteAll();
    const tables = this.ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'").toArray();
    return { keys: (await this.ctx.storage.list()).size, tables };
  }

  async thrower() {
    throw new RangeError("from the object");
  }
}

export default {
  async fetch(request, env) {
    const [, scenario, object] = new URL(request.url).pathname.split("/");
    const stub = env.LAB.get(env.LAB.idFromName(object || scenario));
    if (scenario === "ids") {
      const a = env.LAB.idFromName("same");
      const b = env.LAB.idFromName("same");
      const parsed = env.LAB.idFromString(a.toString());
      return Response.json({
        equal: a.equals(b),
        parsedEqual: parsed.equals(a),
        length: a.toString().length,
        name: a.name,
        uniqueDiffers: !env.LAB.newUniqueId().equals(env.LAB.newUniqueId()),
        bad: (() => {
          try {
            env.LAB.idFromString("xyz");
            return "accepted";
          } catch (e) {
            return e.name;
          }
        })(),
      });
    }
    if (scenario === "thrower") {
      try {
        await stub.thrower();
        return Response.json({ thrown: false });
      } catch (e) {
        return Response.json({ name: e.name, message: e.message, remote: e.remote === true });
      }
    }
    return Response.json(await stub[scenario]());
  },
};
