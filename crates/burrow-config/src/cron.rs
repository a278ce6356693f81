//! Cloudflare's cron syntax: parsing `triggers.crons` expressions and computing their next fire time.
//!
//! The grammar and meaning follow the parser Cloudflare's Cron Triggers use (a "Quartz scheduler"-like
//! dialect), not Vixie cron:
//! - Five fields, `minute hour day-of-month month day-of-week`, always in UTC.
//! - Each field takes `*`, a value, a range `a-b`, a step `*/s`, `a/s` (from `a` to the field's
//!   maximum) or `a-b/s`, and comma-separated lists of those. A range whose start is greater than
//!   its end wraps around (`FRI-MON`, `22-2`), and a step walks the wrapped sequence.
//! - Months are `1-12` or `JAN`-`DEC`; weekdays are `1-7` with **1 = Sunday** or `SUN`-`SAT`
//!   (case-insensitive). `0` is not a weekday: Cloudflare rejects `0 0 * * 0`, and so do we.
//! - Day-of-month, alone in its field: `L` (last day), `L-n` (n days before the last, 1-30), `LW`
//!   (last weekday, Monday to Friday), `L-nW` (the weekday nearest to `L-n`) and `nW` (the weekday
//!   nearest to day `n`, never crossing into another month; no fire in months without day `n`).
//! - Day-of-week, alone in its field: `nL` (last such weekday of the month), `n#k` (k-th such
//!   weekday, k = 1-5) and a bare `L`, which means Saturday (day 7), as in Quartz.
//! - When both day fields are restricted (neither is `*`), a day matches if *either* matches, as in
//!   classic cron. `?` is not accepted: Cloudflare does not accept it either; write `*`.
//!
//! The calendar arithmetic is the proleptic Gregorian calendar on days since the Unix epoch. The
//! calendar repeats every 400 years (146,097 days, a whole number of weeks), so a search that
//! finds nothing in 400 years proves the expression never fires (for example `0 0 30 FEB *`).

use std::fmt;
use std::str::FromStr;

const MILLIS_PER_MINUTE: i64 = 60_000;
const MINUTES_PER_DAY: i64 = 1_440;
/// Months in one full Gregorian cycle; searching further cannot find anything new.
const SEARCH_MONTHS: i64 = 400 * 12;

/// One of the five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The first field, 0-59.
    Minute,
    /// The second field, 0-23.
    Hour,
    /// The third field, 1-31 plus `L`, `W` forms.
    DayOfMonth,
    /// The fourth field, 1-12 or month names.
    Month,
    /// The fifth field, 1-7 (1 = Sunday) or weekday names, plus `L` and `#` forms.
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    fn min(self) -> u8 {
        match self {
            Field::Minute | Field::Hour => 0,
            Field::DayOfMonth | Field::Month | Field::DayOfWeek => 1,
        }
    }

    fn max(self) -> u8 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// What the field accepts, for error messages.
    fn allowed(self) -> &'static str {
        match self {
            Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31, L, L-n, LW, L-nW or nW",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "1-7 (1 = Sunday) or SUN-SAT, nL or n#k",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            Field::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression does not have exactly five whitespace-separated fields.
    #[error("found {found} fields (allowed exactly 5: minute hour day-of-month month day-of-week)")]
    FieldCount {
        /// How many fields the expression had.
        found: usize,
    },
    /// One field is malformed or out of range.
    #[error("{field} field \"{text}\": {reason} (allowed {allowed})", allowed = field.allowed())]
    Field {
        /// The field at fault.
        field: Field,
        /// The field's text as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Day-of-month rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaysOfMonth {
    Any,
    /// Bit `d` set for day `d` (1-31).
    Set(u32),
    /// `L` (offset 0) or `L-n`.
    Last {
        offset: u8,
    },
    /// `LW` (offset 0) or `L-nW`.
    LastWeekday {
        offset: u8,
    },
    /// `nW`.
    NearestWeekday(u8),
}

/// Day-of-week rule; weekdays are 0 = Sunday .. 6 = Saturday here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaysOfWeek {
    Any,
    /// Bit `w` set for weekday `w`.
    Set(u8),
    /// `nL`: the last such weekday of the month.
    Last(u8),
    /// `n#k`: the k-th such weekday of the month.
    Nth {
        weekday: u8,
        nth: u8,
    },
}

/// A parsed cron expression. Two schedules compare equal when they fire at the same times by
/// construction (same sets), which is how duplicate triggers are detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `m` set for minute `m`.
    minutes: u64,
    /// Bit `h` set for hour `h`.
    hours: u32,
    days_of_month: DaysOfMonth,
    /// Bit `m` set for month `m` (1-12).
    months: u16,
    days_of_week: DaysOfWeek,
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(expression: &str) -> Result<Self, Error> {
        parse(expression)
    }
}

/// Parses a Cloudflare cron expression.
pub fn parse(expression: &str) -> Result<Schedule, Error> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != Field::ALL.len() {
        return Err(Error::FieldCount {
            found: fields.len(),
        });
    }
    let minutes = parse_list(Field::Minute, fields[0])?;
    let hours = parse_list(Field::Hour, fields[1])?;
    let days_of_month = parse_days_of_month(fields[2])?;
    let months = parse_list(Field::Month, fields[3])?;
    let days_of_week = parse_days_of_week(fields[4])?;
    Ok(Schedule {
        minutes: minutes.unwrap_or(bits(0, 59)),
        // The casts keep only the bits a field can hold; parse_list never sets others.
        hours: hours.unwrap_or(bits(0, 23)) as u32,
        days_of_month,
        months: months.unwrap_or(bits(1, 12)) as u16,
        days_of_week,
    })
}

fn field_error(field: Field, text: &str, reason: impl Into<String>) -> Error {
    Error::Field {
        field,
        text: text.to_owned(),
        reason: reason.into(),
    }
}

/// Bits `low..=high` set.
fn bits(low: u8, high: u8) -> u64 {
    (low..=high).fold(0, |acc, bit| acc | 1 << bit)
}

/// Parses a list field into a bit set; `None` means `*` (every value).
fn parse_list(field: Field, text: &str) -> Result<Option<u64>, Error> {
    if text == "*" {
        return Ok(None);
    }
    if text == "?" {
        return Err(field_error(field, text, "`?` is not supported; use `*`"));
    }
    let mut set = 0u64;
    for item in text.split(',') {
        set |= parse_item(field, text, item)?;
    }
    Ok(Some(set))
}

/// Parses one list item: `*/s`, `a`, `a-b`, `a/s` or `a-b/s`.
fn parse_item(field: Field, text: &str, item: &str) -> Result<u64, Error> {
    if item.is_empty() {
        return Err(field_error(field, text, "empty list item"));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, text, step)?)),
        None => (item, None),
    };
    let (start, end) = if range == "*" {
        if step.is_none() {
            return Err(field_error(
                field,
                text,
                "`*` cannot be combined with other values",
            ));
        }
        (field.min(), field.max())
    } else if let Some((start, end)) = range.split_once('-') {
        (
            parse_value(field, text, start)?,
            parse_value(field, text, end)?,
        )
    } else {
        let start = parse_value(field, text, range)?;
        // `a/s` runs from `a` to the field's maximum; a lone `a` is just `a`.
        (start, if step.is_some() { field.max() } else { start })
    };
    Ok(walk(field, start, end, step.unwrap_or(1)))
}

/// The values from `start` to `end` (wrapping past the maximum when `start > end`) every `step`.
fn walk(field: Field, start: u8, end: u8, step: u8) -> u64 {
    let span = field.max() - field.min() + 1;
    let length = if start <= end {
        end - start + 1
    } else {
        span - (start - end) + 1
    };
    let mut set = 0u64;
    let mut offset = 0u8;
    while offset < length {
        let value = field.min() + (start - field.min() + offset) % span;
        set |= 1 << value;
        offset += step;
    }
    set
}

fn parse_step(field: Field, text: &str, step: &str) -> Result<u8, Error> {
    let max_step = field.max() - field.min();
    match parse_number(step) {
        Some(value) if (1..=u32::from(max_step)).contains(&value) => Ok(value as u8),
        Some(value) => Err(field_error(
            field,
            text,
            format!("step {value} is out of range (steps allowed 1-{max_step})"),
        )),
        None => Err(field_error(
            field,
            text,
            format!("step \"{step}\" is not a number"),
        )),
    }
}

/// A decimal number of at most a few digits, or `None`.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A single value: a number in the field's range or, for months and weekdays, a 3-letter name.
fn parse_value(field: Field, text: &str, value: &str) -> Result<u8, Error> {
    if let Some(number) = parse_number(value) {
        if number < u32::from(field.min()) || number > u32::from(field.max()) {
            let hint = if field == Field::DayOfWeek && number == 0 {
                "; Sunday is 1 or SUN"
            } else {
                ""
            };
            return Err(field_error(
                field,
                text,
                format!("{number} is out of range{hint}"),
            ));
        }
        return Ok(number as u8);
    }
    let upper = value.to_ascii_uppercase();
    if let Some(index) = field.names().iter().position(|name| *name == upper) {
        return Ok(field.min() + index as u8);
    }
    let reason = if value.is_empty() {
        "missing value".to_owned()
    } else {
        format!("\"{value}\" is not a valid value")
    };
    Err(field_error(field, text, reason))
}

fn parse_days_of_month(text: &str) -> Result<DaysOfMonth, Error> {
    let field = Field::DayOfMonth;
    if let Some(rest) = text.strip_prefix('L') {
        let (rest, weekday) = match rest.strip_suffix('W') {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let offset = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix('-').ok_or_else(|| {
                field_error(field, text, "`L` may only be followed by `-n` or `W`")
            })?;
            match parse_number(digits) {
                Some(offset @ 1..=30) => offset as u8,
                Some(offset) => {
                    return Err(field_error(
                        field,
                        text,
                        format!("offset {offset} is out of range (offsets allowed 1-30)"),
                    ));
                }
                None => {
                    return Err(field_error(
                        field,
                        text,
                        format!("offset \"{digits}\" is not a number"),
                    ));
                }
            }
        };
        return Ok(if weekday {
            DaysOfMonth::LastWeekday { offset }
        } else {
            DaysOfMonth::Last { offset }
        });
    }
    if let Some(day) = text.strip_suffix('W') {
        if day.contains([',', '-', '/', '*']) {
            return Err(field_error(
                field,
                text,
                "`W` takes a single day, not a list, range or step",
            ));
        }
        return Ok(DaysOfMonth::NearestWeekday(parse_value(field, text, day)?));
    }
    if text.contains('L') || text.contains('W') {
        return Err(field_error(
            field,
            text,
            "`L` and `W` must stand alone in the field",
        ));
    }
    Ok(match parse_list(field, text)? {
        None => DaysOfMonth::Any,
        Some(set) => DaysOfMonth::Set(set as u32),
    })
}

fn parse_days_of_week(text: &str) -> Result<DaysOfWeek, Error> {
    let field = Field::DayOfWeek;
    // Internally weekdays are 0 = Sunday; the syntax's 1 = Sunday is shifted down here.
    if text.eq_ignore_ascii_case("L") {
        return Ok(DaysOfWeek::Set(1 << 6));
    }
    let upper = text.to_ascii_uppercase();
    if let Some(day) = upper.strip_suffix('L') {
        if day.contains([',', '-', '/', '*']) {
            return Err(field_error(
                field,
                text,
                "`L` takes a single weekday, not a list, range or step",
            ));
        }
        return Ok(DaysOfWeek::Last(parse_value(field, text, day)? - 1));
    }
    if let Some((day, nth)) = upper.split_once('#') {
        let weekday = parse_value(field, text, day)? - 1;
        let nth = match parse_number(nth) {
            Some(nth @ 1..=5) => nth as u8,
            _ => {
                return Err(field_error(
                    field,
                    text,
                    format!("\"#{nth}\" must be #1 to #5"),
                ));
            }
        };
        return Ok(DaysOfWeek::Nth { weekday, nth });
    }
    Ok(match parse_list(field, text)? {
        None => DaysOfWeek::Any,
        Some(set) => DaysOfWeek::Set((set >> 1) as u8),
    })
}

/// A calendar date with the facts the day rules need.
#[derive(Debug, Clone, Copy)]
struct Date {
    day: u8,
    /// 0 = Sunday.
    weekday: u8,
    days_in_month: u8,
}

impl Schedule {
    /// The first minute strictly after `after_ms` (epoch milliseconds, UTC) at which the schedule
    /// fires, as epoch milliseconds; `None` if it never fires.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let first_minute = after_ms.div_euclid(MILLIS_PER_MINUTE).checked_add(1)?;
        // The minute may exist while its first millisecond is past `i64::MAX`: no such time.
        self.next_from_minute(first_minute)
            .and_then(|minute| minute.checked_mul(MILLIS_PER_MINUTE))
    }

    /// Whether the schedule fires in the minute that contains `epoch_ms`.
    pub fn matches(&self, epoch_ms: i64) -> bool {
        let minute = epoch_ms.div_euclid(MILLIS_PER_MINUTE);
        let day = minute.div_euclid(MINUTES_PER_DAY);
        let minute_of_day = minute.rem_euclid(MINUTES_PER_DAY);
        let (year, month, _) = civil_from_days(day);
        self.month_matches(month)
            && self.day_matches(date_of(day, year, month))
            && self.hours & (1 << (minute_of_day / 60)) != 0
            && self.minutes & (1 << (minute_of_day % 60)) != 0
    }

    /// Whether the schedule fires at all (some expressions, such as `0 0 30 FEB *`, never do).
    pub fn fires_ever(&self) -> bool {
        self.next_after(-1).is_some()
    }

    fn next_from_minute(&self, first_minute: i64) -> Option<i64> {
        let first_day = first_minute.div_euclid(MINUTES_PER_DAY);
        let mut from_minute_of_day = first_minute.rem_euclid(MINUTES_PER_DAY);
        let (mut year, mut month, mut day_of_month) = civil_from_days(first_day);
        for _ in 0..=SEARCH_MONTHS {
            if self.month_matches(month) {
                let month_length = days_in_month(year, month);
                let month_start = days_from_civil(year, month, 1);
                for day in day_of_month..=month_length {
                    let days = month_start + i64::from(day) - 1;
                    if self.day_matches(date_of(days, year, month))
                        && let Some(minute_of_day) = self.first_time_from(from_minute_of_day)
                    {
                        return Some(days * MINUTES_PER_DAY + minute_of_day);
                    }
                    from_minute_of_day = 0;
                }
            }
            from_minute_of_day = 0;
            day_of_month = 1;
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
        }
        None
    }

    /// The first minute of the day at or after `from` whose hour and minute match.
    fn first_time_from(&self, from: i64) -> Option<i64> {
        let from_hour = (from / 60) as u32;
        let from_minute = (from % 60) as u32;
        for hour in from_hour..24 {
            if self.hours & (1 << hour) == 0 {
                continue;
            }
            let start = if hour == from_hour { from_minute } else { 0 };
            let candidates = self.minutes >> start;
            if candidates != 0 {
                let minute = start + candidates.trailing_zeros();
                if minute < 60 {
                    return Some(i64::from(hour) * 60 + i64::from(minute));
                }
            }
        }
        None
    }

    fn month_matches(&self, month: u8) -> bool {
        self.months & (1 << month) != 0
    }

    fn day_matches(&self, date: Date) -> bool {
        match (self.days_of_month, self.days_of_week) {
            (DaysOfMonth::Any, DaysOfWeek::Any) => true,
            (DaysOfMonth::Any, days_of_week) => weekday_rule_matches(days_of_week, date),
            (days_of_month, DaysOfWeek::Any) => month_day_rule_matches(days_of_month, date),
            // Both restricted: either may match, as in classic cron and Cloudflare.
            (days_of_month, days_of_week) => {
                month_day_rule_matches(days_of_month, date)
                    || weekday_rule_matches(days_of_week, date)
            }
        }
    }
}

fn month_day_rule_matches(rule: DaysOfMonth, date: Date) -> bool {
    let Date {
        day,
        days_in_month: length,
        ..
    } = date;
    match rule {
        DaysOfMonth::Any => true,
        DaysOfMonth::Set(set) => set & (1 << day) != 0,
        DaysOfMonth::Last { offset } => u16::from(day) + u16::from(offset) == u16::from(length),
        DaysOfMonth::LastWeekday { offset } => {
            offset < length && nearest_weekday(length - offset, date) == day
        }
        DaysOfMonth::NearestWeekday(target) => {
            target <= length && nearest_weekday(target, date) == day
        }
    }
}

/// The weekday (Monday to Friday) nearest to day `target` of the month `date` is in, without
/// leaving that month: a Saturday moves back to Friday unless it is the 1st (then Monday the 3rd),
/// a Sunday moves forward to Monday unless it is the last day (then Friday).
fn nearest_weekday(target: u8, date: Date) -> u8 {
    let target_weekday =
        (i16::from(date.weekday) + i16::from(target) - i16::from(date.day)).rem_euclid(7) as u8;
    match target_weekday {
        6 if target > 1 => target - 1,
        6 => target + 2,
        0 if target < date.days_in_month => target + 1,
        0 => target - 2,
        _ => target,
    }
}

fn weekday_rule_matches(rule: DaysOfWeek, date: Date) -> bool {
    match rule {
        DaysOfWeek::Any => true,
        DaysOfWeek::Set(set) => set & (1 << date.weekday) != 0,
        DaysOfWeek::Last(weekday) => date.weekday == weekday && date.day + 7 > date.days_in_month,
        DaysOfWeek::Nth { weekday, nth } => {
            date.weekday == weekday && (date.day - 1) / 7 + 1 == nth
        }
    }
}

fn date_of(days: i64, year: i64, month: u8) -> Date {
    let (_, _, day) = civil_from_days(days);
    Date {
        day,
        weekday: weekday_of(days),
        days_in_month: days_in_month(year, month),
    }
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1-12) of `year`.
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a Gregorian date (month 1-12, day 1-31).
///
/// Counts in eras of 400 years that start on March 1st, so that the leap day is the last day of
/// the counted year and the month lengths before it follow a fixed pattern.
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days separate 0000-03-01 from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The Gregorian date `(year, month 1-12, day 1-31)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u8;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u8;
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

/// The weekday of a day count since 1970-01-01, 0 = Sunday (1970-01-01 was a Thursday).
pub fn weekday_of(days: i64) -> u8 {
    (days + 4).rem_euclid(7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_a_full_cycle_and_beyond() {
        for days in -200_000..200_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(
                days_from_civil(year, month, day),
                days,
                "{year}-{month}-{day}"
            );
            assert!(day >= 1 && day <= days_in_month(year, month));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(weekday_of(days_from_civil(2024, 2, 29)), 4);
    }

    #[test]
    fn wrapped_steps_continue_across_the_wrap() {
        assert_eq!(
            walk(Field::Hour, 20, 4, 2),
            bits(0, 0) | 1 << 2 | 1 << 4 | 1 << 20 | 1 << 22
        );
        assert_eq!(walk(Field::Minute, 50, 10, 15), 1 << 50 | 1 << 5);
        assert_eq!(
            walk(Field::DayOfWeek, 6, 2, 1),
            1 << 6 | 1 << 7 | 1 << 1 | 1 << 2
        );
    }
}
