//! The dedicated I/O thread: many threads appending concurrently (blocking waits and futures),
//! group commit (far fewer fsyncs than records), back-pressure, and draining on stop.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use burrow_storage::fs::sim::SimFs;
use burrow_storage::fs::{File, Fs, OpenMode, OsFs};
use burrow_storage::journal::{Durable, Error, Journal, Lsn, Options};

/// A minimal executor: polls one future on this thread, parking between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// A file layer whose `sync_data` takes as long as a fast disk's (SimFs's costs nothing, which
/// would let the I/O thread race ahead of the writers and leave nothing to group).
struct SlowSync(SimFs);

struct SlowSyncFile(Arc<dyn File>);

const SYNC_TIME: std::time::Duration = std::time::Duration::from_micros(300);

impl File for SlowSyncFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        std::thread::sleep(SYNC_TIME);
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
}

impl Fs for SlowSync {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn File>> {
        Ok(Arc::new(SlowSyncFile(self.0.open(path, mode)?)))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        self.0.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        std::thread::sleep(SYNC_TIME);
        self.0.sync_dir(path)
    }
}

fn read_all(journal: &Journal) -> Vec<(Lsn, Vec<u8>)> {
    journal
        .read_from(journal.first_lsn())
        .unwrap()
        .collect::<Result<_, Error>>()
        .unwrap()
}

fn payload(thread: usize, index: usize) -> Vec<u8> {
    let mut bytes = format!("thread {thread} record {index} ").into_bytes();
    bytes.resize(100, b'.');
    bytes
}

/// `threads` writers each doing a closed loop of `per_thread` appends, each waiting for its
/// record to be durable before the next (as an object's output gate does). Half the threads wait
/// with `Durable::wait`, half by awaiting the future.
fn closed_loop(journal: &Arc<Journal>, threads: usize, per_thread: usize) -> Vec<Vec<Lsn>> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let journal = Arc::clone(journal);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let durable = journal.append(&payload(t, i)).unwrap();
                        let lsn = if t % 2 == 0 {
                            durable.wait().unwrap()
                        } else {
                            block_on(durable).unwrap()
                        };
                        assert!(journal.durable_lsn() > lsn);
                        lsn
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn check_all_present(journal: &Journal, lsns: &[Vec<Lsn>]) {
    let records = read_all(journal);
    let total: usize = lsns.iter().map(Vec::len).sum();
    assert_eq!(records.len(), total);
    for (t, thread_lsns) in lsns.iter().enumerate() {
        assert!(thread_lsns.windows(2).all(|w| w[0] < w[1]));
        for (i, lsn) in thread_lsns.iter().enumerate() {
            let record = records.binary_search_by_key(lsn, |(l, _)| *l).unwrap();
            assert_eq!(records[record].1, payload(t, i));
        }
    }
}

#[test]
fn concurrent_writers_share_fsyncs_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let fs: Arc<dyn Fs> = Arc::new(OsFs);
    let journal = Journal::open(Arc::clone(&fs), &dir, Options::default()).unwrap();
    let io = journal.start_io_thread();
    let (threads, per_thread) = (32, 150);
    let started = std::time::Instant::now();
    let lsns = closed_loop(&journal, threads, per_thread);
    let elapsed = started.elapsed();
    io.stop().unwrap();
    let stats = journal.stats();
    let records = (threads * per_thread) as u64;
    assert_eq!(stats.records, records);
    println!(
        "closed loop, real files, full sync: {records} records, {} batches, {} fsyncs, \
         {:.1} records per fsync, {:.0} records/s",
        stats.batches,
        stats.syncs,
        records as f64 / stats.syncs as f64,
        records as f64 / elapsed.as_secs_f64()
    );
    assert!(
        stats.syncs * 4 < records,
        "group commit should share fsyncs: {stats:?}"
    );
    check_all_present(&journal, &lsns);
    drop(journal);
    let journal = Journal::open(fs, &dir, Options::default()).unwrap();
    check_all_present(&journal, &lsns);
}

#[test]
fn pipelined_writers_on_simfs_and_a_power_loss_after() {
    let sim = SimFs::new(11);
    let fs: Arc<dyn Fs> = Arc::new(SlowSync(sim.clone()));
    let options = Options {
        segment_bytes: 64 << 10,
        max_batch_bytes: 16 << 10,
        ..Options::default()
    };
    let journal = Journal::open(Arc::clone(&fs), Path::new("/j"), options.clone()).unwrap();
    let io = journal.start_io_thread();
    let (threads, per_thread) = (8, 1000);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                // Each writer keeps up to 50 records in flight.
                let mut in_flight: std::collections::VecDeque<Durable> = Default::default();
                let mut lsns = Vec::new();
                for i in 0..per_thread {
                    in_flight.push_back(journal.append(&payload(t, i)).unwrap());
                    if in_flight.len() == 50 {
                        lsns.push(in_flight.pop_front().unwrap().wait().unwrap());
                    }
                }
                lsns.extend(in_flight.into_iter().map(|d| block_on(d).unwrap()));
                lsns
            })
        })
        .collect();
    let lsns: Vec<Vec<Lsn>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    io.stop().unwrap();
    let stats = journal.stats();
    let records = (threads * per_thread) as u64;
    println!(
        "pipelined, SimFs: {records} records, {} fsyncs, {:.1} records per fsync",
        stats.syncs,
        records as f64 / stats.syncs as f64
    );
    assert!(stats.syncs * 10 < records, "{stats:?}");
    // Batches respect max_batch_bytes (one record never exceeds it here).
    assert!(stats.bytes / stats.batches <= options.max_batch_bytes as u64);
    drop(journal);
    sim.crash();
    let journal = Journal::open(fs, Path::new("/j"), options).unwrap();
    check_all_present(&journal, &lsns);
}

#[test]
fn back_pressure_holds_appends_until_the_io_thread_catches_up() {
    let sim = SimFs::new(12);
    let journal = Journal::open(
        Arc::new(sim),
        Path::new("/j"),
        Options {
            segment_bytes: 8192,
            max_batch_bytes: 2048,
            max_pending_bytes: 4096,
            max_pending_records: 16,
            ..Options::default()
        },
    )
    .unwrap();
    let io = journal.start_io_thread();
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                // Never waits on its own records: only back-pressure holds it.
                (0..300)
                    .map(|i| journal.append(&vec![t as u8; 100 + i % 900]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for durable in handle.join().unwrap() {
            durable.wait().unwrap();
        }
    }
    io.stop().unwrap();
    assert_eq!(read_all(&journal).len(), 1800);
}

#[test]
fn stop_drains_what_is_queued() {
    let journal = Journal::open(
        Arc::new(SimFs::new(13)),
        Path::new("/j"),
        Options::default(),
    )
    .unwrap();
    let io = journal.start_io_thread();
    let durables: Vec<_> = (0..500u32)
        .map(|i| journal.append(&i.to_le_bytes()).unwrap())
        .collect();
    io.stop().unwrap();
    assert!(durables.iter().all(Durable::is_durable));
    // Without a driver, a full queue is an error, not a hang.
    let journal = Journal::open(
        Arc::new(SimFs::new(14)),
        Path::new("/j"),
        Options {
            max_pending_records: 1,
            ..Options::default()
        },
    )
    .unwrap();
    let io = journal.start_io_thread();
    io.stop().unwrap();
    let _held = journal.append(b"one").unwrap();
    assert!(matches!(
        journal.append(b"two"),
        Err(Error::QueueFull { .. })
    ));
}

#[test]
fn wait_durable_blocks_until_a_position_is_durable() {
    let journal = Journal::open(
        Arc::new(SimFs::new(15)),
        Path::new("/j"),
        Options::default(),
    )
    .unwrap();
    assert!(matches!(
        journal.wait_durable(Lsn(1 << 40)),
        Err(Error::BeyondEnd { .. })
    ));
    let durables: Vec<_> = (0..100u32)
        .map(|i| journal.append(&i.to_le_bytes()).unwrap())
        .collect();
    let end = durables.last().unwrap().end();
    let io = journal.start_io_thread();
    journal.wait_durable(end).unwrap();
    assert!(durables.iter().all(Durable::is_durable));
    io.stop().unwrap();
}
