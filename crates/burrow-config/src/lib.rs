//! Loads and validates wrangler.toml / wrangler.json(c) into typed structs (in progress).
