// A Response whose body is a ReadableStream that produces its chunks over time (sent chunked),
// a TransformStream's readable returned while the writable is still being written, and a
// request body piped through a transform into the response.
export default {
  async fetch(request) {
    const encoder = new TextEncoder();
    const { readable, writable } = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(encoder.encode(new TextDecoder().decode(chunk).toUpperCase()));
      },
    });
    const writer = writable.getWriter();
    (async () => {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        await writer.write(encoder.encode(`line ${i}\n`));
      }
      await request.body.pipeTo(new WritableStream({ write: (chunk) => writer.write(chunk) }));
      await writer.close();
    })();
    return new Response(readable, { status: 201, headers: { "content-type": "text/plain", "x-streamed": "yes" } });
  },
};
