// The Worker of crates/burrow/tests/js_services_differential.rs: a queue with a dead-letter
// queue (every delivery recorded in KV) and a Workflow with a cached step, a retried step, a
// sleep, an event wait and a NonRetryableError. The same file runs under Burrow and Miniflare.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

export class Flow extends WorkflowEntrypoint {
  async run(event, step) {
    const doubled = await step.do("double", async () => ({ n: event.payload.n * 2 }));
    const attempts = await step.do(
      "flaky",
      { retries: { limit: 2, delay: 50, backoff: "constant" } },
      async (ctx) => {
        const key = `flaky:${event.instanceId}`;
        const tries = Number((await this.env.KV.get(key)) ?? 0) + 1;
        await this.env.KV.put(key, String(tries));
        if (tries < 3) throw new Error(`try ${tries}`);
        return tries;
      },
    );
    await step.sleep("nap", 100);
    const approval = await step.waitForEvent("approval", { type: "approve", timeout: "1 minute" });
    if (event.payload.fail) {
      await step.do("refuse", async () => {
        throw new NonRetryableError("refused for good");
      });
    }
    return { doubled, attempts, approval: approval.payload };
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const id = url.searchParams.get("id");
    switch (url.pathname) {
      case "/send":
        await env.Q.sendBatch([{ body: { i: 1 } }, { body: { i: 2, fail: true } }, { body: { i: 3 } }]);
        return Response.json({ sent: 3 });
      case "/deliveries": {
        const out = [];
        for (const key of (await env.KV.list({ prefix: "delivery:" })).keys) {
          out.push({ key: key.name.slice(9), ...(await env.KV.get(key.name, "json")) });
        }
        return Response.json(out);
      }
      case "/create": {
        const instance = await env.FLOW.create({ id, params: { n: 21, fail: url.searchParams.has("fail") } });
        return Response.json({ id: instance.id });
      }
      case "/status": {
        const { status, output, error } = await (await env.FLOW.get(id)).status();
        return Response.json({ status, output: output ?? null, error: error ?? null });
      }
      case "/event":
        await (await env.FLOW.get(id)).sendEvent({ type: "approve", payload: { by: "ada" } });
        return Response.json({ sent: true });
      case "/terminate":
        await (await env.FLOW.get(id)).terminate();
        return Response.json({ terminated: true });
    }
    return new Response("not found", { status: 404 });
  },

  async queue(batch, env) {
    for (const message of batch.messages) {
      await env.KV.put(
        `delivery:${batch.queue}:${message.body.i}:${message.attempts}`,
        JSON.stringify({ batchSize: batch.messages.length }),
      );
      if (batch.queue === "jobs" && message.body.fail) message.retry();
      else message.ack();
    }
  },
};
