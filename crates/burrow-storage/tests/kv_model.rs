//! Model-based test of the KV API: random sequences of operations (every `list` option, nested
//! transactions that commit, fail or roll back, turns that commit or roll back, and closing and
//! reopening the database file) must behave exactly like a `BTreeMap<String, Vec<u8>>` plus an
//! alarm slot.

use std::collections::BTreeMap;
use std::path::Path;

use burrow_storage::database::{Database, Error};
use burrow_storage::kv::{ListOptions, MAX_KEY_BYTES};
use proptest::prelude::*;
use proptest::test_runner::Config;
use rusqlite::Connection;

/// Pieces that keys are glued from: shared prefixes, non-ASCII, NUL, the largest code point, and
/// characters around the spots where "next key after a prefix" is easy to get wrong.
const PIECES: &[&str] = &[
    "a",
    "ab",
    "b",
    "z",
    "é",
    "日本",
    "\u{0}",
    "\u{7f}",
    "\u{80}",
    "\u{d7ff}",
    "\u{e000}",
    "\u{ffff}",
    "😀",
    "\u{10ffff}",
    "/",
];

#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    kv: BTreeMap<String, Vec<u8>>,
    alarm: Option<i64>,
}

#[derive(Clone, Debug)]
enum Op {
    Put(String, Vec<u8>),
    PutMany(Vec<(String, Vec<u8>)>),
    Get(String),
    GetMany(Vec<String>),
    Delete(String),
    DeleteMany(Vec<String>),
    DeleteAll,
    List(ListOptions),
    SetAlarm(Option<i64>),
    GetAlarm,
    Transaction {
        ops: Vec<Op>,
        rollback: bool,
        fail: bool,
    },
    Commit,
    Rollback,
    Reopen,
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => prop::collection::vec(prop::sample::select(PIECES), 0..4)
            .prop_map(|pieces| pieces.concat()),
        1 => Just("k".repeat(MAX_KEY_BYTES + 1)),
        1 => Just("k".repeat(MAX_KEY_BYTES)),
    ]
}

fn small_key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..3).prop_map(|pieces| pieces.concat())
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..6)
}

fn list_options() -> impl Strategy<Value = ListOptions> {
    (
        prop::option::weighted(0.4, small_key()),
        prop::option::weighted(0.3, small_key()),
        prop::option::weighted(0.4, small_key()),
        prop::option::weighted(0.4, small_key()),
        any::<bool>(),
        prop::option::weighted(0.5, 0usize..6),
    )
        .prop_map(
            |(start, start_after, end, prefix, reverse, limit)| ListOptions {
                start,
                start_after,
                end,
                prefix,
                reverse,
                limit,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        8 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => prop::collection::vec((key(), value()), 0..6).prop_map(Op::PutMany),
        4 => key().prop_map(Op::Get),
        2 => prop::collection::vec(key(), 0..6).prop_map(Op::GetMany),
        4 => key().prop_map(Op::Delete),
        2 => prop::collection::vec(key(), 0..6).prop_map(Op::DeleteMany),
        1 => Just(Op::DeleteAll),
        8 => list_options().prop_map(Op::List),
        1 => prop::option::of(0i64..1_000_000).prop_map(Op::SetAlarm),
        1 => Just(Op::GetAlarm),
        3 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Reopen),
    ];
    leaf.prop_recursive(2, 24, 6, |inner| {
        (
            prop::collection::vec(inner, 0..6),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(ops, rollback, fail)| Op::Transaction {
                ops,
                rollback,
                fail,
            })
    })
}

fn open(path: &Path) -> Database {
    Database::new(Connection::open(path).expect("open")).expect("set up")
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        Err(Error::KeyTooLarge {
            max: MAX_KEY_BYTES,
            size: key.len(),
        })
    } else {
        Ok(())
    }
}

/// What `list` should return, straight from the definition of each option.
fn model_list(
    kv: &BTreeMap<String, Vec<u8>>,
    options: &ListOptions,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if options.start.is_some() && options.start_after.is_some() {
        return Err(Error::StartAndStartAfter);
    }
    if options.limit == Some(0) {
        return Err(Error::ListLimitNotPositive);
    }
    let mut entries: Vec<(String, Vec<u8>)> = kv
        .iter()
        .filter(|(key, _)| options.start.as_ref().is_none_or(|start| *key >= start))
        .filter(|(key, _)| {
            options
                .start_after
                .as_ref()
                .is_none_or(|after| *key > after)
        })
        .filter(|(key, _)| options.end.as_ref().is_none_or(|end| *key < end))
        .filter(|(key, _)| {
            options
                .prefix
                .as_ref()
                .is_none_or(|prefix| key.starts_with(prefix.as_str()))
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if options.reverse {
        entries.reverse();
    }
    entries.truncate(options.limit.unwrap_or(usize::MAX));
    Ok(entries)
}

struct Harness<'a> {
    path: &'a Path,
    db: Option<Database>,
    committed: State,
    current: State,
}

impl Harness<'_> {
    fn db(&mut self) -> &mut Database {
        self.db.as_mut().expect("open")
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Commit => {
                self.db().commit_turn().map_err(fail)?;
                self.committed = self.current.clone();
            }
            Op::Rollback => {
                self.db().rollback_turn().map_err(fail)?;
                self.current = self.committed.clone();
            }
            Op::Reopen => {
                // Closing with a turn open loses the turn, as a crash would.
                drop(self.db.take());
                self.db = Some(open(self.path));
                self.current = self.committed.clone();
            }
            other => {
                let db = self.db.as_mut().expect("open");
                apply(db, &mut self.current, other, 0)?;
            }
        }
        let listed = self.db().list(&ListOptions::default()).map_err(fail)?;
        let expected: Vec<_> = self.current.kv.clone().into_iter().collect();
        prop_assert_eq!(listed, expected, "after {:?}", op);
        prop_assert_eq!(self.db().get_alarm().map_err(fail)?, self.current.alarm);
        Ok(())
    }
}

fn fail(error: Error) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

/// Applies one operation to the database and the model, comparing results and errors.
fn apply(db: &mut Database, model: &mut State, op: &Op, depth: usize) -> Result<(), TestCaseError> {
    match op {
        Op::Put(key, value) => {
            let expected = check_key(key);
            prop_assert_eq!(db.put(key, value), expected.clone());
            if expected.is_ok() {
                model.kv.insert(key.clone(), value.clone());
            }
        }
        Op::PutMany(entries) => {
            let expected = entries.iter().try_for_each(|(key, _)| check_key(key));
            prop_assert_eq!(db.put_many(entries), expected.clone());
            if expected.is_ok() {
                for (key, value) in entries {
                    model.kv.insert(key.clone(), value.clone());
                }
            }
        }
        Op::Get(key) => {
            let expected = check_key(key).map(|()| model.kv.get(key).cloned());
            prop_assert_eq!(db.get(key), expected);
        }
        Op::GetMany(keys) => {
            let expected = keys.iter().try_for_each(|key| check_key(key)).map(|()| {
                let mut found: Vec<_> = keys
                    .iter()
                    .filter_map(|key| model.kv.get(key).map(|value| (key.clone(), value.clone())))
                    .collect();
                found.sort();
                found.dedup();
                found
            });
            prop_assert_eq!(db.get_many(keys), expected);
        }
        Op::Delete(key) => {
            let expected = check_key(key).map(|()| model.kv.contains_key(key));
            prop_assert_eq!(db.delete(key), expected.clone());
            if expected.is_ok() {
                model.kv.remove(key);
            }
        }
        Op::DeleteMany(keys) => {
            let expected = keys.iter().try_for_each(|key| check_key(key));
            let result = db.delete_many(keys);
            match expected {
                Err(error) => prop_assert_eq!(result, Err(error)),
                Ok(()) => {
                    let deleted = keys
                        .iter()
                        .filter(|key| model.kv.remove(key.as_str()).is_some())
                        .count();
                    prop_assert_eq!(result, Ok(deleted));
                }
            }
        }
        Op::DeleteAll => {
            let result = db.delete_all();
            if depth > 0 {
                prop_assert_eq!(result, Err(Error::DeleteAllInTransaction));
            } else {
                prop_assert_eq!(result, Ok(model.kv.len() as u64));
                model.kv.clear();
                model.alarm = None;
            }
        }
        Op::List(options) => {
            prop_assert_eq!(
                db.list(options),
                model_list(&model.kv, options),
                "{:?}",
                options
            );
        }
        Op::SetAlarm(time) => {
            prop_assert_eq!(db.set_alarm(*time), Ok(()));
            model.alarm = *time;
        }
        Op::GetAlarm => prop_assert_eq!(db.get_alarm(), Ok(model.alarm)),
        Op::Commit => prop_assert_eq!(db.commit_turn(), Err(Error::TurnEndedInsideTransaction)),
        Op::Rollback => {
            prop_assert_eq!(db.rollback_turn(), Err(Error::TurnEndedInsideTransaction))
        }
        Op::Reopen => {}
        Op::Transaction {
            ops,
            rollback,
            fail,
        } => {
            let mut scratch = model.clone();
            let mut mismatch = None;
            let result: Result<(), Error> = db.transaction(|db| {
                for op in ops {
                    if let Err(error) = apply(db, &mut scratch, op, depth + 1) {
                        mismatch.get_or_insert(error);
                    }
                }
                if *rollback {
                    db.rollback_transaction();
                }
                if *fail {
                    Err(Error::NoStatement)
                } else {
                    Ok(())
                }
            });
            if let Some(error) = mismatch {
                return Err(error);
            }
            prop_assert_eq!(result.is_err(), *fail);
            if !*rollback && !*fail {
                *model = scratch;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn kv_matches_a_btreemap(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object.sqlite");
        let mut harness = Harness {
            path: &path,
            db: Some(open(&path)),
            committed: State::default(),
            current: State::default(),
        };
        for op in &ops {
            harness.run(op)?;
        }
        harness.run(&Op::Commit)?;
        harness.run(&Op::Reopen)?;
        prop_assert_eq!(&harness.current, &harness.committed);
    }
}
