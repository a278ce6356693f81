//! Power loss and process crashes at random cut points, seeded, against a model of what must
//! survive: every record whose Durable resolved Ok (and every record a recovery returned) is
//! present and intact, records come back in order with no gaps, and nothing after the first
//! missing record ever returns. Cut points are sampled everywhere, including inside
//! `release_before` (segment recycling) and inside recovery itself.

use std::path::Path;
use std::sync::Arc;

use burrow_storage::fs::Fs;
use burrow_storage::fs::sim::{CrashMode, SimFs};
use burrow_storage::journal::{Durable, Error, Journal, Lsn, Options, SyncMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIR: &str = "/node/journal";
const LIVES: usize = 4;
const STEPS_PER_LIFE: usize = 120;
const SEEDS: u64 = 60;

fn options(seed: u64) -> Options {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    Options {
        segment_bytes: [256, 1024, 4096][rng.random_range(0..3)],
        max_batch_bytes: [100, 1024, 8192][rng.random_range(0..3)],
        max_spare_segments: rng.random_range(0..3),
        ..Options::default()
    }
}

/// What the journal may and must hold.
#[derive(Default)]
struct Model {
    /// Every record that may be in the journal, in append order. Records lost in a crash are
    /// removed, so if one ever came back it would not match.
    history: Vec<(Lsn, Vec<u8>)>,
    /// Records before this position may have been released.
    released: Lsn,
    /// Every record ending at or before this (and not released) must survive: their Durables
    /// resolved Ok, or a recovery returned them.
    must_survive: Lsn,
}

/// What one run observed, for the determinism check.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    ops: u64,
    /// The life in which the cut point was reached, if it was.
    cut_life: Option<usize>,
    recovered: Vec<Vec<(Lsn, u32)>>,
    release_windows: Vec<(u64, u64)>,
    recovery_windows: Vec<(u64, u64)>,
}

impl Model {
    /// Checks a freshly opened journal against the model, then narrows the model to it.
    fn verify(&mut self, journal: &Journal, context: &str) -> Vec<(Lsn, u32)> {
        let recovered: Vec<(Lsn, Vec<u8>)> = journal
            .read_from(journal.first_lsn())
            .unwrap()
            .collect::<Result<_, Error>>()
            .unwrap_or_else(|e| panic!("{context}: reading the recovered journal: {e}"));
        let first = journal.first_lsn();
        assert!(
            first <= self.released || self.history.first().is_none_or(|(lsn, _)| first <= *lsn),
            "{context}: first_lsn {first} is past unreleased records (released before {})",
            self.released
        );
        let start = self.history.partition_point(|(lsn, _)| *lsn < first);
        let end = start + recovered.len();
        assert!(
            end <= self.history.len(),
            "{context}: recovered {} records from index {start}, history has {}",
            recovered.len(),
            self.history.len()
        );
        for (offset, (got, want)) in recovered.iter().zip(&self.history[start..end]).enumerate() {
            assert!(
                got == want,
                "{context}: record {} differs: got lsn {} ({} bytes), want lsn {} ({} bytes)",
                start + offset,
                got.0,
                got.1.len(),
                want.0,
                want.1.len()
            );
        }
        let recovered_end = recovered
            .last()
            .map_or(first, |(lsn, bytes)| Lsn(lsn.0 + 24 + bytes.len() as u64));
        let needed_end = self.must_survive.max(self.released);
        let lost: Vec<_> = self.history[end..]
            .iter()
            .filter(|(lsn, _)| *lsn < needed_end)
            .map(|(lsn, _)| *lsn)
            .collect();
        assert!(
            lost.is_empty(),
            "{context}: acknowledged records lost: {lost:?} (recovered up to {recovered_end}, \
             must survive up to {needed_end}); recovery: {:?}",
            journal.recovery()
        );
        // What was not recovered is gone for good; what was is now durable.
        self.history.truncate(end);
        self.history.drain(..start);
        self.must_survive = self.must_survive.max(recovered_end);
        recovered
            .iter()
            .map(|(lsn, bytes)| (*lsn, crc32c::crc32c(bytes)))
            .collect()
    }
}

fn payload(rng: &mut StdRng, serial: u64) -> Vec<u8> {
    let len = if rng.random_range(0..25) == 0 {
        rng.random_range(4000..6000)
    } else {
        rng.random_range(0..300)
    };
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    if len >= 8 {
        bytes[..8].copy_from_slice(&serial.to_le_bytes());
    }
    bytes
}

/// One life of the journal: appends, flushes and releases until the steps run out or an I/O
/// error (the cut point) stops it.
fn live(
    journal: &Journal,
    sim: &SimFs,
    rng: &mut StdRng,
    model: &mut Model,
    release_windows: &mut Vec<(u64, u64)>,
) {
    let mut pending: Vec<Durable> = Vec::new();
    let mut serial = 0u64;
    let mut failed = false;
    for _ in 0..STEPS_PER_LIFE {
        match rng.random_range(0..10) {
            0..=4 => {
                for _ in 0..rng.random_range(1..5) {
                    serial += 1;
                    let bytes = payload(rng, serial);
                    match journal.append(&bytes) {
                        Ok(durable) => {
                            // Positions never go back below anything durable or released.
                            let floor = model.must_survive.max(model.released);
                            assert!(
                                durable.lsn() >= floor,
                                "lsn {} below {floor}",
                                durable.lsn()
                            );
                            model.history.push((durable.lsn(), bytes));
                            pending.push(durable);
                        }
                        Err(Error::QueueFull { .. }) => {}
                        Err(_) => failed = true,
                    }
                }
            }
            5..=7 => failed |= journal.flush_once().is_err(),
            8 => {
                let durable = journal.durable_lsn();
                let candidates: Vec<Lsn> = model
                    .history
                    .iter()
                    .map(|(lsn, _)| *lsn)
                    .filter(|lsn| *lsn < durable)
                    .collect();
                if !candidates.is_empty() {
                    let target = candidates[rng.random_range(0..candidates.len())];
                    model.released = model.released.max(target);
                    let before = sim.ops();
                    let outcome = journal.release_before(target, &mut |_| Ok(()));
                    release_windows.push((before, sim.ops()));
                    failed |= outcome.is_err();
                }
            }
            _ => {
                // A reader sees exactly the durable, retained records, even mid-life.
                if !sim.is_dead() {
                    let first = journal.first_lsn();
                    let durable = journal.durable_lsn();
                    let seen: Vec<(Lsn, Vec<u8>)> = journal
                        .read_from(first)
                        .unwrap()
                        .collect::<Result<_, Error>>()
                        .unwrap();
                    let expected: Vec<_> = model
                        .history
                        .iter()
                        .filter(|(lsn, bytes)| {
                            *lsn >= first && lsn.0 + 24 + bytes.len() as u64 <= durable.0
                        })
                        .cloned()
                        .collect();
                    assert!(seen == expected, "mid-life read differs from the model");
                }
            }
        }
        // Acknowledge what is durable, as the engine would.
        pending.retain(|durable| {
            if durable.is_durable() {
                model.must_survive = model.must_survive.max(durable.end());
                false
            } else {
                true
            }
        });
        if failed {
            break;
        }
    }
    if failed {
        // A failed write or sync poisons: nothing pending may ever resolve Ok.
        assert!(journal.is_poisoned() || sim.is_dead());
        if journal.is_poisoned() {
            for durable in &pending {
                assert!(!durable.is_durable());
                assert!(matches!(durable.wait(), Err(Error::Poisoned { .. })));
            }
            assert!(matches!(
                journal.append(b"late"),
                Err(Error::Poisoned { .. })
            ));
        }
    }
}

fn run(seed: u64, cut: Option<u64>) -> Outcome {
    let sim = SimFs::new(seed);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let dir = Path::new(DIR);
    let options = options(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut outcome = Outcome {
        ops: 0,
        cut_life: None,
        recovered: Vec::new(),
        release_windows: Vec::new(),
        recovery_windows: Vec::new(),
    };
    for life in 0..=LIVES {
        // A crash disarms the cut point, so arm it again for each life until it is reached.
        if let Some(cut) = cut.filter(|&cut| outcome.cut_life.is_none() && cut >= sim.ops()) {
            sim.crash_after_ops(cut - sim.ops());
        }
        let context = format!("seed {seed} cut {cut:?} life {life}");
        let before = sim.ops();
        let journal = match Journal::open(Arc::clone(&fs), dir, options.clone()) {
            Ok(journal) => journal,
            Err(error) => {
                assert!(
                    sim.is_dead(),
                    "{context}: open failed without a cut: {error}"
                );
                outcome.cut_life = Some(life);
                sim.crash();
                continue;
            }
        };
        outcome.recovery_windows.push((before, sim.ops()));
        outcome.recovered.push(model.verify(&journal, &context));
        if life == LIVES {
            break;
        }
        live(
            &journal,
            &sim,
            &mut rng,
            &mut model,
            &mut outcome.release_windows,
        );
        drop(journal);
        let mode = match rng.random_range(0..5) {
            0 => CrashMode::ProcessKill,
            1 => CrashMode::DropUnsynced,
            _ => CrashMode::PowerLoss,
        };
        if sim.is_dead() {
            outcome.cut_life = Some(life);
            sim.crash();
        } else {
            sim.crash_with(mode);
        }
    }
    outcome.ops = sim.ops();
    outcome
}

/// Cut points to try for one seed: random ones, ones inside releases and inside recoveries.
fn cut_points(seed: u64, counted: &Outcome) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31) + 7);
    let mut cuts: Vec<u64> = (0..8).map(|_| rng.random_range(0..counted.ops)).collect();
    for windows in [&counted.release_windows, &counted.recovery_windows] {
        let windows: Vec<_> = windows.iter().filter(|(a, b)| b > a).collect();
        for _ in 0..4 {
            if let Some((start, end)) = windows.get(rng.random_range(0..windows.len().max(1))) {
                cuts.push(rng.random_range(*start..*end));
            }
        }
    }
    cuts
}

#[test]
fn acknowledged_records_survive_power_loss_at_every_kind_of_cut_point() {
    let mut runs = 0;
    let mut records = 0;
    let mut cuts_in_life = [0usize; LIVES + 1];
    for seed in 0..SEEDS {
        let counted = run(seed, None);
        assert!(
            counted.release_windows.iter().any(|(a, b)| b > a),
            "seed {seed}: no release did I/O"
        );
        for cut in cut_points(seed, &counted) {
            let outcome = run(seed, Some(cut));
            records += outcome.recovered.iter().map(Vec::len).sum::<usize>();
            cuts_in_life[outcome
                .cut_life
                .expect("a cut below the op count is reached")] += 1;
            runs += 1;
        }
    }
    println!(
        "{runs} cut runs over {SEEDS} seeds, {records} recovered records checked; cuts per life \
         {cuts_in_life:?}"
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17, 42] {
        let counted = run(seed, None);
        assert_eq!(counted, run(seed, None));
        let cut = counted.ops / 2;
        let first = run(seed, Some(cut));
        assert_eq!(first, run(seed, Some(cut)), "seed {seed} cut {cut}");
        assert!(first.cut_life.is_some());
        assert_ne!(first.recovered, counted.recovered);
    }
}

#[test]
fn relaxed_mode_survives_process_crashes() {
    for seed in 0..20 {
        let sim = SimFs::new(seed);
        let fs: Arc<dyn Fs> = Arc::new(sim.clone());
        let options = Options {
            sync: SyncMode::Relaxed,
            ..options(seed)
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model = Model::default();
        let mut windows = Vec::new();
        for life in 0..4 {
            let journal = Journal::open(Arc::clone(&fs), Path::new(DIR), options.clone()).unwrap();
            model.verify(&journal, &format!("relaxed seed {seed} life {life}"));
            let syncs_before = sim.stats().file_syncs;
            live(&journal, &sim, &mut rng, &mut model, &mut windows);
            assert_eq!(journal.stats().syncs, 0);
            // Releases and preallocation may sync; batches never do.
            assert!(sim.stats().file_syncs - syncs_before <= journal.stats().batches / 2 + 20);
            drop(journal);
            sim.kill();
        }
    }
}
