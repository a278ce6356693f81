// Workflows in JavaScript: one run of a `WorkflowEntrypoint` class's `run(event, step)`, the
// `step` object whose methods are durable checkpoints kept by the Rust engine
// (burrow_services::workflows), `NonRetryableError` (for `cloudflare:workflows`), and the
// Workflow binding in `env` (create, createBatch, get; instance status/pause/resume/terminate/
// restart/sendEvent). Step results, params, outputs and event payloads cross as JSON, the
// format the engine stores. Evaluated once per isolate after the prelude, as a function of the
// native helpers and the prelude's internals.
(function (native, internals) {
  "use strict";
  const { done, reject, makeContext } = internals.helpers;

  class NonRetryableError extends Error {
    constructor(message, name) {
      super(message);
      this.name = name === undefined ? "NonRetryableError" : String(name);
    }
  }
  Object.defineProperty(globalThis, Symbol.for("burrow.NonRetryableError"), { value: NonRetryableError });

  function errorShape(error) {
    if (error instanceof Error) {
      return { name: error.name || "Error", message: String(error.message) };
    }
    return { name: "Error", message: typeof error === "string" ? error : String(error) };
  }
  function errorFrom(shape) {
    const error = shape.name === "NonRetryableError" ? new NonRetryableError(shape.message) : new Error(shape.message);
    error.name = shape.name;
    return error;
  }
  function toJson(value, what) {
    const text = JSON.stringify(value === undefined ? null : value);
    if (text === undefined) throw new TypeError(`${what} is not serializable as JSON.`);
    return text;
  }
  function encode(text) {
    return native.utf8Encode(text);
  }
  function durationOf(value, what) {
    if (typeof value === "number") {
      if (!Number.isFinite(value) || value < 0) throw new RangeError(`${what} must be a non-negative number of milliseconds.`);
      return Math.round(value);
    }
    if (typeof value === "string") return value;
    throw new TypeError(`${what} must be a number of milliseconds or a string such as "5 minutes".`);
  }
  function stepName(name) {
    if (typeof name !== "string") throw new TypeError("A step name must be a string.");
    return name;
  }

  // Live runs by the Rust side's key: the event id, the step promises' settlers and the
  // callbacks of `step.do`.
  const runs = new Map();

  class WorkflowStep {
    #key;
    constructor(key) {
      this.#key = key;
    }
    #request(kind, name, argument, callback) {
      const run = runs.get(this.#key);
      if (run === undefined) return new Promise(() => {});
      const token = run.nextToken++;
      return new Promise((resolve, reject) => {
        run.steps.set(token, { resolve, reject });
        if (callback !== undefined) run.callbacks.set(token, callback);
        native.wfStep(this.#key, token, kind, name, JSON.stringify(argument));
      });
    }
    async do(name, config, callback) {
      stepName(name);
      if (callback === undefined) {
        callback = config;
        config = undefined;
      }
      if (typeof callback !== "function") throw new TypeError("step.do() requires a callback function.");
      const settings = {};
      if (config !== undefined && config !== null) {
        if (typeof config !== "object") throw new TypeError("step.do()'s config must be an object.");
        if (config.retries !== undefined) {
          const retries = config.retries;
          settings.retries = {};
          if (retries.limit !== undefined) settings.retries.limit = Number(retries.limit);
          if (retries.delay !== undefined) settings.retries.delay = durationOf(retries.delay, "retries.delay");
          if (retries.backoff !== undefined) settings.retries.backoff = String(retries.backoff);
        }
        if (config.timeout !== undefined) settings.timeout = durationOf(config.timeout, "timeout");
      }
      return JSON.parse(await this.#request("do", name, settings, callback));
    }
    async sleep(name, duration) {
      stepName(name);
      await this.#request("sleep", name, durationOf(duration, "step.sleep's duration"));
    }
    async sleepUntil(name, timestamp) {
      stepName(name);
      const at = timestamp instanceof Date ? timestamp.getTime() : Number(timestamp);
      if (!Number.isFinite(at)) throw new TypeError("step.sleepUntil() requires a Date or a number of milliseconds since the epoch.");
      await this.#request("sleepUntil", name, at);
    }
    async waitForEvent(name, options) {
      stepName(name);
      if (options === undefined || options === null) options = {};
      if (options.type !== undefined && typeof options.type !== "string") {
        throw new TypeError("step.waitForEvent()'s `type` must be a string.");
      }
      // Without a type (as some guides write it) the step waits for events typed as its name.
      const argument = { type: options.type === undefined ? name : options.type };
      if (options.timeout !== undefined) argument.timeout = durationOf(options.timeout, "timeout");
      const event = JSON.parse(await this.#request("waitForEvent", name, argument));
      return { payload: event.payload, timestamp: new Date(event.timestamp), type: event.type };
    }
  }

  // Starts one run of class `className`; the outcome goes back through `done`: status 0 with
  // the output's JSON, or 1 with the error's {name, message}.
  internals.workflowRun = function (id, env, key, className, eventJson) {
    runs.set(key, { id, nextToken: 1, steps: new Map(), callbacks: new Map() });
    try {
      const exports = internals.exports || {};
      const Class = exports[className];
      if (typeof Class !== "function") {
        throw new TypeError(
          `The Workflow's class_name "${className}" is not a class the main module exports (export class ${className} extends WorkflowEntrypoint { ... }).`,
        );
      }
      const raw = JSON.parse(eventJson);
      const event = { payload: raw.payload, timestamp: new Date(raw.timestamp), instanceId: raw.instanceId };
      const instance = new Class(makeContext(), env);
      if (typeof instance.run !== "function") {
        throw new TypeError(`The Workflow class "${className}" has no run(event, step) method.`);
      }
      Promise.resolve()
        .then(() => instance.run(event, new WorkflowStep(key)))
        .then(
          (output) => {
            let text;
            try {
              text = toJson(output, "The workflow's output");
            } catch (error) {
              done(id, 1, [], encode(JSON.stringify(errorShape(error))));
              return;
            }
            done(id, 0, [], encode(text));
          },
          (error) => done(id, 1, [], encode(JSON.stringify(errorShape(error)))),
        )
        .finally(() => runs.delete(key));
    } catch (error) {
      runs.delete(key);
      reject(id, error);
    }
  };

  // Runs attempt `attempt` of the callback of step `token`; the result goes back to the
  // engine through `native.wfCallbackDone(call, ok, json)`.
  internals.workflowCallback = function (key, token, call, attempt) {
    const run = runs.get(key);
    const callback = run && run.callbacks.get(token);
    if (callback === undefined) {
      native.wfCallbackDone(call, false, JSON.stringify({ name: "Error", message: "the step's run has ended" }));
      return;
    }
    Promise.resolve()
      .then(() => callback({ attempt }))
      .then((value) => native.wfCallbackDone(call, true, toJson(value, "The step's result")))
      .catch((error) => native.wfCallbackDone(call, false, JSON.stringify(errorShape(error))));
  };

  // Settles the promise of step `token`: `ok` with the result's JSON, else the error's shape.
  internals.workflowSettle = function (key, token, ok, json) {
    const run = runs.get(key);
    const step = run && run.steps.get(token);
    if (step === undefined) return;
    run.steps.delete(token);
    run.callbacks.delete(token);
    if (ok) step.resolve(json);
    else step.reject(errorFrom(JSON.parse(json)));
  };

  // The run was suspended or cancelled: drop its promises so the suspended `run` can be
  // collected, and release its event.
  internals.workflowForget = function (key) {
    const run = runs.get(key);
    if (run === undefined) return;
    runs.delete(key);
    done(run.id, 2, [], new ArrayBuffer(0));
  };

  // --- the binding ---------------------------------------------------------------------------
  class WorkflowInstance {
    #binding;
    constructor(binding, id) {
      this.#binding = binding;
      Object.defineProperty(this, "id", { value: id, enumerable: true });
    }
    async status() {
      return JSON.parse(await native.wfStatus(this.#binding, this.id));
    }
    async pause() {
      await native.wfControl(this.#binding, this.id, "pause");
    }
    async resume() {
      await native.wfControl(this.#binding, this.id, "resume");
    }
    async terminate() {
      await native.wfControl(this.#binding, this.id, "terminate");
    }
    async restart() {
      await native.wfControl(this.#binding, this.id, "restart");
    }
    async sendEvent(event, payload) {
      // sendEvent(type, payload), as some guides write it, is sendEvent({type, payload}).
      if (typeof event === "string") event = { type: event, payload };
      if (event === undefined || event === null || typeof event.type !== "string") {
        throw new TypeError("sendEvent() requires {type, payload} with a string type.");
      }
      await native.wfSendEvent(this.#binding, this.id, event.type, toJson(event.payload, "The event's payload"));
    }
  }
  function createOptions(options) {
    if (options === undefined || options === null) return { params: {} };
    if (typeof options !== "object") throw new TypeError("create() options must be an object.");
    const result = { params: options.params === undefined ? {} : options.params };
    if (options.id !== undefined) result.id = String(options.id);
    return result;
  }
  class Workflow {
    #binding;
    constructor(binding) {
      this.#binding = binding;
    }
    async create(options) {
      const id = await native.wfCreate(this.#binding, toJson([createOptions(options)], "The instance's params"));
      return new WorkflowInstance(this.#binding, JSON.parse(id)[0]);
    }
    async createBatch(batch) {
      if (!Array.isArray(batch)) throw new TypeError("createBatch() requires an array of options.");
      const ids = JSON.parse(await native.wfCreate(this.#binding, toJson(batch.map(createOptions), "The instances' params")));
      return ids.map((id) => new WorkflowInstance(this.#binding, id));
    }
    async get(id) {
      await native.wfStatus(this.#binding, String(id));
      return new WorkflowInstance(this.#binding, String(id));
    }
  }
  internals.workflow = (binding) => new Workflow(binding);
});
