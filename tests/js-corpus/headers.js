// Headers: case-insensitive access, append/set/delete, iteration order; request headers.
export default {
  fetch(request) {
    const headers = new Headers({ "X-B": "2", "x-a": "1" });
    headers.append("X-A", "again");
    headers.set("x-c", "3");
    headers.delete("x-b");
    const seen = [...headers].map(([k, v]) => `${k}=${v}`).join(";");
    return new Response(seen + "|" + request.headers.get("X-Test") + "|" + request.headers.has("x-missing"), {
      status: 201,
      headers: { "content-type": "text/plain;charset=UTF-8", "x-seen": String([...headers.keys()].length) },
    });
  },
};
