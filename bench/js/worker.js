// The Worker `burrow-bench js` runs under Burrow and under workerd alike: GET /hello answers "ok";
// POST /json parses the JSON body (about 1 KB of order lines) and answers a transformed JSON.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/json") {
      const order = await request.json();
      const lines = order.items.map((item) => ({
        sku: item.sku.toUpperCase(),
        total: Math.round(item.price * item.quantity * 100) / 100,
      }));
      const total = lines.reduce((sum, line) => sum + line.total, 0);
      return Response.json({ customer: order.customer.name, lines, total: Math.round(total * 100) / 100 });
    }
    return new Response("ok");
  },
};
