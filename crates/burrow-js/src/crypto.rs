//! The native half of `crypto.subtle` (`js/subtle.js`) on ring, which the TLS stack already
//! builds: SHA digests, HMAC sign/verify (constant-time), AES-GCM encrypt/decrypt, PBKDF2 and
//! HKDF. JavaScript checks algorithms, keys and usages; these functions take raw bytes.

use ring::{aead, digest, hkdf, hmac, pbkdf2};
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, TypedArray};

/// Installs the native crypto helpers on `native`, then evaluates subtle.js.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> rquickjs::Result<()> {
    native.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, hash: String, data: TypedArray<'js, u8>| {
                let algorithm = digest_algorithm(&ctx, &hash)?;
                let out = digest::digest(algorithm, bytes(&ctx, &data)?);
                ArrayBuffer::new_copy(ctx, out.as_ref())
            },
        )?,
    )?;
    native.set(
        "hmacSign",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, hash: String, key: TypedArray<'js, u8>, data: TypedArray<'js, u8>| {
                let key = hmac::Key::new(hmac_algorithm(&ctx, &hash)?, bytes(&ctx, &key)?);
                let tag = hmac::sign(&key, bytes(&ctx, &data)?);
                ArrayBuffer::new_copy(ctx, tag.as_ref())
            },
        )?,
    )?;
    native.set(
        "hmacVerify",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: TypedArray<'js, u8>,
             data: TypedArray<'js, u8>,
             signature: TypedArray<'js, u8>| {
                let key = hmac::Key::new(hmac_algorithm(&ctx, &hash)?, bytes(&ctx, &key)?);
                Ok::<_, rquickjs::Error>(
                    hmac::verify(&key, bytes(&ctx, &data)?, bytes(&ctx, &signature)?).is_ok(),
                )
            },
        )?,
    )?;
    native.set(
        "aesGcm",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             encrypt: bool,
             key: TypedArray<'js, u8>,
             iv: TypedArray<'js, u8>,
             aad: TypedArray<'js, u8>,
             data: TypedArray<'js, u8>| {
                let key = bytes(&ctx, &key)?;
                let algorithm = match key.len() {
                    16 => &aead::AES_128_GCM,
                    32 => &aead::AES_256_GCM,
                    _ => {
                        return Err(dom(
                            &ctx,
                            "NotSupportedError",
                            "AES-GCM with a 192-bit key is not supported by Burrow.",
                        ));
                    }
                };
                let key = aead::LessSafeKey::new(
                    aead::UnboundKey::new(algorithm, key)
                        .map_err(|_| dom(&ctx, "DataError", "Invalid AES-GCM key."))?,
                );
                let nonce =
                    aead::Nonce::try_assume_unique_for_key(bytes(&ctx, &iv)?).map_err(|_| {
                        dom(
                            &ctx,
                            "NotSupportedError",
                            "AES-GCM in Burrow takes a 96-bit (12-byte) iv.",
                        )
                    })?;
                let aad = aead::Aad::from(bytes(&ctx, &aad)?);
                let mut buffer = bytes(&ctx, &data)?.to_vec();
                if encrypt {
                    key.seal_in_place_append_tag(nonce, aad, &mut buffer)
                        .map_err(|_| dom(&ctx, "OperationError", "Encryption failed."))?;
                    ArrayBuffer::new(ctx, buffer)
                } else {
                    let plain = key
                        .open_in_place(nonce, aad, &mut buffer)
                        .map_err(|_| dom(&ctx, "OperationError", "Decryption failed."))?;
                    ArrayBuffer::new_copy(ctx.clone(), &plain[..])
                }
            },
        )?,
    )?;
    native.set(
        "pbkdf2",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             password: TypedArray<'js, u8>,
             salt: TypedArray<'js, u8>,
             iterations: u32,
             length: usize| {
                let algorithm = match hash.as_str() {
                    "SHA-1" => pbkdf2::PBKDF2_HMAC_SHA1,
                    "SHA-256" => pbkdf2::PBKDF2_HMAC_SHA256,
                    "SHA-384" => pbkdf2::PBKDF2_HMAC_SHA384,
                    "SHA-512" => pbkdf2::PBKDF2_HMAC_SHA512,
                    _ => return Err(dom(&ctx, "NotSupportedError", "Unrecognized hash.")),
                };
                let iterations = std::num::NonZeroU32::new(iterations).ok_or_else(|| {
                    dom(
                        &ctx,
                        "OperationError",
                        "PBKDF2 needs at least one iteration.",
                    )
                })?;
                let mut out = vec![0; length];
                pbkdf2::derive(
                    algorithm,
                    iterations,
                    bytes(&ctx, &salt)?,
                    bytes(&ctx, &password)?,
                    &mut out,
                );
                ArrayBuffer::new(ctx, out)
            },
        )?,
    )?;
    native.set(
        "hkdf",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: TypedArray<'js, u8>,
             salt: TypedArray<'js, u8>,
             info: TypedArray<'js, u8>,
             length: usize| {
                let algorithm = match hash.as_str() {
                    "SHA-1" => hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
                    "SHA-256" => hkdf::HKDF_SHA256,
                    "SHA-384" => hkdf::HKDF_SHA384,
                    "SHA-512" => hkdf::HKDF_SHA512,
                    _ => return Err(dom(&ctx, "NotSupportedError", "Unrecognized hash.")),
                };
                let info = [bytes(&ctx, &info)?];
                let prk =
                    hkdf::Salt::new(algorithm, bytes(&ctx, &salt)?).extract(bytes(&ctx, &key)?);
                let okm = prk
                    .expand(&info, Length(length))
                    .map_err(|_| dom(&ctx, "OperationError", "The HKDF length is too large."))?;
                let mut out = vec![0; length];
                okm.fill(&mut out)
                    .map_err(|_| dom(&ctx, "OperationError", "The HKDF length is too large."))?;
                ArrayBuffer::new(ctx, out)
            },
        )?,
    )?;
    let subtle: Function = ctx.eval(SUBTLE)?;
    subtle.call::<_, ()>((native.clone(),))?;
    Ok(())
}

/// `crypto.subtle` in JavaScript.
const SUBTLE: &str = include_str!("js/subtle.js");

/// An output length for HKDF.
struct Length(usize);

impl hkdf::KeyType for Length {
    fn len(&self) -> usize {
        self.0
    }
}

fn bytes<'a>(ctx: &Ctx<'_>, array: &'a TypedArray<'_, u8>) -> rquickjs::Result<&'a [u8]> {
    array
        .as_bytes()
        .ok_or_else(|| Exception::throw_type(ctx, "The buffer has been detached."))
}

fn digest_algorithm(ctx: &Ctx<'_>, hash: &str) -> rquickjs::Result<&'static digest::Algorithm> {
    Ok(match hash {
        "SHA-1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "SHA-256" => &digest::SHA256,
        "SHA-384" => &digest::SHA384,
        "SHA-512" => &digest::SHA512,
        _ => return Err(dom(ctx, "NotSupportedError", "Unrecognized name.")),
    })
}

fn hmac_algorithm(ctx: &Ctx<'_>, hash: &str) -> rquickjs::Result<hmac::Algorithm> {
    Ok(match hash {
        "SHA-1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "SHA-256" => hmac::HMAC_SHA256,
        "SHA-384" => hmac::HMAC_SHA384,
        "SHA-512" => hmac::HMAC_SHA512,
        _ => return Err(dom(ctx, "NotSupportedError", "Unrecognized hash.")),
    })
}

/// Throws `new DOMException(message, name)`.
fn dom(ctx: &Ctx<'_>, name: &str, message: &str) -> rquickjs::Error {
    let made = (|| -> rquickjs::Result<rquickjs::Value<'_>> {
        let class: rquickjs::function::Constructor = ctx.globals().get("DOMException")?;
        class.construct((message, name))
    })();
    match made {
        Ok(value) => ctx.throw(value),
        Err(error) => error,
    }
}
