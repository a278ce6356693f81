// The TaskQueue of the seeds (004): tasks are kept in storage, and the object's alarm processes
// them one at a time, setting the next alarm while tasks remain. `processTask` (left to the
// reader in the seed) records each task as done, with the alarm's retry information.
import { DurableObject } from "cloudflare:workers";

interface Env {
  TASK_QUEUE: DurableObjectNamespace<TaskQueue>;
  TASK_INTERVAL_MS: string;
}

interface Task {
  id: string;
  name: string;
}

export class TaskQueue extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
  }

  async fetch(request: Request): Promise<Response> {
    // Handle incoming requests
    const url = new URL(request.url);

    if (url.pathname === "/enqueue") {
      return await this.enqueueTask(request);
    }
    if (url.pathname === "/status") {
      return Response.json({
        queued: (await this.ctx.storage.get<Task[]>("queue")) || [],
        done: (await this.ctx.storage.get<string[]>("done")) || [],
        alarm: await this.ctx.storage.getAlarm(),
      });
    }

    return new Response("Not Found", { status: 404 });
  }

  async enqueueTask(request: Request): Promise<Response> {
    const task = await request.json<{ name: string }>();

    // Store in persistent storage
    const queue = (await this.ctx.storage.get<Task[]>("queue")) || [];
    queue.push({ ...task, id: crypto.randomUUID() });
    await this.ctx.storage.put("queue", queue);

    // Set alarm to process queue
    const alarmTime = Date.now() + this.interval();
    await this.ctx.storage.setAlarm(alarmTime);

    return Response.json({ success: true });
  }

  async alarm() {
    // Process queued tasks
    const queue = (await this.ctx.storage.get<Task[]>("queue")) || [];

    if (queue.length > 0) {
      const task = queue.shift()!;
      await this.processTask(task);
      await this.ctx.storage.put("queue", queue);

      // Schedule next alarm if more tasks
      if (queue.length > 0) {
        await this.ctx.storage.setAlarm(Date.now() + this.interval());
      }
    }
  }

  async processTask(task: Task): Promise<void> {
    const done = (await this.ctx.storage.get<string[]>("done")) || [];
    done.push(task.name);
    await this.ctx.storage.put("done", done);
  }

  private interval(): number {
    return Number(this.env.TASK_INTERVAL_MS) || 1000;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    // Get Durable Object by name (deterministic ID)
    const id = env.TASK_QUEUE.idFromName("main-queue");
    // Get stub (reference to Durable Object)
    const stub = env.TASK_QUEUE.get(id);
    // Forward the entire request
    return await stub.fetch(request);
  },
};
