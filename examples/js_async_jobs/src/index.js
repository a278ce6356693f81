// The entry Worker and the AgentJob Durable Object: one object per async job, which receives the
// JobRecord, schedules an alarm for "now" and returns 202; the alarm runs the turn and persists
// the final record.
import { DurableObject } from "cloudflare:workers";
import { executeJob } from "./agent.js";
import { handleRun, handleStatus, handleSubmit } from "./handlers.js";

export class AgentJob extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/submit") {
      const existing = await this.ctx.storage.get("record");
      if (existing) return Response.json(existing, { status: 202 });
      const record = await request.json();
      await this.ctx.storage.put("record", record);
      await this.ctx.storage.setAlarm(Date.now());
      return Response.json(record, { status: 202 });
    }
    if (url.pathname === "/status") {
      const record = await this.ctx.storage.get("record");
      return record ? Response.json(record) : Response.json({ error: "no such job" }, { status: 404 });
    }
    return new Response("not found", { status: 404 });
  }

  async alarm() {
    const record = await this.ctx.storage.get("record");
    if (!record || (record.status !== "queued" && record.status !== "running")) return;
    record.status = "running";
    record.attempts += 1;
    await this.ctx.storage.put("record", record);
    try {
      record.report = await executeJob(record, this.env);
      record.status = "done";
    } catch (error) {
      record.status = "failed";
      record.error = String(error.message);
    }
    record.finished_at = new Date().toISOString();
    await this.ctx.storage.put("record", record);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/run") return handleRun(request, env);
    if (request.method === "POST" && url.pathname === "/jobs") return handleSubmit(request, env);
    const job = url.pathname.match(/^\/jobs\/([0-9a-f-]{36})$/);
    if (request.method === "GET" && job) return handleStatus(env, job[1]);
    return Response.json({ error: "POST /run, POST /jobs, GET /jobs/:id" }, { status: 404 });
  },
};
