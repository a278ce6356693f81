//! A damaged journal tail (flipped byte, truncation, garbage, stale records in recycled segments,
//! a bad or missing segment) is found by checksum and Lsn, cut cleanly, and never resurrected by
//! later appends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burrow_storage::fs::sim::SimFs;
use burrow_storage::fs::{Fs, OpenMode, OsFs};
use burrow_storage::journal::{Error, Journal, Lsn, Options};

const DIR: &str = "/journal";

fn options() -> Options {
    Options {
        segment_bytes: 2048,
        max_batch_bytes: 1024,
        ..Options::default()
    }
}

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn flush_all(journal: &Journal) {
    while journal.flush_once().unwrap() > 0 {}
}

fn read_all(journal: &Journal) -> Vec<(Lsn, Vec<u8>)> {
    journal
        .read_from(journal.first_lsn())
        .unwrap()
        .collect::<Result<Vec<_>, Error>>()
        .unwrap()
}

/// Appends `count` distinct records (sizes vary) and makes them durable.
fn append(journal: &Journal, tag: u8, count: usize) -> Vec<(Lsn, Vec<u8>)> {
    let durables: Vec<_> = (0..count)
        .map(|i| {
            let bytes: Vec<u8> = (0..(i * 37) % 300 + 1)
                .map(|j| tag ^ (i as u8).wrapping_mul(31) ^ j as u8)
                .collect();
            (journal.append(&bytes).unwrap(), bytes)
        })
        .collect();
    flush_all(journal);
    durables
        .into_iter()
        .map(|(durable, bytes)| (durable.wait().unwrap(), bytes))
        .collect()
}

/// The segment file holding `lsn`, and the file offset of `lsn` in it.
fn locate(fs: &dyn Fs, lsn: Lsn) -> (PathBuf, u64) {
    let base = fs
        .read_dir(dir())
        .unwrap()
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_suffix(".seg")?;
            u64::from_str_radix(name, 16).ok()
        })
        .filter(|&base| base <= lsn.0)
        .max()
        .unwrap();
    (dir().join(format!("{base:016x}.seg")), 32 + lsn.0 - base)
}

fn flip_byte(fs: &dyn Fs, at: Lsn) {
    let (path, offset) = locate(fs, at);
    let file = fs.open(&path, OpenMode::Existing).unwrap();
    let mut byte = [0u8];
    file.read_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], offset).unwrap();
    file.sync_data().unwrap();
}

/// Checks that the journal holds `expected`, appends more, reopens, and checks again: a cut
/// never lets old records come back behind new ones.
fn check_and_extend(fs: Arc<dyn Fs>, expected: &[(Lsn, Vec<u8>)]) {
    let journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
    assert_eq!(read_all(&journal), expected, "{:?}", journal.recovery());
    let more = append(&journal, 0xEE, 40);
    drop(journal);
    let journal = Journal::open(fs, dir(), options()).unwrap();
    let all: Vec<_> = expected.iter().cloned().chain(more).collect();
    assert_eq!(read_all(&journal), all, "{:?}", journal.recovery());
}

fn written(fs: &Arc<dyn Fs>, count: usize) -> Vec<(Lsn, Vec<u8>)> {
    let journal = Journal::open(Arc::clone(fs), dir(), options()).unwrap();
    append(&journal, 0x11, count)
}

#[test]
fn a_flipped_byte_anywhere_in_a_record_cuts_the_log_there() {
    for victim in [0usize, 1, 17, 42, 59] {
        for offset_in_record in [0u64, 3, 4, 9, 16, 20, 24, 25] {
            let fs: Arc<dyn Fs> = Arc::new(SimFs::new(1));
            let records = written(&fs, 60);
            let (lsn, bytes) = &records[victim];
            if offset_in_record >= 24 + bytes.len() as u64 {
                continue;
            }
            flip_byte(fs.as_ref(), Lsn(lsn.0 + offset_in_record));
            let journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
            let recovery = journal.recovery().clone();
            assert_eq!(recovery.log_end, *lsn, "{recovery:?}");
            assert!(recovery.cut.is_some());
            drop(journal);
            // The records after the victim are intact, with valid checksums and Lsns; they
            // must stay gone.
            check_and_extend(fs, &records[..victim]);
        }
    }
}

#[test]
fn a_truncated_record_is_cut() {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(2));
    let records = written(&fs, 50);
    let (lsn, _) = &records[45];
    let (path, offset) = locate(fs.as_ref(), Lsn(lsn.0 + 30));
    let file = fs.open(&path, OpenMode::Existing).unwrap();
    file.set_len(offset).unwrap();
    file.sync_data().unwrap();
    check_and_extend(fs, &records[..45]);
}

#[test]
fn garbage_after_the_end_is_ignored() {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(3));
    let records = written(&fs, 30);
    let (last, bytes) = records.last().unwrap();
    let end = Lsn(last.0 + 24 + bytes.len() as u64);
    let (path, offset) = locate(fs.as_ref(), end);
    let file = fs.open(&path, OpenMode::Existing).unwrap();
    let garbage: Vec<u8> = (0..600u32).map(|i| (i * 7919 % 251) as u8).collect();
    file.write_all_at(&garbage, offset).unwrap();
    file.sync_data().unwrap();
    check_and_extend(fs, &records);
}

#[test]
fn a_damaged_segment_header_cuts_there_and_removes_later_segments() {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(4));
    let records = written(&fs, 200);
    // The first record of some middle segment sits right after that segment's header.
    let (path, _) = locate(fs.as_ref(), records[100].0);
    let base = u64::from_str_radix(path.file_stem().unwrap().to_str().unwrap(), 16).unwrap();
    let file = fs.open(&path, OpenMode::Existing).unwrap();
    file.write_all_at(&[0xFF], 20).unwrap();
    let kept: Vec<_> = records
        .iter()
        .filter(|(lsn, _)| lsn.0 < base)
        .cloned()
        .collect();
    let journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
    let recovery = journal.recovery().clone();
    assert_eq!(recovery.log_end, Lsn(base));
    assert!(recovery.removed_segments >= 2, "{recovery:?}");
    assert!(!fs.exists(&path));
    drop(journal);
    check_and_extend(fs, &kept);
}

#[test]
fn a_missing_segment_ends_the_log_before_it() {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(5));
    let records = written(&fs, 200);
    let (path, _) = locate(fs.as_ref(), records[120].0);
    let base = u64::from_str_radix(path.file_stem().unwrap().to_str().unwrap(), 16).unwrap();
    fs.remove_file(&path).unwrap();
    let kept: Vec<_> = records
        .iter()
        .filter(|(lsn, _)| lsn.0 < base)
        .cloned()
        .collect();
    let journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
    assert!(
        journal
            .recovery()
            .cut
            .as_deref()
            .unwrap()
            .contains("missing")
    );
    drop(journal);
    check_and_extend(fs, &kept);
}

#[test]
fn stale_records_in_recycled_segments_are_never_read() {
    for seed in 0..20 {
        let fs: Arc<dyn Fs> = Arc::new(SimFs::new(seed));
        let mut journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
        let mut live = Vec::new();
        let mut recycled = 0;
        for round in 0..12u8 {
            live.extend(append(&journal, round, 30 + usize::from(round) * 3));
            // Release about half of what is live, as checkpoints would.
            let cut = live[live.len() / 2].0;
            journal
                .release_before(cut, &mut |segment| {
                    assert!(segment.end_lsn() <= cut);
                    recycled += 1;
                    Ok(())
                })
                .unwrap();
            live.retain(|(lsn, _)| *lsn >= journal.first_lsn());
            assert!(journal.first_lsn() <= cut);
            assert_eq!(read_all(&journal), live);
            if round % 3 == 2 {
                // Restart: recycled files now serve as segments and still hold stale records
                // past the new ones.
                drop(journal);
                journal = Journal::open(Arc::clone(&fs), dir(), options()).unwrap();
                assert_eq!(read_all(&journal), live, "seed {seed} round {round}");
            }
        }
        assert!(recycled > 10, "{recycled}");
        let spares = fs
            .read_dir(dir())
            .unwrap()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "spare"))
            .count();
        assert!(spares <= options().max_spare_segments);
        drop(journal);
        check_and_extend(fs, &live);
    }
}

#[test]
fn a_torn_tail_on_real_files_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let fs: Arc<dyn Fs> = Arc::new(OsFs);
    let journal = Journal::open(Arc::clone(&fs), &dir, options()).unwrap();
    let records = append(&journal, 1, 80);
    drop(journal);
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let base = u64::from_str_radix(last.file_stem().unwrap().to_str().unwrap(), 16).unwrap();
    let victim = records
        .iter()
        .position(|(lsn, _)| lsn.0 > base + 100)
        .unwrap();
    let len = 32 + records[victim].0.0 - base + 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len)
        .unwrap();
    let journal = Journal::open(Arc::clone(&fs), &dir, options()).unwrap();
    let got = journal
        .read_from(journal.first_lsn())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(got, records[..victim]);
}
