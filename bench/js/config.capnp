# workerd configuration for `burrow-bench js`: worker.js, the file Burrow runs from wrangler.toml.
# The benchmark overrides the listener with `--socket-addr http=127.0.0.1:PORT`.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "bench", worker = .benchWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8080", http = (), service = "bench")],
);

const benchWorker :Workerd.Worker = (
  compatibilityDate = "2025-04-01",
  modules = [(name = "worker.js", esModule = embed "worker.js")],
);
