// Queue consumers: the `queue(batch, env, ctx)` event, with Cloudflare's MessageBatch and
// Message. Every ack/retry call goes to the Rust batch (burrow_services::queues::MessageBatch),
// which applies the precedence rules of spec §2; JavaScript only shapes the objects.
// Evaluated once per isolate after the prelude, as a function of the native helpers and the
// prelude's internals.
(function (native, internals) {
  "use strict";
  const { done, reject, makeContext } = internals.helpers;

  function delayOf(options, method) {
    if (options === undefined || options === null) return null;
    if (typeof options !== "object") throw new TypeError(`${method}() options must be an object.`);
    if (options.delaySeconds === undefined) return null;
    const delay = Number(options.delaySeconds);
    if (!Number.isFinite(delay) || delay < 0) {
      throw new RangeError(`delaySeconds must be a non-negative number (got ${options.delaySeconds}).`);
    }
    return Math.floor(delay);
  }

  function decodeBody(contentType, bytes) {
    switch (contentType) {
      case "json":
        return JSON.parse(native.utf8Decode(new Uint8Array(bytes)));
      case "text":
        return native.utf8Decode(new Uint8Array(bytes));
      default:
        // "bytes", and "v8" from a non-JavaScript producer (Burrow has no V8 deserializer).
        return bytes;
    }
  }

  class Message {
    #batch;
    #index;
    #body;
    #contentType;
    #bytes;
    #decoded = false;
    constructor(batch, index, id, timestamp, contentType, bytes, attempts) {
      this.#batch = batch;
      this.#index = index;
      this.#contentType = contentType;
      this.#bytes = bytes;
      Object.defineProperty(this, "id", { value: id, enumerable: true });
      Object.defineProperty(this, "timestamp", { value: new Date(timestamp), enumerable: true });
      Object.defineProperty(this, "attempts", { value: attempts, enumerable: true });
    }
    get body() {
      if (!this.#decoded) {
        this.#body = decodeBody(this.#contentType, this.#bytes);
        this.#decoded = true;
      }
      return this.#body;
    }
    ack() {
      native.queueAck(this.#batch, this.#index);
    }
    retry(options) {
      native.queueRetry(this.#batch, this.#index, delayOf(options, "retry"));
    }
    toJSON() {
      return { id: this.id, timestamp: this.timestamp, body: this.body, attempts: this.attempts };
    }
  }

  class MessageBatch {
    #batch;
    constructor(batch, queue, messages, backlogCount, backlogBytes) {
      this.#batch = batch;
      Object.defineProperty(this, "queue", { value: queue, enumerable: true });
      Object.defineProperty(this, "messages", { value: Object.freeze(messages), enumerable: true });
      Object.defineProperty(this, "metadata", {
        value: Object.freeze({ metrics: Object.freeze({ backlogCount, backlogBytes }) }),
        enumerable: true,
      });
    }
    ackAll() {
      native.queueAckAll(this.#batch);
    }
    retryAll(options) {
      native.queueRetryAll(this.#batch, delayOf(options, "retryAll"));
    }
  }

  // Runs the handler for batch `batch` (the Rust side's key for its calls). `messages` holds
  // [id, timestamp ms, content type, ArrayBuffer, attempts] per message.
  internals.queueEvent = function (id, handlers, env, batch, queue, messages, [backlogCount, backlogBytes]) {
    if (typeof handlers.queue !== "function") {
      reject(id, new Error("Handler does not export a queue() function."));
      return;
    }
    try {
      const list = messages.map(
        ([messageId, timestamp, contentType, bytes, attempts], index) =>
          new Message(batch, index, messageId, timestamp, contentType, bytes, attempts),
      );
      const object = new MessageBatch(batch, queue, list, backlogCount, backlogBytes);
      const waiting = [];
      const ctx = makeContext();
      const waitUntil = ctx.waitUntil;
      // As on Cloudflare, the batch settles once the handler and its waitUntil promises have.
      ctx.waitUntil = (promise) => {
        waiting.push(Promise.resolve(promise).catch(() => {}));
        waitUntil(promise);
      };
      Promise.resolve(handlers.queue(object, env, ctx))
        .then(() => Promise.all(waiting))
        .then(() => done(id, 0, [], new ArrayBuffer(0)))
        .catch((error) => reject(id, error));
    } catch (error) {
      reject(id, error);
    }
  };
});
