// crypto.subtle: digest, HMAC (raw and JWK keys, sign, verify, export), AES-GCM (encrypt,
// decrypt, tampering), PBKDF2 and HKDF, generateKey, CryptoKey properties, error names, and the
// Workers extensions timingSafeEqual and DigestStream.
const encoder = new TextEncoder();
const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
function stable(value) {
  if (Array.isArray(value)) return value.map(stable);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, stable(value[key])]));
  }
  return value;
}
async function errorName(promise) {
  try {
    await promise;
    return "no error";
  } catch (error) {
    return error.name;
  }
}
export default {
  async fetch(request) {
    const subtle = crypto.subtle;
    const body = encoder.encode(await request.text());
    const out = {};
    for (const name of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
      out[name] = hex(await subtle.digest(name, body));
    }
    out.digestObject = hex(await subtle.digest({ name: "sha-256" }, encoder.encode("")));

    const hmacKey = await subtle.importKey("raw", encoder.encode("secret key"), { name: "HMAC", hash: "SHA-256" }, true, ["sign", "verify"]);
    const signature = await subtle.sign("HMAC", hmacKey, body);
    out.hmac = hex(signature);
    out.verified = await subtle.verify("HMAC", hmacKey, signature, body);
    out.forged = await subtle.verify("HMAC", hmacKey, new Uint8Array(32), body);
    out.hmacKey = stable({ type: hmacKey.type, extractable: hmacKey.extractable, algorithm: hmacKey.algorithm, usages: hmacKey.usages });
    out.hmacJwk = stable(await subtle.exportKey("jwk", hmacKey));
    const fromJwk = await subtle.importKey("jwk", { kty: "oct", k: "c2VjcmV0IGtleQ", alg: "HS256" }, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    out.jwkSame = hex(await subtle.sign("HMAC", fromJwk, body)) === out.hmac;
    const sha1Key = await subtle.importKey("raw", encoder.encode("k"), { name: "HMAC", hash: { name: "SHA-1" } }, false, ["sign"]);
    out.hmacSha1 = hex(await subtle.sign({ name: "HMAC" }, sha1Key, encoder.encode("message")));

    const aesRaw = new Uint8Array(32).map((_, i) => i);
    const aesKey = await subtle.importKey("raw", aesRaw, "AES-GCM", true, ["encrypt", "decrypt"]);
    const iv = new Uint8Array(12).map((_, i) => 100 + i);
    const sealed = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: encoder.encode("aad") }, aesKey, body);
    out.aes = hex(sealed);
    out.opened = new TextDecoder().decode(await subtle.decrypt({ name: "AES-GCM", iv, additionalData: encoder.encode("aad") }, aesKey, sealed));
    const tampered = new Uint8Array(sealed);
    tampered[0] ^= 1;
    out.tampered = await errorName(subtle.decrypt({ name: "AES-GCM", iv, additionalData: encoder.encode("aad") }, aesKey, tampered));
    const aes128 = await subtle.importKey("raw", aesRaw.slice(0, 16), { name: "AES-GCM" }, false, ["encrypt"]);
    out.aes128 = hex(await subtle.encrypt({ name: "AES-GCM", iv }, aes128, encoder.encode("short")));
    out.aesKey = stable({ algorithm: aesKey.algorithm, usages: aesKey.usages });
    out.aesJwk = stable(await subtle.exportKey("jwk", aesKey));

    const password = await subtle.importKey("raw", encoder.encode("password"), "PBKDF2", false, ["deriveBits", "deriveKey"]);
    out.pbkdf2 = hex(await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: encoder.encode("salt"), iterations: 1000 }, password, 256));
    const derived = await subtle.deriveKey(
      { name: "PBKDF2", hash: "SHA-256", salt: encoder.encode("salt"), iterations: 1000 },
      password,
      { name: "AES-GCM", length: 128 },
      true,
      ["encrypt"],
    );
    out.derivedKey = hex(await subtle.exportKey("raw", derived));
    const ikm = await subtle.importKey("raw", encoder.encode("input key material"), "HKDF", false, ["deriveBits"]);
    out.hkdf = hex(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: encoder.encode("salt"), info: encoder.encode("info") }, ikm, 320));

    const generated = await subtle.generateKey({ name: "HMAC", hash: "SHA-512" }, true, ["sign"]);
    out.generatedLength = (await subtle.exportKey("raw", generated)).byteLength;
    const generatedAes = await subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    out.generatedAes = stable(generatedAes.algorithm);

    out.errors = {
      unknownDigest: await errorName(subtle.digest("SHA-3", body)),
      wrongUsage: await errorName(subtle.sign("HMAC", fromJwk.usages.includes("verify") ? hmacKey : aes128, body)),
      notExtractable: await errorName(subtle.exportKey("raw", fromJwk)),
      verifyWithoutUsage: await errorName(subtle.verify("HMAC", fromJwk, signature, body)),
      badAesLength: await errorName(subtle.importKey("raw", new Uint8Array(10), "AES-GCM", false, ["encrypt"])),
    };
    out.isKey = hmacKey instanceof CryptoKey;
    out.timingSafe = [
      crypto.subtle.timingSafeEqual(encoder.encode("abc"), encoder.encode("abc")),
      crypto.subtle.timingSafeEqual(encoder.encode("abc"), encoder.encode("abd")),
    ];
    const digestStream = new crypto.DigestStream("SHA-256");
    const writer = digestStream.getWriter();
    await writer.write(encoder.encode("hello "));
    await writer.write(encoder.encode("world"));
    await writer.close();
    out.digestStream = hex(await digestStream.digest);
    return Response.json(out, { headers: { "x-kind": "subtle" } });
  },
};
