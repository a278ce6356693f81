// WebSockets in plain Workers: WebSocketPair, WebSocket (accept, send, close,
// addEventListener/on* for message/close/error), MessageEvent/CloseEvent/ErrorEvent. The server
// end of a pair whose client end went out in a `101` Response is bound to the connection
// (`native.wsSend`/`wsClose`; the connection's events come back through `internals.wsDispatch`).
// Two ends in the same isolate talk to each other directly. Evaluated after the prelude.
(function (native, internals) {
  "use strict";
  const g = globalThis;

  class Event {
    constructor(type, init = {}) {
      this.type = String(type);
      this.cancelable = Boolean(init.cancelable);
      this.defaultPrevented = false;
      this.target = null;
    }
    preventDefault() {
      if (this.cancelable) this.defaultPrevented = true;
    }
  }
  class MessageEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      this.data = init.data;
    }
  }
  class CloseEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      this.code = init.code === undefined ? 0 : init.code;
      this.reason = init.reason === undefined ? "" : init.reason;
      this.wasClean = Boolean(init.wasClean);
    }
  }
  class ErrorEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      this.error = init.error;
      this.message = init.message === undefined ? "" : init.message;
    }
  }

  const CONNECTING = 0;
  const OPEN = 1;
  const CLOSING = 2;
  const CLOSED = 3;
  const states = new WeakMap();
  // Bound sockets by id: kept alive while the connection is open.
  const bound = new Map();

  function deliver(socket, event) {
    const s = states.get(socket);
    if (!s.accepted) {
      s.backlog.push(event);
      return;
    }
    event.target = socket;
    const handler = s.handlers[event.type];
    if (typeof handler === "function") {
      try {
        handler.call(socket, event);
      } catch (error) {
        reportError(error);
      }
    }
    for (const listener of [...(s.listeners.get(event.type) || [])]) {
      try {
        if (typeof listener === "function") listener.call(socket, event);
        else listener.handleEvent(event);
      } catch (error) {
        reportError(error);
      }
    }
  }
  function reportError(error) {
    console.error("Uncaught exception in a WebSocket event listener:", error);
  }
  function closed(socket, code, reason, wasClean) {
    const s = states.get(socket);
    if (s.readyState === CLOSED) return;
    s.readyState = CLOSED;
    if (s.id !== undefined) bound.delete(s.id);
    deliver(socket, new CloseEvent("close", { code, reason, wasClean }));
  }

  // A close between the two ends of a local pair.
  function localClose(from, code, reason) {
    const peer = states.get(from).peer;
    queueMicrotask(() => {
      closed(peer, code, reason, true);
      closed(from, code, reason, true);
    });
  }

  let making = false;
  class WebSocket {
    constructor() {
      if (!making) {
        throw new TypeError("Burrow has no outgoing WebSockets yet: use new WebSocketPair() in a Worker.");
      }
      states.set(this, {
        readyState: OPEN,
        accepted: false,
        backlog: [],
        listeners: new Map(),
        handlers: {},
        peer: undefined,
        id: undefined,
        outbox: [],
        localClose: false,
        inResponse: false,
      });
    }
    get readyState() {
      return states.get(this).readyState;
    }
    get url() {
      return null;
    }
    get protocol() {
      return "";
    }
    get extensions() {
      return "";
    }
    accept() {
      const s = states.get(this);
      if (s.inResponse) throw new TypeError("Can't accept() WebSocket that was already used in a response.");
      if (s.accepted) return;
      s.accepted = true;
      for (const event of s.backlog.splice(0)) deliver(this, event);
      // What the other end of a local pair sent before this end was accepted.
      if (s.peer) {
        const peer = s.peer;
        for (const item of states.get(peer).outbox.splice(0)) {
          if (typeof item === "object" && item !== null && item.close) localClose(peer, item.close[0], item.close[1]);
          else queueMicrotask(() => deliver(this, new MessageEvent("message", { data: item })));
        }
      }
    }
    addEventListener(type, listener) {
      if (listener === null || listener === undefined) return;
      const s = states.get(this);
      if (!s.listeners.has(type)) s.listeners.set(type, []);
      const list = s.listeners.get(type);
      if (!list.includes(listener)) list.push(listener);
    }
    removeEventListener(type, listener) {
      const list = states.get(this).listeners.get(type);
      if (list) {
        const index = list.indexOf(listener);
        if (index !== -1) list.splice(index, 1);
      }
    }
    dispatchEvent(event) {
      deliver(this, event);
      return !event.defaultPrevented;
    }
    send(data) {
      const s = states.get(this);
      if (!s.accepted) throw new TypeError("You must call accept() on this WebSocket before sending messages.");
      if (s.localClose || s.readyState === CLOSED) throw new TypeError("Can't call WebSocket send() after close().");
      let message;
      if (typeof data === "string") message = data;
      else if (data instanceof ArrayBuffer) message = data.slice(0);
      else if (ArrayBuffer.isView(data)) message = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      else message = String(data);
      if (s.id !== undefined) native.wsSend(s.id, message);
      else if (s.peer && states.get(s.peer).accepted) {
        const peer = s.peer;
        queueMicrotask(() => deliver(peer, new MessageEvent("message", { data: message })));
      } else s.outbox.push(message); // until the peer goes out in a Response or is accepted here
    }
    close(code = undefined, reason = undefined) {
      const s = states.get(this);
      if (code !== undefined) {
        code = Number(code);
        if (!(code === 1000 || (code >= 3000 && code <= 4999))) {
          throw new DOMException(`Invalid WebSocket close code: ${code}.`, "InvalidAccessError");
        }
      }
      if (s.localClose || s.readyState === CLOSED) return;
      s.localClose = true;
      s.readyState = CLOSING;
      const closeCode = code === undefined ? 1000 : code;
      const text = reason === undefined ? "" : String(reason);
      if (s.id !== undefined) native.wsClose(s.id, closeCode, text);
      else if (s.peer && states.get(s.peer).accepted) localClose(this, code === undefined ? 1005 : code, text);
      else s.outbox.push({ close: [closeCode, text] });
    }
    serializeAttachment(value) {
      states.get(this).attachment = structuredClone(value);
    }
    deserializeAttachment() {
      const value = states.get(this).attachment;
      return value === undefined ? null : structuredClone(value);
    }
  }
  for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
    Object.defineProperty(WebSocket, name, { value, enumerable: true });
    Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true });
  }
  for (const type of ["message", "close", "error", "open"]) {
    Object.defineProperty(WebSocket.prototype, `on${type}`, {
      get() {
        return states.get(this).handlers[type] || null;
      },
      set(handler) {
        states.get(this).handlers[type] = handler;
      },
      configurable: true,
    });
  }

  class WebSocketPair {
    constructor() {
      making = true;
      let client, server;
      try {
        client = new WebSocket();
        server = new WebSocket();
      } finally {
        making = false;
      }
      states.get(client).peer = server;
      states.get(server).peer = client;
      Object.defineProperty(this, 0, { value: client, enumerable: true });
      Object.defineProperty(this, 1, { value: server, enumerable: true });
    }
    *[Symbol.iterator]() {
      yield this[0];
      yield this[1];
    }
  }

  // The Response constructor's check: the socket must be a pair's end not yet used or accepted.
  native.wsForResponse = (socket) => {
    const s = socket instanceof WebSocket ? states.get(socket) : undefined;
    if (!s) throw new TypeError("The webSocket in a Response must be a WebSocket from a WebSocketPair.");
    if (s.accepted) throw new TypeError("Can't return WebSocket that was already accepted in a response.");
    if (s.inResponse) throw new TypeError("Can't return WebSocket in a Response more than once.");
    s.inResponse = true;
  };
  // The Response went out: bind the peer of `socket` to connection `id` and send what waited.
  native.wsBind = (socket, id) => {
    const server = states.get(socket).peer;
    const s = states.get(server);
    s.id = id;
    bound.set(id, server);
    for (const item of s.outbox.splice(0)) {
      if (typeof item === "object" && item !== null && item.close) native.wsClose(id, item.close[0], item.close[1]);
      else native.wsSend(id, item);
    }
  };
  // An event of connection `id`: "message" (data), "close" (code, reason, wasClean), "error".
  internals.wsDispatch = (id, type, data, code, reason, wasClean) => {
    const socket = bound.get(id);
    if (!socket) return;
    if (type === "message") deliver(socket, new MessageEvent("message", { data }));
    else if (type === "error") {
      deliver(socket, new ErrorEvent("error", { message: String(data), error: new Error(String(data)) }));
    } else closed(socket, code, reason, wasClean);
  };

  g.WebSocket = WebSocket;
  g.WebSocketPair = WebSocketPair;
  if (typeof g.MessageEvent !== "function") g.MessageEvent = MessageEvent;
  if (typeof g.CloseEvent !== "function") g.CloseEvent = CloseEvent;
  if (typeof g.ErrorEvent !== "function") g.ErrorEvent = ErrorEvent;
});
