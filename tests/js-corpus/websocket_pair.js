// WebSocketPair inside one Worker: accept, messages both ways (text and binary), event listener
// and on* handlers, readyState and constants, errors for send before accept and for a bad close
// code, a 101 Response carrying the client end, and the close of one end seen by the other.
const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
function errorOf(fn) {
  try {
    fn();
    return "no error";
  } catch (error) {
    return error.constructor.name;
  }
}
export default {
  async fetch() {
    const out = {};
    const pair = new WebSocketPair();
    const [a, b] = Object.values(pair);
    out.keys = Object.keys(pair);
    out.constants = [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED, a.OPEN];
    out.initialState = a.readyState;
    out.sendBeforeAccept = errorOf(() => a.send("too early"));
    // Per direction (the order between the two directions is not specified).
    const log = { a: [], b: [] };
    a.accept();
    b.accept();
    b.addEventListener("message", (event) => {
      log.b.push(`${typeof event.data === "string" ? event.data : `bytes ${new Uint8Array(event.data).join(",")}`}`);
    });
    a.onmessage = (event) => log.a.push(event.data);
    a.send("hello");
    a.send(new Uint8Array([1, 2, 3]));
    b.send("back");
    await tick();
    out.messages = log;
    out.badCode = errorOf(() => a.close(999));
    const closes = [];
    b.addEventListener("close", (event) => closes.push(`b ${event.code} ${event.reason} ${event.wasClean}`));
    a.addEventListener("close", (event) => closes.push(`a ${event.code} ${event.reason}`));
    a.close(4001, "done");
    await tick();
    b.close(4001, "done");
    await tick();
    out.closes = closes;
    out.states = [a.readyState, b.readyState];
    out.sendAfterClose = errorOf(() => a.send("late"));

    const [client, server] = Object.values(new WebSocketPair());
    const upgrade = new Response(null, { status: 101, webSocket: client });
    out.upgrade = { status: upgrade.status, same: upgrade.webSocket === client };
    out.wrongStatus = errorOf(() => new Response(null, { status: 200, webSocket: server }));
    return Response.json(out, { headers: { "x-kind": "websocket-pair" } });
  },
};
