//! KV namespaces end to end on a real node: reads and writes, metadata, every limit with
//! Cloudflare's message, expiry driven by a manual clock, large values split across rows, list
//! pagination under concurrent writes, read-your-writes across shards, and restart.

mod kv_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use burrow_runtime::clock::{ManualClock, SystemClock};
use burrow_services::kv::{Error, KvNamespace, ListOptions, PutOptions, ValueWithMetadata};
use bytes::Bytes;
use kv_support::{Node, wait_until};
use serde_json::json;

const START_MS: i64 = 1_700_000_000_000;

async fn manual_node(dir: &std::path::Path) -> (Node, ManualClock) {
    let clock = ManualClock::new(START_MS);
    let node = Node::start(dir, Arc::new(clock.clone())).await;
    (node, clock)
}

/// Every key of a namespace, walking all pages of `limit`.
async fn list_all(kv: &KvNamespace, prefix: Option<&str>, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = kv
            .list(ListOptions {
                prefix: prefix.map(str::to_owned),
                limit: Some(limit),
                cursor,
            })
            .await
            .unwrap();
        assert!(page.keys.len() <= limit);
        keys.extend(page.keys.into_iter().map(|key| key.name));
        if page.list_complete {
            assert!(page.cursor.is_none());
            return keys;
        }
        cursor = Some(page.cursor.expect("an incomplete page has a cursor"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_as_bytes_text_and_json_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock) = manual_node(dir.path()).await;
    let kv = node.kv.namespace("SESSIONS");
    assert_eq!(kv.get("missing").await.unwrap(), None);
    assert_eq!(kv.get_with_metadata("missing").await.unwrap(), None);

    kv.put("text", "héllo").await.unwrap();
    assert_eq!(kv.get_text("text").await.unwrap().as_deref(), Some("héllo"));
    kv.put("bytes", [0u8, 255, 1]).await.unwrap();
    assert_eq!(
        kv.get("bytes").await.unwrap(),
        Some(Bytes::from_static(&[0, 255, 1]))
    );
    kv.put("json", r#"{"user":7,"roles":["a"]}"#).await.unwrap();
    let parsed: serde_json::Value = kv.get_json("json").await.unwrap().unwrap();
    assert_eq!(parsed, json!({"user": 7, "roles": ["a"]}));
    let not_json = kv.get_json::<serde_json::Value>("text").await.unwrap_err();
    assert!(matches!(not_json, Error::Json { .. }), "{not_json}");
    kv.put("empty", "").await.unwrap();
    assert_eq!(kv.get("empty").await.unwrap(), Some(Bytes::new()));

    // Metadata and expiration come back exactly, on get and on list.
    let metadata = json!({"owner": "ana", "n": 1.5, "tags": [null, true], "nested": {"ü": "✓"}});
    kv.put_with(
        "meta",
        "v",
        PutOptions {
            metadata: Some(metadata.clone()),
            expiration_ttl: Some(3600),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    let found = kv.get_with_metadata("meta").await.unwrap().unwrap();
    assert_eq!(
        found,
        ValueWithMetadata {
            value: Bytes::from_static(b"v"),
            metadata: Some(metadata.clone()),
            expiration: Some(START_MS / 1000 + 3600),
        }
    );
    let page = kv.list(ListOptions::default()).await.unwrap();
    let listed = page.keys.iter().find(|key| key.name == "meta").unwrap();
    assert_eq!(listed.metadata.as_ref(), Some(&metadata));
    assert_eq!(listed.expiration, Some(START_MS / 1000 + 3600));
    let plain = page.keys.iter().find(|key| key.name == "text").unwrap();
    assert_eq!((plain.metadata.as_ref(), plain.expiration), (None, None));

    // Overwriting replaces value and metadata; delete removes; deleting again is fine.
    kv.put("meta", "w").await.unwrap();
    let found = kv.get_with_metadata("meta").await.unwrap().unwrap();
    assert_eq!(
        (found.value, found.metadata),
        (Bytes::from_static(b"w"), None)
    );
    kv.delete("meta").await.unwrap();
    kv.delete("meta").await.unwrap();
    assert_eq!(kv.get("meta").await.unwrap(), None);

    // Bulk get: every distinct key asked for, in order, missing ones as None.
    let bulk = kv
        .get_many_with_metadata(&["text", "missing", "bytes", "text"])
        .await
        .unwrap();
    assert_eq!(
        bulk.iter()
            .map(|(key, found)| (key.as_str(), found.as_ref().map(|f| f.value.clone())))
            .collect::<Vec<_>>(),
        vec![
            ("text", Some(Bytes::from("héllo"))),
            ("missing", None),
            ("bytes", Some(Bytes::from_static(&[0, 255, 1]))),
        ]
    );
    let hundred: Vec<String> = (0..100).map(|i| format!("bulk{i}")).collect();
    for key in hundred.iter().step_by(3) {
        kv.put(key, key.as_bytes()).await.unwrap();
    }
    let bulk = kv.get_many(&hundred).await.unwrap();
    assert_eq!(bulk.len(), 100);
    for (i, (key, value)) in bulk.iter().enumerate() {
        assert_eq!(key, &hundred[i]);
        assert_eq!(value.is_some(), i % 3 == 0, "{key}");
    }

    // Namespaces are separate.
    let other = node.kv.namespace("OTHER");
    assert_eq!(other.get("text").await.unwrap(), None);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_rejects_with_cloudflares_message_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock) = manual_node(dir.path()).await;
    let kv = node.kv.namespace("LIMITS");
    let now_s = START_MS / 1000;
    let long_key = "k".repeat(513);
    let max_key = "k".repeat(512);
    let too_big = vec![7u8; 25 * 1024 * 1024 + 1];
    let big_metadata = json!("m".repeat(1023)); // 1025 bytes with its quotes
    let with = |options: PutOptions| options;
    let cases: Vec<(&str, Result<(), Error>, String)> = vec![
        (
            "",
            kv.put("", "v").await,
            "Key name cannot be empty.".into(),
        ),
        (
            ".",
            kv.put(".", "v").await,
            "\".\" is not allowed as a key name.".into(),
        ),
        (
            "..",
            kv.put("..", "v").await,
            "\"..\" is not allowed as a key name.".into(),
        ),
        (
            "long",
            kv.put(&long_key, "v").await,
            "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.".into(),
        ),
        (
            "value",
            kv.put("value", &too_big).await,
            "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.".into(),
        ),
        (
            "metadata",
            kv.put_with(
                "metadata",
                "v",
                with(PutOptions {
                    metadata: Some(big_metadata),
                    ..PutOptions::default()
                }),
            )
            .await,
            "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.".into(),
        ),
        (
            "ttl0",
            kv.put_with(
                "ttl0",
                "v",
                with(PutOptions {
                    expiration_ttl: Some(0),
                    ..PutOptions::default()
                }),
            )
            .await,
            "KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0.".into(),
        ),
        (
            "ttl59",
            kv.put_with(
                "ttl59",
                "v",
                with(PutOptions {
                    expiration_ttl: Some(59),
                    ..PutOptions::default()
                }),
            )
            .await,
            "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at least 60.".into(),
        ),
        (
            "past",
            kv.put_with(
                "past",
                "v",
                with(PutOptions {
                    expiration: Some(now_s),
                    ..PutOptions::default()
                }),
            )
            .await,
            format!(
                    "KV PUT failed: 400 Invalid expiration of {now_s}. Please specify integer greater than the current number of seconds since the UNIX epoch."
                ),
        ),
        (
            "soon",
            kv.put_with(
                "soon",
                "v",
                with(PutOptions {
                    expiration: Some(now_s + 59),
                    ..PutOptions::default()
                }),
            )
            .await,
            format!(
                    "KV PUT failed: 400 Invalid expiration of {}. Expiration times must be at least 60 seconds in the future.",
                    now_s + 59
                ),
        ),
    ];
    for (key, result, message) in cases {
        let error = result.expect_err(key);
        assert_eq!(error.to_string(), message, "put {key:?}");
    }
    // Nothing was stored by any rejected call.
    assert!(
        kv.list(ListOptions::default())
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    assert_eq!(kv.storage_stats().await.unwrap().entries, 0);

    // Reads, deletes, bulk gets and lists check their arguments too.
    let read_errors = vec![
        (kv.get("").await.map(drop), "Key name cannot be empty."),
        (
            kv.get(&long_key).await.map(drop),
            "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
        ),
        (
            kv.delete(&long_key).await,
            "KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
        ),
        (
            kv.delete("..").await,
            "\"..\" is not allowed as a key name.",
        ),
        (
            kv.get_many::<&str>(&[]).await.map(drop),
            "KV GET_BULK failed: 400 You must request a minimum of 1 key",
        ),
        (
            kv.get_many(&(0..101).map(|i| i.to_string()).collect::<Vec<_>>())
                .await
                .map(drop),
            "KV GET_BULK failed: 400 You can request a maximum of 100 keys",
        ),
        (
            kv.get_many(&["a", "."]).await.map(drop),
            "KV GET_BULK failed: 400 Key name . is not legal",
        ),
        (
            kv.get_many(&[""]).await.map(drop),
            "KV GET_BULK failed: 400 Key name  is not legal",
        ),
        (
            kv.list(ListOptions {
                limit: Some(0),
                ..ListOptions::default()
            })
            .await
            .map(drop),
            "KV GET failed: 400 Invalid key_count_limit of 0. Please specify an integer greater than 0.",
        ),
        (
            kv.list(ListOptions {
                limit: Some(1001),
                ..ListOptions::default()
            })
            .await
            .map(drop),
            "KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
        ),
        (
            kv.list(ListOptions {
                cursor: Some("not a cursor".into()),
                ..ListOptions::default()
            })
            .await
            .map(drop),
            "KV GET failed: 400 Invalid cursor",
        ),
        (
            kv.list(ListOptions {
                prefix: Some(long_key.clone()),
                ..ListOptions::default()
            })
            .await
            .map(drop),
            "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
        ),
    ];
    for (result, message) in read_errors {
        assert_eq!(result.unwrap_err().to_string(), message);
    }

    // The limits themselves are allowed.
    kv.put_with(
        &max_key,
        "v",
        PutOptions {
            metadata: Some(json!("m".repeat(1022))),
            expiration: Some(now_s + 60),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    kv.put_with(
        "ttl60",
        "v",
        PutOptions {
            expiration_ttl: Some(60),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(kv.get(&max_key).await.unwrap(), Some(Bytes::from("v")));
    let page = kv
        .list(ListOptions {
            limit: Some(1000),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(page.keys.len(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_never_returned_and_the_alarms_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let (node, clock) = manual_node(dir.path()).await;
    let kv = node.kv.namespace("CACHE");
    // 40 keys expiring at 60..100 s (spread over every partition), 10 that never expire.
    for i in 0..40 {
        kv.put_with(
            &format!("ttl/{i:02}"),
            format!("v{i}"),
            PutOptions {
                expiration_ttl: Some(60 + i),
                metadata: Some(json!({"i": i})),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    }
    for i in 0..10 {
        kv.put(&format!("keep/{i}"), "k").await.unwrap();
    }
    let stats = kv.storage_stats().await.unwrap();
    assert_eq!(stats.entries, 50);
    assert!(
        stats.alarms >= 8,
        "partitions with expiring keys armed alarms: {stats:?}"
    );

    // Just before the first expiry everything is there.
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(kv.get_text("ttl/00").await.unwrap().as_deref(), Some("v0"));
    // At the expiration second the key is gone from every read, whether or not the alarm ran.
    clock.advance(Duration::from_millis(1));
    assert_eq!(kv.get("ttl/00").await.unwrap(), None);
    assert_eq!(kv.get_with_metadata("ttl/00").await.unwrap(), None);
    assert_eq!(kv.get_many(&["ttl/00"]).await.unwrap()[0].1, None);
    assert!(!list_all(&kv, None, 7).await.contains(&"ttl/00".to_string()));

    // 20 s later keys 0..=20 have expired; reads never return them, the alarms delete them.
    clock.advance(Duration::from_secs(20));
    for i in 0..40 {
        let value = kv.get(&format!("ttl/{i:02}")).await.unwrap();
        assert_eq!(value.is_some(), i > 20, "ttl/{i:02}");
    }
    let listed = list_all(&kv, Some("ttl/"), 5).await;
    assert_eq!(listed.len(), 19);
    wait_until(|| async { kv.storage_stats().await.unwrap().entries == 29 }).await;

    // After the last expiry only the keys without one remain, and no alarm is left armed.
    clock.advance(Duration::from_secs(40));
    assert_eq!(list_all(&kv, None, 1000).await.len(), 10);
    wait_until(|| async {
        let stats = kv.storage_stats().await.unwrap();
        stats.entries == 10 && stats.alarms == 0
    })
    .await;

    // Overwriting a key without an expiration keeps it; the old expiration no longer applies.
    kv.put_with(
        "renewed",
        "1",
        PutOptions {
            expiration_ttl: Some(60),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    kv.put("renewed", "2").await.unwrap();
    clock.advance(Duration::from_secs(120));
    wait_until(|| async { kv.storage_stats().await.unwrap().alarms == 0 }).await;
    assert_eq!(kv.get_text("renewed").await.unwrap().as_deref(), Some("2"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_row_limit_are_chunked_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (node, clock) = manual_node(dir.path()).await;
    let kv = node.kv.namespace("BLOBS");
    let pattern = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let three_mb = pattern(3 * 1024 * 1024 + 17, 1);
    let max = pattern(25 * 1024 * 1024, 2);
    kv.put("three", &three_mb).await.unwrap();
    kv.put_with(
        "max",
        &max,
        PutOptions {
            metadata: Some(json!({"size": max.len()})),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(kv.get("three").await.unwrap().unwrap(), three_mb);
    let found = kv.get_with_metadata("max").await.unwrap().unwrap();
    assert_eq!(found.value.len(), max.len());
    assert!(found.value == max);
    assert_eq!(found.metadata, Some(json!({"size": max.len()})));
    let stats = kv.storage_stats().await.unwrap();
    assert_eq!(stats.chunks, 4 + 25);

    // Streaming reads hand out one chunk at a time.
    let mut stream = kv.get_stream("max").await.unwrap().unwrap();
    let mut read = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        assert!(chunk.len() <= 1024 * 1024);
        read.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, 25);
    assert!(read == max);
    // A small value streams as one chunk.
    kv.put("small", "tiny").await.unwrap();
    let stream = kv.get_stream("small").await.unwrap().unwrap();
    assert_eq!(stream.read_to_end().await.unwrap(), Bytes::from("tiny"));
    // A value replaced mid-stream fails the stream instead of mixing two values.
    let mut stream = kv.get_stream("three").await.unwrap().unwrap();
    stream.next_chunk().await.unwrap().unwrap();
    kv.put("three", pattern(2 * 1024 * 1024 + 1, 3))
        .await
        .unwrap();
    let error = stream.next_chunk().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "KV GET failed: 409 The value of key \"three\" changed while it was being streamed"
    );

    // Overwriting with a small value and deleting free the chunks.
    kv.put("three", "small now").await.unwrap();
    assert_eq!(
        kv.get_text("three").await.unwrap().as_deref(),
        Some("small now")
    );
    kv.delete("max").await.unwrap();
    assert_eq!(kv.get("max").await.unwrap(), None);
    assert_eq!(kv.storage_stats().await.unwrap().chunks, 0);

    // Chunked values expire like any other, chunks included.
    kv.put_with(
        "expiring",
        &three_mb,
        PutOptions {
            expiration_ttl: Some(60),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(kv.storage_stats().await.unwrap().chunks, 4);
    clock.advance(Duration::from_secs(61));
    assert_eq!(kv.get("expiring").await.unwrap(), None);
    wait_until(|| async { kv.storage_stats().await.unwrap().chunks == 0 }).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_returns_each_stable_key_once_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Arc::new(SystemClock)).await;
    let kv = node.kv.namespace("PAGES");
    let stable: BTreeSet<String> = (0..600).map(|i| format!("item/{i:04}")).collect();
    for key in &stable {
        kv.put(key, "s").await.unwrap();
    }
    // Writers add and remove other keys between, before and after the stable ones while the
    // listing runs.
    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            for round in 0..400u32 {
                let i = (round * 7919) % 600;
                let churn = format!("item/{i:04}-churn{round}");
                kv.put(&churn, "c").await.unwrap();
                kv.put(&format!("item/{}", 9999 - round), "tail")
                    .await
                    .unwrap();
                kv.put(&format!("aaa/{round}"), "head").await.unwrap();
                if round % 2 == 0 {
                    kv.delete(&churn).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = kv
            .list(ListOptions {
                prefix: Some("item/".into()),
                limit: Some(13),
                cursor,
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.keys.into_iter().map(|key| key.name));
        if page.list_complete {
            break;
        }
        cursor = page.cursor;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(pages > 40);
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "keys come in strictly increasing byte order, so none twice"
    );
    let seen_stable: Vec<&String> = seen.iter().filter(|key| stable.contains(*key)).collect();
    assert_eq!(
        seen_stable.len(),
        stable.len(),
        "every stable key exactly once"
    );
    assert!(seen.iter().all(|key| key.starts_with("item/")));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_to_the_next_read_from_any_shard() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Arc::new(SystemClock)).await;
    let kv = node.kv.namespace("RYW");
    for i in 0..50 {
        let key = format!("k{i}");
        let writer_shard = i % 2;
        let reader_shard = 1 - writer_shard;
        let (writer, reader) = (kv.clone(), kv.clone());
        let put_key = key.clone();
        node.shards
            .run(writer_shard, move || async move {
                writer.put(&put_key, format!("v{i}")).await
            })
            .await
            .unwrap()
            .unwrap();
        let read = node
            .shards
            .run(
                reader_shard,
                move || async move { reader.get_text(&key).await },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, Some(format!("v{i}")));
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_pending_expiries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let node = Node::start(dir.path(), Arc::new(clock.clone())).await;
    let kv = node.kv.namespace("DURABLE");
    kv.put("plain", "p").await.unwrap();
    kv.put("large", vec![9u8; 3 * 1024 * 1024]).await.unwrap();
    kv.put_with(
        "expiring",
        "e",
        PutOptions {
            expiration_ttl: Some(120),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    node.stop().await;

    let node = Node::start(dir.path(), Arc::new(clock.clone())).await;
    let kv = node.kv.namespace("DURABLE");
    assert_eq!(kv.get_text("plain").await.unwrap().as_deref(), Some("p"));
    assert_eq!(
        kv.get("large").await.unwrap().unwrap().len(),
        3 * 1024 * 1024
    );
    assert_eq!(kv.get_text("expiring").await.unwrap().as_deref(), Some("e"));
    assert_eq!(kv.storage_stats().await.unwrap().alarms, 1);
    // The alarm came back from the node's index and deletes the key when it is due.
    clock.advance(Duration::from_secs(121));
    assert_eq!(kv.get("expiring").await.unwrap(), None);
    wait_until(|| async {
        let stats = kv.storage_stats().await.unwrap();
        stats.entries == 2 && stats.alarms == 0
    })
    .await;
    node.stop().await;
}

#[test]
fn handles_and_their_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<KvNamespace>();
    assert_sync::<burrow_services::kv::Kv>();
    // Build the futures without running them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(dir.path(), Arc::new(SystemClock)).await;
        let kv = node.kv.namespace("SEND");
        assert_send(&kv.get("a"));
        assert_send(&kv.put("a", "b"));
        assert_send(&kv.list(ListOptions::default()));
        assert_send(&kv.get_many(&["a"]));
        assert_send(&kv.get_stream("a"));
        node.stop().await;
    });
}
