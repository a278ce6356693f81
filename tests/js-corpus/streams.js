// WHATWG streams: ReadableStream (pull, strategies, tee, async iteration, BYOB), WritableStream
// (backpressure, close, abort), TransformStream, pipeTo/pipeThrough, the text streams, the
// Workers byte streams, and request/response bodies as streams.
function collect(log) {
  return new WritableStream({
    write(chunk) {
      log.push(typeof chunk === "string" ? chunk : Array.from(chunk).join(","));
    },
    close() {
      log.push("closed");
    },
  });
}
async function readAllText(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return out + decoder.decode();
    out += typeof value === "string" ? value : decoder.decode(value, { stream: true });
  }
}
export default {
  async fetch(request) {
    const out = {};
    // Request body as a stream.
    out.requestBody = await readAllText(request.body);
    out.requestUsed = request.bodyUsed;

    // Pull-driven source with a count strategy.
    let pulls = 0;
    const counted = new ReadableStream(
      {
        pull(controller) {
          pulls++;
          if (pulls > 4) controller.close();
          else controller.enqueue(pulls);
        },
      },
      new CountQueuingStrategy({ highWaterMark: 2 }),
    );
    const seen = [];
    for await (const n of counted) seen.push(n);
    out.counted = seen;
    out.locked = counted.locked;

    // desiredSize and enqueue in start.
    let sizes = [];
    const started = new ReadableStream(
      {
        start(controller) {
          sizes.push(controller.desiredSize);
          controller.enqueue("a");
          sizes.push(controller.desiredSize);
          controller.enqueue("bb");
          sizes.push(controller.desiredSize);
          controller.close();
        },
      },
      { highWaterMark: 5, size: (chunk) => chunk.length },
    );
    out.sizes = sizes;
    const [left, right] = started.tee();
    out.tee = [await readAllText(left), await readAllText(right)];

    // pipeTo with a writable sink, pipeThrough a transform.
    const log = [];
    await new ReadableStream({
      start(c) {
        c.enqueue("x");
        c.enqueue("y");
        c.close();
      },
    })
      .pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            controller.enqueue(chunk.toUpperCase());
            controller.enqueue(chunk);
          },
          flush(controller) {
            controller.enqueue("end");
          },
        }),
      )
      .pipeTo(collect(log));
    out.piped = log;

    // Text streams, with a character split across chunks.
    const bytes = new TextEncoder().encode("héllo wörld €");
    const split = new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
        c.close();
      },
    });
    out.decoded = await readAllText(split.pipeThrough(new TextDecoderStream()));
    const encodedLog = [];
    await new ReadableStream({
      start(c) {
        c.enqueue("hi");
        c.enqueue("€");
        c.close();
      },
    })
      .pipeThrough(new TextEncoderStream())
      .pipeTo(collect(encodedLog));
    out.encoded = encodedLog;

    // WritableStream backpressure and errors.
    const events = [];
    let release;
    const sink = new WritableStream(
      {
        write(chunk) {
          events.push(`write ${chunk}`);
          return new Promise((resolve) => (release = resolve));
        },
        close() {
          events.push("close");
        },
      },
      { highWaterMark: 2 },
    );
    const writer = sink.getWriter();
    events.push(`desired ${writer.desiredSize}`);
    const w1 = writer.write("a");
    const w2 = writer.write("b");
    events.push(`desired ${writer.desiredSize}`);
    await Promise.resolve();
    release();
    await w1;
    await new Promise((r) => setTimeout(r, 1));
    release();
    await w2;
    await writer.close();
    events.push(`closed ${await writer.closed}`);
    out.writable = events;
    const failing = new WritableStream({
      write() {
        throw new Error("sink broke");
      },
    });
    const failingWriter = failing.getWriter();
    out.sinkError = await failingWriter.write("x").then(() => "ok", (e) => e.message);
    out.afterError = await failingWriter.write("y").then(() => "ok", (e) => e.message);
    const aborted = new WritableStream({
      abort(reason) {
        events.push(`abort ${reason}`);
      },
    });
    await aborted.abort("why");
    out.aborted = events.at(-1);

    // Locking.
    const lockable = new ReadableStream();
    lockable.getReader();
    try {
      lockable.getReader();
      out.lock = "no error";
    } catch (e) {
      out.lock = e.constructor.name;
    }

    // Errors through a reader.
    const broken = new ReadableStream({
      pull() {
        throw new Error("source broke");
      },
    });
    out.readError = await broken.getReader().read().then(() => "ok", (e) => e.message);

    // Cancel reaches the source.
    let cancelled;
    const cancellable = new ReadableStream({
      cancel(reason) {
        cancelled = reason;
      },
    });
    await cancellable.cancel("enough");
    out.cancelled = cancelled;

    // A byte stream read with a BYOB reader.
    const byteStream = new ReadableStream({
      type: "bytes",
      start(c) {
        c.enqueue(new Uint8Array([1, 2, 3, 4, 5]));
        c.close();
      },
    });
    const byob = byteStream.getReader({ mode: "byob" });
    const first = await byob.read(new Uint8Array(3));
    const second = await byob.read(new Uint8Array(3));
    const third = await byob.read(new Uint8Array(3));
    out.byob = [Array.from(first.value), Array.from(second.value), third.done];

    // The Workers byte streams.
    const identity = new IdentityTransformStream();
    const identityWriter = identity.writable.getWriter();
    identityWriter.write(new TextEncoder().encode("same"));
    identityWriter.close();
    out.identity = await new Response(identity.readable).text();
    const fixed = new FixedLengthStream(3);
    const fixedWriter = fixed.writable.getWriter();
    fixedWriter.write(new Uint8Array([1, 2, 3]));
    fixedWriter.close();
    out.fixed = (await new Response(fixed.readable).arrayBuffer()).byteLength;

    // Bodies as streams.
    const response = new Response("body text");
    const body = response.body;
    out.sameBody = body === response.body;
    out.bodyIsStream = body instanceof ReadableStream;
    out.viaBody = await new Response(body).text();
    out.bodyUsed = response.bodyUsed;
    out.nullBody = new Response(null).body;
    const cloned = new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("twice")); c.close(); } }));
    const copy = cloned.clone();
    out.clone = [await cloned.text(), await copy.text()];
    out.usedAgain = await cloned.text().then(() => "ok", (e) => e.constructor.name);
    const piped = [];
    await new Response("to a sink").body.pipeTo(new WritableStream({ write(c) { piped.push(new TextDecoder().decode(c)); } }));
    out.pipedBody = piped.join("");
    out.streamedRequest = await new Request("http://x/", { method: "POST", body: new Response("req").body }).text();

    return new Response(JSON.stringify(out), { headers: { "content-type": "application/json", "x-kind": "streams" } });
  },
};
