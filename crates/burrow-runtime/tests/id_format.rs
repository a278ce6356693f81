//! Durable Object IDs against Cloudflare's definition: known answers computed outside this crate,
//! the HMAC definition recomputed with `sha2`/`hmac` directly, formatting, parsing with
//! Cloudflare's exact messages, uniqueness, and the pinned shard hash.

use std::collections::HashSet;

use burrow_runtime::id::{self, IdFactory, MAX_NAME_BYTES, NamespaceKey, ObjectId, shard_of};
use burrow_runtime::namespace::NamespaceId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const NOT_HEX: &str = "Invalid Durable Object ID: must be 64 hex digits";
const WRONG_NAMESPACE: &str = "Durable Object ID is not valid for this namespace.";

/// The definition, written out independently of the crate: key = SHA-256(unique key),
/// base = HMAC(key, name)[..16], id = base ‖ HMAC(key, base)[..16].
fn reference_id(unique_key: &str, name: &str) -> String {
    let key = Sha256::digest(unique_key.as_bytes());
    let hmac = |data: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes()
    };
    let base = hmac(name.as_bytes())[..16].to_vec();
    let mac = hmac(&base)[..16].to_vec();
    base.iter()
        .chain(&mac)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn id_from_name_matches_answers_computed_elsewhere() {
    // Computed with Python's hmac and hashlib modules. "my-worker-Counter" is the unique key
    // wrangler dev gives class Counter of Worker my-worker.
    let cases = [
        (
            "my-worker-Counter",
            "foo",
            "8d8d52167eba73e7f0268ab71258e747f36d3bda25975c74ec438beeadb76dd6",
        ),
        (
            "my-worker-Counter",
            "",
            "385054d1a4b25061f24068b3076966a0cd22da0f7f126522b60b10de5bab35a9",
        ),
        (
            "my-worker-Counter",
            "unicode ✓ é",
            "1944bf6699efe2488d27cf73101111b79c425b6290943d36d745bb46df34e8b3",
        ),
        (
            "-Counter",
            "foo",
            "3ddc7f7faf2ae78e8589d175b81532d57e72e41b7b2c6134c521870988395aa7",
        ),
        (
            "other",
            "foo",
            "b09cbbc12f680f00012a39ff8f6da2719104a4fb0093ace596784e994617a33d",
        ),
    ];
    for (unique_key, name, expected) in cases {
        let id = IdFactory::from_unique_key(unique_key).id_from_name(name);
        assert_eq!(id.to_string(), expected, "{unique_key:?} {name:?}");
        assert_eq!(reference_id(unique_key, name), expected);
    }
    let unique = IdFactory::from_unique_key("my-worker-Counter")
        .id_from_base(std::array::from_fn(|index| u8::try_from(index).unwrap()));
    assert_eq!(
        unique.to_string(),
        "000102030405060708090a0b0c0d0e0f2d67da4548a301a295bc21a1cd80495c"
    );
}

#[test]
fn id_from_name_matches_the_hmac_definition() {
    let factory = IdFactory::from_unique_key("burrow-test-namespace");
    let long = "x".repeat(5_000);
    for name in [
        "a",
        "b",
        "room/42",
        "  spaces  ",
        "\u{0}nul",
        "日本語",
        long.as_str(),
    ] {
        let id = factory.id_from_name(name);
        assert_eq!(
            id.to_string(),
            reference_id("burrow-test-namespace", name),
            "{name:?}"
        );
        assert_eq!(
            factory.id_from_name(name),
            id,
            "idFromName is deterministic"
        );
    }
    // NamespaceKey::from_bytes with SHA-256(unique key) is the same namespace.
    let key: [u8; 32] = Sha256::digest(b"burrow-test-namespace").into();
    assert_eq!(
        NamespaceKey::from_bytes(key),
        NamespaceKey::from_unique_key("burrow-test-namespace")
    );
    assert_eq!(
        IdFactory::new(&NamespaceKey::from_bytes(key)).id_from_name("a"),
        factory.id_from_name("a")
    );
}

#[test]
fn ids_print_as_64_lowercase_hex_digits_and_keep_their_name() {
    let factory = IdFactory::from_unique_key("k");
    let named = factory.id_from_name("Upper Case NAME");
    let unique = factory.new_unique_id();
    for id in [&named, &unique] {
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{text}"
        );
        assert_eq!(text.as_bytes(), id.to_hex().as_slice());
        assert_eq!(&id.as_bytes()[..16], id.base());
    }
    assert_eq!(named.name(), Some("Upper Case NAME"));
    assert_eq!(unique.name(), None);
    assert_eq!(
        format!("{named:?}"),
        format!("ObjectId({named}, name: \"Upper Case NAME\")")
    );
    assert_eq!(format!("{unique:?}"), format!("ObjectId({unique})"));
    // Names longer than 1,024 bytes give the same ID but are not kept.
    let long = "n".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(factory.id_from_name(&long).name(), None);
    assert_eq!(
        factory.id_from_name(&long).to_string(),
        reference_id("k", &long)
    );
}

#[test]
fn id_from_string_round_trips_and_forgets_the_name() {
    let factory = IdFactory::from_unique_key("k");
    let ids = [factory.id_from_name("alice"), factory.new_unique_id()];
    for id in ids {
        let parsed = factory.id_from_string(&id.to_string()).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(parsed.as_bytes(), id.as_bytes());
        assert_eq!(
            parsed.name(),
            None,
            "Cloudflare: undefined after idFromString"
        );
        // workerd's hex decoder accepts upper case; the ID prints in lower case again.
        let upper = factory
            .id_from_string(&id.to_string().to_uppercase())
            .unwrap();
        assert_eq!(upper, id);
        assert_eq!(upper.to_string(), id.to_string());
        assert!(factory.is_valid(&id));
        assert_eq!(factory.id_from_bytes(id.as_bytes()).unwrap(), id);
    }
}

#[test]
fn equality_and_hashing_ignore_the_name() {
    let factory = IdFactory::from_unique_key("k");
    let named = factory.id_from_name("bob");
    let parsed = factory.id_from_string(&named.to_string()).unwrap();
    assert_eq!(named, parsed);
    let set: HashSet<ObjectId> = [named.clone(), parsed].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert_ne!(named, factory.id_from_name("bobby"));
}

#[test]
fn ids_of_another_namespace_are_rejected_with_cloudflares_message() {
    let ours = IdFactory::from_unique_key("worker-A");
    let theirs = IdFactory::from_unique_key("worker-B");
    for id in [theirs.id_from_name("foo"), theirs.new_unique_id()] {
        let error = ours.id_from_string(&id.to_string()).unwrap_err();
        assert_eq!(error, id::Error::WrongNamespace);
        assert_eq!(error.to_string(), WRONG_NAMESPACE);
        assert_eq!(error.js_error_name(), "TypeError");
        assert!(!ours.is_valid(&id));
    }
    // The same name gives different IDs in different namespaces.
    assert_ne!(ours.id_from_name("foo"), theirs.id_from_name("foo"));
}

#[test]
fn changing_any_bit_of_a_valid_id_is_detected() {
    let factory = IdFactory::from_unique_key("k");
    let id = factory.id_from_name("victim");
    for bit in 0..256 {
        let mut bytes = *id.as_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            factory.id_from_bytes(&bytes).unwrap_err(),
            id::Error::WrongNamespace,
            "bit {bit}"
        );
    }
    assert_eq!(
        factory
            .id_from_string(&"0".repeat(64))
            .unwrap_err()
            .to_string(),
        WRONG_NAMESPACE
    );
}

#[test]
fn malformed_strings_get_cloudflares_message() {
    let factory = IdFactory::from_unique_key("k");
    let valid = factory.id_from_name("x").to_string();
    let cases = [
        String::new(),
        valid[..63].to_owned(),
        format!("{valid}0"),
        format!("{valid}{valid}"),
        format!("g{}", &valid[1..]),
        format!(" {}", &valid[1..]),
        format!("{}\n", &valid[..63]),
        format!("0x{}", &valid[2..]),
        format!("-{}", &valid[1..]),
        // 64 bytes, but 32 characters: lengths count bytes, as workerd counts them.
        "é".repeat(32),
        // 64 characters, but more than 64 bytes.
        format!("é{}", &valid[1..]),
    ];
    for text in cases {
        let error = factory.id_from_string(&text).unwrap_err();
        assert_eq!(error, id::Error::NotHex, "{text:?}");
        assert_eq!(error.to_string(), NOT_HEX);
        assert_eq!(error.js_error_name(), "TypeError");
    }
}

#[test]
fn new_unique_ids_never_repeat() {
    let factory = IdFactory::from_unique_key("k");
    let draws = 100_000;
    let mut seen = HashSet::with_capacity(draws);
    for _ in 0..draws {
        let id = factory.new_unique_id();
        assert!(factory.is_valid(&id));
        assert!(seen.insert(id), "a unique ID repeated");
    }
    // Unique bases are random, not a counter: the bytes spread over the whole range.
    let first_bytes: HashSet<u8> = seen.iter().map(|id| id.as_bytes()[0]).collect();
    assert_eq!(first_bytes.len(), 256);
}

#[test]
fn id_from_base_is_deterministic() {
    let factory = IdFactory::from_unique_key("k");
    let base = [7u8; 16];
    assert_eq!(factory.id_from_base(base), factory.id_from_base(base));
    assert_eq!(factory.id_from_base(base).base(), &base);
    assert_ne!(factory.id_from_base(base), factory.id_from_base([8u8; 16]));
}

#[test]
fn shard_of_is_pinned_and_spreads_ids_evenly() {
    let namespace =
        NamespaceId::from_bytes(std::array::from_fn(|index| u8::try_from(index).unwrap()));
    let id = IdFactory::from_unique_key("my-worker-Counter").id_from_name("foo");
    // FNV-1a 64 of namespace ‖ id is 0x9d9c09c82ca6c14a (computed in Python).
    for (shards, expected) in [
        (1, 0),
        (2, 0),
        (3, 0),
        (7, 3),
        (8, 2),
        (16, 10),
        (1024, 330),
    ] {
        assert_eq!(
            shard_of(&namespace, &id, shards),
            expected,
            "{shards} shards"
        );
    }

    let factory = IdFactory::from_unique_key("k");
    let shards = 8;
    let objects = 40_000;
    let mut counts = vec![0usize; shards];
    for index in 0..objects {
        let shard = shard_of(
            &namespace,
            &factory.id_from_name(&index.to_string()),
            shards,
        );
        counts[shard] += 1;
    }
    let expected = objects / shards;
    for (shard, count) in counts.iter().enumerate() {
        assert!(
            count.abs_diff(expected) < expected / 10,
            "shard {shard} got {count} of {objects} objects: {counts:?}"
        );
    }
}

#[test]
#[should_panic(expected = "at least one shard")]
fn shard_of_refuses_zero_shards() {
    let id = IdFactory::from_unique_key("k").id_from_name("x");
    shard_of(&NamespaceId::from_bytes([0; 16]), &id, 0);
}
