// crypto.subtle for Workers: digest (SHA-1/256/384/512), HMAC (importKey raw/jwk, generateKey,
// sign, verify, exportKey), AES-GCM (importKey raw/jwk, generateKey, encrypt, decrypt,
// exportKey), PBKDF2 and HKDF (deriveBits, deriveKey), and the Workers extensions
// crypto.subtle.timingSafeEqual and crypto.DigestStream. Algorithm checks happen here; the
// primitives are ring's (crypto.rs). Evaluated after the prelude.
(function (native) {
  "use strict";
  const g = globalThis;
  const HASHES = ["SHA-1", "SHA-256", "SHA-384", "SHA-512"];
  const BLOCK_BITS = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };
  const ALGORITHMS = ["HMAC", "AES-GCM", "PBKDF2", "HKDF"];

  function fail(name, message) {
    return new DOMException(message, name);
  }
  function bytes(data, what = "data") {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError(`${what} must be an ArrayBuffer or ArrayBufferView.`);
  }
  function normalize(algorithm) {
    const dictionary = typeof algorithm === "string" ? { name: algorithm } : algorithm;
    if (dictionary === null || typeof dictionary !== "object" || dictionary.name === undefined) {
      throw new TypeError("The algorithm must be a string or an object with a name.");
    }
    const name = String(dictionary.name).toUpperCase();
    return { dictionary, name };
  }
  function hashName(hash) {
    if (hash === undefined) throw new TypeError("The algorithm needs a hash.");
    const { name } = normalize(hash);
    if (!HASHES.includes(name)) throw fail("NotSupportedError", `Unrecognized hash "${hash.name || hash}".`);
    return name;
  }

  // --- CryptoKey ---------------------------------------------------------------------------------
  const secrets = new WeakMap();
  let making = false;
  class CryptoKey {
    constructor() {
      if (!making) throw new TypeError("Illegal constructor");
    }
    get type() {
      return secrets.get(this).type;
    }
    get extractable() {
      return secrets.get(this).extractable;
    }
    get algorithm() {
      return { ...secrets.get(this).algorithm };
    }
    get usages() {
      return [...secrets.get(this).usages];
    }
  }
  const USAGES = {
    HMAC: ["sign", "verify"],
    "AES-GCM": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
    PBKDF2: ["deriveBits", "deriveKey"],
    HKDF: ["deriveBits", "deriveKey"],
  };
  function makeKey(raw, algorithm, extractable, usages) {
    const list = [...usages].map(String);
    for (const usage of list) {
      if (!USAGES[algorithm.name].includes(usage)) {
        throw fail("SyntaxError", `Usage "${usage}" is not valid for a ${algorithm.name} key.`);
      }
    }
    if (list.length === 0 && algorithm.name !== "PBKDF2" && algorithm.name !== "HKDF") {
      throw fail("SyntaxError", "The key needs at least one usage.");
    }
    making = true;
    const key = new CryptoKey();
    making = false;
    secrets.set(key, { raw: raw.slice(), algorithm, extractable: Boolean(extractable), usages: list, type: "secret" });
    return key;
  }
  function use(key, name, usage) {
    const secret = key instanceof CryptoKey && secrets.get(key);
    if (!secret) throw new TypeError("The key must be a CryptoKey.");
    if (secret.algorithm.name !== name) {
      throw fail("InvalidAccessError", `The key is a ${secret.algorithm.name} key, not ${name}.`);
    }
    if (!secret.usages.includes(usage)) throw fail("InvalidAccessError", `The key does not allow "${usage}".`);
    return secret;
  }

  // --- base64url for JWK ------------------------------------------------------------------------
  function toBase64Url(raw) {
    let binary = "";
    for (const byte of raw) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function fromBase64Url(text) {
    if (typeof text !== "string") throw fail("DataError", "The JWK's k must be a string.");
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    let binary;
    try {
      binary = atob(padded);
    } catch {
      throw fail("DataError", "The JWK's k is not base64url.");
    }
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }
  const JWK_HMAC = { "SHA-1": "HS1", "SHA-256": "HS256", "SHA-384": "HS384", "SHA-512": "HS512" };

  function rawOf(format, keyData, name) {
    if (format === "raw") return bytes(keyData, "keyData").slice();
    if (format === "jwk") {
      if (name === "PBKDF2" || name === "HKDF") throw fail("NotSupportedError", `${name} keys are imported as "raw".`);
      if (keyData === null || typeof keyData !== "object" || keyData.kty !== "oct") {
        throw fail("DataError", 'The JWK must have kty "oct".');
      }
      return fromBase64Url(keyData.k);
    }
    throw fail("NotSupportedError", `Unsupported key format "${format}".`);
  }

  function aesLength(bits) {
    if (bits !== 128 && bits !== 192 && bits !== 256) {
      throw fail("DataError", "AES key length must be 128, 192 or 256 bits.");
    }
    return bits;
  }

  async function importKey(format, keyData, algorithm, extractable, usages) {
    const { dictionary, name } = normalize(algorithm);
    if (!ALGORITHMS.includes(name)) throw fail("NotSupportedError", `Unrecognized algorithm "${dictionary.name}".`);
    const raw = rawOf(format, keyData, name);
    switch (name) {
      case "HMAC": {
        const hash = hashName(dictionary.hash);
        if (format === "jwk" && keyData.alg !== undefined && keyData.alg !== JWK_HMAC[hash]) {
          throw fail("DataError", `The JWK's alg "${keyData.alg}" does not match the hash ${hash}.`);
        }
        if (raw.length === 0) throw fail("DataError", "An HMAC key must not be empty.");
        const length = dictionary.length === undefined ? raw.length * 8 : Number(dictionary.length);
        if (length > raw.length * 8 || length <= (raw.length - 1) * 8) {
          throw fail("DataError", "The HMAC key length does not match the key data.");
        }
        return makeKey(raw, { name: "HMAC", hash: { name: hash }, length }, extractable, usages);
      }
      case "AES-GCM":
        aesLength(raw.length * 8);
        return makeKey(raw, { name: "AES-GCM", length: raw.length * 8 }, extractable, usages);
      default:
        if (extractable) throw fail("SyntaxError", `${name} keys cannot be extractable.`);
        return makeKey(raw, { name }, false, usages);
    }
  }

  async function exportKey(format, key) {
    const secret = key instanceof CryptoKey && secrets.get(key);
    if (!secret) throw new TypeError("The key must be a CryptoKey.");
    if (!secret.extractable) throw fail("InvalidAccessError", "The key is not extractable.");
    if (format === "raw") return secret.raw.slice().buffer;
    if (format === "jwk") {
      const jwk = { kty: "oct", k: toBase64Url(secret.raw), key_ops: [...secret.usages], ext: true };
      if (secret.algorithm.name === "HMAC") jwk.alg = JWK_HMAC[secret.algorithm.hash.name];
      else jwk.alg = `A${secret.algorithm.length}GCM`;
      return jwk;
    }
    throw fail("NotSupportedError", `Unsupported key format "${format}".`);
  }

  async function generateKey(algorithm, extractable, usages) {
    const { dictionary, name } = normalize(algorithm);
    if (name === "HMAC") {
      const hash = hashName(dictionary.hash);
      const length = dictionary.length === undefined ? BLOCK_BITS[hash] : Number(dictionary.length);
      if (!(length > 0)) throw fail("OperationError", "The HMAC key length must be positive.");
      const raw = new Uint8Array(native.randomBytes(Math.ceil(length / 8)));
      return makeKey(raw, { name: "HMAC", hash: { name: hash }, length }, extractable, usages);
    }
    if (name === "AES-GCM") {
      const length = aesLength(Number(dictionary.length));
      return makeKey(new Uint8Array(native.randomBytes(length / 8)), { name: "AES-GCM", length }, extractable, usages);
    }
    throw fail("NotSupportedError", `Unrecognized algorithm "${dictionary.name}".`);
  }

  async function digest(algorithm, data) {
    const { name } = normalize(algorithm);
    if (!HASHES.includes(name)) throw fail("NotSupportedError", "Unrecognized name.");
    return native.digest(name, bytes(data));
  }

  async function sign(algorithm, key, data) {
    const { name } = normalize(algorithm);
    if (name !== "HMAC") throw fail("NotSupportedError", `Burrow signs with HMAC only (got "${name}").`);
    const secret = use(key, "HMAC", "sign");
    return native.hmacSign(secret.algorithm.hash.name, secret.raw, bytes(data));
  }

  async function verify(algorithm, key, signature, data) {
    const { name } = normalize(algorithm);
    if (name !== "HMAC") throw fail("NotSupportedError", `Burrow verifies HMAC only (got "${name}").`);
    const secret = use(key, "HMAC", "verify");
    return native.hmacVerify(secret.algorithm.hash.name, secret.raw, bytes(data), bytes(signature, "signature"));
  }

  function gcmParameters(dictionary) {
    if (dictionary.iv === undefined) throw new TypeError("AES-GCM needs an iv.");
    const tagLength = dictionary.tagLength === undefined ? 128 : Number(dictionary.tagLength);
    if (![32, 64, 96, 104, 112, 120, 128].includes(tagLength)) {
      throw fail("OperationError", `Invalid AES-GCM tag length ${tagLength}.`);
    }
    if (tagLength !== 128) throw fail("NotSupportedError", "Burrow's AES-GCM uses 128-bit tags only.");
    const iv = bytes(dictionary.iv, "iv");
    if (iv.length === 0) throw fail("OperationError", "The AES-GCM iv must not be empty.");
    const aad = dictionary.additionalData === undefined ? new Uint8Array(0) : bytes(dictionary.additionalData, "additionalData");
    return { iv, aad };
  }

  async function encrypt(algorithm, key, data) {
    const { dictionary, name } = normalize(algorithm);
    if (name !== "AES-GCM") throw fail("NotSupportedError", `Burrow encrypts with AES-GCM only (got "${name}").`);
    const secret = use(key, "AES-GCM", "encrypt");
    const { iv, aad } = gcmParameters(dictionary);
    return native.aesGcm(true, secret.raw, iv, aad, bytes(data));
  }

  async function decrypt(algorithm, key, data) {
    const { dictionary, name } = normalize(algorithm);
    if (name !== "AES-GCM") throw fail("NotSupportedError", `Burrow decrypts AES-GCM only (got "${name}").`);
    const secret = use(key, "AES-GCM", "decrypt");
    const { iv, aad } = gcmParameters(dictionary);
    const input = bytes(data);
    if (input.length < 16) throw fail("OperationError", "The ciphertext is shorter than the tag.");
    return native.aesGcm(false, secret.raw, iv, aad, input);
  }

  function derive(dictionary, name, secret, length) {
    if (length === null || length === undefined || !(Number(length) > 0) || Number(length) % 8 !== 0) {
      throw fail("OperationError", "The length must be a positive multiple of 8.");
    }
    const hash = hashName(dictionary.hash);
    if (name === "PBKDF2") {
      const iterations = Number(dictionary.iterations);
      if (!(iterations > 0)) throw fail("OperationError", "PBKDF2 needs at least one iteration.");
      if (iterations > 100000) {
        throw fail("NotSupportedError", `Pbkdf2 failed: iteration counts above 100000 are not supported (requested ${iterations}).`);
      }
      return native.pbkdf2(hash, secret.raw, bytes(dictionary.salt, "salt"), iterations, Number(length) / 8);
    }
    return native.hkdf(hash, secret.raw, bytes(dictionary.salt, "salt"), bytes(dictionary.info, "info"), Number(length) / 8);
  }

  async function deriveBits(algorithm, key, length) {
    const { dictionary, name } = normalize(algorithm);
    if (name !== "PBKDF2" && name !== "HKDF") throw fail("NotSupportedError", `Burrow derives with PBKDF2 and HKDF only (got "${name}").`);
    return derive(dictionary, name, use(key, name, "deriveBits"), length);
  }

  async function deriveKey(algorithm, key, derivedAlgorithm, extractable, usages) {
    const { dictionary, name } = normalize(algorithm);
    if (name !== "PBKDF2" && name !== "HKDF") throw fail("NotSupportedError", `Burrow derives with PBKDF2 and HKDF only (got "${name}").`);
    const secret = use(key, name, "deriveKey");
    const target = normalize(derivedAlgorithm);
    let bits;
    if (target.name === "AES-GCM") bits = aesLength(Number(target.dictionary.length));
    else if (target.name === "HMAC") {
      bits = target.dictionary.length === undefined ? BLOCK_BITS[hashName(target.dictionary.hash)] : Number(target.dictionary.length);
    } else throw fail("NotSupportedError", `Cannot derive a "${target.dictionary.name}" key.`);
    const raw = derive(dictionary, name, secret, bits);
    return importKey("raw", raw, derivedAlgorithm, extractable, usages);
  }

  function timingSafeEqual(a, b) {
    const left = bytes(a, "a");
    const right = bytes(b, "b");
    if (left.byteLength !== right.byteLength) throw new TypeError("Input buffers must have the same byte length.");
    let difference = 0;
    for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
    return difference === 0;
  }

  class SubtleCrypto {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
  }
  const methods = { digest, importKey, exportKey, generateKey, sign, verify, encrypt, decrypt, deriveBits, deriveKey };
  for (const [name, fn] of Object.entries(methods)) {
    Object.defineProperty(SubtleCrypto.prototype, name, {
      value(...args) {
        try {
          return fn(...args);
        } catch (error) {
          return Promise.reject(error);
        }
      },
      writable: true,
      configurable: true,
    });
  }
  Object.defineProperty(SubtleCrypto.prototype, "timingSafeEqual", { value: timingSafeEqual, writable: true, configurable: true });
  const subtle = Object.create(SubtleCrypto.prototype);

  // A WritableStream of bytes whose `digest` promise resolves to the hash of everything written
  // (the chunks are kept until close: the digest needs the whole input).
  class DigestStream extends WritableStream {
    constructor(algorithm) {
      const { name } = normalize(algorithm);
      if (!HASHES.includes(name)) throw fail("NotSupportedError", "Unrecognized name.");
      const chunks = [];
      let total = 0;
      let settle;
      const result = new Promise((resolve, reject) => (settle = { resolve, reject }));
      result.catch(() => {});
      super({
        write(chunk) {
          const view = bytes(chunk, "chunk").slice();
          chunks.push(view);
          total += view.length;
        },
        close() {
          const all = new Uint8Array(total);
          let offset = 0;
          for (const chunk of chunks) {
            all.set(chunk, offset);
            offset += chunk.length;
          }
          settle.resolve(native.digest(name, all));
        },
        abort(reason) {
          settle.reject(reason);
        },
      });
      Object.defineProperty(this, "digest", { value: result, enumerable: true });
    }
  }

  g.CryptoKey = CryptoKey;
  g.SubtleCrypto = SubtleCrypto;
  g.crypto.subtle = subtle;
  g.crypto.DigestStream = DigestStream;
  if (typeof g.Crypto === "function") Object.defineProperty(g.Crypto.prototype, "subtle", { get: () => subtle, configurable: true });
});
