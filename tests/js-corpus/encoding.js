// TextEncoder/TextDecoder, atob/btoa.
export default {
  fetch() {
    const bytes = new TextEncoder().encode("héllo €");
    const text = new TextDecoder().decode(bytes);
    const b64 = btoa("binary\u0000data");
    return Response.json({
      bytes: Array.from(bytes),
      text,
      b64,
      back: atob(b64) === "binary\u0000data",
      encoding: new TextDecoder().encoding,
    });
  },
};
