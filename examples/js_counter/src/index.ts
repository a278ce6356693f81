// The Counter of the seeds (004): the count lives in memory, loaded once per activation inside
// blockConcurrencyWhile, and is persisted on every increment. The Worker routes
// `/counter/<name>[/increment|/reset|/fail]` to the object of that name, over RPC and fetch.
import { DurableObject } from "cloudflare:workers";

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
}

export class Counter extends DurableObject {
  private count: number = 0; // In-memory, lost on eviction
  private loads: number = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    // Load from storage once during initialization
    ctx.blockConcurrencyWhile(async () => {
      const stored = await this.ctx.storage.get<number>("count");
      this.count = stored || 0;
      this.loads++;
    });
  }

  async increment(by: number = 1): Promise<number> {
    this.count += by;
    // Persist to storage
    await this.ctx.storage.put("count", this.count);
    return this.count;
  }

  async get(): Promise<{ count: number; loads: number; id: string }> {
    return { count: this.count, loads: this.loads, id: this.ctx.id.toString() };
  }

  async fail(message: string): Promise<never> {
    throw new RangeError(message);
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "DELETE") {
      await this.ctx.storage.deleteAll();
      this.count = 0;
      return new Response(null, { status: 204 });
    }
    return Response.json({ path: url.pathname, count: this.count });
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const [, kind, name, action] = url.pathname.split("/");
    if (kind !== "counter" || !name) {
      return new Response("Not Found", { status: 404 });
    }
    const id = env.COUNTER.idFromName(name);
    const stub = env.COUNTER.get(id);
    if (request.method === "POST" && action === "increment") {
      const by = Number(url.searchParams.get("by") ?? "1");
      return Response.json({ name, count: await stub.increment(by) });
    }
    if (action === "fail") {
      try {
        await stub.fail("counter says no");
        return new Response("no error", { status: 500 });
      } catch (error: any) {
        return Response.json({ name: error.name, message: error.message, remote: error.remote === true });
      }
    }
    if (action === "raw") {
      return stub.fetch(request);
    }
    if (request.method === "DELETE") {
      return stub.fetch(request);
    }
    const state = await stub.get();
    return Response.json({ name, count: state.count, loads: state.loads, idMatches: state.id === id.toString() });
  },
};
