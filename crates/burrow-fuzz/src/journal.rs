//! The journal reader and recovery on random and corrupted bytes.
//!
//! Two kinds of input, chosen by the first byte:
//! - *corrupted*: a valid journal is written on [`SimFs`] (record count and sizes from the
//!   input), then the input's edits (position, xor mask) are applied to its segment files, or a
//!   file is truncated. Recovery must return a prefix of the records written, in order, and the
//!   journal must then accept, persist and return a new record.
//! - *raw*: the input's bytes become segment files as they are. Opening may fail with an error;
//!   if it opens, reading must not panic, and a new record must survive a reopen.
//!
//! Segments are small (256 bytes), so inputs reach segment boundaries, padding and oversized
//! records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burrow_storage::fs::sim::SimFs;
use burrow_storage::fs::{Fs, OpenMode};
use burrow_storage::journal::{Error, Journal, Lsn, Options};

const DIR: &str = "/journal";
const SEGMENT_BYTES: u64 = 256;

fn options() -> Options {
    Options {
        segment_bytes: SEGMENT_BYTES,
        max_batch_bytes: 200,
        ..Options::default()
    }
}

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn flush_all(journal: &Journal) {
    while journal.flush_once().expect("flush") > 0 {}
}

fn read_all(journal: &Journal) -> Result<Vec<(Lsn, Vec<u8>)>, Error> {
    journal
        .read_from(journal.first_lsn())?
        .collect::<Result<Vec<_>, Error>>()
}

/// Seeds for the mutations: a few of each kind.
pub const CORPUS: &[&[u8]] = &[
    &[0, 10, 3, 0, 40, 0x10, 0, 200, 0x01],
    &[0, 39, 7, 1, 2, 0xff, 2, 3, 0x80, 0, 0, 0x01],
    &[2, 25, 1, 0xff, 0xff, 0x00],
    &[
        1, b'B', b'U', b'R', b'R', b'O', b'W', b'J', b'L', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
        0, 0, 0, 1, 0, 0, 0,
    ],
    &[3],
];

/// Feeds `data` to recovery as described in the module docs.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        corrupted(rest);
    } else {
        raw(rest);
    }
}

fn segment_files(fs: &dyn Fs) -> Vec<PathBuf> {
    fs.read_dir(dir())
        .expect("read dir")
        .into_iter()
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect()
}

fn corrupted(data: &[u8]) {
    let (count, edits) = match data.split_first() {
        Some((&count, edits)) => (usize::from(count % 48) + 1, edits),
        None => (1, data),
    };
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(data.len() as u64));
    let journal = Journal::open(Arc::clone(&fs), dir(), options()).expect("open empty");
    let size_bias = edits.first().copied().unwrap_or(0) as usize;
    let durables: Vec<_> = (0..count)
        .map(|index| {
            let len = (index * 37 + size_bias) % 300 + 1;
            let bytes: Vec<u8> = (0..len).map(|byte| (index * 31 + byte) as u8).collect();
            (journal.append(&bytes).expect("append"), bytes)
        })
        .collect();
    flush_all(&journal);
    let written: Vec<(Lsn, Vec<u8>)> = durables
        .into_iter()
        .map(|(durable, bytes)| (durable.wait().expect("durable"), bytes))
        .collect();
    drop(journal);

    let files = segment_files(fs.as_ref());
    for edit in edits.chunks(3) {
        let [position_low, position_high, mask] = *edit else {
            // A short tail edit truncates a file instead.
            let file = &files[usize::from(edit[0]) % files.len()];
            let handle = fs.open(file, OpenMode::Existing).expect("open segment");
            let len = handle.len().expect("len");
            handle
                .set_len(len.saturating_sub(u64::from(edit[0]) + 1))
                .expect("truncate");
            handle.sync_data().expect("sync");
            continue;
        };
        let position = u64::from(u16::from_le_bytes([position_low, position_high]));
        let file = &files[(position as usize) % files.len()];
        let handle = fs.open(file, OpenMode::Existing).expect("open segment");
        let len = handle.len().expect("len");
        if len == 0 || mask == 0 {
            continue;
        }
        let offset = position % len;
        let mut byte = [0u8];
        handle.read_at(&mut byte, offset).expect("read");
        handle
            .write_all_at(&[byte[0] ^ mask], offset)
            .expect("write");
        handle.sync_data().expect("sync");
    }

    let journal = Journal::open(Arc::clone(&fs), dir(), options()).expect("reopen corrupted");
    let recovered = read_all(&journal).expect("read recovered");
    assert!(
        recovered.len() <= written.len() && recovered[..] == written[..recovered.len()],
        "recovery returned something other than a prefix of what was written: {} of {} records",
        recovered.len(),
        written.len()
    );
    append_survives(fs, journal, recovered);
}

fn raw(data: &[u8]) {
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(7));
    fs.create_dir_all(dir()).expect("mkdir");
    // Up to three files: cut points come from the first two bytes.
    let (cuts, body) = if data.len() >= 2 {
        (&data[..2], &data[2..])
    } else {
        (&[][..], data)
    };
    let mut pieces = Vec::new();
    let mut rest = body;
    for &cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    for (index, piece) in pieces.iter().enumerate() {
        if piece.is_empty() && index > 0 {
            continue;
        }
        let base = index as u64 * SEGMENT_BYTES;
        let path = dir().join(format!("{base:016x}.seg"));
        let file = fs.open(&path, OpenMode::Create).expect("create");
        file.write_all_at(piece, 0).expect("write");
        file.sync_data().expect("sync");
    }
    fs.sync_dir(dir()).expect("sync dir");
    let Ok(journal) = Journal::open(Arc::clone(&fs), dir(), options()) else {
        return;
    };
    let Ok(recovered) = read_all(&journal) else {
        return;
    };
    append_survives(fs, journal, recovered);
}

/// Appends one record to a recovered journal, reopens it, and expects the recovered records
/// followed by the new one.
fn append_survives(fs: Arc<dyn Fs>, journal: Arc<Journal>, recovered: Vec<(Lsn, Vec<u8>)>) {
    let payload = b"after recovery".to_vec();
    let durable = journal.append(&payload).expect("append after recovery");
    flush_all(&journal);
    let lsn = durable.wait().expect("durable after recovery");
    drop(journal);
    let journal = Journal::open(fs, dir(), options()).expect("reopen after append");
    let mut expected = recovered;
    expected.push((lsn, payload));
    let found = read_all(&journal).expect("read after append");
    assert_eq!(
        found.len(),
        expected.len(),
        "records after recovery and one append"
    );
    assert!(
        found == expected,
        "records changed across recovery and one append"
    );
}
