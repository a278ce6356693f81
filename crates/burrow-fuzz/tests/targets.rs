//! Every fuzz target's check over seeded mutations of its corpus: the deterministic part of the
//! fuzzing that `cargo test` runs (the coverage-guided part is `fuzz/`, run by hand).
//!
//! Iteration counts keep each test to a few seconds in a debug build on a loaded machine.

use burrow_fuzz::{authorizer, config, cron, id, ingress, journal, mutate, websocket};

fn refs(corpus: &[Vec<u8>]) -> Vec<&[u8]> {
    corpus.iter().map(Vec::as_slice).collect()
}

#[test]
fn config_parser_survives_mutated_configs() {
    mutate::run(1, 20_000, config::CORPUS, config::DICTIONARY, config::check);
}

#[test]
fn cron_parser_survives_mutated_expressions() {
    mutate::run(2, 100_000, cron::CORPUS, cron::DICTIONARY, cron::check);
}

#[test]
fn sql_authorizer_keeps_reserved_state_under_mutated_sql() {
    mutate::run(
        3,
        15_000,
        authorizer::CORPUS,
        authorizer::DICTIONARY,
        authorizer::check,
    );
}

#[test]
fn journal_recovery_survives_corrupted_and_random_segments() {
    mutate::run(4, 15_000, journal::CORPUS, &[], journal::check);
}

#[test]
fn id_parsing_survives_mutated_ids() {
    let corpus = id::corpus();
    mutate::run(5, 100_000, &refs(&corpus), &[], id::check);
}

#[test]
fn ingress_survives_malformed_requests() {
    mutate::run(
        6,
        10_000,
        ingress::CORPUS,
        ingress::DICTIONARY,
        ingress::check,
    );
}

#[test]
fn websocket_reader_survives_mutated_frames() {
    let corpus = websocket::corpus();
    mutate::run(
        7,
        100_000,
        &refs(&corpus),
        websocket::DICTIONARY,
        websocket::check,
    );
}
