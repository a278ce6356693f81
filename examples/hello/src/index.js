// A module Worker: "/" answers with a greeting, "/count" increments a Durable Object counter.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
    );
  }

  // Called over RPC: env.COUNTER.getByName(name).increment().
  increment(by = 1) {
    return this.ctx.storage.sql
      .exec(
        "INSERT INTO counter (id, value) VALUES (1, ?1) " +
          "ON CONFLICT (id) DO UPDATE SET value = value + ?1 RETURNING value",
        by,
      )
      .one().value;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/count") {
      const value = await env.COUNTER.getByName("global").increment();
      return new Response(`count: ${value}\n`);
    }
    return new Response("Hello from Burrow");
  },
};
