//! A failed write or fsync poisons the journal: no Durable resolves Ok afterwards (fsyncgate), all
//! waiters are told, appends fail, and a reopen recovers what is really on disk.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use burrow_storage::fs::Fs;
use burrow_storage::fs::sim::SimFs;
use burrow_storage::journal::{Durable, Error, Journal, Lsn, Options};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIR: &str = "/journal";

fn options() -> Options {
    Options {
        segment_bytes: 1024,
        max_batch_bytes: 512,
        ..Options::default()
    }
}

fn open(sim: &SimFs) -> Arc<Journal> {
    Journal::open(Arc::new(sim.clone()), Path::new(DIR), options()).unwrap()
}

fn read_all(journal: &Journal) -> Vec<(Lsn, Vec<u8>)> {
    journal
        .read_from(journal.first_lsn())
        .unwrap()
        .collect::<Result<_, Error>>()
        .unwrap()
}

struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll(durable: &mut Durable, waker: &Waker) -> Poll<Result<Lsn, Error>> {
    Pin::new(durable).poll(&mut Context::from_waker(waker))
}

fn assert_poisoned(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::Poisoned { cause }) => assert!(cause.contains("injected"), "{cause}"),
        other => panic!("expected a poisoned journal, got {other:?}"),
    }
}

#[test]
fn a_failed_fsync_poisons_every_pending_and_later_durable() {
    let sim = SimFs::new(1);
    let journal = open(&sim);
    let acknowledged: Vec<_> = (0..5u8)
        .map(|i| journal.append(&[i; 100]).unwrap())
        .collect();
    while journal.flush_once().unwrap() > 0 {}
    assert!(acknowledged.iter().all(Durable::is_durable));
    let durable_before = journal.durable_lsn();

    let mut doomed: Vec<_> = (0..6u8)
        .map(|i| journal.append(&[i; 100]).unwrap())
        .collect();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    for durable in &mut doomed {
        assert!(poll(durable, &waker).is_pending());
    }
    sim.fail_nth_sync(1);
    let error = journal.flush_once().unwrap_err();
    assert!(error.to_string().contains("sync_data"), "{error}");
    assert!(journal.is_poisoned());
    assert_eq!(journal.durable_lsn(), durable_before);
    // Every registered waiter was woken once, and resolves to the error.
    assert_eq!(counter.0.load(Ordering::SeqCst), doomed.len());
    for durable in &mut doomed {
        assert!(!durable.is_durable());
        assert_poisoned(match poll(durable, &waker) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("pending after poison"),
        });
        assert_poisoned(durable.wait());
    }
    // Earlier acknowledgements stand; nothing new is accepted or flushed.
    assert!(acknowledged.iter().all(|d| d.wait().is_ok()));
    assert_poisoned(journal.append(b"later"));
    assert_poisoned(journal.flush_once());
    // The other sync a driver might retry must not make anything durable either.
    assert_eq!(journal.durable_lsn(), durable_before);
    drop(journal);

    sim.crash();
    let journal = open(&sim);
    let records = read_all(&journal);
    assert!(
        records.len() >= 5,
        "acknowledged records lost: {}",
        records.len()
    );
    assert!(
        records
            .iter()
            .zip(0..5u8)
            .all(|((_, bytes), i)| bytes == &vec![i; 100])
    );
}

#[test]
fn a_failed_write_poisons_too() {
    let sim = SimFs::new(2);
    let journal = open(&sim);
    let first = journal.append(&[1; 300]).unwrap();
    while journal.flush_once().unwrap() > 0 {}
    first.wait().unwrap();
    sim.fail_writes_after(0);
    let second = journal.append(&[2; 300]).unwrap();
    let error = journal.flush_once().unwrap_err();
    assert!(error.to_string().contains("write batch"), "{error}");
    assert_poisoned(second.wait());
    assert_poisoned(journal.append(b"x"));
    drop(journal);
    sim.crash();
    let journal = open(&sim);
    let records = read_all(&journal);
    assert_eq!(records[0].1, vec![1; 300]);
    // The failed write may have landed some sectors; a partial record is never returned.
    assert!(records.len() == 1 || records[1].1 == vec![2; 300]);
}

/// Random write and fsync failures, many seeds: whatever resolved Ok survives a power loss, and
/// after the first failure nothing more resolves Ok.
#[test]
fn random_faults_never_lose_an_acknowledged_record() {
    let mut poisonings = 0;
    for seed in 0..200 {
        let sim = SimFs::new(seed);
        let mut rng = StdRng::seed_from_u64(seed);
        let journal = open(&sim);
        sim.set_fault_probability(0.03, 0.03);
        let mut pending: Vec<(Durable, Vec<u8>)> = Vec::new();
        let mut acknowledged: Vec<(Lsn, Vec<u8>)> = Vec::new();
        let mut poisoned_at = None;
        for step in 0..200 {
            if rng.random_range(0..3) > 0 {
                let bytes: Vec<u8> = (0..rng.random_range(0..400))
                    .map(|_| rng.random())
                    .collect();
                match journal.append(&bytes) {
                    Ok(durable) => pending.push((durable, bytes)),
                    Err(error) => assert_poisoned(Err::<(), _>(error)),
                }
            } else if journal.flush_once().is_err() && poisoned_at.is_none() {
                poisoned_at = Some(step);
            }
            let (done, waiting): (Vec<_>, Vec<_>) = pending
                .drain(..)
                .partition(|(durable, _)| durable.is_durable());
            pending = waiting;
            if poisoned_at.is_some() {
                assert!(
                    done.is_empty(),
                    "seed {seed}: a record became durable after poisoning"
                );
            }
            acknowledged.extend(done.into_iter().map(|(d, bytes)| (d.lsn(), bytes)));
        }
        if poisoned_at.is_some() {
            poisonings += 1;
            for (durable, _) in &pending {
                assert_poisoned(durable.wait());
            }
        }
        drop(journal);
        sim.crash();
        let journal = open(&sim);
        let records = read_all(&journal);
        assert!(
            records.len() >= acknowledged.len()
                && records[..acknowledged.len()] == acknowledged[..],
            "seed {seed}: acknowledged records lost"
        );
    }
    assert!(
        poisonings > 100,
        "faults should poison most runs: {poisonings}"
    );
}

#[test]
fn a_failed_sync_while_the_io_thread_runs_fails_blocked_appenders_and_waiters() {
    let sim = SimFs::new(3);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let journal = Journal::open(
        fs,
        Path::new(DIR),
        Options {
            max_pending_bytes: 2000,
            ..options()
        },
    )
    .unwrap();
    let io = journal.start_io_thread();
    let warmup = journal.append(b"warm").unwrap();
    warmup.wait().unwrap();
    sim.fail_nth_sync(3);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..200u32 {
                    match journal.append(&[t; 150]) {
                        Ok(durable) => outcomes.push(durable),
                        Err(error) => {
                            assert_poisoned(Err::<(), _>(error));
                            break;
                        }
                    }
                    if i % 10 == 0 {
                        let _ = outcomes.last().unwrap().wait();
                    }
                }
                outcomes
                    .iter()
                    .map(|d| d.wait().is_ok())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        let outcomes = thread.join().unwrap();
        // Successes, then failures: never Ok after Err.
        let first_failure = outcomes.iter().position(|ok| !ok).unwrap_or(outcomes.len());
        assert!(outcomes[first_failure..].iter().all(|ok| !ok));
    }
    assert!(journal.is_poisoned());
    // The thread reports the failure that stopped it.
    let error = io.stop().unwrap_err();
    assert!(
        error.to_string().contains("injected sync_data failure"),
        "{error}"
    );
}
