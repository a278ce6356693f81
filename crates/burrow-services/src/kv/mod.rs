//! KV namespaces: partitioned system objects with expiry, metadata and stable cursors (in progress).
