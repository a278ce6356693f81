// `burrow-bench js-objects`: one Worker, run unchanged by Burrow (wrangler.toml) and by workerd
// (config.capnp): a SQLite-backed Durable Object counter reached over RPC. `/counter/<name>`
// increments the counter of that name and answers its new value; `/hello` answers "ok".
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER)");
  }

  increment() {
    return this.sql
      .exec("INSERT INTO counter(id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n")
      .one().n;
  }
}

export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/hello") {
      return new Response("ok");
    }
    if (path.startsWith("/counter/")) {
      const name = path.slice("/counter/".length);
      const n = await env.COUNTER.getByName(name).increment();
      return new Response(String(n));
    }
    return new Response("not found", { status: 404 });
  },
};
