//! The cron parser and its schedule arithmetic.
//!
//! Any text either parses or errors. For a parsed schedule, `next_after(t)` must terminate for
//! every `t` (including the extremes), and any time it returns must be later than `t`, must match
//! the schedule, and must be the first such minute (the minute before it, if later than `t`,
//! does not match).

use burrow_config::cron::parse;

/// Valid expressions the mutations start from.
pub const CORPUS: &[&[u8]] = &[
    b"* * * * *",
    b"*/5 * * * *",
    b"0 0 1 1 *",
    b"30 2 * * MON-FRI",
    b"0 0 L * *",
    b"0 12 ? * 2#3",
    b"15,45 9-17/2 1-15 JAN-JUN SUN",
    b"0 0 29 2 *",
    b"0 0 31 4 *",
    b"59 23 LW * *",
    b"0 0 * * 5L",
];

/// Tokens of the cron grammar.
pub const DICTIONARY: &[&[u8]] = &[
    b"*",
    b"/",
    b"-",
    b",",
    b"L",
    b"W",
    b"#",
    b"?",
    b"MON",
    b"DEC",
    b" ",
    b"60",
    b"0",
    b"31",
    b"4294967296",
    b"99999999999999999999",
];

/// Interesting instants, in epoch milliseconds.
const TIMES_MS: &[i64] = &[
    i64::MIN,
    -62_135_596_800_000,
    -1,
    0,
    951_782_340_000,
    1_700_000_000_000,
    4_102_444_800_000,
    253_402_300_799_999,
    i64::MAX,
];

/// Parses `data` and walks the schedule from several instants.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(schedule) = parse(&text) else {
        return;
    };
    let mut extra = [0u8; 8];
    for (slot, byte) in extra.iter_mut().zip(data.iter().rev()) {
        *slot = *byte;
    }
    let derived = i64::from_le_bytes(extra);
    let fires = schedule.fires_ever();
    for &after in TIMES_MS.iter().chain([derived, derived / 1_000].iter()) {
        let Some(next) = schedule.next_after(after) else {
            continue;
        };
        assert!(
            fires,
            "{text:?}: fires_ever() is false but next_after({after}) = {next}"
        );
        assert!(
            next > after,
            "{text:?}: next_after({after}) = {next} is not later"
        );
        assert_eq!(
            next % 60_000,
            0,
            "{text:?}: next_after({after}) = {next} is not a minute"
        );
        assert!(
            schedule.matches(next),
            "{text:?}: next_after({after}) = {next} does not match"
        );
        let before = next.checked_sub(60_000);
        assert!(
            before.is_none_or(|before| before <= after || !schedule.matches(before)),
            "{text:?}: next_after({after}) = {next} skipped {before:?}"
        );
    }
}
