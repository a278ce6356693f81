// Service bindings: `env.SERVICE.fetch(request)` and RPC to the target Worker's default export or
// a named `WorkerEntrypoint` (`entrypoint` in the binding), through the natives of services.rs,
// and the dispatch function the target's isolate runs for an RPC call. Evaluated after
// durable_object.js, whose structured-clone encoding (internals.serialize) it reuses.
(function (native, internals) {
  "use strict";
  const NULL_BODY = new Set([101, 204, 205, 304]);
  function platformError([message, remote, retryable, overloaded]) {
    const error = new Error(message);
    if (remote) error.remote = true;
    if (retryable) error.retryable = true;
    if (overloaded) error.overloaded = true;
    return error;
  }

  class Fetcher {
    #binding;
    constructor(binding) {
      this.#binding = binding;
    }
    async fetch(input, init) {
      const request = input instanceof Request && init === undefined ? input : new Request(input, init);
      const method = request.method;
      const body = method === "GET" || method === "HEAD" ? undefined : await request.arrayBuffer();
      const headers = [];
      for (const [name, value] of request.headers) headers.push(name, value);
      const [failed, status, responseHeaders, payload] = await native.svcFetch(this.#binding, request.url, method, headers, body);
      if (failed) throw platformError(status);
      const pairs = [];
      for (let i = 0; i + 1 < responseHeaders.length; i += 2) pairs.push([responseHeaders[i], responseHeaders[i + 1]]);
      return new Response(NULL_BODY.has(status) || method === "HEAD" ? null : payload, { status, headers: pairs });
    }
    async call(method, args) {
      const [failed, result] = await native.svcCall(this.#binding, method, internals.serialize(args));
      if (failed) throw platformError(result);
      const value = internals.deserialize(result.slice(1));
      if (result[0] === "e") {
        const error = value instanceof Error ? value : new Error(String(value));
        error.remote = true;
        throw error;
      }
      return value;
    }
  }
  const OWN = new Set(["fetch", "call", "constructor"]);
  internals.serviceBinding = (binding) => {
    const fetcher = new Fetcher(binding);
    return new Proxy(fetcher, {
      get(target, property) {
        if (typeof property !== "string" || OWN.has(property)) {
          const value = Reflect.get(target, property, target);
          return typeof value === "function" ? value.bind(target) : value;
        }
        if (property === "then") return undefined;
        return (...args) => target.call(property, args);
      },
    });
  };

  const RESERVED = new Set(["constructor", "fetch", "scheduled", "queue", "tail", "trace", "email"]);
  // Runs an RPC call on the default export or a named WorkerEntrypoint of this Worker.
  internals.entrypointCall = (id, entrypoint, method, payload, env) => {
    const answer = (tag, value) => native.done(id, 0, [], native.utf8Encode(tag + internals.serialize(value)));
    const thrown = (error) => {
      try {
        answer("e", error instanceof Error ? error : new Error(String(error)));
      } catch (cloneFailure) {
        native.fail(id, 0, String(cloneFailure));
      }
    };
    try {
      const exports = internals.exports || {};
      const name = entrypoint === null || entrypoint === undefined ? "default" : entrypoint;
      const exported = exports[name];
      if (exported === undefined) throw new TypeError(`The Worker has no export named "${name}".`);
      const ctx = {
        waitUntil(promise) {
          Promise.resolve(promise).catch((error) => console.error("waitUntil:", error));
        },
        passThroughOnException() {},
        props: {},
      };
      if (typeof exported !== "function") {
        throw new TypeError(`The receiving Worker does not allow RPC: its "${name}" export is not a WorkerEntrypoint class.`);
      }
      const target = new exported(ctx, env);
      const handler = target[method];
      if (typeof handler !== "function" || RESERVED.has(method)) {
        throw new TypeError(`The RPC receiver does not implement the method "${method}".`);
      }
      const args = internals.deserialize(payload);
      Promise.resolve(handler.apply(target, args)).then((value) => {
        try {
          answer("v", value);
        } catch (error) {
          thrown(error);
        }
      }, thrown);
    } catch (error) {
      thrown(error);
    }
  };
});
