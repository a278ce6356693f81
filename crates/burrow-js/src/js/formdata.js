// FormData for Workers (llrt's does not parse urlencoded bodies nor name uploaded Blobs): the
// entry list of the XHR spec, multipart/form-data serialization for Request/Response bodies, and
// the parsing of multipart/form-data and application/x-www-form-urlencoded bodies for
// formData(). Evaluated after body.js; sets `native.forms` for it.
(function (native) {
  "use strict";
  const g = globalThis;

  function entryValue(value, filename) {
    if (value instanceof g.Blob) {
      if (filename === undefined && value instanceof g.File) return value;
      const name = filename !== undefined ? String(filename) : value instanceof g.File ? value.name : "blob";
      const options = { type: value.type };
      if (value instanceof g.File) options.lastModified = value.lastModified;
      return new g.File([value], name, options);
    }
    return String(value);
  }

  const entriesOf = new WeakMap();
  class FormData {
    constructor() {
      entriesOf.set(this, []);
    }
    append(name, value, filename = undefined) {
      entriesOf.get(this).push([String(name), entryValue(value, filename)]);
    }
    set(name, value, filename = undefined) {
      const key = String(name);
      const entries = entriesOf.get(this);
      const entry = [key, entryValue(value, filename)];
      const first = entries.findIndex(([k]) => k === key);
      if (first === -1) {
        entries.push(entry);
        return;
      }
      entries[first] = entry;
      for (let i = entries.length - 1; i > first; i--) if (entries[i][0] === key) entries.splice(i, 1);
    }
    get(name) {
      const found = entriesOf.get(this).find(([k]) => k === String(name));
      return found === undefined ? null : found[1];
    }
    getAll(name) {
      return entriesOf.get(this).filter(([k]) => k === String(name)).map(([, v]) => v);
    }
    has(name) {
      return entriesOf.get(this).some(([k]) => k === String(name));
    }
    delete(name) {
      const key = String(name);
      entriesOf.set(this, entriesOf.get(this).filter(([k]) => k !== key));
    }
    *entries() {
      for (const [k, v] of entriesOf.get(this)) yield [k, v];
    }
    *keys() {
      for (const [k] of entriesOf.get(this)) yield k;
    }
    *values() {
      for (const [, v] of entriesOf.get(this)) yield v;
    }
    forEach(callback, thisArg = undefined) {
      for (const [k, v] of entriesOf.get(this)) callback.call(thisArg, v, k, this);
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    get [Symbol.toStringTag]() {
      return "FormData";
    }
  }

  // TextEncoder comes with the prelude, after this file.
  const encoder = { encode: (text) => new g.TextEncoder().encode(text) };
  const escapeName = (name) => name.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");

  // The multipart/form-data body of `form` (a Blob, made without reading the files) and its
  // content type.
  function serialize(form) {
    const boundary = `----BurrowFormBoundary${Array.from(new Uint8Array(native.randomBytes(12)), (b) => b.toString(16).padStart(2, "0")).join("")}`;
    const parts = [];
    for (const [name, value] of entriesOf.get(form)) {
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"`;
      if (typeof value === "string") {
        parts.push(encoder.encode(`${head}\r\n\r\n${value.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n")}\r\n`));
      } else {
        parts.push(
          encoder.encode(`${head}; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}\r\n\r\n`),
          value,
          encoder.encode("\r\n"),
        );
      }
    }
    parts.push(encoder.encode(`--${boundary}--\r\n`));
    return { blob: new g.Blob(parts), contentType: `multipart/form-data; boundary=${boundary}` };
  }

  function parameter(header, name) {
    const match = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, "i").exec(header);
    if (!match) return undefined;
    return match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2].trim();
  }

  // Parses `buffer` as the body of type `contentType` into a FormData.
  function parse(buffer, contentType) {
    const type = String(contentType || "").split(";")[0].trim().toLowerCase();
    const form = new FormData();
    if (type === "application/x-www-form-urlencoded") {
      for (const [k, v] of new g.URLSearchParams(new g.TextDecoder().decode(buffer))) form.append(k, v);
      return form;
    }
    if (type !== "multipart/form-data") {
      throw new TypeError(
        "Unrecognized Content-Type header value. FormData can only parse the following MIME types: multipart/form-data, application/x-www-form-urlencoded",
      );
    }
    const boundary = parameter(contentType, "boundary");
    if (!boundary) throw new TypeError("No boundary string in Content-Type header. The multipart/form-data MIME type requires a boundary parameter.");
    const bytes = new Uint8Array(buffer);
    // A latin1 view of the bytes, to search them with string functions.
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    const delimiter = `--${boundary}`;
    let position = text.indexOf(delimiter);
    if (position === -1) throw new TypeError("The multipart body has no boundary delimiter.");
    for (;;) {
      position += delimiter.length;
      if (text.startsWith("--", position)) break;
      if (text.startsWith("\r\n", position)) position += 2;
      const headEnd = text.indexOf("\r\n\r\n", position);
      if (headEnd === -1) throw new TypeError("A multipart part has no end of headers.");
      const next = text.indexOf(`\r\n${delimiter}`, headEnd + 4);
      if (next === -1) throw new TypeError("A multipart part has no closing boundary.");
      const headers = {};
      for (const line of text.slice(position, headEnd).split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const disposition = headers["content-disposition"] || "";
      const name = parameter(disposition, "name");
      const content = bytes.slice(headEnd + 4, next);
      if (name !== undefined) {
        const decode = (value) => new g.TextDecoder().decode(encoderFromLatin1(value));
        const filename = parameter(disposition, "filename");
        if (filename !== undefined) {
          form.append(decode(name), new g.File([content], decode(filename), { type: headers["content-type"] || "application/octet-stream" }));
        } else {
          form.append(decode(name), new g.TextDecoder().decode(content));
        }
      }
      position = next + 2;
    }
    return form;
  }
  function encoderFromLatin1(value) {
    const out = new Uint8Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0xff;
    return out;
  }

  g.FormData = FormData;
  native.forms = { isFormData: (value) => entriesOf.has(value), serialize, parse };
});
