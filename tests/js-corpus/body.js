// Request bodies and Response constructors: json(), text(), arrayBuffer(), Response.json, status.
export default {
  async fetch(request) {
    const clone = await request.text();
    const parsed = JSON.parse(clone);
    const bytes = new Uint8Array(await new Response(clone).arrayBuffer());
    return Response.json(
      { method: request.method, parsed, length: bytes.length, first: bytes[0], ok: new Response("x").ok },
      { status: 202, headers: { "x-kind": "json" } },
    );
  },
};
