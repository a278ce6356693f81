//! SimFs against the durability contract of `burrow_storage::fs`: what a simulated crash may and
//! may not lose, determinism per seed, cut points and injected faults.

use std::path::Path;
use std::sync::Arc;

use burrow_storage::fs::sim::{CrashMode, SECTOR_BYTES, SimFs};
use burrow_storage::fs::{File, Fs, OpenMode};

const SEEDS: u64 = 200;

fn dir() -> &'static Path {
    Path::new("/data")
}

fn path(name: &str) -> std::path::PathBuf {
    dir().join(name)
}

/// A file system with `/data` durably created.
fn fresh(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(dir()).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

/// Creates `name` with `data`, syncing both the data and the directory entry.
fn durable_file(fs: &SimFs, name: &str, data: &[u8]) -> Arc<dyn File> {
    let file = fs.open(&path(name), OpenMode::Create).unwrap();
    file.write_all_at(data, 0).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(dir()).unwrap();
    file
}

#[test]
fn synced_data_and_entries_survive_every_crash() {
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        durable_file(&fs, "a", b"hello, durable world");
        let b = durable_file(&fs, "b", &[7u8; 3000]);
        b.write_all_at(b"patched", 1000).unwrap();
        b.sync_data().unwrap();
        fs.crash();
        assert_eq!(fs.contents(&path("a")).unwrap(), b"hello, durable world");
        let mut expected = vec![7u8; 3000];
        expected[1000..1007].copy_from_slice(b"patched");
        assert_eq!(fs.contents(&path("b")).unwrap(), expected, "seed {seed}");
    }
}

#[test]
fn unsynced_writes_may_be_lost_or_kept() {
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        let file = durable_file(&fs, "a", b"old!");
        file.write_all_at(b"new!", 0).unwrap();
        fs.crash();
        match fs.contents(&path("a")).unwrap().as_slice() {
            b"old!" => lost += 1,
            b"new!" => kept += 1,
            other => panic!("seed {seed}: a 4-byte write inside one sector was split: {other:?}"),
        }
    }
    assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
}

#[test]
fn drop_unsynced_loses_everything_unsynced_and_kill_loses_nothing() {
    let fs = fresh(1);
    let file = durable_file(&fs, "a", b"old!");
    file.write_all_at(b"new!", 0).unwrap();
    fs.open(&path("unsynced-entry"), OpenMode::Create).unwrap();
    fs.kill();
    assert_eq!(fs.contents(&path("a")).unwrap(), b"new!");
    assert!(fs.exists(&path("unsynced-entry")));
    // Still unsynced after the kill, so a power loss can drop it.
    fs.crash_with(CrashMode::DropUnsynced);
    assert_eq!(fs.contents(&path("a")).unwrap(), b"old!");
    assert!(!fs.exists(&path("unsynced-entry")));
}

#[test]
fn torn_writes_tear_only_at_sector_boundaries() {
    let mut torn = 0;
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        let file = durable_file(&fs, "a", &vec![b'A'; 8192]);
        let (offset, len) = (100usize, 5000usize);
        file.write_all_at(&vec![b'B'; len], offset as u64).unwrap();
        fs.crash();
        let data = fs.contents(&path("a")).unwrap();
        assert_eq!(data.len(), 8192);
        assert!(data[..offset].iter().all(|&b| b == b'A'));
        assert!(data[offset + len..].iter().all(|&b| b == b'A'));
        let sector = SECTOR_BYTES as usize;
        let mut kinds = Vec::new();
        let mut start = offset;
        while start < offset + len {
            let end = ((start / sector + 1) * sector).min(offset + len);
            let piece = &data[start..end];
            let all_new = piece.iter().all(|&b| b == b'B');
            let all_old = piece.iter().all(|&b| b == b'A');
            assert!(
                all_new || all_old,
                "seed {seed}: sector at {start} is mixed"
            );
            kinds.push(all_new);
            start = end;
        }
        if kinds.iter().any(|&k| k) && kinds.iter().any(|&k| !k) {
            torn += 1;
        }
    }
    assert!(torn > 0, "no seed produced a torn write");
}

#[test]
fn renames_are_volatile_until_sync_dir() {
    let (mut old_name, mut new_name) = (0, 0);
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        durable_file(&fs, "a", b"payload");
        fs.rename(&path("a"), &path("b")).unwrap();
        assert!(!fs.exists(&path("a")) && fs.exists(&path("b")));
        fs.crash();
        match (fs.contents(&path("a")), fs.contents(&path("b"))) {
            (Some(data), None) => {
                assert_eq!(data, b"payload");
                old_name += 1;
            }
            (None, Some(data)) => {
                assert_eq!(data, b"payload");
                new_name += 1;
            }
            other => panic!("seed {seed}: a rename must be atomic, got {other:?}"),
        }
    }
    assert!(
        old_name > 0 && new_name > 0,
        "old {old_name}, new {new_name}"
    );

    for seed in 0..SEEDS {
        let fs = fresh(seed);
        durable_file(&fs, "a", b"payload");
        fs.rename(&path("a"), &path("b")).unwrap();
        fs.sync_dir(dir()).unwrap();
        fs.crash();
        assert!(!fs.exists(&path("a")), "seed {seed}");
        assert_eq!(fs.contents(&path("b")).unwrap(), b"payload", "seed {seed}");
    }
}

#[test]
fn created_and_removed_files_are_volatile_until_sync_dir() {
    let (mut present, mut absent) = (0, 0);
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        durable_file(&fs, "doomed", b"x");
        let file = fs.open(&path("new"), OpenMode::Create).unwrap();
        file.write_all_at(b"data", 0).unwrap();
        // Data synced, directory entry not: the file may vanish entirely.
        file.sync_data().unwrap();
        fs.remove_file(&path("doomed")).unwrap();
        fs.crash();
        if fs.exists(&path("new")) {
            assert_eq!(fs.contents(&path("new")).unwrap(), b"data");
            present += 1;
        } else {
            absent += 1;
        }
        if fs.exists(&path("doomed")) {
            assert_eq!(fs.contents(&path("doomed")).unwrap(), b"x");
        }
    }
    assert!(present > 0 && absent > 0);
}

#[test]
fn unsynced_set_len_may_be_lost() {
    let (mut shrunk, mut kept) = (0, 0);
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        let file = durable_file(&fs, "a", &[1u8; 1000]);
        file.set_len(10).unwrap();
        assert_eq!(file.len().unwrap(), 10);
        fs.crash();
        match fs.contents(&path("a")).unwrap().len() {
            10 => shrunk += 1,
            1000 => kept += 1,
            other => panic!("seed {seed}: length {other}"),
        }
    }
    assert!(shrunk > 0 && kept > 0);
}

#[test]
fn handles_from_before_a_crash_or_kill_are_stale() {
    for mode in [CrashMode::PowerLoss, CrashMode::ProcessKill] {
        let fs = fresh(3);
        let file = durable_file(&fs, "a", b"data");
        fs.crash_with(mode);
        let error = file.write_all_at(b"zombie", 0).unwrap_err();
        assert!(
            error.to_string().contains("stale handle after crash"),
            "{error}"
        );
        assert!(file.read_at(&mut [0u8; 4], 0).is_err());
        assert!(file.sync_data().is_err());
        let reopened = fs.open(&path("a"), OpenMode::Existing).unwrap();
        assert_eq!(reopened.len().unwrap(), 4);
    }
}

/// A small workload touching every kind of operation; returns the surviving state.
fn workload(fs: &SimFs) -> Vec<(String, Option<Vec<u8>>)> {
    let run = || -> std::io::Result<()> {
        let a = fs.open(&path("a"), OpenMode::Create)?;
        a.write_all_at(&[1u8; 2000], 0)?;
        a.sync_data()?;
        fs.sync_dir(dir())?;
        for i in 0..10u8 {
            a.write_all_at(&[i; 700], u64::from(i) * 300)?;
            if i % 3 == 0 {
                a.sync_data()?;
            }
        }
        let b = fs.open(&path("b"), OpenMode::Create)?;
        b.write_all_at(b"bbbb", 0)?;
        fs.rename(&path("b"), &path("c"))?;
        b.set_len(2)?;
        fs.remove_file(&path("a"))?;
        // Left unsynced on purpose, so the crash has choices to make.
        Ok(())
    };
    let _ = run();
    fs.crash();
    ["a", "b", "c"]
        .iter()
        .map(|name| (name.to_string(), fs.contents(&path(name))))
        .collect()
}

#[test]
fn same_seed_gives_the_same_outcome() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let first = workload(&fresh(seed));
        let second = workload(&fresh(seed));
        assert_eq!(first, second, "seed {seed}");
        distinct.insert(format!("{first:?}"));
    }
    assert!(
        distinct.len() > 5,
        "seeds should explore different outcomes"
    );
}

#[test]
fn cut_points_stop_the_machine_after_exactly_n_operations() {
    let counting = fresh(9);
    let start = counting.ops();
    workload(&counting);
    let total = counting.ops() - start;
    assert!(total > 15, "{total}");
    for cut in 0..=total {
        let fs = fresh(9);
        fs.crash_after_ops(cut);
        let before = fs.ops();
        let a = fs.open(&path("a"), OpenMode::Create);
        let mut done = u64::from(a.is_ok());
        if let Ok(a) = a {
            for i in 0..total {
                if a.write_all_at(&[i as u8], i).is_err() {
                    break;
                }
                done += 1;
            }
        }
        assert_eq!(done, cut.min(total + 1), "cut {cut}");
        assert_eq!(fs.ops() - before, cut.min(total + 1));
        if cut <= total {
            assert!(fs.is_dead());
            assert!(fs.read_dir(dir()).is_err());
        }
        fs.crash();
        assert!(!fs.is_dead());
        fs.open(&path("after"), OpenMode::Create).unwrap();
    }
}

#[test]
fn the_chosen_sync_fails_and_its_writes_become_unknowable() {
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..SEEDS {
        let fs = fresh(seed);
        let file = durable_file(&fs, "a", b"old!");
        file.write_all_at(b"new!", 0).unwrap();
        fs.fail_nth_sync(2);
        fs.sync_dir(dir()).unwrap();
        assert!(file.sync_data().is_err());
        // Reads still see the write, and a later sync succeeds, yet the write may be lost.
        assert_eq!(fs.contents(&path("a")).unwrap(), b"new!");
        file.sync_data().unwrap();
        fs.crash();
        match fs.contents(&path("a")).unwrap().as_slice() {
            b"old!" => lost += 1,
            b"new!" => kept += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
}

#[test]
fn writes_fail_after_the_countdown() {
    let fs = fresh(5);
    let file = durable_file(&fs, "a", b"");
    fs.fail_writes_after(3);
    for i in 0..3u64 {
        file.write_all_at(b"ok", i * 2).unwrap();
    }
    for _ in 0..5 {
        assert!(file.write_all_at(&[9u8; 2000], 0).is_err());
    }
    fs.clear_faults();
    file.write_all_at(b"fine", 0).unwrap();
}

#[test]
fn random_faults_are_reproducible() {
    let outcomes = |seed| {
        let fs = fresh(seed);
        let file = durable_file(&fs, "a", b"");
        fs.set_fault_probability(0.2, 0.2);
        (0..100u64)
            .map(|i| {
                let write = file.write_all_at(b"x", i).is_ok();
                let sync = file.sync_data().is_ok();
                (write, sync)
            })
            .collect::<Vec<_>>()
    };
    let first = outcomes(11);
    assert_eq!(first, outcomes(11));
    assert!(first.iter().any(|&(w, s)| !w || !s));
    assert!(first.iter().any(|&(w, s)| w && s));
}

#[test]
fn an_entry_synced_inside_an_unsynced_directory_lives_and_dies_with_it() {
    let (mut with_dir, mut without_dir) = (0, 0);
    for seed in 0..SEEDS {
        let fs = SimFs::new(seed);
        fs.create_dir_all(Path::new("/x/y")).unwrap();
        let file = fs.open(Path::new("/x/y/f"), OpenMode::Create).unwrap();
        file.write_all_at(b"f", 0).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(Path::new("/x/y")).unwrap();
        fs.crash();
        match (fs.exists(Path::new("/x/y")), fs.exists(Path::new("/x/y/f"))) {
            (true, true) => with_dir += 1,
            (_, false) => without_dir += 1,
            (false, true) => panic!("seed {seed}: a file outlived its directory"),
        }
    }
    assert!(with_dir > 0 && without_dir > 0);
    // Syncing the parents afterwards makes the earlier-synced entry durable too.
    for seed in 0..SEEDS {
        let fs = SimFs::new(seed);
        fs.create_dir_all(Path::new("/x/y")).unwrap();
        fs.open(Path::new("/x/y/f"), OpenMode::Create).unwrap();
        fs.sync_dir(Path::new("/x/y")).unwrap();
        fs.sync_dir(Path::new("/x")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.crash();
        assert!(fs.exists(Path::new("/x/y/f")), "seed {seed}");
    }
}
