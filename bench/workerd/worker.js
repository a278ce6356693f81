// The workerd side of `burrow-bench objects --vs-workerd`: the same routes as examples/bench_app,
// with a SQLite-backed Durable Object class running the same counter SQL.
import { DurableObject } from "cloudflare:workers";

const VALUE = "v".repeat(100);

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER)");
    this.puts = 0;
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/do/counter") {
      const row = this.sql
        .exec(
          "INSERT INTO counter(id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n",
        )
        .one();
      return new Response(String(row.n));
    }
    if (path === "/do/kvput") {
      // A new key per put, as bench_app does; "last" is the one /do/get reads.
      this.puts += 1;
      const key = `key-${Date.now()}-${this.puts}`;
      await this.ctx.storage.put({ [key]: VALUE, last: key });
      return new Response(key);
    }
    if (path === "/do/get") {
      const last = await this.ctx.storage.get("last");
      return new Response(last === undefined ? "" : String(last));
    }
    return new Response("not found", { status: 404 });
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/hello") {
      return new Response("ok");
    }
    if (url.pathname.startsWith("/do/")) {
      const name = url.searchParams.get("name");
      if (!name) {
        return new Response("missing ?name=", { status: 400 });
      }
      return env.COUNTER.get(env.COUNTER.idFromName(name)).fetch(request);
    }
    return new Response("not found", { status: 404 });
  },
};
