//! Model-based property test: random sequences of put (with metadata and TTLs), delete, get, bulk
//! get, paged list and clock moves against a KV namespace, compared after every step with a
//! `BTreeMap` that expires keys by the same clock.

mod kv_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use burrow_runtime::clock::{Clock, ManualClock};
use burrow_services::kv::{KvNamespace, ListOptions, PutOptions};
use bytes::Bytes;
use kv_support::Node;
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        metadata: Option<u8>,
        ttl_seconds: Option<i64>,
    },
    Delete(String),
    Get(String),
    GetMany(Vec<String>),
    List {
        prefix: Option<String>,
        limit: usize,
    },
    Advance(u64),
}

/// Model entry: value, metadata, expiration in epoch seconds.
type Entry = (Vec<u8>, Option<serde_json::Value>, Option<i64>);
type Model = BTreeMap<String, Entry>;

fn key() -> impl Strategy<Value = String> {
    // A small alphabet makes collisions, shared prefixes, NULs and 4-byte characters common.
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', '/', 'é', '\0', '\u{10FFFF}', 'Z']),
        1..5,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (
            key(),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::option::of(any::<u8>()),
            prop::option::weighted(0.3, 60i64..200),
        )
            .prop_map(|(key, value, metadata, ttl_seconds)| Op::Put {
                key,
                value,
                metadata,
                ttl_seconds,
            }),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        1 => prop::collection::vec(key(), 1..6).prop_map(Op::GetMany),
        2 => (prop::option::of(key()), 1usize..6).prop_map(|(prefix, limit)| Op::List {
            prefix: prefix.map(|p| p.chars().take(2).collect()),
            limit,
        }),
        1 => (1u64..120).prop_map(Op::Advance),
    ]
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    node: Node,
    clock: ManualClock,
    _dir: tempfile::TempDir,
    namespaces: AtomicUsize,
}

/// One node for every case; each case gets a namespace of its own.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_700_000_000_000);
        let node = runtime.block_on(Node::start(dir.path(), Arc::new(clock.clone())));
        Harness {
            runtime,
            node,
            clock,
            _dir: dir,
            namespaces: AtomicUsize::new(0),
        }
    })
}

fn live(model: &Model, now_seconds: i64) -> BTreeMap<&String, &Entry> {
    model
        .iter()
        .filter(|(_, (_, _, expiration))| expiration.is_none_or(|at| at > now_seconds))
        .collect()
}

async fn run(kv: &KvNamespace, clock: &ManualClock, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    for op in ops {
        let now_seconds = clock.now_ms().div_euclid(1000);
        match op {
            Op::Put {
                key,
                value,
                metadata,
                ttl_seconds,
            } => {
                let metadata = metadata.map(|n| json!({"n": n}));
                kv.put_with(
                    &key,
                    &value,
                    PutOptions {
                        metadata: metadata.clone(),
                        expiration_ttl: ttl_seconds,
                        ..PutOptions::default()
                    },
                )
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expiration = ttl_seconds.map(|ttl| now_seconds + ttl);
                model.insert(key, (value, metadata, expiration));
            }
            Op::Delete(key) => {
                kv.delete(&key)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.remove(&key);
            }
            Op::Get(key) => {
                let got = kv
                    .get_with_metadata(&key)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expected = live(&model, now_seconds)
                    .get(&key)
                    .map(|(v, m, e)| (Bytes::from(v.clone()), m.clone(), *e));
                prop_assert_eq!(
                    got.map(|found| (found.value, found.metadata, found.expiration)),
                    expected,
                    "get {:?}",
                    key
                );
            }
            Op::GetMany(keys) => {
                let got = kv
                    .get_many(&keys)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let live = live(&model, now_seconds);
                let mut expected: Vec<(String, Option<Bytes>)> = Vec::new();
                for key in keys {
                    if expected.iter().any(|(seen, _)| *seen == key) {
                        continue;
                    }
                    let value = live.get(&key).map(|(v, _, _)| Bytes::from(v.clone()));
                    expected.push((key, value));
                }
                prop_assert_eq!(got, expected);
            }
            Op::List { prefix, limit } => {
                let mut listed = Vec::new();
                let mut cursor = None;
                for _ in 0..1000 {
                    let page = kv
                        .list(ListOptions {
                            prefix: prefix.clone(),
                            limit: Some(limit),
                            cursor,
                        })
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(page.keys.len() <= limit);
                    prop_assert!(page.list_complete || page.keys.len() == limit);
                    listed.extend(
                        page.keys
                            .into_iter()
                            .map(|key| (key.name, key.metadata, key.expiration)),
                    );
                    if page.list_complete {
                        break;
                    }
                    cursor = page.cursor;
                }
                let expected: Vec<_> = live(&model, now_seconds)
                    .into_iter()
                    .filter(|(key, _)| prefix.as_ref().is_none_or(|p| key.starts_with(p.as_str())))
                    .map(|(key, (_, metadata, expiration))| {
                        (key.clone(), metadata.clone(), *expiration)
                    })
                    .collect();
                prop_assert_eq!(listed, expected, "list prefix {:?} limit {}", prefix, limit);
            }
            Op::Advance(seconds) => clock.advance(Duration::from_secs(seconds)),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn kv_matches_a_btreemap(ops in prop::collection::vec(op(), 1..60)) {
        let harness = harness();
        let id = harness.namespaces.fetch_add(1, Ordering::SeqCst);
        let kv = harness.node.kv.namespace(&format!("model-{id}"));
        harness.runtime.block_on(run(&kv, &harness.clock, ops))?;
    }
}
