// Durable Objects in JavaScript: the namespace binding (IDs, stubs with fetch and RPC), the
// `ctx` a class is constructed with (storage KV/SQL/alarms, blockConcurrencyWhile, waitUntil,
// abort), the structured-clone serialization RPC and storage values go through, and the
// dispatch functions the Rust side (objects.rs) calls for each object event. Evaluated once per
// isolate as a function of the native helpers and the prelude's internals, which it extends.
(function (native, internals) {
  "use strict";

  // --- structured clone, as text ---------------------------------------------------------------
  // JSON with tagged nodes: arrays and plain objects stay JSON (an object with a "$" key is
  // wrapped), everything else is {"$": tag, ...}. Every object gets an index in visiting order;
  // a second visit is a reference, so cycles and shared objects survive.
  function cloneError(value) {
    const type = value === null ? "null" : typeof value === "object" ? Object.prototype.toString.call(value).slice(8, -1) : typeof value;
    return new DOMException(`Could not serialize object of type "${type === "function" ? "Function" : type}". This type does not support serialization.`, "DataCloneError");
  }
  function bytes(view) {
    return Array.from(new Uint8Array(view.buffer || view, view.byteOffset || 0, view.byteLength));
  }
  function encode(value, seen) {
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        if (Number.isFinite(value) && !Object.is(value, -0)) return value;
        return { $: "n", v: Object.is(value, -0) ? "-0" : String(value) };
      case "undefined":
        return { $: "u" };
      case "bigint":
        return { $: "b", v: value.toString() };
      case "function":
      case "symbol":
        throw cloneError(value);
    }
    if (value === null) return null;
    const known = seen.get(value);
    if (known !== undefined) return { $: "r", i: known };
    seen.set(value, seen.size);
    if (Array.isArray(value)) {
      const out = new Array(value.length);
      for (let i = 0; i < value.length; i++) out[i] = encode(value[i], seen);
      return out;
    }
    if (value instanceof Date) return { $: "d", v: String(value.getTime()) };
    if (value instanceof RegExp) return { $: "x", s: value.source, f: value.flags };
    if (value instanceof ArrayBuffer) return { $: "ab", v: bytes(value) };
    if (ArrayBuffer.isView(value)) return { $: "v", t: value.constructor.name, v: bytes(value) };
    if (value instanceof Map) {
      const out = [];
      for (const [k, v] of value) out.push([encode(k, seen), encode(v, seen)]);
      return { $: "m", v: out };
    }
    if (value instanceof Set) {
      const out = [];
      for (const v of value) out.push(encode(v, seen));
      return { $: "s", v: out };
    }
    if (value instanceof Error) {
      return { $: "e", n: String(value.name), m: String(value.message), s: typeof value.stack === "string" ? value.stack : "" };
    }
    if (typeof value.then === "function" || value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) {
      throw cloneError(value);
    }
    const out = {};
    for (const key of Object.keys(value)) out[key] = encode(value[key], seen);
    return Object.prototype.hasOwnProperty.call(out, "$") ? { $: "o", v: out } : out;
  }
  const ERRORS = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };
  function decode(node, refs) {
    if (node === null || typeof node !== "object") return node;
    if (Array.isArray(node)) {
      const out = new Array(node.length);
      refs.push(out);
      for (let i = 0; i < node.length; i++) out[i] = decode(node[i], refs);
      return out;
    }
    switch (node.$) {
      case undefined: {
        const out = {};
        refs.push(out);
        for (const key of Object.keys(node)) out[key] = decode(node[key], refs);
        return out;
      }
      case "o": {
        const out = {};
        refs.push(out);
        for (const key of Object.keys(node.v)) out[key] = decode(node.v[key], refs);
        return out;
      }
      case "n":
        return node.v === "-0" ? -0 : Number(node.v);
      case "u":
        return undefined;
      case "b":
        return BigInt(node.v);
      case "r":
        return refs[node.i];
      case "d": {
        const out = new Date(Number(node.v));
        refs.push(out);
        return out;
      }
      case "x": {
        const out = new RegExp(node.s, node.f);
        refs.push(out);
        return out;
      }
      case "ab": {
        const out = new Uint8Array(node.v).buffer;
        refs.push(out);
        return out;
      }
      case "v": {
        const buffer = new Uint8Array(node.v).buffer;
        const Type = node.t === "DataView" ? DataView : globalThis[node.t];
        const out = typeof Type === "function" ? new Type(buffer) : new Uint8Array(buffer);
        refs.push(out);
        return out;
      }
      case "m": {
        const out = new Map();
        refs.push(out);
        for (const [k, v] of node.v) out.set(decode(k, refs), decode(v, refs));
        return out;
      }
      case "s": {
        const out = new Set();
        refs.push(out);
        for (const v of node.v) out.add(decode(v, refs));
        return out;
      }
      case "e": {
        const Type = ERRORS[node.n] || Error;
        const out = new Type(node.m);
        if (out.name !== node.n) out.name = node.n;
        out.stack = node.s;
        refs.push(out);
        return out;
      }
      default:
        throw new TypeError(`Cannot deserialize a value tagged ${JSON.stringify(node.$)}.`);
    }
  }
  function serialize(value) {
    return JSON.stringify(encode(value, new Map()));
  }
  function deserialize(text) {
    return decode(JSON.parse(text), []);
  }
  internals.serialize = serialize;
  internals.deserialize = deserialize;

  // --- errors that cross a stub ------------------------------------------------------------------
  // A platform error from Rust: [message, remote, retryable, overloaded].
  function platformError([message, remote, retryable, overloaded]) {
    const error = new Error(message);
    if (remote) error.remote = true;
    if (retryable) error.retryable = true;
    if (overloaded) error.overloaded = true;
    return error;
  }
  function describe(error) {
    if (error instanceof Error) {
      return { name: String(error.name), message: String(error.message), stack: typeof error.stack === "string" ? error.stack : "" };
    }
    let message;
    try {
      message = typeof error === "string" ? error : JSON.stringify(error);
    } catch {
      message = String(error);
    }
    return { name: "Error", message: String(message), stack: "" };
  }

  // --- IDs, namespaces and stubs -----------------------------------------------------------------
  const idHex = new WeakMap();
  class DurableObjectId {
    #hex;
    #name;
    constructor(hex, name) {
      this.#hex = hex;
      this.#name = name;
      idHex.set(this, hex);
    }
    toString() {
      return this.#hex;
    }
    toJSON() {
      return this.#hex;
    }
    equals(other) {
      return other instanceof DurableObjectId && idHex.get(other) === this.#hex;
    }
    get name() {
      return this.#name;
    }
  }

  function requestParts(request) {
    const headers = [];
    for (const [name, value] of request.headers) headers.push(name, value);
    return headers;
  }
  const NULL_BODY = new Set([101, 204, 205, 304]);

  class DurableObjectStub {
    #binding;
    #id;
    constructor(binding, id) {
      this.#binding = binding;
      this.#id = id;
    }
    get id() {
      return this.#id;
    }
    get name() {
      return this.#id.name;
    }
    async fetch(input, init) {
      const request = input instanceof Request && init === undefined ? input : new Request(input, init);
      const method = request.method;
      const body = method === "GET" || method === "HEAD" ? undefined : await request.arrayBuffer();
      const [failed, status, headers, payload] = await native.doFetch(
        this.#binding,
        idHex.get(this.#id),
        request.url,
        method,
        requestParts(request),
        body,
      );
      if (failed) throw platformError(status);
      const init2 = { status, headers: [] };
      for (let i = 0; i + 1 < headers.length; i += 2) init2.headers.push([headers[i], headers[i + 1]]);
      return new Response(NULL_BODY.has(status) || method === "HEAD" ? null : payload, init2);
    }
    async call(method, args) {
      const [failed, result] = await native.doCall(this.#binding, idHex.get(this.#id), method, serialize(args));
      if (failed) throw platformError(result);
      const value = deserialize(result.slice(1));
      if (result[0] === "e") {
        const error = value instanceof Error ? value : new Error(String(value));
        error.remote = true;
        throw error;
      }
      return value;
    }
  }
  // RPC: every other property of a stub is a method of the object.
  const STUB_OWN = new Set(["fetch", "id", "name", "call", "constructor"]);
  function makeStub(binding, id) {
    const stub = new DurableObjectStub(binding, id);
    return new Proxy(stub, {
      get(target, property) {
        if (typeof property !== "string" || STUB_OWN.has(property)) {
          const value = Reflect.get(target, property, target);
          return typeof value === "function" ? value.bind(target) : value;
        }
        // Not a thenable: `await stub` must give the stub.
        if (property === "then") return undefined;
        return (...args) => target.call(property, args);
      },
    });
  }

  class DurableObjectNamespace {
    #binding;
    constructor(binding) {
      this.#binding = binding;
    }
    idFromName(name) {
      name = String(name);
      return new DurableObjectId(native.doIdFromName(this.#binding, name), name);
    }
    newUniqueId(_options) {
      return new DurableObjectId(native.doNewUniqueId(this.#binding), undefined);
    }
    idFromString(text) {
      return new DurableObjectId(native.doIdFromString(this.#binding, String(text)), undefined);
    }
    get(id, _options) {
      if (!(id instanceof DurableObjectId)) {
        throw new TypeError("Failed to execute 'get' on 'DurableObjectNamespace': parameter 1 is not of type 'DurableObjectId'.");
      }
      return makeStub(this.#binding, id);
    }
    getByName(name, options) {
      return this.get(this.idFromName(name), options);
    }
    jurisdiction(_name) {
      return this;
    }
  }
  internals.durableObjectNamespace = (binding) => new DurableObjectNamespace(binding);

  // --- storage ---------------------------------------------------------------------------------
  const MAX_KEYS = 128;
  function checkKeys(keys) {
    if (keys.length > MAX_KEYS) {
      throw new RangeError(`Maximum number of key value pairs is ${MAX_KEYS}. ${keys.length} pairs were provided.`);
    }
    return keys.map(String);
  }
  function listArgs(options = {}) {
    const text = (v) => (v === undefined || v === null ? null : String(v));
    let limit = null;
    if (options.limit !== undefined && options.limit !== null) {
      limit = Number(options.limit);
      if (!(limit > 0)) throw new TypeError("List limit must be positive.");
    }
    return [text(options.start), text(options.startAfter), text(options.end), text(options.prefix), Boolean(options.reverse), limit];
  }
  function alarmTime(time) {
    const ms = time instanceof Date ? time.getTime() : Number(time);
    if (!Number.isFinite(ms)) throw new TypeError("setAlarm() requires a Date or a number of milliseconds since the epoch.");
    return ms;
  }

  class SqlStorageCursor {
    #columns;
    #rows;
    #index = 0;
    #read;
    #written;
    constructor([columns, rows, read, written]) {
      this.#columns = columns;
      this.#rows = rows;
      this.#read = read;
      this.#written = written;
    }
    get columnNames() {
      return this.#columns.slice();
    }
    get rowsRead() {
      return this.#read;
    }
    get rowsWritten() {
      return this.#written;
    }
    #object(row) {
      const out = {};
      for (let i = 0; i < this.#columns.length; i++) out[this.#columns[i]] = row[i];
      return out;
    }
    next() {
      if (this.#index >= this.#rows.length) return { done: true, value: undefined };
      return { done: false, value: this.#object(this.#rows[this.#index++]) };
    }
    toArray() {
      const out = [];
      while (this.#index < this.#rows.length) out.push(this.#object(this.#rows[this.#index++]));
      return out;
    }
    one() {
      const remaining = this.#rows.length - this.#index;
      if (remaining === 0) throw new Error("Expected exactly one result from SQL query, but got no results.");
      if (remaining > 1) throw new Error("Expected exactly one result from SQL query, but got multiple results.");
      return this.#object(this.#rows[this.#index++]);
    }
    raw() {
      const cursor = this;
      const rows = this.#rows;
      return {
        next() {
          if (cursor.#index >= rows.length) return { done: true, value: undefined };
          return { done: false, value: rows[cursor.#index++].slice() };
        },
        toArray() {
          const out = [];
          while (cursor.#index < rows.length) out.push(rows[cursor.#index++].slice());
          return out;
        },
        [Symbol.iterator]() {
          return this;
        },
      };
    }
    [Symbol.iterator]() {
      return this;
    }
  }

  class SqlStorage {
    #handle;
    constructor(handle) {
      this.#handle = handle;
    }
    exec(query, ...bindings) {
      return new SqlStorageCursor(native.doSqlExec(this.#handle, String(query), bindings));
    }
    get databaseSize() {
      return native.doSqlSize(this.#handle);
    }
  }

  // The synchronous KV API (`ctx.storage.kv`).
  class SyncKvStorage {
    #handle;
    constructor(handle) {
      this.#handle = handle;
    }
    get(key) {
      const text = native.doKvGet(this.#handle, String(key));
      return text === undefined || text === null ? undefined : deserialize(text);
    }
    put(key, value) {
      native.doKvPut(this.#handle, [[String(key), serialize(value)]]);
    }
    delete(key) {
      return native.doKvDelete(this.#handle, [String(key)]) > 0;
    }
    list(options) {
      const pairs = native.doKvList(this.#handle, listArgs(options));
      return pairs.map(([key, text]) => [key, deserialize(text)])[Symbol.iterator]();
    }
  }

  const pump = native.doPump;
  class DurableObjectStorage {
    #handle;
    #sql;
    #kv;
    constructor(handle) {
      this.#handle = handle;
    }
    get sql() {
      return (this.#sql ??= new SqlStorage(this.#handle));
    }
    get kv() {
      return (this.#kv ??= new SyncKvStorage(this.#handle));
    }
    async get(keys, _options) {
      if (Array.isArray(keys)) {
        const pairs = native.doKvGetMany(this.#handle, checkKeys(keys));
        return new Map(pairs.map(([key, text]) => [key, deserialize(text)]));
      }
      const text = native.doKvGet(this.#handle, String(keys));
      return text === undefined || text === null ? undefined : deserialize(text);
    }
    async put(keyOrEntries, value, _options) {
      if (typeof keyOrEntries === "object" && keyOrEntries !== null) {
        const keys = checkKeys(Object.keys(keyOrEntries));
        native.doKvPut(this.#handle, keys.map((key) => [key, serialize(keyOrEntries[key])]));
        return;
      }
      if (value === undefined) throw new TypeError("put() called with undefined value.");
      native.doKvPut(this.#handle, [[String(keyOrEntries), serialize(value)]]);
    }
    async delete(keys, _options) {
      if (Array.isArray(keys)) return native.doKvDelete(this.#handle, checkKeys(keys));
      return native.doKvDelete(this.#handle, [String(keys)]) > 0;
    }
    async list(options) {
      const pairs = native.doKvList(this.#handle, listArgs(options));
      return new Map(pairs.map(([key, text]) => [key, deserialize(text)]));
    }
    async deleteAll(_options) {
      native.doDeleteAll(this.#handle);
    }
    async getAlarm(_options) {
      const at = native.doGetAlarm(this.#handle);
      return at === undefined ? null : at;
    }
    async setAlarm(time, _options) {
      native.doSetAlarm(this.#handle, alarmTime(time));
    }
    async deleteAlarm(_options) {
      native.doDeleteAlarm(this.#handle);
    }
    async sync() {
      await native.doSync(this.#handle);
    }
    // The callback runs inside one explicit transaction. Storage calls are synchronous in Burrow,
    // so the callback's own awaits are run to completion right here (pumping the job queue); a
    // callback that awaits anything else (a fetch, a timer) cannot be part of the transaction.
    async transaction(callback) {
      const handle = this.#handle;
      native.doTxBegin(handle);
      let settled = false;
      let failed = false;
      let result;
      const txn = new DurableObjectTransaction(this, handle);
      (async () => callback(txn))().then(
        (value) => {
          settled = true;
          result = value;
        },
        (error) => {
          settled = true;
          failed = true;
          result = error;
        },
      );
      pump(() => settled);
      if (!settled) {
        native.doTxEnd(handle, false);
        throw new Error(
          "storage.transaction(): the callback awaited something other than storage (a fetch, a timer, an RPC); Burrow runs transactions with storage operations only. Its writes were rolled back.",
        );
      }
      native.doTxEnd(handle, !failed);
      if (failed) throw result;
      return result;
    }
    transactionSync(callback) {
      const handle = this.#handle;
      native.doTxBegin(handle);
      let result;
      try {
        result = callback();
      } catch (error) {
        native.doTxEnd(handle, false);
        throw error;
      }
      native.doTxEnd(handle, true);
      return result;
    }
    getCurrentBookmark() {
      return Promise.reject(new Error("Point-in-time recovery is not available in Burrow yet."));
    }
  }
  class DurableObjectTransaction {
    #storage;
    #handle;
    constructor(storage, handle) {
      this.#storage = storage;
      this.#handle = handle;
    }
    get(...args) {
      return this.#storage.get(...args);
    }
    put(...args) {
      return this.#storage.put(...args);
    }
    delete(...args) {
      return this.#storage.delete(...args);
    }
    list(...args) {
      return this.#storage.list(...args);
    }
    getAlarm(...args) {
      return this.#storage.getAlarm(...args);
    }
    setAlarm(...args) {
      return this.#storage.setAlarm(...args);
    }
    deleteAlarm(...args) {
      return this.#storage.deleteAlarm(...args);
    }
    deleteAll() {
      return Promise.reject(new Error("Cannot call deleteAll() within a transaction"));
    }
    rollback() {
      native.doTxRollback(this.#handle);
    }
  }

  // --- the state (`ctx`) an object is constructed with ----------------------------------------
  class DurableObjectState {
    #handle;
    #storage;
    #id;
    constructor(handle, id) {
      this.#handle = handle;
      this.#id = id;
      this.#storage = new DurableObjectStorage(handle);
    }
    get id() {
      return this.#id;
    }
    get storage() {
      return this.#storage;
    }
    get props() {
      return {};
    }
    waitUntil(promise) {
      const token = native.doHold(this.#handle, 0);
      Promise.resolve(promise).then(
        () => native.doRelease(token, true),
        (error) => {
          console.error("waitUntil:", error);
          native.doRelease(token, true);
        },
      );
    }
    blockConcurrencyWhile(callback) {
      const token = native.doHold(this.#handle, 1);
      let promise;
      try {
        promise = Promise.resolve(callback());
      } catch (error) {
        promise = Promise.reject(error);
      }
      return promise.then(
        (value) => {
          native.doRelease(token, true);
          return value;
        },
        (error) => {
          native.doRelease(token, false, describe(error).message);
          throw error;
        },
      );
    }
    abort(reason) {
      native.doAbort(this.#handle, reason === undefined ? "Application called abort() to reset Durable Object." : String(reason));
    }
  }

  // --- object events ---------------------------------------------------------------------------
  const done = native.done;
  const fail = native.fail;
  function objectReject(id, error) {
    if (error instanceof InternalError && error.message === "out of memory") {
      fail(id, 1, "out of memory");
      return;
    }
    fail(id, 0, "\u0000" + JSON.stringify(describe(error)));
  }
  const RESERVED = new Set(["constructor", "fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"]);
  Object.assign(internals, {
    // Runs the class's constructor for one object; the instance goes back to Rust.
    objectConstruct(className, handle, hex, name, env) {
      const exports = internals.exports || {};
      const Class = exports[className];
      if (typeof Class !== "function") {
        throw new TypeError(`Durable Object class "${className}" is not exported by the Worker's main module.`);
      }
      const ctx = new DurableObjectState(handle, new DurableObjectId(hex, name === null ? undefined : name));
      return new Class(ctx, env);
    },
    objectFetch(id, instance, url, method, headers, body) {
      try {
        if (typeof instance.fetch !== "function") {
          throw new TypeError("Handler does not export a fetch() function.");
        }
        const init = { method, headers };
        if (body !== undefined) init.body = body;
        Promise.resolve(instance.fetch(new Request(url, init)))
          .then(async (response) => {
            if (!(response instanceof Response)) {
              throw new TypeError("Incorrect type for Promise: the Promise did not resolve to 'Response'.");
            }
            const headers = [];
            for (const [name, value] of response.headers) headers.push(name, value);
            done(id, response.status, headers, await response.arrayBuffer());
          })
          .catch((error) => objectReject(id, error));
      } catch (error) {
        objectReject(id, error);
      }
    },
    objectCall(id, instance, method, payload) {
      const answer = (tag, value) => done(id, 0, [], native.utf8Encode(tag + serialize(value)));
      const thrown = (error) => {
        try {
          answer("e", error instanceof Error ? error : new Error(describe(error).message));
        } catch (cloneFailure) {
          objectReject(id, cloneFailure);
        }
      };
      try {
        const target = instance[method];
        if (typeof target !== "function" || RESERVED.has(method) || method.startsWith("_") && !Object.prototype.hasOwnProperty.call(Object.getPrototypeOf(instance), method)) {
          throw new TypeError(`The RPC receiver does not implement the method "${method}".`);
        }
        const args = deserialize(payload);
        Promise.resolve(target.apply(instance, args)).then((value) => {
          try {
            answer("v", value);
          } catch (error) {
            thrown(error);
          }
        }, thrown);
      } catch (error) {
        thrown(error);
      }
    },
    objectAlarm(id, instance, retryCount) {
      try {
        if (typeof instance.alarm !== "function") {
          done(id, 0, [], new ArrayBuffer(0));
          return;
        }
        Promise.resolve(instance.alarm({ retryCount, isRetry: retryCount > 0 }))
          .then(() => done(id, 0, [], new ArrayBuffer(0)))
          .catch((error) => objectReject(id, error));
      } catch (error) {
        objectReject(id, error);
      }
    },
  });
});
