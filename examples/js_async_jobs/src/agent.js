// A stand-in for the platform's agent runtime (createAgentRuntime with a MockAdapter): one turn
// "thinks" for AGENT_DELAY_MS and returns an AgentReport; a prompt containing "fail" throws, as
// a provider error would.
export async function executeJob(record, env) {
  const delay = Number(env.AGENT_DELAY_MS ?? 0);
  await new Promise((resolve) => setTimeout(resolve, delay));
  if (/fail/i.test(record.input.prompt)) {
    throw new Error(`provider error while running job ${record.job_id}`);
  }
  return {
    output: `done: ${record.input.prompt}`,
    iterations: 1,
    tool_calls: [],
  };
}
