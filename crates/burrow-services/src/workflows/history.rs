//! An instance's history in the shape of Cloudflare's "Get instance" API result: params, times,
//! status, output or error, and every step with its attempts, timings and errors.

use serde_json::{Value, json};

use super::error::WorkflowError;
use super::status::Status;
use super::store::{Meta, StepKind, StepRecord, StepState};

/// `2025-01-02T03:04:05.000Z`, as Cloudflare's API writes times.
pub fn rfc3339(epoch_ms: i64) -> String {
    let seconds = epoch_ms.div_euclid(1000);
    let millis = epoch_ms.rem_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
    )
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(rfc3339(ms)))
}

fn parsed(json: Option<&str>) -> Value {
    json.and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or(Value::Null)
}

fn error(error: Option<&WorkflowError>) -> Value {
    error.map_or(
        Value::Null,
        |error| json!({"name": error.name, "message": error.message}),
    )
}

fn finished(state: StepState) -> bool {
    matches!(state, StepState::Complete | StepState::Failed)
}

/// The "Get instance" result for this instance.
pub(crate) fn details(meta: &Meta, steps: &[StepRecord]) -> Value {
    let mut entries: Vec<Value> = steps
        .iter()
        .map(|step| match step.kind {
            StepKind::Do => {
                let attempts: Vec<Value> = step
                    .attempts
                    .iter()
                    .map(|attempt| {
                        json!({
                            "start": rfc3339(attempt.start_ms),
                            "end": time(attempt.end_ms),
                            "success": attempt.end_ms.map(|_| attempt.error.is_none()),
                            "error": error(attempt.error.as_ref()),
                        })
                    })
                    .collect();
                json!({
                    "type": "step",
                    "name": step.name,
                    "start": rfc3339(step.start_ms),
                    "end": time(step.end_ms),
                    "attempts": attempts,
                    "config": step.config.clone().unwrap_or(Value::Null),
                    "output": parsed(step.result.as_deref()),
                    "success": match step.state {
                        StepState::Complete => Value::Bool(true),
                        StepState::Failed => Value::Bool(false),
                        _ => Value::Null,
                    },
                })
            }
            StepKind::Sleep => json!({
                "type": "sleep",
                "name": step.name,
                "start": rfc3339(step.start_ms),
                "end": time(step.end_ms.or(step.wake_ms)),
                "finished": finished(step.state),
                "error": Value::Null,
            }),
            StepKind::WaitForEvent => json!({
                "type": "waitForEvent",
                "name": step.name,
                "start": rfc3339(step.start_ms),
                "end": time(step.end_ms),
                "finished": finished(step.state),
                "output": parsed(step.result.as_deref()),
                "error": error(step.error.as_ref()),
            }),
        })
        .collect();
    if meta.status == Status::Terminated {
        entries.push(json!({"type": "termination", "trigger": {"source": "api"}}));
    }
    json!({
        "params": parsed(Some(&meta.params)),
        "trigger": {"source": "api"},
        "versionId": "",
        "queued": rfc3339(meta.created_ms),
        "start": time(meta.started_ms),
        "end": time(meta.ended_ms),
        "steps": entries,
        "success": match meta.status {
            Status::Complete => Value::Bool(true),
            Status::Errored | Status::Terminated => Value::Bool(false),
            _ => Value::Null,
        },
        "error": error(meta.error.as_ref()),
        "output": parsed(meta.output.as_deref()),
        "status": meta.status.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_cloudflare_does() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_250), "2024-02-29T23:59:59.250Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
