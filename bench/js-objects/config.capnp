# workerd configuration for `burrow-bench js-objects`: worker.js, the file Burrow runs from
# wrangler.toml, with its SQLite-backed Durable Object class stored on local disk. The benchmark
# overrides the listener with `--socket-addr http=127.0.0.1:PORT` and the storage folder with
# `--directory-path storage=DIR`.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "bench", worker = .benchWorker),
    (name = "storage", disk = (path = "/nonexistent-set-by-directory-path", writable = true)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8080", http = (), service = "bench")],
);

const benchWorker :Workerd.Worker = (
  compatibilityDate = "2025-04-01",
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  durableObjectNamespaces = [
    (className = "Counter", uniqueKey = "burrow-bench-js-objects", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "storage"),
  bindings = [(name = "COUNTER", durableObjectNamespace = "Counter")],
);
