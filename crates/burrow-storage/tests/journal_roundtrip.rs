//! Journal round trips: append, flush by hand, read back across segment boundaries and oversized
//! records, reopen after a clean shutdown, and the Durable handle's waking rules.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use burrow_storage::fs::sim::SimFs;
use burrow_storage::fs::{Fs, OsFs};
use burrow_storage::journal::{Durable, Error, Journal, Lsn, Options};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn small_options() -> Options {
    Options {
        segment_bytes: 1024,
        max_batch_bytes: 2048,
        ..Options::default()
    }
}

fn payload(rng: &mut StdRng, index: usize) -> Vec<u8> {
    let len = match rng.random_range(0..20) {
        0 => rng.random_range(1025..6000), // larger than a segment
        1 => 0,
        _ => rng.random_range(1..700),
    };
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    if len >= 8 {
        bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
    }
    bytes
}

/// Flushes until nothing is queued.
fn flush_all(journal: &Journal) {
    while journal.flush_once().unwrap() > 0 {}
}

fn read_all(journal: &Journal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    journal
        .read_from(from)
        .unwrap()
        .collect::<Result<Vec<_>, Error>>()
        .unwrap()
}

fn segment_names(fs: &dyn Fs, dir: &Path) -> Vec<String> {
    fs.read_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".seg"))
        .collect()
}

/// Appends records of random sizes, flushing at random moments; returns them with their Lsns.
fn append_random(journal: &Journal, rng: &mut StdRng, count: usize) -> Vec<(Lsn, Vec<u8>)> {
    let mut written = Vec::new();
    let mut pending: Vec<(Durable, Vec<u8>)> = Vec::new();
    for index in 0..count {
        let bytes = payload(rng, index);
        let durable = journal.append(&bytes).unwrap();
        assert!(!durable.is_durable());
        pending.push((durable, bytes));
        if rng.random_range(0..4) == 0 {
            flush_all(journal);
            for (durable, bytes) in pending.drain(..) {
                assert!(durable.is_durable());
                let lsn = durable.wait().unwrap();
                assert_eq!(lsn, durable.lsn());
                written.push((lsn, bytes));
            }
        }
    }
    flush_all(journal);
    for (durable, bytes) in pending {
        written.push((durable.wait().unwrap(), bytes));
    }
    written
}

fn round_trip(fs: Arc<dyn Fs>, dir: &Path) {
    let mut rng = StdRng::seed_from_u64(7);
    let journal = Journal::open(Arc::clone(&fs), dir, small_options()).unwrap();
    assert_eq!(journal.first_lsn(), Lsn(0));
    assert_eq!(journal.durable_lsn(), Lsn(0));
    let written = append_random(&journal, &mut rng, 400);
    assert!(written.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(read_all(&journal, journal.first_lsn()), written);
    // Reading from the middle returns the suffix.
    assert_eq!(read_all(&journal, written[123].0), written[123..]);
    let stats = journal.stats();
    assert_eq!(stats.records, 400);
    assert!(
        stats.syncs >= stats.batches && stats.batches < 400,
        "{stats:?}"
    );

    let names = segment_names(fs.as_ref(), dir);
    assert!(
        names.len() > 20,
        "records should span many segments: {names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    drop(journal);

    // Clean shutdown, reopen: the same records, and appending continues after them.
    let journal = Journal::open(Arc::clone(&fs), dir, small_options()).unwrap();
    let recovery = journal.recovery().clone();
    assert_eq!(recovery.records, 400);
    assert_eq!(recovery.removed_segments, 0, "{recovery:?}");
    assert_eq!(
        recovery.log_end,
        written
            .last()
            .map(|(lsn, b)| Lsn(lsn.0 + 24 + b.len() as u64))
            .unwrap()
    );
    assert_eq!(read_all(&journal, journal.first_lsn()), written);
    let more = append_random(&journal, &mut rng, 50);
    assert!(more[0].0 >= recovery.end_lsn);
    drop(journal);
    let journal = Journal::open(fs, dir, small_options()).unwrap();
    let expected: Vec<_> = written.into_iter().chain(more).collect();
    assert_eq!(read_all(&journal, journal.first_lsn()), expected);
}

#[test]
fn round_trip_on_simfs() {
    let sim = SimFs::new(1);
    round_trip(Arc::new(sim.clone()), Path::new("/journal"));
    // Nothing relied on unsynced state: a power loss now changes nothing.
    sim.crash();
    let journal = Journal::open(Arc::new(sim), Path::new("/journal"), small_options()).unwrap();
    assert_eq!(journal.recovery().records, 450);
}

#[test]
fn round_trip_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(OsFs), &dir.path().join("journal"));
}

#[test]
fn oversized_records_get_a_segment_of_their_own() {
    let sim = SimFs::new(2);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let dir = Path::new("/j");
    let journal = Journal::open(Arc::clone(&fs), dir, small_options()).unwrap();
    let small = journal.append(b"small").unwrap();
    let big = journal.append(&vec![0xAB; 5000]).unwrap();
    let after = journal.append(b"after").unwrap();
    flush_all(&journal);
    // The small record's segment is padded, the big one starts a segment sized to fit it, and
    // the next record starts the segment right after it.
    assert_eq!(small.wait().unwrap(), Lsn(0));
    assert_eq!(big.wait().unwrap(), Lsn(1024));
    assert_eq!(big.end(), Lsn(1024 + 24 + 5000));
    assert_eq!(after.wait().unwrap(), big.end());
    assert_eq!(
        segment_names(fs.as_ref(), dir),
        vec![
            "0000000000000000.seg".to_string(),
            "0000000000000400.seg".to_string(),
            format!("{:016x}.seg", 1024 + 24 + 5000),
        ]
    );
    let file = sim.contents(&dir.join("0000000000000400.seg")).unwrap();
    assert_eq!(file.len(), 32 + 24 + 5000);
    let records = read_all(&journal, Lsn(0));
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].1, vec![0xAB; 5000]);
}

#[test]
fn records_over_the_limit_are_refused_with_the_limit_named() {
    let journal = Journal::open(
        Arc::new(SimFs::new(3)),
        Path::new("/j"),
        Options {
            max_record_bytes: 100,
            ..small_options()
        },
    )
    .unwrap();
    let error = journal.append(&[0; 101]).unwrap_err();
    assert!(matches!(
        error,
        Error::RecordTooLarge {
            size: 101,
            limit: 100
        }
    ));
    assert!(error.to_string().contains("limit of 100 bytes"), "{error}");
    let at_the_limit = journal.append(&[0; 100]).unwrap();
    flush_all(&journal);
    at_the_limit.wait().unwrap();
}

#[test]
fn the_queue_is_bounded_without_an_io_thread() {
    let journal = Journal::open(
        Arc::new(SimFs::new(4)),
        Path::new("/j"),
        Options {
            max_pending_bytes: 1000,
            max_pending_records: 5,
            ..small_options()
        },
    )
    .unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(journal.append(&[1; 10]).unwrap());
    }
    let error = journal.append(&[1; 10]).unwrap_err();
    assert!(
        matches!(
            error,
            Error::QueueFull {
                pending_records: 5,
                ..
            }
        ),
        "{error}"
    );
    flush_all(&journal);
    // A record larger than the byte bound alone is accepted when nothing else is queued.
    held.push(journal.append(&[2; 900]).unwrap());
    let error = journal.try_append(&[3; 200]).unwrap_err();
    assert!(matches!(error, Error::QueueFull { .. }), "{error}");
    assert!(
        error.to_string().contains("max_pending_bytes=1000"),
        "{error}"
    );
    flush_all(&journal);
    assert!(held.iter().all(Durable::is_durable));
}

#[test]
fn a_reader_tails_the_journal_while_appends_continue() {
    let journal = Journal::open(Arc::new(SimFs::new(5)), Path::new("/j"), small_options()).unwrap();
    let mut reader = journal.read_from(Lsn(0)).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    let mut expected = Vec::new();
    for round in 0..30u32 {
        for i in 0..7u32 {
            let bytes = format!("round {round} record {i}")
                .repeat(i as usize * 9)
                .into_bytes();
            let durable = journal.append(&bytes).unwrap();
            expected.push((durable.lsn(), bytes));
        }
        // Queued but not durable: invisible to the reader.
        assert!(reader.next_record().unwrap().is_none());
        flush_all(&journal);
        let mut seen = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            seen.push(record);
        }
        assert_eq!(seen, std::mem::take(&mut expected));
    }
    assert!(journal.read_from(Lsn(journal.next_lsn().0 + 1)).is_err());
    // A position inside a record is not a boundary.
    let error = journal
        .read_from(Lsn(5))
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRecord { .. }), "{error}");
}

struct CountingWaker {
    wakes: AtomicUsize,
    order: Arc<Mutex<Vec<u64>>>,
    lsn: u64,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.order.lock().unwrap().push(self.lsn);
    }
}

#[test]
fn durables_of_a_batch_are_woken_once_each_in_lsn_order() {
    let journal = Journal::open(Arc::new(SimFs::new(6)), Path::new("/j"), small_options()).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut durables: Vec<Durable> = (0..10).map(|i| journal.append(&[i; 30]).unwrap()).collect();
    let wakers: Vec<Arc<CountingWaker>> = durables
        .iter()
        .map(|durable| {
            Arc::new(CountingWaker {
                wakes: AtomicUsize::new(0),
                order: Arc::clone(&order),
                lsn: durable.lsn().0,
            })
        })
        .collect();
    // Register in reverse order; polling twice must not register twice.
    for (durable, waker) in durables.iter_mut().zip(&wakers).rev() {
        let waker = Waker::from(Arc::clone(waker));
        let mut cx = Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut *durable).poll(&mut cx).is_pending());
        assert!(std::pin::Pin::new(&mut *durable).poll(&mut cx).is_pending());
    }
    assert_eq!(journal.flush_once().unwrap(), 10);
    assert!(wakers.iter().all(|w| w.wakes.load(Ordering::SeqCst) == 1));
    let order = order.lock().unwrap().clone();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    for (durable, waker) in durables.iter_mut().zip(&wakers) {
        let waker = Waker::from(Arc::clone(waker));
        let mut cx = Context::from_waker(&waker);
        let lsn = durable.lsn();
        assert!(
            matches!(std::pin::Pin::new(durable).poll(&mut cx), Poll::Ready(Ok(l)) if l == lsn)
        );
    }
    assert!(wakers.iter().all(|w| w.wakes.load(Ordering::SeqCst) == 1));
}

#[test]
fn dropped_durables_are_not_woken() {
    let journal = Journal::open(Arc::new(SimFs::new(8)), Path::new("/j"), small_options()).unwrap();
    let waker = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        order: Arc::new(Mutex::new(Vec::new())),
        lsn: 0,
    });
    let mut durable = journal.append(b"x").unwrap();
    let task_waker = Waker::from(Arc::clone(&waker));
    let mut cx = Context::from_waker(&task_waker);
    assert!(std::pin::Pin::new(&mut durable).poll(&mut cx).is_pending());
    drop(durable);
    flush_all(&journal);
    assert_eq!(waker.wakes.load(Ordering::SeqCst), 0);
}

#[test]
fn invalid_options_are_refused() {
    for options in [
        Options {
            segment_bytes: 10,
            ..Options::default()
        },
        Options {
            max_record_bytes: usize::MAX,
            ..Options::default()
        },
        Options {
            max_pending_records: 0,
            ..Options::default()
        },
    ] {
        let error = Journal::open(Arc::new(SimFs::new(1)), Path::new("/j"), options).unwrap_err();
        assert!(matches!(error, Error::InvalidOptions(_)), "{error}");
    }
}

#[test]
fn missing_parent_directories_are_created_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let nested: PathBuf = dir.path().join("a/b/journal");
    let journal = Journal::open(Arc::new(OsFs), &nested, small_options()).unwrap();
    let durable = journal.append(b"x").unwrap();
    flush_all(&journal);
    durable.wait().unwrap();
    assert_eq!(read_all(&journal, Lsn(0)).len(), 1);
}
