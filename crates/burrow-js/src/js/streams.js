// WHATWG streams for Workers: ReadableStream (default and BYOB readers, tee, pipeTo,
// pipeThrough, async iteration, from), WritableStream, TransformStream, the queuing strategies,
// TextEncoderStream/TextDecoderStream and the Workers-only IdentityTransformStream and
// FixedLengthStream. A compact implementation of the spec's algorithms; state lives in WeakMaps
// so user code cannot reach it. Evaluated once per isolate before the prelude, as a function of
// the native helpers; sets `native.streams` (helpers for body.js, never reachable from user code).
(function (native) {
  "use strict";
  const g = globalThis;

  function deferred() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  }
  function handled(promise) {
    promise.catch(() => {});
    return promise;
  }
  function rejected(error) {
    return handled(Promise.reject(error));
  }
  function call(object, name, args, fallback) {
    const method = object === undefined || object === null ? undefined : object[name];
    if (method === undefined || method === null) return fallback;
    if (typeof method !== "function") throw new TypeError(`${name} must be a function`);
    return () => method.apply(object, args());
  }
  // Runs an underlying source/sink algorithm, always as a promise.
  function promiseCall(fn) {
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  function strategyOf(strategy, defaultHwm) {
    const hwm = strategy && strategy.highWaterMark !== undefined ? Number(strategy.highWaterMark) : defaultHwm;
    if (Number.isNaN(hwm) || hwm < 0) throw new RangeError("The highWaterMark must be a non-negative number.");
    const size = strategy && strategy.size;
    if (size !== undefined && typeof size !== "function") throw new TypeError("The strategy's size must be a function.");
    return { hwm, size: size ? (chunk) => Number(size.call(undefined, chunk)) : () => 1 };
  }

  // --- queuing strategies ----------------------------------------------------------------------
  class CountQueuingStrategy {
    #hwm;
    constructor(init) {
      this.#hwm = Number(init && init.highWaterMark);
    }
    get highWaterMark() {
      return this.#hwm;
    }
    get size() {
      return () => 1;
    }
  }
  class ByteLengthQueuingStrategy {
    #hwm;
    constructor(init) {
      this.#hwm = Number(init && init.highWaterMark);
    }
    get highWaterMark() {
      return this.#hwm;
    }
    get size() {
      return (chunk) => chunk.byteLength;
    }
  }

  // --- ReadableStream --------------------------------------------------------------------------
  const rs = new WeakMap(); // stream -> state
  const rc = new WeakMap(); // controller -> state of its stream
  const rd = new WeakMap(); // reader -> { stream, requests, closed, byob }

  function isReadable(value) {
    return rs.has(value);
  }
  function readableState(stream) {
    const state = rs.get(stream);
    if (!state) throw new TypeError("Illegal invocation: not a ReadableStream");
    return state;
  }
  function desiredSize(s) {
    if (s.state === "errored") return null;
    if (s.state === "closed") return 0;
    return s.hwm - s.queueSize;
  }
  function canEnqueue(s) {
    return !s.closeRequested && s.state === "readable";
  }
  function shouldPull(s) {
    if (!canEnqueue(s) || !s.started) return false;
    if (s.reader && rd.get(s.reader).requests.length > 0) return true;
    return desiredSize(s) > 0;
  }
  function pullIfNeeded(s) {
    if (!shouldPull(s)) return;
    if (s.pulling) {
      s.pullAgain = true;
      return;
    }
    s.pulling = true;
    promiseCall(s.pull).then(
      () => {
        s.pulling = false;
        if (s.pullAgain) {
          s.pullAgain = false;
          pullIfNeeded(s);
        }
      },
      (error) => errorReadable(s, error),
    );
  }
  function closeReadable(s) {
    s.state = "closed";
    const reader = s.reader && rd.get(s.reader);
    if (!reader) return;
    for (const request of reader.requests.splice(0)) request.close();
    reader.closed.resolve();
  }
  function errorReadable(s, error) {
    if (s.state !== "readable") return;
    s.state = "errored";
    s.error = error;
    s.queue = [];
    s.queueSize = 0;
    s.pull = s.cancel = () => undefined;
    const reader = s.reader && rd.get(s.reader);
    if (!reader) return;
    for (const request of reader.requests.splice(0)) request.error(error);
    reader.closed.reject(error);
    handled(reader.closed.promise);
  }
  function enqueueReadable(s, chunk) {
    if (!canEnqueue(s)) throw new TypeError("Cannot enqueue a chunk into a closed or errored stream.");
    const reader = s.reader && rd.get(s.reader);
    if (reader && reader.requests.length > 0) {
      reader.requests.shift().chunk(chunk);
    } else {
      let size;
      try {
        size = s.size(chunk);
        if (!(size >= 0) || size === Infinity) throw new RangeError("The chunk size must be a non-negative finite number.");
      } catch (error) {
        errorReadable(s, error);
        throw error;
      }
      s.queue.push({ chunk, size });
      s.queueSize += size;
    }
    pullIfNeeded(s);
  }
  function closeRequest(s) {
    if (!canEnqueue(s)) throw new TypeError("The stream is already closing or closed.");
    s.closeRequested = true;
    if (s.queue.length === 0) closeReadable(s);
  }
  function readRequest(s, request) {
    s.disturbed = true;
    if (s.state === "closed") return request.close();
    if (s.state === "errored") return request.error(s.error);
    if (s.queue.length > 0) {
      const { chunk, size } = s.queue.shift();
      s.queueSize -= size;
      if (s.closeRequested && s.queue.length === 0) closeReadable(s);
      else pullIfNeeded(s);
      request.chunk(chunk);
      return;
    }
    rd.get(s.reader).requests.push(request);
    pullIfNeeded(s);
  }
  function cancelReadable(s, reason) {
    s.disturbed = true;
    if (s.state === "closed") return Promise.resolve();
    if (s.state === "errored") return Promise.reject(s.error);
    s.queue = [];
    s.queueSize = 0;
    closeReadable(s);
    const cancel = s.cancel;
    s.pull = s.cancel = () => undefined;
    return promiseCall(() => cancel(reason)).then(() => undefined);
  }

  class ReadableStreamDefaultController {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
    get desiredSize() {
      return desiredSize(rc.get(this));
    }
    get byobRequest() {
      return null;
    }
    enqueue(chunk) {
      const s = rc.get(this);
      if (s.bytes) {
        if (!ArrayBuffer.isView(chunk)) throw new TypeError("chunk must be an ArrayBufferView");
        if (chunk.byteLength === 0) throw new TypeError("chunk must have non-zero byteLength");
      }
      enqueueReadable(s, chunk);
    }
    close() {
      closeRequest(rc.get(this));
    }
    error(error) {
      errorReadable(rc.get(this), error);
    }
  }
  const ReadableByteStreamController = class ReadableByteStreamController extends ReadableStreamDefaultController {};

  function makeController(s) {
    const controller = Object.create((s.bytes ? ReadableByteStreamController : ReadableStreamDefaultController).prototype);
    rc.set(controller, s);
    return controller;
  }

  function readerClosedPromise(s, reader) {
    if (s.state === "readable") reader.closed = deferred();
    else if (s.state === "closed") reader.closed = { promise: Promise.resolve(), resolve() {}, reject() {} };
    else reader.closed = { promise: rejected(s.error), resolve() {}, reject() {} };
  }
  function lockReader(reader, stream, byob) {
    const s = readableState(stream);
    if (s.reader) throw new TypeError("ReadableStream is locked to a reader.");
    if (byob && !s.bytes) throw new TypeError("A BYOB reader needs a readable byte stream (type: \"bytes\").");
    const state = { stream, requests: [], closed: null, byob };
    readerClosedPromise(s, state);
    handled(state.closed.promise);
    rd.set(reader, state);
    s.reader = reader;
  }
  function releaseReader(reader) {
    const r = rd.get(reader);
    if (!r || !r.stream) return;
    const s = readableState(r.stream);
    const error = new TypeError("The reader was released.");
    for (const request of r.requests.splice(0)) request.error(error);
    if (s.state === "readable") r.closed.reject(error);
    r.closed = { promise: rejected(error), resolve() {}, reject() {} };
    s.reader = undefined;
    r.stream = undefined;
  }
  function readerStream(reader) {
    const r = rd.get(reader);
    if (!r) throw new TypeError("Illegal invocation");
    if (!r.stream) throw new TypeError("This reader has been released.");
    return r;
  }

  class ReadableStreamDefaultReader {
    constructor(stream) {
      lockReader(this, stream, false);
    }
    get closed() {
      return rd.get(this).closed.promise;
    }
    read() {
      let r;
      try {
        r = readerStream(this);
      } catch (error) {
        return Promise.reject(error);
      }
      const d = deferred();
      readRequest(readableState(r.stream), {
        chunk: (value) => d.resolve({ value, done: false }),
        close: () => d.resolve({ value: undefined, done: true }),
        error: (error) => d.reject(error),
      });
      return d.promise;
    }
    cancel(reason) {
      let r;
      try {
        r = readerStream(this);
      } catch (error) {
        return Promise.reject(error);
      }
      return cancelReadable(readableState(r.stream), reason);
    }
    releaseLock() {
      releaseReader(this);
    }
  }

  class ReadableStreamBYOBReader {
    constructor(stream) {
      lockReader(this, stream, true);
    }
    get closed() {
      return rd.get(this).closed.promise;
    }
    // Fills `view` from the next queued chunk; what does not fit goes back to the queue's front.
    read(view) {
      if (!ArrayBuffer.isView(view) || view.byteLength === 0) {
        return Promise.reject(new TypeError("read() needs a non-empty ArrayBufferView"));
      }
      let r;
      try {
        r = readerStream(this);
      } catch (error) {
        return Promise.reject(error);
      }
      const s = readableState(r.stream);
      const d = deferred();
      const Ctor = view.constructor;
      const element = Ctor.BYTES_PER_ELEMENT || 1;
      readRequest(s, {
        chunk(chunk) {
          const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          const fit = Math.min(bytes.length, view.byteLength) - (Math.min(bytes.length, view.byteLength) % element) || Math.min(bytes.length, view.byteLength);
          new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(bytes.subarray(0, fit));
          if (fit < bytes.length) {
            const rest = bytes.slice(fit);
            s.queue.unshift({ chunk: rest, size: rest.byteLength });
            s.queueSize += rest.byteLength;
            if (s.state === "closed") s.state = "readable";
          }
          d.resolve({ value: new Ctor(view.buffer, view.byteOffset, fit / element), done: false });
        },
        close: () => d.resolve({ value: new Ctor(view.buffer, view.byteOffset, 0), done: true }),
        error: (error) => d.reject(error),
      });
      return d.promise;
    }
    cancel(reason) {
      let r;
      try {
        r = readerStream(this);
      } catch (error) {
        return Promise.reject(error);
      }
      return cancelReadable(readableState(r.stream), reason);
    }
    releaseLock() {
      releaseReader(this);
    }
  }

  const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);

  class ReadableStream {
    constructor(source = undefined, strategy = undefined) {
      const type = source && source.type !== undefined ? String(source.type) : undefined;
      if (type !== undefined && type !== "bytes") throw new RangeError(`Invalid type: ${type}`);
      const bytes = type === "bytes";
      const { hwm, size } = strategyOf(strategy, bytes ? 0 : 1);
      if (bytes && strategy && strategy.size) throw new RangeError("A byte stream cannot have a size function.");
      const s = {
        state: "readable",
        reader: undefined,
        error: undefined,
        disturbed: false,
        queue: [],
        queueSize: 0,
        hwm,
        size: bytes ? (chunk) => chunk.byteLength : size,
        started: false,
        closeRequested: false,
        pulling: false,
        pullAgain: false,
        bytes,
        pull: () => undefined,
        cancel: () => undefined,
      };
      rs.set(this, s);
      const controller = makeController(s);
      s.pull = call(source, "pull", () => [controller], s.pull);
      const cancelFn = source && source.cancel;
      s.cancel = typeof cancelFn === "function" ? (reason) => cancelFn.call(source, reason) : () => undefined;
      const start = call(source, "start", () => [controller], () => undefined);
      Promise.resolve(start()).then(
        () => {
          s.started = true;
          pullIfNeeded(s);
        },
        (error) => errorReadable(s, error),
      );
    }
    get locked() {
      return readableState(this).reader !== undefined;
    }
    cancel(reason) {
      const s = readableState(this);
      if (s.reader) return Promise.reject(new TypeError("Cannot cancel a locked ReadableStream."));
      return cancelReadable(s, reason);
    }
    getReader(options = undefined) {
      const mode = options && options.mode;
      if (mode === undefined) return new ReadableStreamDefaultReader(this);
      if (String(mode) === "byob") return new ReadableStreamBYOBReader(this);
      throw new RangeError(`Invalid reader mode: ${mode}`);
    }
    tee() {
      const reader = this.getReader();
      let reading = false;
      let canceled1 = false;
      let canceled2 = false;
      let reason1, reason2;
      let branch1, branch2;
      const cancelled = deferred();
      const pull = () => {
        if (reading) return Promise.resolve();
        reading = true;
        reader.read().then(
          ({ value, done }) => {
            reading = false;
            if (done) {
              if (!canceled1 && canEnqueue(rs.get(branch1))) closeRequest(rs.get(branch1));
              if (!canceled2 && canEnqueue(rs.get(branch2))) closeRequest(rs.get(branch2));
              cancelled.resolve();
              return;
            }
            if (!canceled1) enqueueReadable(rs.get(branch1), value);
            if (!canceled2) enqueueReadable(rs.get(branch2), value);
          },
          () => {
            reading = false;
          },
        );
        return Promise.resolve();
      };
      const cancelBoth = () => {
        if (canceled1 && canceled2) {
          const result = reader.cancel([reason1, reason2]);
          cancelled.resolve(result);
        }
        return cancelled.promise;
      };
      branch1 = new ReadableStream({
        pull,
        cancel(reason) {
          canceled1 = true;
          reason1 = reason;
          return cancelBoth();
        },
      });
      branch2 = new ReadableStream({
        pull,
        cancel(reason) {
          canceled2 = true;
          reason2 = reason;
          return cancelBoth();
        },
      });
      rd.get(reader).closed.promise.catch((error) => {
        errorReadable(rs.get(branch1), error);
        errorReadable(rs.get(branch2), error);
        cancelled.resolve();
      });
      return [branch1, branch2];
    }
    pipeTo(destination, options = {}) {
      if (!isReadable(this)) return Promise.reject(new TypeError("Illegal invocation"));
      if (!ws.has(destination)) return Promise.reject(new TypeError("pipeTo's destination must be a WritableStream"));
      if (this.locked) return Promise.reject(new TypeError("Cannot pipe a locked ReadableStream."));
      if (destination.locked) return Promise.reject(new TypeError("Cannot pipe to a locked WritableStream."));
      const preventClose = Boolean(options && options.preventClose);
      const preventAbort = Boolean(options && options.preventAbort);
      const preventCancel = Boolean(options && options.preventCancel);
      const signal = options && options.signal;
      const reader = this.getReader();
      const writer = destination.getWriter();
      const source = readableState(this);
      const sink = ws.get(destination);
      return new Promise((resolve, reject) => {
        let finished = false;
        let lastWrite = Promise.resolve();
        const finish = (error, isError) => {
          if (finished) return;
          finished = true;
          if (signal) signal.removeEventListener("abort", onAbort);
          lastWrite.catch(() => {}).then(() => {
            writer.releaseLock();
            reader.releaseLock();
            if (isError) reject(error);
            else resolve();
          });
        };
        const onAbort = () => {
          const error = signal.reason !== undefined ? signal.reason : new DOMException("The operation was aborted.", "AbortError");
          const actions = [];
          if (!preventAbort && sink.state === "writable") actions.push(writer.abort(error));
          if (!preventCancel && source.state === "readable") actions.push(reader.cancel(error));
          Promise.all(actions).then(() => finish(error, true), (e) => finish(e, true));
        };
        if (signal) {
          if (signal.aborted) return onAbort();
          signal.addEventListener("abort", onAbort);
        }
        writer.closed.catch((error) => {
          if (finished) return;
          if (!preventCancel) reader.cancel(error).then(() => finish(error, true), (e) => finish(e, true));
          else finish(error, true);
        });
        const step = () => {
          if (finished) return;
          writer.ready
            .then(() => reader.read())
            .then(
              ({ value, done }) => {
                if (finished) return;
                if (done) {
                  if (preventClose) return finish(undefined, false);
                  lastWrite = writer.close();
                  lastWrite.then(() => finish(undefined, false), (error) => finish(error, true));
                  return;
                }
                lastWrite = writer.write(value);
                handled(lastWrite);
                step();
              },
              (error) => {
                if (finished) return;
                if (sink.state === "errored" || sink.state === "erroring") return;
                if (preventAbort) return finish(error, true);
                writer.abort(error).then(() => finish(error, true), (e) => finish(e, true));
              },
            );
        };
        step();
      });
    }
    pipeThrough(transform, options = {}) {
      if (!transform || !isReadable(transform.readable) || !ws.has(transform.writable)) {
        throw new TypeError("pipeThrough needs a { writable, readable } pair.");
      }
      if (this.locked) throw new TypeError("Cannot pipe a locked ReadableStream.");
      if (transform.writable.locked) throw new TypeError("Cannot pipe to a locked WritableStream.");
      handled(this.pipeTo(transform.writable, options));
      return transform.readable;
    }
    values(options = {}) {
      const reader = this.getReader();
      const preventCancel = Boolean(options && options.preventCancel);
      const iterator = Object.create(AsyncIteratorPrototype);
      iterator.next = () =>
        reader.read().then(
          (result) => {
            if (result.done) reader.releaseLock();
            return result;
          },
          (error) => {
            reader.releaseLock();
            throw error;
          },
        );
      iterator.return = (value) => {
        const finish = preventCancel ? Promise.resolve() : reader.cancel(value);
        return finish.then(() => {
          reader.releaseLock();
          return { value, done: true };
        });
      };
      return iterator;
    }
    [Symbol.asyncIterator](options) {
      return this.values(options);
    }
    static from(iterable) {
      if (isReadable(iterable)) return iterable;
      const iterator =
        iterable && typeof iterable[Symbol.asyncIterator] === "function"
          ? iterable[Symbol.asyncIterator]()
          : iterable && typeof iterable[Symbol.iterator] === "function"
            ? iterable[Symbol.iterator]()
            : null;
      if (!iterator) throw new TypeError("ReadableStream.from needs an iterable or async iterable.");
      return new ReadableStream(
        {
          async pull(controller) {
            const { value, done } = await iterator.next();
            if (done) controller.close();
            else controller.enqueue(await value);
          },
          async cancel(reason) {
            if (typeof iterator.return === "function") await iterator.return(reason);
          },
        },
        { highWaterMark: 0 },
      );
    }
  }

  // --- WritableStream --------------------------------------------------------------------------
  const ws = new WeakMap(); // stream -> state
  const wc = new WeakMap(); // controller -> state
  const wr = new WeakMap(); // writer -> { stream, ready, closed }

  function writableState(stream) {
    const state = ws.get(stream);
    if (!state) throw new TypeError("Illegal invocation: not a WritableStream");
    return state;
  }
  function writableDesiredSize(s) {
    if (s.state === "errored" || s.state === "erroring") return null;
    if (s.state === "closed") return 0;
    return s.hwm - s.queueSize;
  }
  function settled(value, error) {
    return error === undefined
      ? { promise: Promise.resolve(value), resolve() {}, reject() {} }
      : { promise: rejected(error), resolve() {}, reject() {} };
  }
  function updateBackpressure(s) {
    const backpressure = s.state === "writable" && !s.closeQueued && writableDesiredSize(s) <= 0;
    if (backpressure === s.backpressure) return;
    s.backpressure = backpressure;
    const writer = s.writer && wr.get(s.writer);
    if (!writer) return;
    if (backpressure) writer.ready = deferred();
    else writer.ready.resolve();
  }
  function startErroring(s, reason) {
    s.state = "erroring";
    s.error = reason;
    const writer = s.writer && wr.get(s.writer);
    if (writer) {
      writer.ready.reject(reason);
      if (!s.backpressure) writer.ready = settled(undefined, reason);
      handled(writer.ready.promise);
    }
    if (!s.inFlight && s.started) finishErroring(s);
  }
  function finishErroring(s) {
    s.state = "errored";
    const error = s.error;
    for (const item of s.queue.splice(0)) item.reject(error);
    s.queueSize = 0;
    const writer = s.writer && wr.get(s.writer);
    const abort = s.abortRequest;
    s.abortRequest = undefined;
    const rejectClosed = () => {
      if (writer) {
        writer.closed.reject(error);
        handled(writer.closed.promise);
      }
    };
    if (!abort) {
      rejectClosed();
      return;
    }
    if (abort.wasAlreadyErroring) {
      abort.reject(error);
      rejectClosed();
      return;
    }
    const sinkAbort = s.abort;
    s.write = s.close = s.abort = () => undefined;
    promiseCall(() => sinkAbort(abort.reason)).then(
      () => {
        abort.resolve();
        rejectClosed();
      },
      (e) => {
        abort.reject(e);
        rejectClosed();
      },
    );
  }
  function errorWritable(s, error) {
    if (s.state === "writable") startErroring(s, error);
    else if (s.state === "erroring" && !s.inFlight) finishErroring(s);
  }
  function advance(s) {
    if (!s.started || s.inFlight) return;
    if (s.state === "erroring") return finishErroring(s);
    if (s.state !== "writable" || s.queue.length === 0) return;
    const item = s.queue[0];
    s.inFlight = true;
    if (item.close) {
      const close = s.close;
      s.write = s.close = () => undefined;
      promiseCall(close).then(
        () => {
          s.inFlight = false;
          s.queue.shift();
          if (s.state === "erroring") {
            // A close that succeeded wins over a pending abort.
            s.error = undefined;
            if (s.abortRequest) s.abortRequest.resolve();
            s.abortRequest = undefined;
          }
          s.state = "closed";
          item.resolve();
          const writer = s.writer && wr.get(s.writer);
          if (writer) writer.closed.resolve();
        },
        (error) => {
          s.inFlight = false;
          s.queue.shift();
          item.reject(error);
          if (s.abortRequest) {
            s.abortRequest.reject(error);
            s.abortRequest = undefined;
          }
          if (s.state === "writable") startErroring(s, error);
          finishErroring(s);
        },
      );
      return;
    }
    promiseCall(() => s.write(item.chunk)).then(
      () => {
        s.inFlight = false;
        s.queue.shift();
        s.queueSize -= item.size;
        item.resolve();
        if (s.state === "erroring") return finishErroring(s);
        updateBackpressure(s);
        advance(s);
      },
      (error) => {
        s.inFlight = false;
        s.queue.shift();
        item.reject(error);
        if (s.state === "writable") startErroring(s, error);
        if (s.state === "erroring") finishErroring(s);
      },
    );
  }
  function writeChunk(s, chunk) {
    if (s.state === "errored" || s.state === "erroring") return Promise.reject(s.error);
    if (s.closeQueued || s.state === "closed") return Promise.reject(new TypeError("Cannot write to a closing or closed WritableStream."));
    let size;
    try {
      size = s.size(chunk);
      if (!(size >= 0) || size === Infinity) throw new RangeError("The chunk size must be a non-negative finite number.");
    } catch (error) {
      errorWritable(s, error);
      return Promise.reject(error);
    }
    const d = deferred();
    s.queue.push({ chunk, size, resolve: d.resolve, reject: d.reject });
    s.queueSize += size;
    updateBackpressure(s);
    advance(s);
    return d.promise;
  }
  function closeWritable(s) {
    if (s.state === "closed" || s.state === "errored") {
      return Promise.reject(new TypeError("Cannot close a closed or errored WritableStream."));
    }
    if (s.closeQueued) return Promise.reject(new TypeError("The WritableStream is already closing."));
    const d = deferred();
    s.closeQueued = true;
    if (s.backpressure && s.state === "writable") {
      const writer = s.writer && wr.get(s.writer);
      if (writer) writer.ready.resolve();
      s.backpressure = false;
    }
    s.queue.push({ close: true, resolve: d.resolve, reject: d.reject });
    advance(s);
    return d.promise;
  }
  function abortWritable(s, reason) {
    if (s.state === "closed" || s.state === "errored") return Promise.resolve();
    s.abortController.abort(reason);
    if (s.state === "closed" || s.state === "errored") return Promise.resolve();
    if (s.abortRequest) return s.abortRequest.promise;
    const wasAlreadyErroring = s.state === "erroring";
    const d = deferred();
    s.abortRequest = { promise: d.promise, resolve: d.resolve, reject: d.reject, reason, wasAlreadyErroring };
    if (!wasAlreadyErroring) startErroring(s, reason);
    return d.promise;
  }

  class WritableStreamDefaultController {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
    get signal() {
      return wc.get(this).abortController.signal;
    }
    error(error) {
      const s = wc.get(this);
      if (s.state === "writable") startErroring(s, error);
    }
  }

  class WritableStream {
    constructor(sink = undefined, strategy = undefined) {
      if (sink && sink.type !== undefined) throw new RangeError("Invalid type is specified");
      const { hwm, size } = strategyOf(strategy, 1);
      const controller = Object.create(WritableStreamDefaultController.prototype);
      const s = {
        state: "writable",
        writer: undefined,
        error: undefined,
        queue: [],
        queueSize: 0,
        hwm,
        size,
        started: false,
        inFlight: false,
        closeQueued: false,
        backpressure: false,
        abortRequest: undefined,
        abortController: new AbortController(),
      };
      wc.set(controller, s);
      ws.set(this, s);
      const method = (name) => {
        const fn = sink && sink[name];
        if (fn === undefined || fn === null) return undefined;
        if (typeof fn !== "function") throw new TypeError(`${name} must be a function`);
        return fn;
      };
      const write = method("write");
      const close = method("close");
      const abort = method("abort");
      const start = method("start");
      s.write = write ? (chunk) => write.call(sink, chunk, controller) : () => undefined;
      s.close = close ? () => close.call(sink) : () => undefined;
      s.abort = abort ? (reason) => abort.call(sink, reason) : () => undefined;
      updateBackpressure(s);
      // Without a start() the sink is ready at once (as in workerd: the first write reaches
      // the sink synchronously).
      if (!start) s.started = true;
      Promise.resolve(start ? start.call(sink, controller) : undefined).then(
        () => {
          s.started = true;
          if (s.state === "erroring") finishErroring(s);
          else advance(s);
        },
        (error) => {
          s.started = true;
          if (s.state === "writable") startErroring(s, error);
          if (s.state === "erroring") finishErroring(s);
        },
      );
    }
    get locked() {
      return writableState(this).writer !== undefined;
    }
    abort(reason) {
      const s = writableState(this);
      if (s.writer) return Promise.reject(new TypeError("Cannot abort a locked WritableStream."));
      return abortWritable(s, reason);
    }
    close() {
      const s = writableState(this);
      if (s.writer) return Promise.reject(new TypeError("Cannot close a locked WritableStream."));
      return closeWritable(s);
    }
    getWriter() {
      return new WritableStreamDefaultWriter(this);
    }
  }

  function writerState(writer) {
    const w = wr.get(writer);
    if (!w) throw new TypeError("Illegal invocation");
    if (!w.stream) throw new TypeError("This writer has been released.");
    return w;
  }

  class WritableStreamDefaultWriter {
    constructor(stream) {
      const s = writableState(stream);
      if (s.writer) throw new TypeError("WritableStream is locked to a writer.");
      const w = { stream, ready: null, closed: null };
      if (s.state === "writable") {
        w.ready = s.backpressure && !s.closeQueued ? deferred() : settled();
        w.closed = deferred();
      } else if (s.state === "erroring") {
        w.ready = settled(undefined, s.error);
        w.closed = deferred();
      } else if (s.state === "closed") {
        w.ready = settled();
        w.closed = settled();
      } else {
        w.ready = settled(undefined, s.error);
        w.closed = settled(undefined, s.error);
      }
      handled(w.closed.promise);
      wr.set(this, w);
      s.writer = this;
    }
    get closed() {
      return wr.get(this).closed.promise;
    }
    get ready() {
      return wr.get(this).ready.promise;
    }
    get desiredSize() {
      return writableDesiredSize(writableState(writerState(this).stream));
    }
    write(chunk) {
      try {
        return writeChunk(writableState(writerState(this).stream), chunk);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    close() {
      try {
        return closeWritable(writableState(writerState(this).stream));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    abort(reason) {
      try {
        return abortWritable(writableState(writerState(this).stream), reason);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    releaseLock() {
      const w = wr.get(this);
      if (!w || !w.stream) return;
      const s = writableState(w.stream);
      const error = new TypeError("The writer was released.");
      w.ready.reject(error);
      w.ready = settled(undefined, error);
      w.closed.reject(error);
      w.closed = settled(undefined, error);
      s.writer = undefined;
      w.stream = undefined;
    }
  }

  // --- TransformStream -------------------------------------------------------------------------
  const tc = new WeakMap(); // controller -> state

  class TransformStreamDefaultController {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
    get desiredSize() {
      return desiredSize(rs.get(tc.get(this).readable));
    }
    enqueue(chunk) {
      const t = tc.get(this);
      const source = rs.get(t.readable);
      if (!canEnqueue(source)) throw new TypeError("The readable side of the TransformStream is closed or errored.");
      try {
        enqueueReadable(source, chunk);
      } catch (error) {
        errorWritable(ws.get(t.writable), error);
        throw source.error !== undefined ? source.error : error;
      }
      if (!shouldPull(source) && !t.backpressure) setTransformBackpressure(t, true);
    }
    error(reason) {
      errorTransform(tc.get(this), reason);
    }
    terminate() {
      const t = tc.get(this);
      const source = rs.get(t.readable);
      if (canEnqueue(source)) closeRequest(source);
      errorWritable(ws.get(t.writable), new TypeError("The TransformStream was terminated."));
      if (t.backpressure) setTransformBackpressure(t, false);
    }
  }
  function setTransformBackpressure(t, value) {
    if (t.backpressureChange) t.backpressureChange.resolve();
    t.backpressureChange = deferred();
    t.backpressure = value;
  }
  function errorTransform(t, reason) {
    errorReadable(rs.get(t.readable), reason);
    errorWritable(ws.get(t.writable), reason);
    if (t.backpressure) setTransformBackpressure(t, false);
  }

  class TransformStream {
    constructor(transformer = undefined, writableStrategy = undefined, readableStrategy = undefined) {
      if (transformer && (transformer.readableType !== undefined || transformer.writableType !== undefined)) {
        throw new RangeError("Invalid readableType or writableType");
      }
      const method = (name) => {
        const fn = transformer && transformer[name];
        if (fn === undefined || fn === null) return undefined;
        if (typeof fn !== "function") throw new TypeError(`${name} must be a function`);
        return fn;
      };
      const transform = method("transform");
      const flush = method("flush");
      const cancel = method("cancel");
      const start = method("start");
      const controller = Object.create(TransformStreamDefaultController.prototype);
      const t = { readable: null, writable: null, backpressure: undefined, backpressureChange: undefined };
      tc.set(controller, t);
      const started = deferred();
      const runTransform = (chunk) => {
        if (transform) return promiseCall(() => transform.call(transformer, chunk, controller));
        try {
          controller.enqueue(chunk);
          return Promise.resolve();
        } catch (error) {
          return Promise.reject(error);
        }
      };
      t.writable = new WritableStream(
        {
          start: () => started.promise,
          write(chunk) {
            if (t.backpressure) {
              return t.backpressureChange.promise.then(() => {
                const sink = ws.get(t.writable);
                if (sink.state === "erroring") throw sink.error;
                return runTransform(chunk);
              });
            }
            return runTransform(chunk).catch((error) => {
              errorTransform(t, error);
              throw error;
            });
          },
          close() {
            return promiseCall(() => (flush ? flush.call(transformer, controller) : undefined)).then(
              () => {
                const source = rs.get(t.readable);
                if (source.state === "errored") throw source.error;
                if (canEnqueue(source)) closeRequest(source);
              },
              (error) => {
                errorReadable(rs.get(t.readable), error);
                throw error;
              },
            );
          },
          abort(reason) {
            errorReadable(rs.get(t.readable), reason);
            return cancel ? cancel.call(transformer, reason) : undefined;
          },
        },
        writableStrategy,
      );
      t.readable = new ReadableStream(
        {
          start: () => started.promise,
          pull() {
            setTransformBackpressure(t, false);
            return t.backpressureChange.promise;
          },
          cancel(reason) {
            errorWritable(ws.get(t.writable), reason);
            if (t.backpressure) setTransformBackpressure(t, false);
            return cancel ? cancel.call(transformer, reason) : undefined;
          },
        },
        readableStrategy === undefined ? { highWaterMark: 0 } : readableStrategy,
      );
      setTransformBackpressure(t, true);
      transforms.set(this, t);
      Promise.resolve(start ? start.call(transformer, controller) : undefined).then(started.resolve, (error) => {
        started.reject(error);
      });
    }
    get readable() {
      return transforms.get(this).readable;
    }
    get writable() {
      return transforms.get(this).writable;
    }
  }
  const transforms = new WeakMap(); // TransformStream -> state

  // --- encoding streams ------------------------------------------------------------------------
  // How many bytes at the end of `bytes` start a UTF-8 sequence that is not complete yet.
  function incompleteTail(bytes) {
    const n = bytes.length;
    for (let back = 1; back <= Math.min(3, n); back++) {
      const byte = bytes[n - back];
      if ((byte & 0xc0) === 0x80) continue; // continuation byte
      const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
      return need > back ? back : 0;
    }
    return 0;
  }
  function toBytes(chunk) {
    if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
    if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return null;
  }
  // A UTF-8 decoder that carries an incomplete sequence from one chunk to the next.
  function streamingDecoder(label, options) {
    const fatal = Boolean(options && options.fatal);
    const first = new g.TextDecoder(label, { fatal, ignoreBOM: Boolean(options && options.ignoreBOM) });
    const rest = new g.TextDecoder(label, { fatal, ignoreBOM: true });
    let started = false;
    let pending = new Uint8Array(0);
    return {
      fatal,
      ignoreBOM: first.ignoreBOM,
      encoding: first.encoding,
      decode(chunk, stream) {
        let bytes = toBytes(chunk);
        if (bytes === null) throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'.");
        if (pending.length > 0) {
          const joined = new Uint8Array(pending.length + bytes.length);
          joined.set(pending);
          joined.set(bytes, pending.length);
          bytes = joined;
        }
        const cut = stream ? incompleteTail(bytes) : 0;
        pending = bytes.slice(bytes.length - cut);
        const whole = bytes.subarray(0, bytes.length - cut);
        if (whole.length === 0 && stream) return "";
        const text = (started ? rest : first).decode(whole);
        started = started || whole.length > 0;
        if (!stream) started = false;
        return text;
      },
    };
  }
  native.streamingDecoder = streamingDecoder;

  const textStreams = new WeakMap();
  class TextEncoderStream {
    constructor() {
      const encoder = new g.TextEncoder();
      let high = "";
      textStreams.set(
        this,
        new TransformStream({
          transform(chunk, controller) {
            let text = high + String(chunk);
            high = "";
            const last = text.charCodeAt(text.length - 1);
            if (last >= 0xd800 && last <= 0xdbff) {
              high = text.slice(-1);
              text = text.slice(0, -1);
            }
            if (text.length > 0) controller.enqueue(encoder.encode(text));
          },
          flush(controller) {
            if (high) controller.enqueue(new Uint8Array([0xef, 0xbf, 0xbd]));
          },
        }),
      );
    }
    get encoding() {
      return "utf-8";
    }
    get readable() {
      return textStreams.get(this).readable;
    }
    get writable() {
      return textStreams.get(this).writable;
    }
  }
  class TextDecoderStream {
    #decoder;
    constructor(label = "utf-8", options = {}) {
      const decoder = streamingDecoder(label, options);
      this.#decoder = decoder;
      textStreams.set(
        this,
        new TransformStream({
          transform(chunk, controller) {
            const text = decoder.decode(chunk, true);
            if (text.length > 0) controller.enqueue(text);
          },
          flush(controller) {
            const text = decoder.decode(new Uint8Array(0), false);
            if (text.length > 0) controller.enqueue(text);
          },
        }),
      );
    }
    get encoding() {
      return this.#decoder.encoding;
    }
    get fatal() {
      return this.#decoder.fatal;
    }
    get ignoreBOM() {
      return this.#decoder.ignoreBOM;
    }
    get readable() {
      return textStreams.get(this).readable;
    }
    get writable() {
      return textStreams.get(this).writable;
    }
  }

  // --- Workers-only byte streams -----------------------------------------------------------------
  function byteTransformer(check) {
    return {
      transform(chunk, controller) {
        const bytes = toBytes(chunk);
        if (bytes === null) {
          throw new TypeError(
            "This TransformStream is being used as a byte stream, but received an object of non-ArrayBuffer/ArrayBufferView type on its writable side.",
          );
        }
        if (check) check.write(bytes.byteLength);
        if (bytes.byteLength > 0) controller.enqueue(bytes);
      },
      flush() {
        if (check) check.close();
      },
    };
  }
  class IdentityTransformStream extends TransformStream {
    constructor(options = undefined) {
      super(byteTransformer(null), undefined, options && options.highWaterMark !== undefined ? { highWaterMark: options.highWaterMark } : undefined);
    }
  }
  class FixedLengthStream extends TransformStream {
    constructor(length, options = undefined) {
      const expected = Number(length);
      if (!Number.isInteger(expected) || expected < 0) throw new TypeError("FixedLengthStream requires a non-negative integer length.");
      let seen = 0;
      super(
        byteTransformer({
          write(n) {
            seen += n;
            if (seen > expected) throw new TypeError("Attempt to write too many bytes through a FixedLengthStream.");
          },
          close() {
            if (seen < expected) throw new TypeError("FixedLengthStream did not see all expected bytes before close().");
          },
        }),
        undefined,
        options && options.highWaterMark !== undefined ? { highWaterMark: options.highWaterMark } : undefined,
      );
      fixedLengths.set(this.readable, expected);
    }
  }
  const fixedLengths = new WeakMap();

  // Reads a whole stream of byte chunks (at most `limit` bytes) into one ArrayBuffer.
  async function readAll(stream, limit = Infinity) {
    const reader = stream.getReader();
    const chunks = [];
    let total = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const bytes = typeof value === "string" ? new g.TextEncoder().encode(value) : toBytes(value);
      if (bytes === null) {
        throw new TypeError("This ReadableStream did not return bytes.");
      }
      total += bytes.byteLength;
      if (total > limit) {
        reader.cancel().catch(() => {});
        throw new RangeError(`The body is larger than ${limit} bytes.`);
      }
      chunks.push(bytes);
    }
    reader.releaseLock();
    if (chunks.length === 1 && chunks[0].byteOffset === 0 && chunks[0].byteLength === chunks[0].buffer.byteLength) {
      return chunks[0].buffer;
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out.buffer;
  }
  native.streams = {
    isReadable,
    readAll,
    toBytes,
    disturbed: (stream) => readableState(stream).disturbed,
    fixedLength: (stream) => fixedLengths.get(stream),
  };

  g.ReadableStream = ReadableStream;
  g.ReadableStreamDefaultReader = ReadableStreamDefaultReader;
  g.ReadableStreamBYOBReader = ReadableStreamBYOBReader;
  g.ReadableStreamDefaultController = ReadableStreamDefaultController;
  g.ReadableByteStreamController = ReadableByteStreamController;
  g.WritableStream = WritableStream;
  g.WritableStreamDefaultWriter = WritableStreamDefaultWriter;
  g.WritableStreamDefaultController = WritableStreamDefaultController;
  g.TransformStream = TransformStream;
  g.TransformStreamDefaultController = TransformStreamDefaultController;
  g.CountQueuingStrategy = CountQueuingStrategy;
  g.ByteLengthQueuingStrategy = ByteLengthQueuingStrategy;
  g.TextEncoderStream = TextEncoderStream;
  g.TextDecoderStream = TextDecoderStream;
  g.IdentityTransformStream = IdentityTransformStream;
  g.FixedLengthStream = FixedLengthStream;
})
