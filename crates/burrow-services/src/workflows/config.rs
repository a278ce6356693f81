//! Step configuration: durations in Cloudflare's forms (milliseconds or `"5 minutes"`), retries
//! with constant, linear or exponential backoff, and the per-attempt timeout, with Cloudflare's
//! defaults (5 retries, 10 s, exponential, 10 minutes).

use serde::{Deserialize, Serialize};

use super::error::WorkflowError;
use super::limits::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};

/// A duration as Cloudflare's APIs take one: a number of milliseconds, or text such as
/// `"30 seconds"`, `"5 minutes"`, `"24 hours"`, `"1.5 days"`.
///
/// Text is `<number> <unit>` with unit `ms`/`millisecond`, `second`, `minute`, `hour`, `day`,
/// `week`, `month` (30 days) or `year` (365.25 days), singular or plural, or just a number of
/// milliseconds. It is checked when the step runs; a mistake fails that step's call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkflowDuration {
    /// Milliseconds.
    Millis(u64),
    /// Text to parse.
    Text(String),
}

impl WorkflowDuration {
    /// The duration in milliseconds, or a `WorkflowError` naming the text that is not one.
    pub fn to_millis(&self) -> Result<u64, WorkflowError> {
        match self {
            WorkflowDuration::Millis(ms) => Ok(*ms),
            WorkflowDuration::Text(text) => parse_duration_ms(text).ok_or_else(|| {
                WorkflowError::new(format!(
                    "invalid duration \"{text}\": expected a number of milliseconds or \
                     \"<number> <unit>\" with unit second, minute, hour, day, week, month or year"
                ))
            }),
        }
    }
}

impl From<u64> for WorkflowDuration {
    fn from(ms: u64) -> Self {
        WorkflowDuration::Millis(ms)
    }
}

impl From<u32> for WorkflowDuration {
    fn from(ms: u32) -> Self {
        WorkflowDuration::Millis(u64::from(ms))
    }
}

impl From<std::time::Duration> for WorkflowDuration {
    fn from(duration: std::time::Duration) -> Self {
        WorkflowDuration::Millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

impl From<&str> for WorkflowDuration {
    fn from(text: &str) -> Self {
        WorkflowDuration::Text(text.to_owned())
    }
}

impl From<String> for WorkflowDuration {
    fn from(text: String) -> Self {
        WorkflowDuration::Text(text)
    }
}

/// Parses `"<number> <unit>"` or a bare number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<f64>() {
        return to_ms(ms, 1);
    }
    let (number, unit) = text.split_once(char::is_whitespace)?;
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = if unit.len() > 1 {
        unit.strip_suffix('s').unwrap_or(&unit)
    } else {
        &unit
    };
    let unit_ms = match unit {
        "m" | "millisecond" => 1,
        "second" => SECOND_MS,
        "minute" => MINUTE_MS,
        "hour" => HOUR_MS,
        "day" => DAY_MS,
        "week" => 7 * DAY_MS,
        "month" => 30 * DAY_MS,
        "year" => 365 * DAY_MS + DAY_MS / 4,
        _ => return None,
    };
    to_ms(number, unit_ms)
}

fn to_ms(number: f64, unit_ms: u64) -> Option<u64> {
    let ms = number * unit_ms as f64;
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then(|| ms.round() as u64)
}

/// How the delay between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The same delay every time.
    Constant,
    /// delay × attempt.
    Linear,
    /// delay × 2^(attempt − 1) (the default).
    #[default]
    Exponential,
}

/// A step's retries: up to `limit` more attempts after the first, `delay` apart, growing by
/// `backoff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 5).
    pub limit: u32,
    /// The base delay (default 10 seconds).
    pub delay: WorkflowDuration,
    /// How the delay grows (default exponential).
    pub backoff: Backoff,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            limit: 5,
            delay: WorkflowDuration::Millis(10 * SECOND_MS),
            backoff: Backoff::Exponential,
        }
    }
}

/// `step.do`'s configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StepConfig {
    /// Retries.
    pub retries: RetryConfig,
    /// The longest one attempt may run (default 10 minutes).
    pub timeout: Option<WorkflowDuration>,
}

impl StepConfig {
    /// The defaults with this many retries.
    pub fn retries(limit: u32, delay: impl Into<WorkflowDuration>, backoff: Backoff) -> Self {
        StepConfig {
            retries: RetryConfig {
                limit,
                delay: delay.into(),
                backoff,
            },
            timeout: None,
        }
    }

    /// The same configuration with this per-attempt timeout.
    pub fn with_timeout(mut self, timeout: impl Into<WorkflowDuration>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// The configuration in milliseconds, as stored with the step on its first run (later runs
    /// keep the stored one, as Cloudflare does, so a changed configuration cannot change a
    /// step's history half way).
    pub(crate) fn resolve(&self) -> Result<ResolvedConfig, WorkflowError> {
        let timeout_ms = match &self.timeout {
            Some(timeout) => timeout.to_millis()?,
            None => 10 * MINUTE_MS,
        };
        if timeout_ms == 0 {
            return Err(WorkflowError::new("a step's timeout must be more than 0"));
        }
        Ok(ResolvedConfig {
            retries: ResolvedRetries {
                limit: self.retries.limit,
                delay: self.retries.delay.to_millis()?,
                backoff: self.retries.backoff,
            },
            timeout: timeout_ms,
        })
    }
}

/// A step's configuration in milliseconds: the `config` of Cloudflare's step history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedConfig {
    /// Retries.
    pub retries: ResolvedRetries,
    /// Per-attempt timeout, in milliseconds.
    pub timeout: u64,
}

/// Retries in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRetries {
    /// Retries after the first attempt.
    pub limit: u32,
    /// Base delay in milliseconds.
    pub delay: u64,
    /// Growth.
    pub backoff: Backoff,
}

impl ResolvedConfig {
    /// The wait after failed attempt number `attempt` (1-based): base·2^(attempt−1) for
    /// exponential, base·attempt for linear, base for constant; saturating.
    pub fn retry_delay_ms(&self, attempt: u32) -> u64 {
        let base = self.retries.delay;
        match self.retries.backoff {
            Backoff::Constant => base,
            Backoff::Linear => base.saturating_mul(u64::from(attempt.max(1))),
            Backoff::Exponential => {
                let exponent = attempt.max(1) - 1;
                if exponent >= 63 {
                    u64::MAX
                } else {
                    base.saturating_mul(1u64 << exponent)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_cloudflares() {
        assert_eq!(parse_duration_ms("5 minutes"), Some(300_000));
        assert_eq!(parse_duration_ms("24 hours"), Some(86_400_000));
        assert_eq!(parse_duration_ms("1 second"), Some(1_000));
        assert_eq!(parse_duration_ms("1.5 days"), Some(129_600_000));
        assert_eq!(parse_duration_ms("2 weeks"), Some(1_209_600_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("10 ms"), Some(10));
        assert_eq!(parse_duration_ms("1 Hour"), Some(3_600_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("5 fortnights"), None);
        assert_eq!(parse_duration_ms("-1 second"), None);
        assert!(WorkflowDuration::from("x").to_millis().is_err());
        assert_eq!(WorkflowDuration::from(42u64).to_millis(), Ok(42));
    }

    #[test]
    fn defaults_and_backoff_are_cloudflares() {
        let config = StepConfig::default().resolve().unwrap();
        assert_eq!(config.retries.limit, 5);
        assert_eq!(config.retries.delay, 10_000);
        assert_eq!(config.retries.backoff, Backoff::Exponential);
        assert_eq!(config.timeout, 600_000);
        let delays: Vec<u64> = (1..=4).map(|a| config.retry_delay_ms(a)).collect();
        assert_eq!(delays, [10_000, 20_000, 40_000, 80_000]);
        let linear = StepConfig::retries(3, 100u64, Backoff::Linear)
            .resolve()
            .unwrap();
        assert_eq!(linear.retry_delay_ms(3), 300);
        let constant = StepConfig::retries(3, "1 second", Backoff::Constant)
            .resolve()
            .unwrap();
        assert_eq!(constant.retry_delay_ms(5), 1_000);
        assert_eq!(config.retry_delay_ms(200), u64::MAX);
    }
}
