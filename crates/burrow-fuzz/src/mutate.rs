//! A seeded byte mutator and the loop that runs a check over mutations of a corpus: the
//! deterministic stand-in for a coverage-guided fuzzer that CI can run on stable Rust.
//!
//! Mutations are the classic ones (bit flips, byte replacement, insertion and deletion of runs,
//! duplication, splicing with another corpus entry, dictionary tokens, truncation, interesting
//! integers). They stack: each iteration applies one to four of them to a corpus entry or to the
//! previous iteration's output, so inputs drift far from the valid ones.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bytes a mutated input may grow to; keeps every iteration cheap.
pub const MAX_INPUT_BYTES: usize = 16 * 1024;

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
    u64::MAX / 2,
];

/// One mutation step applied to `input`.
pub fn mutate(rng: &mut SmallRng, input: &mut Vec<u8>, corpus: &[&[u8]], dictionary: &[&[u8]]) {
    let at = |rng: &mut SmallRng, len: usize| {
        if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..10) {
        0 if !input.is_empty() => {
            let index = at(rng, input.len());
            input[index] ^= 1 << rng.random_range(0..8);
        }
        1 if !input.is_empty() => {
            let index = at(rng, input.len());
            input[index] = rng.random();
        }
        2 => {
            let index = at(rng, input.len() + 1);
            let count = rng.random_range(1..16);
            let bytes: Vec<u8> = (0..count).map(|_| rng.random()).collect();
            input.splice(index..index, bytes);
        }
        3 if !input.is_empty() => {
            let start = at(rng, input.len());
            let end = (start + rng.random_range(1..32)).min(input.len());
            input.drain(start..end);
        }
        4 if !input.is_empty() => {
            let start = at(rng, input.len());
            let end = (start + rng.random_range(1..64)).min(input.len());
            let copy = input[start..end].to_vec();
            let index = at(rng, input.len() + 1);
            input.splice(index..index, copy);
        }
        5 if !corpus.is_empty() => {
            let other = corpus[at(rng, corpus.len())];
            let from = at(rng, other.len() + 1);
            let index = at(rng, input.len() + 1);
            input.truncate(index);
            input.extend_from_slice(&other[from..]);
        }
        6 | 7 if !dictionary.is_empty() => {
            let token = dictionary[at(rng, dictionary.len())];
            let index = at(rng, input.len() + 1);
            if rng.random_bool(0.5) && index + token.len() <= input.len() {
                input[index..index + token.len()].copy_from_slice(token);
            } else {
                input.splice(index..index, token.iter().copied());
            }
        }
        8 if !input.is_empty() => {
            let index = at(rng, input.len());
            input.truncate(index);
        }
        _ => {
            let value = INTERESTING[at(rng, INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.random_range(0..4)];
            let bytes = if rng.random_bool(0.5) {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            let index = at(rng, input.len() + 1);
            let end = (index + width).min(input.len());
            input.splice(index..end, bytes[..width].iter().copied());
        }
    }
    input.truncate(MAX_INPUT_BYTES);
}

/// Runs `check` on every corpus entry, then on `iterations` mutated inputs derived from `seed`.
/// A panicking check is re-raised with the seed, the iteration and the input, so that the input
/// can become a regression test.
pub fn run(
    seed: u64,
    iterations: usize,
    corpus: &[&[u8]],
    dictionary: &[&[u8]],
    check: impl Fn(&[u8]),
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut current: Vec<u8> = Vec::new();
    for iteration in 0..corpus.len() + iterations {
        let input = if iteration < corpus.len() {
            corpus[iteration].to_vec()
        } else {
            if current.is_empty() || rng.random_bool(0.3) {
                current = corpus
                    .get(at_index(&mut rng, corpus.len()))
                    .map_or_else(Vec::new, |entry| entry.to_vec());
            }
            for _ in 0..rng.random_range(1..=4) {
                mutate(&mut rng, &mut current, corpus, dictionary);
            }
            current.clone()
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!(
                "seed {seed} iteration {iteration}: {message}\ninput ({} bytes): b\"{}\"",
                input.len(),
                input.escape_ascii()
            );
        }
    }
}

fn at_index(rng: &mut SmallRng, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rng.random_range(0..len)
    }
}
