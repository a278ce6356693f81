// URL and URLSearchParams: parsing the request URL, editing, serialising.
export default {
  fetch(request) {
    const url = new URL(request.url);
    const params = new URLSearchParams(url.search);
    params.append("z", "a b&c");
    params.sort();
    const relative = new URL("../up?q=1#frag", "https://example.com/a/b/c");
    return Response.json({
      pathname: url.pathname,
      x: url.searchParams.get("x"),
      all: [...url.searchParams.keys()],
      params: params.toString(),
      relative: relative.href,
      hash: relative.hash,
      host: new URL("https://user:pw@Example.COM:8443/p").host,
    });
  },
};
