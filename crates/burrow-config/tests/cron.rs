//! Cron expressions against their next fire times, and every kind of parse error.

use burrow_config::cron::{self, Error, Field, days_from_civil};

/// `YYYY-MM-DD HH:MM[:SS]` in UTC to epoch milliseconds.
fn at(text: &str) -> i64 {
    let (date, time) = text.split_once(' ').expect("date and time");
    let date: Vec<i64> = date
        .split('-')
        .map(|part| part.parse().expect("number"))
        .collect();
    let time: Vec<i64> = time
        .split(':')
        .map(|part| part.parse().expect("number"))
        .collect();
    let days = days_from_civil(date[0], date[1] as u8, date[2] as u8);
    let seconds = time[0] * 3600 + time[1] * 60 + time.get(2).copied().unwrap_or(0);
    (days * 86_400 + seconds) * 1000
}

#[test]
fn time_anchors_agree_with_an_independent_calendar() {
    // Computed with Python's datetime.
    assert_eq!(at("2024-02-29 00:00"), 1_709_164_800_000);
    assert_eq!(at("2104-02-29 00:00"), 4_233_686_400_000);
    assert_eq!(at("1969-12-31 23:59"), -60_000);
}

#[test]
fn next_fire_times() {
    // (expression, after, expected next fire time); weekdays checked against Python's calendar.
    let table: &[(&str, &str, Option<&str>)] = &[
        // Every minute, strictly after the given instant.
        ("* * * * *", "2024-01-01 00:00:30", Some("2024-01-01 00:01")),
        ("* * * * *", "2024-01-01 00:01:00", Some("2024-01-01 00:02")),
        // Steps.
        ("*/15 * * * *", "2024-01-01 00:14", Some("2024-01-01 00:15")),
        ("*/15 * * * *", "2024-01-01 00:45", Some("2024-01-01 01:00")),
        (
            "*/5 * * * *",
            "2024-01-01 00:05:00",
            Some("2024-01-01 00:10"),
        ),
        ("0 */6 * * *", "2024-03-10 07:00", Some("2024-03-10 12:00")),
        (
            "30 9-17/4 * * *",
            "2024-01-01 13:30",
            Some("2024-01-01 17:30"),
        ),
        (
            "30 9-17/4 * * *",
            "2024-01-01 17:30",
            Some("2024-01-02 09:30"),
        ),
        ("5/20 * * * *", "2024-01-01 00:46", Some("2024-01-01 01:05")),
        // Lists and ranges, including a range that wraps past midnight with a step.
        (
            "0 0 1 JAN,JUL *",
            "2024-01-01 00:00",
            Some("2024-07-01 00:00"),
        ),
        (
            "0 22-2/2 * * *",
            "2024-01-01 02:30",
            Some("2024-01-01 22:00"),
        ),
        (
            "0 22-2/2 * * *",
            "2024-01-01 22:00",
            Some("2024-01-02 00:00"),
        ),
        (
            "15,45 8-9 * * *",
            "2024-01-01 08:50",
            Some("2024-01-01 09:15"),
        ),
        // Month ends and year rollover.
        ("0 0 1 * *", "2024-12-15 00:00", Some("2025-01-01 00:00")),
        ("0 0 31 * *", "2024-04-01 00:00", Some("2024-05-31 00:00")),
        ("0 0 1 1 *", "2024-06-01 00:00", Some("2025-01-01 00:00")),
        ("0 0 * DEC *", "2024-12-31 00:00", Some("2025-12-01 00:00")),
        // Leap years: Feb 29 exists in 2024 and 2028, not in 2100.
        ("0 0 29 2 *", "2024-03-01 00:00", Some("2028-02-29 00:00")),
        ("0 0 29 FEB *", "2096-03-01 00:00", Some("2104-02-29 00:00")),
        ("0 0 L * *", "2024-02-01 00:00", Some("2024-02-29 00:00")),
        ("0 0 L * *", "2023-02-01 00:00", Some("2023-02-28 00:00")),
        ("0 0 L FEB *", "2100-01-01 00:00", Some("2100-02-28 00:00")),
        ("0 0 L * *", "2024-02-29 00:00", Some("2024-03-31 00:00")),
        // L-n: n days before the last day.
        ("0 12 L-2 * *", "2024-04-01 00:00", Some("2024-04-28 12:00")),
        (
            "0 0 L-1 FEB *",
            "2024-01-01 00:00",
            Some("2024-02-28 00:00"),
        ),
        // nW: nearest weekday, never leaving the month.
        ("0 9 15W * *", "2024-06-01 00:00", Some("2024-06-14 09:00")), // 15th is a Saturday
        ("0 9 1W * *", "2024-05-31 10:00", Some("2024-06-03 09:00")),  // 1st is a Saturday
        ("0 9 31W * *", "2024-03-01 00:00", Some("2024-03-29 09:00")), // 31st is a Sunday
        ("0 9 31W * *", "2024-03-30 00:00", Some("2024-05-31 09:00")), // April has no 31st
        // LW: last weekday; L-nW: weekday nearest to L-n.
        ("59 23 LW * *", "2024-08-01 00:00", Some("2024-08-30 23:59")), // 31st is a Saturday
        ("59 23 LW * *", "2024-03-01 00:00", Some("2024-03-29 23:59")), // 31st is a Sunday
        (
            "0 0 L-1W FEB *",
            "2024-01-01 00:00",
            Some("2024-02-28 00:00"),
        ),
        // Weekdays: 1 = Sunday, names case-insensitive, ranges that wrap.
        ("0 17 * * sun", "2024-01-01 00:00", Some("2024-01-07 17:00")),
        ("0 17 * * 1", "2024-01-01 00:00", Some("2024-01-07 17:00")),
        ("5 4 * * 7", "2024-01-01 00:00", Some("2024-01-06 04:05")),
        (
            "10 7 * * mon-fri",
            "2024-01-05 08:00",
            Some("2024-01-08 07:10"),
        ),
        ("10 7 * * 2-6", "2024-01-05 08:00", Some("2024-01-08 07:10")),
        (
            "0 0 * * FRI-MON",
            "2024-01-02 00:00",
            Some("2024-01-05 00:00"),
        ),
        (
            "0 0 * * FRI-MON",
            "2024-01-05 00:00",
            Some("2024-01-06 00:00"),
        ),
        ("0 0 * * L", "2024-01-01 00:00", Some("2024-01-06 00:00")), // bare L is Saturday
        // nL: last such weekday of the month.
        ("0 18 * * 6L", "2024-02-01 00:00", Some("2024-02-23 18:00")),
        (
            "0 18 * * friL",
            "2024-02-01 00:00",
            Some("2024-02-23 18:00"),
        ),
        ("0 0 * * 7L", "2020-01-01 00:00", Some("2020-01-25 00:00")),
        // n#k: k-th such weekday.
        (
            "0 10 * * MON#2",
            "2025-01-01 00:00",
            Some("2025-01-13 10:00"),
        ),
        (
            "0 0 * * SAT#5",
            "2020-02-01 00:00",
            Some("2020-02-29 00:00"),
        ),
        (
            "0 0 * * SAT#5",
            "2020-03-01 00:00",
            Some("2020-05-30 00:00"),
        ),
        // Both day fields restricted: either matches (the 13th is a Saturday, the 5th a Friday).
        ("0 0 13 * FRI", "2024-01-01 00:00", Some("2024-01-05 00:00")),
        ("0 0 13 * FRI", "2024-01-12 00:00", Some("2024-01-13 00:00")),
        // Never fires.
        ("0 0 30 FEB *", "2024-01-01 00:00", None),
        ("0 0 31 APR,JUN,SEP,NOV *", "2024-01-01 00:00", None),
    ];
    for (expression, after, expected) in table {
        let schedule = cron::parse(expression)
            .unwrap_or_else(|error| panic!("{expression} should parse: {error}"));
        let next = schedule.next_after(at(after));
        assert_eq!(
            next,
            expected.map(at),
            "{expression} after {after}: expected {expected:?}"
        );
        if let Some(next) = next {
            assert!(
                schedule.matches(next),
                "{expression} should match its own fire time"
            );
            assert!(!schedule.matches(next - 60_000) || next - 60_000 <= at(after));
        }
    }
}

#[test]
fn next_fire_times_are_consecutive_matches() {
    // Walking minute by minute over a leap-year February agrees with next_after.
    let schedule = cron::parse("*/7 1-2 1-3,29 * MON").expect("valid");
    let start = at("2024-02-01 00:00");
    let end = at("2024-03-08 00:00");
    let mut expected = Vec::new();
    let mut minute = start + 60_000;
    while minute < end {
        if schedule.matches(minute) {
            expected.push(minute);
        }
        minute += 60_000;
    }
    let mut actual = Vec::new();
    let mut after = start;
    while let Some(next) = schedule.next_after(after).filter(|next| *next < end) {
        actual.push(next);
        after = next;
    }
    assert_eq!(actual, expected);
    assert!(!actual.is_empty());
}

#[test]
fn parse_errors_name_the_field() {
    let table: &[(&str, Option<Field>, &str)] = &[
        ("0 0 * * 0", Some(Field::DayOfWeek), "Sunday is 1 or SUN"),
        ("60 * * * *", Some(Field::Minute), "60 is out of range"),
        ("* 24 * * *", Some(Field::Hour), "24 is out of range"),
        ("* * 0 * *", Some(Field::DayOfMonth), "0 is out of range"),
        ("* * 32 * *", Some(Field::DayOfMonth), "32 is out of range"),
        ("* * * 13 *", Some(Field::Month), "13 is out of range"),
        ("* * * * 8", Some(Field::DayOfWeek), "8 is out of range"),
        ("*/0 * * * *", Some(Field::Minute), "step 0 is out of range"),
        (
            "*/60 * * * *",
            Some(Field::Minute),
            "step 60 is out of range",
        ),
        (
            "* * L-31 * *",
            Some(Field::DayOfMonth),
            "offset 31 is out of range",
        ),
        ("* * * * MON#6", Some(Field::DayOfWeek), "#1 to #5"),
        ("* * ? * *", Some(Field::DayOfMonth), "`?` is not supported"),
        (
            "* * * FOO *",
            Some(Field::Month),
            "\"FOO\" is not a valid value",
        ),
        (
            "* * * * MONDAY",
            Some(Field::DayOfWeek),
            "\"MONDAY\" is not a valid value",
        ),
        ("* * 1,L * *", Some(Field::DayOfMonth), "must stand alone"),
        ("* * * * MON,FRIL", Some(Field::DayOfWeek), "single weekday"),
        ("* * 1-5W * *", Some(Field::DayOfMonth), "single day"),
        ("1,,2 * * * *", Some(Field::Minute), "empty list item"),
        ("*,5 * * * *", Some(Field::Minute), "cannot be combined"),
        ("* * * *", None, "found 4 fields (allowed exactly 5"),
        ("* * * * * *", None, "found 6"),
        ("", None, "found 0"),
    ];
    for (expression, field, fragment) in table {
        let error = cron::parse(expression).expect_err(expression);
        let message = error.to_string();
        assert!(
            message.contains(fragment),
            "{expression}: {message:?} should contain {fragment:?}"
        );
        match (field, &error) {
            (Some(expected), Error::Field { field, .. }) => {
                assert_eq!(field, expected, "{expression}");
                assert!(
                    message.starts_with(&format!("{expected} field")),
                    "{message}"
                );
                assert!(message.contains("(allowed "), "{message}");
            }
            (None, Error::FieldCount { .. }) => {}
            _ => panic!("{expression}: unexpected error {error:?}"),
        }
    }
}

#[test]
fn equal_schedules_compare_equal() {
    let parse = |text: &str| cron::parse(text).expect("valid");
    assert_eq!(parse("0 9 * * MON-FRI"), parse("0 9 * * 2-6"));
    assert_eq!(parse("0 */12 * * *"), parse("0 0,12 * * *"));
    assert_ne!(parse("0 9 * * MON"), parse("0 9 * * TUE"));
}

/// Found by the cron fuzz target: `next_after` near `i64::MAX` multiplied a minute past the end
/// of the representable range (a panic in debug builds, a wrapped earlier time in release).
#[test]
fn next_after_at_the_end_of_time_is_none_not_an_overflow() {
    let every_minute = cron::parse("* * * * *").expect("valid");
    let last_minute = i64::MAX / 60_000 * 60_000;
    assert_eq!(every_minute.next_after(i64::MAX), None);
    assert_eq!(every_minute.next_after(last_minute), None);
    assert_eq!(every_minute.next_after(last_minute - 1), Some(last_minute));
}
