// Blob (size, type, slice, text, arrayBuffer, stream), File, FormData (append, set, get, getAll,
// has, delete, iteration), request.formData() for urlencoded and multipart bodies, and a
// FormData body's round trip through a Response.
export default {
  async fetch(request, env, ctx) {
    ctx.passThroughOnException();
    const out = {};
    const blob = new Blob(["hello ", new TextEncoder().encode("blob"), new Blob([" parts"])], { type: "Text/Plain" });
    out.blob = { size: blob.size, type: blob.type, text: await blob.text(), slice: await blob.slice(2, 8).text(), sliceNegative: await blob.slice(-5).text() };
    out.blobBytes = Array.from(new Uint8Array(await blob.slice(0, 3).arrayBuffer()));
    out.blobStream = await new Response(blob.stream()).text();
    out.blobResponseType = new Response(blob).headers.get("content-type");
    const file = new File(["file body"], "name.txt", { type: "text/plain", lastModified: 42 });
    out.file = { name: file.name, size: file.size, type: file.type, lastModified: file.lastModified, isBlob: file instanceof Blob };

    const form = new FormData();
    form.append("a", "1");
    form.append("a", "2");
    form.set("b", "x");
    form.append("f", new Blob(["content"], { type: "text/plain" }), "upload.txt");
    out.form = { a: form.get("a"), all: form.getAll("a"), has: form.has("b"), missing: form.get("zzz") };
    const uploaded = form.get("f");
    out.upload = { name: uploaded.name, type: uploaded.type, text: await uploaded.text() };
    form.delete("b");
    out.keys = [...form.keys()];

    const urlencoded = new Request("http://x/", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "name=Ada+Lovelace&lang=en&lang=fr&empty=",
    });
    const parsed = await urlencoded.formData();
    out.urlencoded = { name: parsed.get("name"), lang: parsed.getAll("lang"), empty: parsed.get("empty") };

    const boundary = "----burrowboundary";
    const multipartBody =
      `--${boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue one\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="doc"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nfile text\r\n` +
      `--${boundary}--\r\n`;
    const multipart = await new Request("http://x/", {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: multipartBody,
    }).formData();
    const doc = multipart.get("doc");
    out.multipart = { field: multipart.get("field"), docName: doc.name, docType: doc.type, doc: await doc.text() };

    const roundTrip = await new Response(form).formData();
    out.roundTrip = { a: roundTrip.getAll("a"), f: await roundTrip.get("f").text(), fName: roundTrip.get("f").name };
    out.streamedForm = (await new Response(new Blob(["k=v&k2=v2"]).stream(), { headers: { "content-type": "application/x-www-form-urlencoded" } }).formData()).get("k2");
    return Response.json(out, { headers: { "x-kind": "forms" } });
  },
};
