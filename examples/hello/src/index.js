// A module Worker: "/" answers with a greeting, "/visits" counts visits in KV, and "/echo"
// returns the JSON body it was sent, with the keys sorted.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/visits") {
      const visits = Number((await env.VISITS.get("visits")) ?? 0) + 1;
      await env.VISITS.put("visits", String(visits));
      return new Response(`visits: ${visits}\n`);
    }
    if (url.pathname === "/echo" && request.method === "POST") {
      const body = await request.json();
      const sorted = Object.fromEntries(Object.entries(body).sort(([a], [b]) => (a < b ? -1 : 1)));
      return Response.json({ received: sorted });
    }
    return new Response(env.GREETING);
  },
};
