//! Durable Object IDs in Cloudflare's format, made and checked per namespace, and the shard an ID runs on.
//!
//! # Format
//!
//! An ID is 32 bytes, written as 64 lowercase hex digits:
//!
//! ```text
//! bytes 0..16   base   idFromName: the first 16 bytes of HMAC-SHA256(namespace key, name)
//!                      newUniqueId: 16 random bytes
//! bytes 16..32  mac    the first 16 bytes of HMAC-SHA256(namespace key, base)
//! ```
//!
//! The namespace key is SHA-256 of the namespace's unique key (a string; see [`NamespaceKey`] and
//! `crate::namespace` for where Burrow's unique keys come from). This is exactly what workerd does
//! (`src/workerd/server/actor-id-impl.c++`), so the same unique key gives the same IDs here as in
//! workerd, `wrangler dev` and Miniflare.
//!
//! # Rules mirrored from Cloudflare
//! - `id_from_name` is deterministic per namespace and keeps the name. Inside the object,
//!   Cloudflare leaves `ctx.id.name` undefined for names over 1,024 bytes, so
//!   [`ObjectId::name`] is `None` for them too ([`MAX_NAME_BYTES`]). Names of any length are accepted.
//! - `id_from_string` accepts exactly 64 hex digits (either case, as workerd's decoder does) and
//!   otherwise fails with the TypeError `Invalid Durable Object ID: must be 64 hex digits`. A MAC
//!   that does not match the namespace fails with `Durable Object ID is not valid for this
//!   namespace.` The parsed ID has no name, as on Cloudflare, and prints in lowercase.
//! - `new_unique_id` puts nothing but randomness in the base. Cloudflare documents no structure in
//!   unique IDs; workerd uses 16 random bytes; only the retired Miniflare 2 encoded a marker byte and
//!   a timestamp. Jurisdictions (`newUniqueId({jurisdiction})`) are not encoded either: Burrow runs
//!   on one installation, and workerd rejects them too.
//!
//! Two IDs are equal when their bytes are; the name does not take part.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::namespace::NamespaceId;

/// Bytes in an ID.
pub const ID_BYTES: usize = 32;
/// Bytes in an ID's base (the first half); the second half is its MAC.
pub const BASE_BYTES: usize = 16;
/// Longest name an ID keeps (Cloudflare leaves `id.name` undefined above this).
pub const MAX_NAME_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a string is not an ID of a namespace. Both are `TypeError`s in JavaScript; the messages
/// are Cloudflare's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not exactly 64 hex digits.
    #[error("Invalid Durable Object ID: must be 64 hex digits")]
    NotHex,
    /// 64 hex digits, but made for another namespace (or made up).
    #[error("Durable Object ID is not valid for this namespace.")]
    WrongNamespace,
}

impl Error {
    /// The JavaScript error class Cloudflare throws for this error.
    pub fn js_error_name(&self) -> &'static str {
        "TypeError"
    }
}

/// A Durable Object ID: 32 bytes and, when made by [`IdFactory::id_from_name`], the name.
///
/// Cheap to clone (the name is shared). Equality, ordering and hashing use the bytes only.
#[derive(Clone)]
pub struct ObjectId {
    bytes: [u8; ID_BYTES],
    name: Option<Arc<str>>,
}

impl ObjectId {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.bytes
    }

    /// The first 16 bytes: the hashed name, or the random base of a unique ID.
    pub fn base(&self) -> &[u8; BASE_BYTES] {
        self.bytes[..BASE_BYTES]
            .try_into()
            .expect("an ID is two halves of BASE_BYTES")
    }

    /// The name given to `id_from_name`, if it was at most [`MAX_NAME_BYTES`] long. `None` for
    /// unique IDs and IDs parsed from strings.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The 64 lowercase hex digits, without allocating.
    pub fn to_hex(&self) -> [u8; 2 * ID_BYTES] {
        let mut text = [0u8; 2 * ID_BYTES];
        encode_hex_into(&self.bytes, &mut text);
        text
    }
}

impl PartialEq for ObjectId {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ObjectId {}

impl std::hash::Hash for ObjectId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl PartialOrd for ObjectId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_hex();
        f.write_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "ObjectId({self}, name: {name:?})"),
            None => write!(f, "ObjectId({self})"),
        }
    }
}

/// A namespace's key: SHA-256 of its unique key. Whoever holds it can make valid IDs for the
/// namespace, so its `Debug` output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceKey([u8; 32]);

impl NamespaceKey {
    /// The key of the namespace whose unique key is `unique_key` (workerd's `uniqueKey`).
    pub fn from_unique_key(unique_key: &str) -> Self {
        NamespaceKey(Sha256::digest(unique_key.as_bytes()).into())
    }

    /// A key given as its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        NamespaceKey(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for NamespaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NamespaceKey(..)")
    }
}

/// Makes and checks the IDs of one namespace. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct IdFactory {
    // Keyed once: cloning the keyed state skips hashing the padded key on every ID.
    keyed: HmacSha256,
}

impl IdFactory {
    /// The factory for the namespace with this key.
    pub fn new(key: &NamespaceKey) -> Self {
        let keyed =
            HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
        IdFactory { keyed }
    }

    /// The factory for the namespace whose unique key is `unique_key`.
    pub fn from_unique_key(unique_key: &str) -> Self {
        Self::new(&NamespaceKey::from_unique_key(unique_key))
    }

    /// `idFromName(name)`: the same name always gives the same ID in this namespace.
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        let digest = self.keyed.clone().chain_update(name.as_bytes()).finalize();
        let base: [u8; BASE_BYTES] = digest.into_bytes()[..BASE_BYTES]
            .try_into()
            .expect("SHA-256 output is longer than a base");
        let kept = (name.len() <= MAX_NAME_BYTES).then(|| Arc::from(name));
        ObjectId {
            bytes: self.complete(&base),
            name: kept,
        }
    }

    /// `newUniqueId()`: an ID with a random base, never made before.
    ///
    /// # Panics
    /// If the operating system's random number generator fails, as workerd does.
    pub fn new_unique_id(&self) -> ObjectId {
        let mut base = [0u8; BASE_BYTES];
        getrandom::fill(&mut base).expect("the operating system's random number generator failed");
        self.id_from_base(base)
    }

    /// The unique ID with this base. [`new_unique_id`](Self::new_unique_id) draws the base from
    /// the operating system; a deterministic simulation passes bases from its seeded generator.
    pub fn id_from_base(&self, base: [u8; BASE_BYTES]) -> ObjectId {
        ObjectId {
            bytes: self.complete(&base),
            name: None,
        }
    }

    /// `idFromString(text)`: parses 64 hex digits and checks that the ID belongs to this namespace.
    pub fn id_from_string(&self, text: &str) -> Result<ObjectId, Error> {
        let mut bytes = [0u8; ID_BYTES];
        decode_hex_into(text, &mut bytes).ok_or(Error::NotHex)?;
        self.id_from_bytes(&bytes)
    }

    /// The ID with these 32 bytes, if its MAC matches this namespace.
    pub fn id_from_bytes(&self, bytes: &[u8; ID_BYTES]) -> Result<ObjectId, Error> {
        let (base, mac) = bytes.split_at(BASE_BYTES);
        // Constant-time comparison: an attacker timing responses must not learn the MAC byte by byte.
        self.keyed
            .clone()
            .chain_update(base)
            .verify_truncated_left(mac)
            .map_err(|_| Error::WrongNamespace)?;
        Ok(ObjectId {
            bytes: *bytes,
            name: None,
        })
    }

    /// Whether `id` was made for this namespace.
    pub fn is_valid(&self, id: &ObjectId) -> bool {
        self.id_from_bytes(id.as_bytes()).is_ok()
    }

    /// The full ID for a base: base, then the first 16 bytes of HMAC(key, base).
    fn complete(&self, base: &[u8; BASE_BYTES]) -> [u8; ID_BYTES] {
        let mac = self
            .keyed
            .clone()
            .chain_update(base)
            .finalize()
            .into_bytes();
        let mut bytes = [0u8; ID_BYTES];
        bytes[..BASE_BYTES].copy_from_slice(base);
        bytes[BASE_BYTES..].copy_from_slice(&mac[..ID_BYTES - BASE_BYTES]);
        bytes
    }
}

impl fmt::Debug for IdFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdFactory(..)")
    }
}

/// The shard (`0..shard_count`) that object `id` of namespace `namespace` runs on.
///
/// The hash is 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the
/// namespace id's 16 bytes followed by the ID's 32 bytes, taken modulo `shard_count`. It is the
/// same in every process and every release (a test pins it). FNV-1a's weak low bits do not
/// matter here: the ID's bytes are HMAC output, already uniform.
///
/// # Panics
/// If `shard_count` is 0.
pub fn shard_of(namespace: &NamespaceId, id: &ObjectId, shard_count: usize) -> usize {
    assert!(shard_count > 0, "shard_of needs at least one shard");
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = namespace
        .as_bytes()
        .iter()
        .chain(id.as_bytes())
        .fold(OFFSET_BASIS, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
    // usize is at least 32 bits on every supported target, and the remainder is below shard_count.
    (hash % shard_count as u64) as usize
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `text`, which must be twice as long.
pub(crate) fn encode_hex_into(bytes: &[u8], text: &mut [u8]) {
    assert_eq!(text.len(), 2 * bytes.len(), "hex needs two digits per byte");
    for (byte, pair) in bytes.iter().zip(text.chunks_exact_mut(2)) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
}

/// `bytes` as a lowercase hex string.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    let mut text = vec![0u8; 2 * bytes.len()];
    encode_hex_into(bytes, &mut text);
    String::from_utf8(text).expect("hex digits are ASCII")
}

/// Decodes exactly `2 * bytes.len()` hex digits (either case) into `bytes`; `None` if `text` is
/// anything else.
pub(crate) fn decode_hex_into(text: &str, bytes: &mut [u8]) -> Option<()> {
    let text = text.as_bytes();
    if text.len() != 2 * bytes.len() {
        return None;
    }
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0xa5];
        let text = encode_hex(&bytes);
        assert_eq!(text, "007f80ffa5");
        let mut back = [0u8; 5];
        assert_eq!(decode_hex_into("007F80FFA5", &mut back), Some(()));
        assert_eq!(back, bytes);
        for junk in ["007f80ffa", "007f80ffa5a", "007f80ffg5", "007f80ff+5", ""] {
            assert_eq!(decode_hex_into(junk, &mut back), None, "{junk:?}");
        }
    }

    #[test]
    fn long_names_are_not_kept() {
        let factory = IdFactory::from_unique_key("k");
        let at_limit = "a".repeat(MAX_NAME_BYTES);
        let over_limit = "a".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            factory.id_from_name(&at_limit).name(),
            Some(at_limit.as_str())
        );
        assert_eq!(factory.id_from_name(&over_limit).name(), None);
        // Multi-byte characters count in bytes, as Cloudflare counts them.
        let wide = "é".repeat(MAX_NAME_BYTES / 2 + 1);
        assert_eq!(factory.id_from_name(&wide).name(), None);
    }

    #[test]
    fn debug_hides_keys() {
        let key = NamespaceKey::from_unique_key("secret");
        assert_eq!(format!("{key:?}"), "NamespaceKey(..)");
        assert_eq!(format!("{:?}", IdFactory::new(&key)), "IdFactory(..)");
    }
}
