// Status codes and redirects the Worker builds itself.
export default {
  fetch(request) {
    const url = new URL(request.url);
    if (url.searchParams.get("x") === "1") {
      return new Response("not here", { status: 404, statusText: "Nope", headers: { "x-reason": "missing" } });
    }
    return Response.redirect("https://example.com/elsewhere", 302);
  },
};
