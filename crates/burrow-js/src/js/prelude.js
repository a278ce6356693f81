// The Workers globals that Burrow itself provides on top of QuickJS and llrt's classes
// (console, timers, TextEncoder/TextDecoder, crypto, structuredClone, navigator, ...), and the
// internal dispatch functions the Rust side calls for each event. Evaluated once per isolate
// as a function of the native helpers; returns the internals (never reachable from user code).
(function (native) {
  "use strict";
  const g = globalThis;

  // Node-only globals that a Worker without nodejs_compat does not have.
  for (const name of ["Buffer", "process", "require", "global", "__filename", "__dirname"]) {
    delete g[name];
  }

  // --- console -----------------------------------------------------------------------------
  const seen = new WeakSet();
  function inspect(value, depth) {
    switch (typeof value) {
      case "string":
        return depth === 0 ? value : JSON.stringify(value);
      case "function":
        return `[Function: ${value.name || "(anonymous)"}]`;
      case "bigint":
        return `${value}n`;
      case "symbol":
      case "number":
      case "boolean":
      case "undefined":
        return String(value);
    }
    if (value === null) return "null";
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
    if (depth > 3) return "[Object]";
    if (seen.has(value)) return "[Circular]";
    seen.add(value);
    try {
      if (Array.isArray(value)) {
        return `[ ${value.map((v) => inspect(v, depth + 1)).join(", ")} ]`;
      }
      if (value instanceof Map) {
        return `Map(${value.size}) { ${[...value].map(([k, v]) => `${inspect(k, depth + 1)} => ${inspect(v, depth + 1)}`).join(", ")} }`;
      }
      if (value instanceof Set) {
        return `Set(${value.size}) { ${[...value].map((v) => inspect(v, depth + 1)).join(", ")} }`;
      }
      if (value instanceof Date) return value.toISOString();
      if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.length}) [ ${Array.prototype.slice.call(value, 0, 50).join(", ")} ]`;
      const keys = Object.keys(value);
      const name = value.constructor && value.constructor !== Object ? `${value.constructor.name} ` : "";
      if (keys.length === 0) return `${name}{}`;
      return `${name}{ ${keys.map((k) => `${k}: ${inspect(value[k], depth + 1)}`).join(", ")} }`;
    } finally {
      seen.delete(value);
    }
  }
  function format(args) {
    let out = "";
    for (let i = 0; i < args.length; i++) {
      if (i > 0) out += " ";
      out += inspect(args[i], 0);
    }
    return out;
  }
  const log = native.log;
  const counts = new Map();
  const timers = new Map();
  g.console = {
    log: (...args) => log(2, format(args)),
    info: (...args) => log(2, format(args)),
    debug: (...args) => log(1, format(args)),
    trace: (...args) => log(1, format(args) + "\n" + new Error().stack),
    warn: (...args) => log(3, format(args)),
    error: (...args) => log(4, format(args)),
    assert: (condition, ...args) => {
      if (!condition) log(4, "Assertion failed" + (args.length ? ": " + format(args) : ""));
    },
    count: (label = "default") => {
      const n = (counts.get(label) || 0) + 1;
      counts.set(label, n);
      log(2, `${label}: ${n}`);
    },
    time: (label = "default") => timers.set(label, Date.now()),
    timeEnd: (label = "default") => {
      const start = timers.get(label);
      timers.delete(label);
      if (start !== undefined) log(2, `${label}: ${Date.now() - start}ms`);
    },
    table: (data) => log(2, format([data])),
    dir: (value) => log(2, inspect(value, 1)),
  };

  // --- timers (Burrow's own: pending timers die with the isolate) ---------------------------
  const sleep = native.sleep;
  let nextTimer = 1;
  const active = new Set();
  const MAX_TIMERS = 10000;
  function schedule(callback, delay, args, repeat) {
    if (typeof callback !== "function") {
      throw new TypeError("The first argument to setTimeout/setInterval must be a function.");
    }
    if (active.size >= MAX_TIMERS) {
      throw new RangeError(`Too many pending timers (limit ${MAX_TIMERS}).`);
    }
    const id = nextTimer++;
    const ms = Math.max(0, Number(delay) || 0);
    active.add(id);
    const fire = () => {
      if (!active.has(id)) return;
      if (!repeat) active.delete(id);
      try {
        callback(...args);
      } finally {
        if (repeat && active.has(id)) sleep(ms).then(fire);
      }
    };
    sleep(ms).then(fire);
    return id;
  }
  g.setTimeout = (callback, delay, ...args) => schedule(callback, delay, args, false);
  g.setInterval = (callback, delay, ...args) => schedule(callback, delay, args, true);
  g.clearTimeout = (id) => void active.delete(id);
  g.clearInterval = g.clearTimeout;
  if (typeof g.queueMicrotask !== "function") {
    g.queueMicrotask = (callback) => {
      if (typeof callback !== "function") throw new TypeError("queueMicrotask requires a function");
      Promise.resolve().then(callback);
    };
  }

  // AbortSignal.timeout on Burrow's timers (llrt's own timer list must not outlive an isolate).
  if (typeof AbortController === "function") {
    Object.defineProperty(AbortSignal, "timeout", {
      value(ms) {
        const controller = new AbortController();
        g.setTimeout(() => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), ms);
        return controller.signal;
      },
      configurable: true,
      writable: true,
    });
  }


  // --- encoding -------------------------------------------------------------------------------
  function bytesOf(input) {
    if (input === undefined) return new Uint8Array(0);
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'.");
  }
  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return new Uint8Array(native.utf8Encode(String(input)));
    }
    encodeInto(source, destination) {
      const bytes = this.encode(source);
      const written = Math.min(bytes.length, destination.length);
      destination.set(bytes.subarray(0, written));
      return { read: source.length, written };
    }
  }
  class TextDecoder {
    #fatal;
    #ignoreBOM;
    #streaming; // the decoder that carries incomplete sequences while decode(…, { stream: true })
    constructor(label = "utf-8", options = {}) {
      const normalized = String(label).trim().toLowerCase();
      if (normalized !== "utf-8" && normalized !== "utf8" && normalized !== "unicode-1-1-utf-8") {
        throw new RangeError(`The "${label}" encoding is not supported.`);
      }
      this.#fatal = Boolean(options.fatal);
      this.#ignoreBOM = Boolean(options.ignoreBOM);
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input, options) {
      if ((options && options.stream) || this.#streaming) {
        this.#streaming ||= native.streamingDecoder("utf-8", { fatal: this.#fatal, ignoreBOM: this.#ignoreBOM });
        const stream = Boolean(options && options.stream);
        const text = this.#streaming.decode(input === undefined ? new Uint8Array(0) : input, stream);
        if (!stream) this.#streaming = undefined;
        return text;
      }
      let bytes = bytesOf(input);
      if (!this.#ignoreBOM && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
        bytes = bytes.subarray(3);
      }
      const text = native.utf8Decode(bytes, this.#fatal);
      if (text === null) throw new TypeError("The encoded data was not valid.");
      return text;
    }
  }
  g.TextEncoder = TextEncoder;
  g.TextDecoder = TextDecoder;

  // --- crypto (random parts; subtle comes later) ---------------------------------------------
  const cryptoObject = g.crypto || {};
  cryptoObject.getRandomValues = (array) => {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) {
      throw new TypeError("The data argument must be an integer-type TypedArray");
    }
    if (array.byteLength > 65536) {
      throw new DOMException(
        `The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (65536)`,
        "QuotaExceededError",
      );
    }
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(new Uint8Array(native.randomBytes(array.byteLength)));
    return array;
  };
  const hex = [];
  for (let i = 0; i < 256; i++) hex.push((i + 0x100).toString(16).slice(1));
  cryptoObject.randomUUID = () => {
    const b = new Uint8Array(native.randomBytes(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    return (
      hex[b[0]] + hex[b[1]] + hex[b[2]] + hex[b[3]] + "-" + hex[b[4]] + hex[b[5]] + "-" + hex[b[6]] + hex[b[7]] + "-" +
      hex[b[8]] + hex[b[9]] + "-" + hex[b[10]] + hex[b[11]] + hex[b[12]] + hex[b[13]] + hex[b[14]] + hex[b[15]]
    );
  };
  g.crypto = cryptoObject;

  // --- DOMException (if the engine lacks it) -------------------------------------------------
  if (typeof g.DOMException !== "function") {
    g.DOMException = class DOMException extends Error {
      constructor(message = "", name = "Error") {
        super(message);
        this.name = name;
      }
    };
  }

  // --- structuredClone ----------------------------------------------------------------------
  function clone(value, memory) {
    if (typeof value !== "object" || value === null) {
      if (typeof value === "function" || typeof value === "symbol") {
        throw new DOMException(`${String(value)} could not be cloned.`, "DataCloneError");
      }
      return value;
    }
    if (memory.has(value)) return memory.get(value);
    let out;
    if (value instanceof Date) out = new Date(value.getTime());
    else if (value instanceof RegExp) out = new RegExp(value.source, value.flags);
    else if (value instanceof ArrayBuffer) out = value.slice(0);
    else if (ArrayBuffer.isView(value)) {
      const buffer = clone(value.buffer, memory);
      out = value instanceof DataView
        ? new DataView(buffer, value.byteOffset, value.byteLength)
        : new value.constructor(buffer, value.byteOffset, value.length);
    } else if (value instanceof Map) {
      out = new Map();
      memory.set(value, out);
      for (const [k, v] of value) out.set(clone(k, memory), clone(v, memory));
      return out;
    } else if (value instanceof Set) {
      out = new Set();
      memory.set(value, out);
      for (const v of value) out.add(clone(v, memory));
      return out;
    } else if (value instanceof Error) {
      out = new Error(value.message);
      out.name = value.name;
      out.stack = value.stack;
    } else if (Array.isArray(value)) {
      out = new Array(value.length);
      memory.set(value, out);
      for (let i = 0; i < value.length; i++) out[i] = clone(value[i], memory);
      return out;
    } else if (typeof value.then === "function" || value instanceof WeakMap || value instanceof WeakSet) {
      throw new DOMException(`${Object.prototype.toString.call(value)} could not be cloned.`, "DataCloneError");
    } else {
      out = {};
      memory.set(value, out);
      for (const key of Object.keys(value)) out[key] = clone(value[key], memory);
      return out;
    }
    memory.set(value, out);
    return out;
  }
  g.structuredClone = (value) => clone(value, new Map());

  g.navigator = Object.freeze({ userAgent: "Cloudflare-Workers", hardwareConcurrency: 1, language: "en" });
  if (typeof g.performance !== "object") {
    const origin = Date.now();
    g.performance = { now: () => Date.now() - origin, timeOrigin: origin };
  }
  if (typeof g.self === "undefined") g.self = g;


  // --- KV namespaces --------------------------------------------------------------------------
  const KV_TYPES = ["text", "json", "arrayBuffer", "stream"];
  function kvType(options) {
    const type = typeof options === "string" ? options : (options && options.type) || "text";
    if (!KV_TYPES.includes(type)) {
      throw new TypeError('Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".');
    }
    return type;
  }
  function kvDecode(buffer, type) {
    if (type === "arrayBuffer") return buffer;
    const text = new TextDecoder().decode(buffer);
    if (type === "json") return JSON.parse(text);
    if (type === "stream") {
      if (typeof ReadableStream !== "function") throw new TypeError("KV get(..., \"stream\") is not supported by Burrow yet.");
      return new ReadableStream({ start(controller) { controller.enqueue(new Uint8Array(buffer)); controller.close(); } });
    }
    return text;
  }
  async function kvValue(value) {
    if (typeof value === "string") return native.utf8Encode(value);
    if (value instanceof ArrayBuffer) return value;
    if (ArrayBuffer.isView(value)) return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    if (typeof ReadableStream === "function" && value instanceof ReadableStream) {
      return await new Response(value).arrayBuffer();
    }
    throw new TypeError("KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.");
  }
  class KVNamespace {
    #binding;
    constructor(binding) {
      this.#binding = binding;
    }
    async get(key, options) {
      const type = kvType(options);
      if (Array.isArray(key)) {
        if (type === "arrayBuffer" || type === "stream") {
          throw new TypeError(`"${type}" is not a valid type. Use "json" or "text"`);
        }
        if (key.length > 100) throw new RangeError("You can request a maximum of 100 keys");
        const values = await Promise.all(key.map((k) => this.get(k, type)));
        return new Map(key.map((k, i) => [k, values[i]]));
      }
      const buffer = await native.kvGet(this.#binding, String(key));
      return buffer === null || buffer === undefined ? null : kvDecode(buffer, type);
    }
    async getWithMetadata(key, options) {
      const type = kvType(options);
      if (Array.isArray(key)) {
        if (key.length > 100) throw new RangeError("You can request a maximum of 100 keys");
        const values = await Promise.all(key.map((k) => this.getWithMetadata(k, type)));
        return new Map(key.map((k, i) => [k, values[i]]));
      }
      const found = await native.kvGetWithMetadata(this.#binding, String(key));
      if (found === null || found === undefined) return { value: null, metadata: null, cacheStatus: null };
      const [buffer, metadata] = found;
      return {
        value: kvDecode(buffer, type),
        metadata: metadata === null || metadata === undefined ? null : JSON.parse(metadata),
        cacheStatus: null,
      };
    }
    async put(key, value, options = {}) {
      const bytes = await kvValue(value);
      const metadata = options.metadata === undefined || options.metadata === null ? undefined : JSON.stringify(options.metadata);
      const expiration = options.expiration === undefined ? undefined : Number(options.expiration);
      const ttl = options.expirationTtl === undefined ? undefined : Number(options.expirationTtl);
      await native.kvPut(this.#binding, String(key), bytes, expiration, ttl, metadata);
    }
    async delete(key) {
      await native.kvDelete(this.#binding, String(key));
    }
    async list(options = {}) {
      const page = JSON.parse(
        await native.kvList(
          this.#binding,
          options.prefix === undefined ? null : String(options.prefix),
          options.limit === undefined ? null : Number(options.limit),
          options.cursor === undefined ? null : String(options.cursor),
        ),
      );
      page.cacheStatus = null;
      return page;
    }
  }

  // --- queue producers -----------------------------------------------------------------------
  // Burrow has no V8 serializer: "v8" bodies (the Workers default) are stored as JSON.
  function queueBody(body, contentType) {
    const type = contentType === undefined ? "json" : String(contentType).toLowerCase();
    switch (type) {
      case "json":
      case "v8":
        if (body === undefined) throw new TypeError("Queue message body must not be undefined.");
        return ["json", native.utf8Encode(JSON.stringify(body))];
      case "text":
        if (typeof body !== "string") throw new TypeError('Content type "text" requires a string body.');
        return ["text", native.utf8Encode(body)];
      case "bytes":
        if (!(body instanceof ArrayBuffer) && !ArrayBuffer.isView(body)) {
          throw new TypeError('Content type "bytes" requires an ArrayBuffer or ArrayBufferView body.');
        }
        return ["bytes", bytesOf(body).slice().buffer];
      default:
        throw new TypeError(`Unsupported queue message content type "${contentType}".`);
    }
  }
  class WorkerQueue {
    #binding;
    constructor(binding) {
      this.#binding = binding;
    }
    async send(body, options = {}) {
      const [type, bytes] = queueBody(body, options.contentType);
      await native.queueSend(this.#binding, type, bytes, options.delaySeconds === undefined ? null : Number(options.delaySeconds));
    }
    async sendBatch(messages, options = {}) {
      const list = [];
      for (const message of messages) {
        const [type, bytes] = queueBody(message.body, message.contentType);
        list.push([type, bytes, message.delaySeconds === undefined ? null : Number(message.delaySeconds)]);
      }
      await native.queueSendBatch(this.#binding, list, options.delaySeconds === undefined ? null : Number(options.delaySeconds));
    }
  }

  // --- events to Rust -------------------------------------------------------------------------
  function describe(error) {
    if (error instanceof Error) {
      const stack = typeof error.stack === "string" ? error.stack : "";
      return stack ? `${error.name}: ${error.message}\n${stack}` : `${error.name}: ${error.message}`;
    }
    try {
      return `Uncaught ${typeof error === "string" ? error : inspect(error, 0)}`;
    } catch {
      return "Uncaught exception";
    }
  }
  function isOutOfMemory(error) {
    return error instanceof InternalError && error.message === "out of memory";
  }
  const done = native.done;
  const fail = native.fail;
  function reject(id, error) {
    fail(id, isOutOfMemory(error) ? 1 : 0, describe(error));
  }
  function makeContext() {
    return {
      waitUntil(promise) {
        Promise.resolve(promise).catch((error) => log(4, `waitUntil: ${describe(error)}`));
      },
      passThroughOnException() {},
      props: {},
    };
  }
  function finish(id, response) {
    return native.web.send(id, response, describe);
  }

  const internals = {
    // For the event files evaluated after the prelude (queue.js, workflow.js).
    helpers: { done, reject, makeContext, describe, inspect },
    kvNamespace: (binding) => new KVNamespace(binding),
    queue: (binding) => new WorkerQueue(binding),
    // The default export of the main module, once `load` has finished.
    current: undefined,
    // Waits for the main module's evaluation, then checks its exports.
    load(id, promise) {
      promise
        .then((namespace) => {
          internals.exports = namespace;
          internals.current = internals.handlers(namespace);
          internals.exports = namespace;
          done(id, 0, [], new ArrayBuffer(0));
        })
        .catch((error) => reject(id, error));
    },
    // Sets `env` (for `import { env } from "cloudflare:workers"`) before the main module loads.
    setEnv(env) {
      Object.defineProperty(g, Symbol.for("burrow.env"), { value: env });
    },
    // Checks the main module's exports and returns the default export's handlers.
    handlers(namespace) {
      const handlers = namespace.default;
      if (handlers === undefined) {
        throw new TypeError(
          "The main module has no default export: a module Worker exports `default { fetch(request, env, ctx) { ... } }`.",
        );
      }
      if (typeof handlers !== "object" && typeof handlers !== "function") {
        throw new TypeError("The main module's default export must be an object with handler methods.");
      }
      for (const name of ["fetch", "scheduled", "queue", "tail", "trace", "email"]) {
        if (handlers[name] !== undefined && typeof handlers[name] !== "function") {
          throw new TypeError(`The default export's "${name}" must be a function.`);
        }
      }
      return handlers;
    },
    fetch(id, handlers, env, url, method, headers, body) {
      // `export default class extends WorkerEntrypoint { fetch(request) {} }`: one instance per
      // request, constructed with (ctx, env); its fetch takes the request alone.
      if (typeof handlers === "function" && handlers.prototype && typeof handlers.prototype.fetch === "function") {
        const ctx = makeContext();
        const Entrypoint = handlers;
        handlers = { fetch: (request) => new Entrypoint(ctx, env).fetch(request) };
      }
      if (typeof handlers.fetch !== "function") {
        reject(id, new Error("Handler does not export a fetch() function."));
        return;
      }
      try {
        const init = { method, headers };
        // An ArrayBuffer (read before the event), or true: read as the Worker pulls.
        if (body === true) init.body = native.web.requestBody(id);
        else if (body !== undefined) init.body = body;
        const request = new Request(url, init);
        const result = handlers.fetch(request, env, makeContext());
        if (result instanceof Response) {
          finish(id, result).catch((error) => reject(id, error));
        } else {
          Promise.resolve(result)
            .then((response) => finish(id, response))
            .catch((error) => reject(id, error));
        }
      } catch (error) {
        reject(id, error);
      }
    },
    scheduled(id, handlers, env, cron, scheduledTime) {
      if (typeof handlers.scheduled !== "function") {
        reject(id, new Error("Handler does not export a scheduled() function"));
        return;
      }
      try {
        let noRetry = false;
        const controller = {
          cron,
          scheduledTime,
          type: "scheduled",
          noRetry() {
            noRetry = true;
          },
        };
        Promise.resolve(handlers.scheduled(controller, env, makeContext()))
          .then(() => done(id, noRetry ? 1 : 0, [], new ArrayBuffer(0)))
          .catch((error) => reject(id, error));
      } catch (error) {
        reject(id, error);
      }
    },
  };
  return internals;
});
