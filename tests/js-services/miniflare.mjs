// Starts Miniflare (from .cache/npm, installed by scripts/install-clients) with the settings of
// wrangler.toml beside it, prints "READY <url>", and disposes of it on SIGTERM.
// Usage: node miniflare.mjs <path of miniflare's index.js> <worker.js>
const [miniflarePath, script] = process.argv.slice(2);
const { Miniflare } = await import(miniflarePath);
const mf = new Miniflare({
  modules: true,
  scriptPath: script,
  compatibilityDate: "2025-04-01",
  kvNamespaces: ["KV"],
  queueProducers: { Q: { queueName: "jobs" } },
  queueConsumers: {
    jobs: { maxBatchSize: 3, maxBatchTimeout: 1, maxRetries: 2, retryDelay: 0, deadLetterQueue: "jobs-dlq" },
    "jobs-dlq": { maxBatchSize: 3, maxBatchTimeout: 1 },
  },
  workflows: { FLOW: { name: "flow", className: "Flow" } },
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
console.log(`READY ${url}`);
process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
