// The task queue of the Cloudflare Queues guides: a producer that sends tasks in a batch, a
// consumer that retries failed tasks with exponential backoff, and a dead-letter-queue consumer
// that stores what failed for manual review. `processTask` is the local stand-in for the real
// work: it fails a task's first `failTimes` attempts.

class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

async function processTask(env, task, attempt) {
  console.log("Processing:", task.id);
  await record(env, task.id, (state) => state.attempts.push({ attempt, at: Date.now() }));
  if (attempt <= (task.failTimes ?? 0)) {
    throw new NetworkError(`upstream unavailable for ${task.id}`);
  }
  await record(env, task.id, (state) => {
    state.done = true;
  });
}

async function record(env, id, change) {
  const state = (await env.TASKS_KV.get(`task:${id}`, "json")) ?? { attempts: [], done: false };
  change(state);
  await env.TASKS_KV.put(`task:${id}`, JSON.stringify(state));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/tasks") {
      const tasks = await request.json();
      // Send up to 100 messages, max 256 KB total
      await env.TASK_QUEUE.sendBatch(
        tasks.map((task) => ({
          body: task,
          contentType: "json",
          delaySeconds: 0,
        })),
      );
      return Response.json({ queued: tasks.length });
    }
    const match = url.pathname.match(/^\/tasks\/([^/]+)$/);
    if (request.method === "GET" && match) {
      const id = decodeURIComponent(match[1]);
      const state = (await env.TASKS_KV.get(`task:${id}`, "json")) ?? { attempts: [], done: false };
      const failed = await env.FAILED_TASKS_KV.get(`task:${id}`, "json");
      return Response.json({ id, ...state, failed });
    }
    return new Response("not found", { status: 404 });
  },

  async queue(batch, env, ctx) {
    if (batch.queue === "failed-tasks") {
      // DLQ consumer for manual intervention
      for (const message of batch.messages) {
        console.error("Task permanently failed", JSON.stringify(message.body));
        // Store for manual review
        await env.FAILED_TASKS_KV.put(
          `task:${message.body.id}`,
          JSON.stringify({
            task: message.body,
            attempts: message.attempts,
            timestamp: message.timestamp,
          }),
        );
        message.ack();
      }
      return;
    }

    console.log(`Processing batch of ${batch.messages.length} messages`);
    for (const message of batch.messages) {
      try {
        await processTask(env, message.body, message.attempts);
        message.ack();
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        // Exponential backoff: BASE, 2·BASE, 4·BASE, ... seconds
        const delaySeconds = Math.min(
          Number(env.BACKOFF_BASE_SECONDS) * Math.pow(2, message.attempts - 1),
          Number(env.MAX_BACKOFF_SECONDS),
        );
        console.log(`Retrying ${message.id} in ${delaySeconds}s (attempt ${message.attempts + 1})`);
        await record(env, message.body.id, (state) => {
          state.attempts[state.attempts.length - 1].retryDelaySeconds = delaySeconds;
        });
        message.retry({ delaySeconds });
      }
    }
  },
};
