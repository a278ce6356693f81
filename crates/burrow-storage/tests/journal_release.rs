//! Releasing segments: what is retired and what is kept, archiving for point-in-time recovery,
//! recycling into spares, a failing retire callback, and positions that never go back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burrow_storage::fs::sim::{CrashMode, SimFs};
use burrow_storage::fs::{Fs, OpenMode};
use burrow_storage::journal::{Error, Journal, Lsn, Options};

const DIR: &str = "/journal";

fn options() -> Options {
    Options {
        segment_bytes: 1024,
        max_batch_bytes: 512,
        max_spare_segments: 2,
        ..Options::default()
    }
}

fn fill(journal: &Journal, records: usize) -> Vec<Lsn> {
    let durables: Vec<_> = (0..records)
        .map(|i| journal.append(&[(i % 251) as u8; 200]).unwrap())
        .collect();
    while journal.flush_once().unwrap() > 0 {}
    durables.iter().map(|d| d.wait().unwrap()).collect()
}

fn files(fs: &dyn Fs, dir: &Path, extension: &str) -> Vec<PathBuf> {
    fs.read_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect()
}

fn read_all(journal: &Journal) -> Vec<(Lsn, Vec<u8>)> {
    journal
        .read_from(journal.first_lsn())
        .unwrap()
        .collect::<Result<_, Error>>()
        .unwrap()
}

#[test]
fn release_retires_whole_segments_before_the_position_and_keeps_the_newest() {
    let sim = SimFs::new(1);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let lsns = fill(&journal, 40);
    let mut retired = Vec::new();
    journal
        .release_before(lsns[20], &mut |segment| {
            retired.push((segment.first_lsn(), segment.end_lsn()));
            Ok(())
        })
        .unwrap();
    assert!(!retired.is_empty());
    assert!(retired.iter().all(|(_, end)| *end <= lsns[20]));
    assert!(
        retired.windows(2).all(|w| w[0].1 == w[1].0),
        "oldest first, contiguous"
    );
    assert_eq!(journal.first_lsn(), retired.last().unwrap().1);
    assert!(journal.first_lsn() <= lsns[20]);
    assert!(matches!(
        journal.read_from(Lsn(0)),
        Err(Error::Released { .. })
    ));
    assert_eq!(files(fs.as_ref(), Path::new(DIR), "spare").len(), 2);

    // Releasing everything keeps the segment that carries the log's position.
    journal
        .release_before(Lsn(u64::MAX), &mut |_| Ok(()))
        .unwrap();
    let kept = read_all(&journal);
    assert!(!kept.is_empty() && kept.last().unwrap().0 == *lsns.last().unwrap());
    let end = journal.durable_lsn();
    drop(journal);
    sim.crash();
    let journal = Journal::open(fs, Path::new(DIR), options()).unwrap();
    assert_eq!(read_all(&journal), kept);
    let next = journal.append(b"next").unwrap();
    assert!(next.lsn() >= end);
}

#[test]
fn archived_segments_leave_the_journal_intact_elsewhere() {
    let sim = SimFs::new(2);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    fs.create_dir_all(Path::new("/archive")).unwrap();
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let lsns = fill(&journal, 30);
    let before: Vec<_> = files(fs.as_ref(), Path::new(DIR), "seg")
        .iter()
        .map(|p| (p.file_name().unwrap().to_owned(), sim.contents(p).unwrap()))
        .collect();
    let mut archived = Vec::new();
    journal
        .release_before(lsns[25], &mut |segment| {
            let dest = Path::new("/archive").join(segment.path().file_name().unwrap());
            archived.push(dest.clone());
            segment.archive_to(&dest)
        })
        .unwrap();
    assert!(!archived.is_empty());
    // Archived, not recycled: at most the one spare the driver preallocated.
    assert!(files(fs.as_ref(), Path::new(DIR), "spare").len() <= 1);
    drop(journal);
    sim.crash();
    for dest in &archived {
        let (_, original) = before
            .iter()
            .find(|(name, _)| name == dest.file_name().unwrap())
            .unwrap();
        assert_eq!(
            &sim.contents(dest).unwrap(),
            original,
            "archive is durable and intact"
        );
    }
    let journal = Journal::open(fs, Path::new(DIR), options()).unwrap();
    assert!(journal.first_lsn() > Lsn(0));
    assert_eq!(read_all(&journal).last().unwrap().0, *lsns.last().unwrap());
}

#[test]
fn a_failing_retire_callback_keeps_the_segment() {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(3));
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let lsns = fill(&journal, 30);
    let error = journal
        .release_before(lsns[25], &mut |_| Err(io::Error::other("archive offline")))
        .unwrap_err();
    assert!(matches!(error, Error::Retire { .. }));
    assert!(error.to_string().contains("archive offline"), "{error}");
    assert_eq!(journal.first_lsn(), Lsn(0));
    assert_eq!(read_all(&journal).len(), 30);
}

#[test]
fn a_journal_that_lost_every_segment_restarts_above_its_spares() {
    let sim = SimFs::new(4);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let lsns = fill(&journal, 60);
    journal.release_before(lsns[50], &mut |_| Ok(())).unwrap();
    drop(journal);
    // Only an outside hand can do this (the journal never gives up the last file naming its
    // position), but recovery must still not reuse Lsns that stale records in spares carry.
    for segment in files(fs.as_ref(), Path::new(DIR), "seg") {
        fs.remove_file(&segment).unwrap();
    }
    let spares = files(fs.as_ref(), Path::new(DIR), "spare");
    let floor = spares
        .iter()
        .map(|p| u64::from_str_radix(p.file_stem().unwrap().to_str().unwrap(), 16).unwrap())
        .max()
        .unwrap();
    assert!(
        floor >= 1024,
        "a recycled spare is named above the records it held"
    );
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    assert!(read_all(&journal).is_empty());
    let restart = journal.recovery().end_lsn;
    assert!(
        restart.0 > floor,
        "restart {restart} not above spare {floor}"
    );
    // New records fill the recycled spares; the stale records inside never show.
    let more = fill(&journal, 30);
    assert!(more[0] >= restart);
    drop(journal);
    let journal = Journal::open(fs, Path::new(DIR), options()).unwrap();
    let got: Vec<Lsn> = read_all(&journal).into_iter().map(|(lsn, _)| lsn).collect();
    assert_eq!(got, more);
}

#[test]
fn a_torn_only_segment_is_kept_as_an_anchor_so_positions_never_go_back() {
    let sim = SimFs::new(6);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let lsns = fill(&journal, 40);
    journal
        .release_before(Lsn(u64::MAX), &mut |_| Ok(()))
        .unwrap();
    drop(journal);
    let segments = files(fs.as_ref(), Path::new(DIR), "seg");
    assert_eq!(segments.len(), 1, "only the newest segment is kept");
    let name = segments[0].file_stem().unwrap().to_str().unwrap();
    let base = u64::from_str_radix(name, 16).unwrap();
    // Tear its header, as if it had just been started when the power failed.
    let file = fs.open(&segments[0], OpenMode::Existing).unwrap();
    file.write_all_at(&[0u8; 32], 0).unwrap();
    file.sync_data().unwrap();
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    let recovery = journal.recovery().clone();
    assert_eq!(recovery.log_end, Lsn(base));
    assert!(recovery.end_lsn > Lsn(base));
    assert!(read_all(&journal).is_empty());
    drop(journal);
    // A second power loss before any new segment is durable: still no going back.
    sim.crash_with(CrashMode::DropUnsynced);
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    assert!(
        journal.recovery().end_lsn > Lsn(base),
        "{:?}",
        journal.recovery()
    );
    let next = journal.append(b"after").unwrap();
    assert!(next.lsn() > *lsns.last().unwrap());
}

#[test]
fn extra_spares_are_removed_on_open() {
    let sim = SimFs::new(5);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    fs.create_dir_all(Path::new(DIR)).unwrap();
    for id in 0..5u64 {
        let path = Path::new(DIR).join(format!("{id:016x}.spare"));
        fs.open(&path, OpenMode::Create)
            .unwrap()
            .write_all_at(&[0xAA; 100], 0)
            .unwrap();
    }
    let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options()).unwrap();
    assert_eq!(files(fs.as_ref(), Path::new(DIR), "spare").len(), 2);
    // Partly allocated spares are completed and used.
    let lsns = fill(&journal, 20);
    assert_eq!(read_all(&journal).len(), lsns.len());
}
