//! The configuration parser: `wrangler.toml`, `wrangler.json`, `wrangler.jsonc` and `.dev.vars`.
//!
//! Every input is parsed in all three formats, with and without an environment selected; each
//! must return a configuration or an error, never panic. A parsed configuration must survive
//! being printed (its `Debug` form walks every field). `.dev.vars` parsing must yield only keys
//! that appear in the text.

use std::path::Path;

use burrow_config::{Format, LoadOptions, parse_dev_vars, parse_worker};

/// Valid configurations the mutations start from.
pub const CORPUS: &[&[u8]] = &[
    include_bytes!("../../burrow-config/tests/fixtures/full.toml"),
    include_bytes!("../../burrow-config/tests/fixtures/full.jsonc"),
    include_bytes!("../../burrow-config/tests/fixtures/grove.toml"),
    include_bytes!("../../burrow-config/tests/fixtures/jobs.toml"),
    include_bytes!("../../burrow-config/tests/fixtures/flowcraft.jsonc"),
    b"name = \"w\"\nmain = \"src/index.js\"\n[env.staging]\nname = \"s\"\n[[env.staging.kv_namespaces]]\nbinding = \"K\"\nid = \"k\"\n",
    b"{\"name\": \"w\", /* c */ \"env\": {\"staging\": {\"vars\": {\"A\": 1}}},}",
    b"API_KEY=abc\nexport X = 'y # z'\nMULTI=\"a\\nb\nc\"\n# comment\nB=`q`\n",
];

/// Tokens that steer mutations into the grammar's corners.
pub const DICTIONARY: &[&[u8]] = &[
    b"[[durable_objects.bindings]]",
    b"[[migrations]]",
    b"new_sqlite_classes",
    b"[env.staging]",
    b"[triggers]\ncrons = [\"* * * * *\"]",
    b"[[queues.consumers]]",
    b"[[workflows]]",
    b"compatibility_date",
    b"\"\"\"",
    b"'''",
    b"/*",
    b"*/",
    b"//",
    b"\\u0000",
    b"\\uD800",
    b"1e999",
    b"-9223372036854775809",
    b"{\"a\":[[[[[[[[",
    b"\r\n",
    b"export ",
    b"=\"",
];

/// Parses `data` in every format and as `.dev.vars`.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (format, file) in [
        (Format::Toml, "/fuzz/wrangler.toml"),
        (Format::Json, "/fuzz/wrangler.json"),
        (Format::Jsonc, "/fuzz/wrangler.jsonc"),
    ] {
        for environment in [None, Some("staging".to_owned())] {
            let options = LoadOptions { environment };
            if let Ok(parsed) = parse_worker(&text, format, Path::new(file), &options) {
                let _ = format!("{parsed:?}");
            }
        }
    }
    for (key, _) in parse_dev_vars(&text) {
        assert!(!key.is_empty(), "an empty .dev.vars key");
        assert!(
            text.contains(key.as_str()),
            ".dev.vars key {key:?} is not in the text"
        );
    }
}
