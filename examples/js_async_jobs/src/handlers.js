// The request handlers as pure functions of (request, env): parsing, the sync run, and job
// submission and polling through one AgentJob object per job.
import { executeJob } from "./agent.js";

const json = (body, status = 200) => Response.json(body, { status });

async function parseRun(request) {
  let body;
  try {
    body = await request.json();
  } catch {
    return { error: "the body must be JSON: {\"prompt\": \"...\"}" };
  }
  if (typeof body?.prompt !== "string" || body.prompt.length === 0) {
    return { error: "prompt must be a non-empty string" };
  }
  return { input: { prompt: body.prompt } };
}

function jobStub(env, jobId) {
  return env.AGENT_JOB.get(env.AGENT_JOB.idFromName(jobId));
}

// Sync mode: the request waits for the turn.
export async function handleRun(request, env) {
  const { input, error } = await parseRun(request);
  if (error) return json({ error }, 400);
  const record = { job_id: "sync", input };
  try {
    return json({ status: "done", report: await executeJob(record, env) });
  } catch (e) {
    return json({ status: "failed", error: String(e.message) }, 502);
  }
}

// Async mode: submission returns at once with a job_id.
export async function handleSubmit(request, env) {
  const { input, error } = await parseRun(request);
  if (error) return json({ error }, 400);
  const jobId = crypto.randomUUID();
  const record = { job_id: jobId, status: "queued", input, created_at: new Date().toISOString(), attempts: 0 };
  const response = await jobStub(env, jobId).fetch("https://job/submit", {
    method: "POST",
    body: JSON.stringify(record),
  });
  return json({ job_id: jobId, status: (await response.json()).status }, response.status);
}

export async function handleStatus(env, jobId) {
  return jobStub(env, jobId).fetch("https://job/status");
}
