//! Durable Object ID parsing (`idFromString`).
//!
//! Any text either parses or errors. A parsed ID prints back to the same lower-case hex, parses
//! again to the same ID, and is valid for its namespace; changing any one of its hex digits makes
//! it an ID of no namespace (the 128-bit MAC). Names always give a valid ID that round-trips, and
//! keep the name up to `MAX_NAME_BYTES`.

use burrow_runtime::id::{IdFactory, MAX_NAME_BYTES};

/// A namespace key for the checks.
const NAMESPACE: &str = "burrow-fuzz-namespace";

/// Valid IDs and names the mutations start from.
pub fn corpus() -> Vec<Vec<u8>> {
    let factory = IdFactory::from_unique_key(NAMESPACE);
    let mut corpus: Vec<Vec<u8>> = ["a", "user-1", "", "日本"]
        .iter()
        .map(|name| factory.id_from_name(name).to_string().into_bytes())
        .collect();
    corpus.push(
        factory
            .new_unique_id()
            .to_string()
            .to_uppercase()
            .into_bytes(),
    );
    corpus.push(b"0000000000000000000000000000000000000000000000000000000000000000".to_vec());
    corpus
}

/// Parses `data` as an ID string and as a name.
pub fn check(data: &[u8]) {
    let factory = IdFactory::from_unique_key(NAMESPACE);
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = factory.id_from_string(&text) {
        let printed = id.to_string();
        assert_eq!(
            printed,
            text.to_lowercase(),
            "an ID prints back as its input"
        );
        assert!(factory.is_valid(&id));
        assert_eq!(factory.id_from_string(&printed).ok(), Some(id.clone()));
        let position = data.iter().map(|&byte| usize::from(byte)).sum::<usize>() % printed.len();
        let mut changed = printed.into_bytes();
        changed[position] = if changed[position] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let changed = String::from_utf8(changed).expect("hex is ASCII");
        assert!(
            factory.id_from_string(&changed).is_err(),
            "{changed} differs from a valid ID in one digit yet is accepted"
        );
    }
    let named = factory.id_from_name(&text);
    // Cloudflare leaves the name undefined above MAX_NAME_BYTES; the ID is the same either way.
    let kept = (text.len() <= MAX_NAME_BYTES).then_some(text.as_ref());
    assert_eq!(named.name(), kept);
    let parsed = factory
        .id_from_string(&named.to_string())
        .expect("a named ID parses");
    assert_eq!(parsed, named);
}
