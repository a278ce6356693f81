// Bodies as streams: Burrow's Request and Response subclasses over llrt's classes give every body
// a ReadableStream (`body`), accept ReadableStreams as bodies, read stream-backed bodies through
// text()/json()/arrayBuffer()/formData()/blob(), and tee on clone(). `fetch` sends stream bodies
// buffered and returns Burrow's Response. `native.web.send` answers an event, streaming the body
// chunk by chunk when it is a stream. Evaluated after streams.js and before the prelude.
(function (native) {
  "use strict";
  const g = globalThis;
  const { isReadable, readAll, toBytes, disturbed } = native.streams;
  const NativeResponse = g.Response;
  const NativeRequest = g.Request;
  const nativeFetch = g.fetch;
  const USED = "Body has already been used. It can only be used once. Use tee() first if you need to read it twice.";

  // Per Request/Response: { stream, source, used }. `source` is the plain body (string,
  // ArrayBuffer, Blob, ...) the native object holds; `stream` the ReadableStream once there is one.
  const states = new WeakMap();
  // Streams made lazily from a plain source, while nothing has read them: reusing one as a body
  // reuses the source (and keeps its length).
  const lazy = new WeakMap();

  function stateOf(object) {
    let state = states.get(object);
    if (!state) {
      // A native object (from llrt's fetch or clone()): its body is in the native part.
      state = { stream: undefined, source: NATIVE, used: false };
      states.set(object, state);
    }
    return state;
  }
  const NATIVE = Symbol("native body");

  // Splits `body` into a plain source for the native constructor and a stream (and the
  // content type a FormData body brings).
  function unpack(body) {
    if (body === undefined || body === null) return { source: body, stream: undefined };
    if (native.forms.isFormData(body)) {
      const { blob, contentType } = native.forms.serialize(body);
      return { source: blob, stream: undefined, contentType };
    }
    if (isReadable(body)) {
      const plain = lazy.get(body);
      if (plain && !body.locked && !disturbed(body)) {
        plain.owner.used = true;
        lazy.delete(body);
        return { source: plain.source, stream: undefined };
      }
      if (body.locked || disturbed(body)) throw new TypeError("This ReadableStream is disturbed (has already been read from), and cannot be used as a body.");
      return { source: undefined, stream: body };
    }
    return { source: body, stream: undefined };
  }

  function bodyStream(object, prototype) {
    const state = stateOf(object);
    if (state.stream) return state.stream;
    if (state.source === undefined || state.source === null) return null;
    const stream = new ReadableStream({
      type: "bytes",
      async pull(controller) {
        const buffer = await prototype.arrayBuffer.call(object);
        if (buffer.byteLength > 0) controller.enqueue(new Uint8Array(buffer));
        controller.close();
      },
    });
    if (state.source !== NATIVE) lazy.set(stream, { owner: state, source: state.source });
    state.stream = stream;
    return stream;
  }

  function bodyUsed(object, prototype) {
    const state = stateOf(object);
    if (state.used) return true;
    if (state.stream) return disturbed(state.stream);
    return Boolean(Reflect.get(prototype, "bodyUsed", object));
  }

  async function arrayBufferOf(object, prototype) {
    const state = stateOf(object);
    if (state.used) throw new TypeError(USED);
    if (state.stream) {
      if (state.stream.locked || disturbed(state.stream)) throw new TypeError(USED);
      return readAll(state.stream);
    }
    if (state.source === undefined || state.source === null) return new ArrayBuffer(0);
    return prototype.arrayBuffer.call(object);
  }

  // The body methods every Request and Response has, over `prototype`'s native methods.
  function bodyMethods(prototype) {
    return {
      get body() {
        return bodyStream(this, prototype);
      },
      get bodyUsed() {
        return bodyUsed(this, prototype);
      },
      arrayBuffer() {
        return arrayBufferOf(this, prototype);
      },
      async bytes() {
        return new Uint8Array(await arrayBufferOf(this, prototype));
      },
      async text() {
        return new TextDecoder().decode(await arrayBufferOf(this, prototype));
      },
      async json() {
        return JSON.parse(await this.text());
      },
      async blob() {
        const buffer = await arrayBufferOf(this, prototype);
        return new Blob([buffer], { type: this.headers.get("content-type") || "" });
      },
      async formData() {
        return native.forms.parse(await arrayBufferOf(this, prototype), this.headers.get("content-type"));
      },
    };
  }
  function install(target, prototype) {
    const methods = bodyMethods(prototype);
    for (const name of Object.getOwnPropertyNames(methods)) {
      Object.defineProperty(target.prototype, name, { ...Object.getOwnPropertyDescriptor(methods, name), enumerable: false });
    }
  }

  class Response extends NativeResponse {
    constructor(body = undefined, init = undefined) {
      let webSocket = null;
      if (init !== undefined && init !== null && init.webSocket !== undefined && init.webSocket !== null) {
        if (Number(init.status) !== 101) {
          throw new RangeError("Responses with a WebSocket must have status code 101.");
        }
        native.wsForResponse(init.webSocket);
        webSocket = init.webSocket;
        const copy = {};
        for (const key of ["statusText", "headers"]) if (init[key] !== undefined) copy[key] = init[key];
        init = copy;
        body = null;
      }
      const { source, stream, contentType } = unpack(body);
      // llrt's constructor takes a missing argument, not an explicit undefined.
      if (init !== undefined && init !== null) super(source === undefined ? null : source, init);
      else if (source !== undefined) super(source);
      else super();
      states.set(this, { stream, source, used: false, webSocket });
      if (contentType !== undefined && !this.headers.has("content-type")) this.headers.set("content-type", contentType);
    }
    get status() {
      return stateOf(this).webSocket ? 101 : Reflect.get(NativeResponse.prototype, "status", this);
    }
    get ok() {
      return stateOf(this).webSocket ? false : Reflect.get(NativeResponse.prototype, "ok", this);
    }
    get webSocket() {
      return stateOf(this).webSocket || null;
    }
    clone() {
      const state = stateOf(this);
      if (state.webSocket) throw new TypeError("Cannot clone a Response with a WebSocket.");
      if (bodyUsed(this, NativeResponse.prototype)) throw new TypeError("Body has already been used. It can only be used once. Use tee() first if you need to read it twice.");
      if (state.stream) {
        const [mine, theirs] = state.stream.tee();
        state.stream = mine;
        lazy.delete(mine);
        return new Response(theirs, { status: this.status, statusText: this.statusText, headers: this.headers });
      }
      const copy = NativeResponse.prototype.clone.call(this);
      Object.setPrototypeOf(copy, Response.prototype);
      states.set(copy, { stream: undefined, source: state.source, used: false });
      return copy;
    }
    // Native Responses (from llrt) are Responses too.
    static [Symbol.hasInstance](value) {
      return value instanceof NativeResponse;
    }
    // workerd's content type (llrt adds ";charset=UTF-8").
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(JSON.stringify(data), { status: init.status, statusText: init.statusText, headers });
    }
    static redirect(url, status = 302) {
      return adopt(NativeResponse.redirect(url, status), Response.prototype);
    }
    static error() {
      return adopt(NativeResponse.error(), Response.prototype);
    }
  }
  install(Response, NativeResponse.prototype);

  const INIT_KEYS = ["method", "headers", "redirect", "signal", "cf", "integrity", "credentials", "mode", "cache", "referrer", "keepalive"];
  class Request extends NativeRequest {
    constructor(input, init = undefined) {
      let stream;
      let source;
      let contentType;
      const hasBody = init !== undefined && init !== null && init.body !== undefined;
      if (hasBody) {
        ({ source, stream, contentType } = unpack(init.body));
        const copy = {};
        for (const key of INIT_KEYS) if (init[key] !== undefined) copy[key] = init[key];
        if (source !== undefined) copy.body = source;
        const method = String(copy.method || (input instanceof NativeRequest ? input.method : "GET")).toUpperCase();
        if (stream && (method === "GET" || method === "HEAD")) {
          throw new TypeError("Request with a GET or HEAD method cannot have a body.");
        }
        init = copy;
      } else if (input instanceof NativeRequest) {
        const other = stateOf(input);
        if (other.stream) {
          if (other.used || disturbed(other.stream) || other.stream.locked) throw new TypeError(USED);
          stream = other.stream;
          other.used = true;
        } else {
          source = other.source;
        }
      }
      if (init !== undefined && init !== null) super(input, init);
      else super(input);
      states.set(this, { stream, source: stream ? undefined : source === NATIVE ? NATIVE : source, used: false });
      if (contentType !== undefined && !this.headers.has("content-type")) this.headers.set("content-type", contentType);
    }
    clone() {
      const state = stateOf(this);
      if (bodyUsed(this, NativeRequest.prototype)) throw new TypeError(USED);
      if (state.stream) {
        const [mine, theirs] = state.stream.tee();
        state.stream = mine;
        lazy.delete(mine);
        return new Request(this.url, { method: this.method, headers: this.headers, redirect: this.redirect, signal: this.signal, body: theirs });
      }
      const copy = NativeRequest.prototype.clone.call(this);
      Object.setPrototypeOf(copy, Request.prototype);
      states.set(copy, { stream: undefined, source: state.source, used: false });
      return copy;
    }
    static [Symbol.hasInstance](value) {
      return value instanceof NativeRequest;
    }
  }
  install(Request, NativeRequest.prototype);

  function adopt(object, prototype) {
    Object.setPrototypeOf(object, prototype);
    return object;
  }

  // Outbound fetch: stream bodies are read first (llrt sends buffered bodies).
  async function fetch(input, init = undefined) {
    if (init !== undefined && init !== null && init.body !== undefined && isReadable(init.body)) {
      const copy = {};
      for (const key of INIT_KEYS) if (init[key] !== undefined) copy[key] = init[key];
      copy.body = await readAll(init.body);
      init = copy;
    } else if (input instanceof NativeRequest && stateOf(input).stream && !(init && init.body !== undefined)) {
      const body = await arrayBufferOf(input, NativeRequest.prototype);
      stateOf(input).used = true;
      input = new NativeRequest(input.url, { method: input.method, headers: input.headers, redirect: input.redirect, signal: input.signal, body });
    }
    const response = init === undefined ? await nativeFetch(input) : await nativeFetch(input, init);
    return adopt(response, Response.prototype);
  }

  // Blob (llrt's): slice() with the spec's defaults and clamping (llrt's end defaults to 0 and
  // must not precede start), and stream().
  for (const Class of [g.Blob, g.File]) {
    if (typeof Class !== "function" || Object.prototype.hasOwnProperty.call(Class.prototype, "stream")) continue;
    const nativeSlice = Class.prototype.slice;
    Object.defineProperty(Class.prototype, "slice", {
      value(start = 0, end = undefined, contentType = undefined) {
        const size = this.size;
        const clamp = (value, fallback) => {
          const n = value === undefined ? fallback : Math.trunc(Number(value)) || 0;
          return n < 0 ? Math.max(size + n, 0) : Math.min(n, size);
        };
        const from = clamp(start, 0);
        const to = Math.max(from, clamp(end, size));
        return contentType === undefined ? nativeSlice.call(this, from, to) : nativeSlice.call(this, from, to, String(contentType));
      },
      writable: true,
      configurable: true,
    });
    Object.defineProperty(Class.prototype, "stream", {
      value() {
        const blob = this;
        return new ReadableStream({
          type: "bytes",
          async pull(controller) {
            const buffer = await blob.arrayBuffer();
            if (buffer.byteLength > 0) controller.enqueue(new Uint8Array(buffer));
            controller.close();
          },
        });
      },
      writable: true,
      configurable: true,
    });
  }

  g.Response = Response;
  g.Request = Request;
  g.fetch = fetch;

  // The largest piece handed to the HTTP side at once (smaller pieces keep the buffer bound).
  const PIECE = 64 * 1024;

  // Answers event `id` with `response`: a plain body in one piece through `done`, a stream
  // chunk by chunk (`head`, then `push` waiting for room, then `end`, or `abort` on an error).
  async function send(id, response, describe) {
    if (!(response instanceof NativeResponse)) {
      throw new TypeError("Incorrect type for Promise: the Promise did not resolve to 'Response'.");
    }
    const headers = [];
    for (const [name, value] of response.headers) headers.push(name, value);
    const state = stateOf(response);
    if (state.webSocket) {
      native.wsBind(state.webSocket, native.wsAccept(id, headers));
      return;
    }
    const stream = state.stream;
    if (!stream || (lazy.has(stream) && !stream.locked && !disturbed(stream))) {
      native.done(id, response.status, headers, await response.arrayBuffer());
      return;
    }
    if (stream.locked || disturbed(stream)) throw new TypeError(USED);
    const reader = stream.getReader();
    native.head(id, response.status, headers);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const bytes = toBytes(value);
        if (bytes === null) {
          throw new TypeError("This ReadableStream did not return bytes.");
        }
        for (let offset = 0; offset < bytes.byteLength; offset += PIECE) {
          await native.push(id, bytes.subarray(offset, Math.min(bytes.byteLength, offset + PIECE)));
        }
      }
      native.end(id);
    } catch (error) {
      reader.cancel(error).catch(() => {});
      native.abort(id, describe(error));
    }
  }

  // The request body of event `id`, read from the HTTP side as the Worker pulls.
  function requestBody(id) {
    return new ReadableStream({
      type: "bytes",
      async pull(controller) {
        for (;;) {
          const chunk = await native.readBody(id);
          if (chunk === null || chunk === undefined) return controller.close();
          if (chunk.byteLength > 0) return controller.enqueue(new Uint8Array(chunk));
        }
      },
      cancel() {
        native.dropBody(id);
      },
    });
  }

  native.web = { send, requestBody };
});
