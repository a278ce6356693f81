//! An instance's status, with Cloudflare's names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Created, waiting to start (or for a concurrency slot).
    Queued,
    /// Running a step.
    Running,
    /// Paused by the user.
    Paused,
    /// Ended with an error.
    Errored,
    /// Ended by the user.
    Terminated,
    /// Ended with an output.
    Complete,
    /// Pause requested; a step is still running.
    WaitingForPause,
    /// Sleeping, waiting for a retry, or waiting for an event.
    Waiting,
    /// The status could not be read.
    Unknown,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 9] = [
        Status::Queued,
        Status::Running,
        Status::Paused,
        Status::Errored,
        Status::Terminated,
        Status::Complete,
        Status::WaitingForPause,
        Status::Waiting,
        Status::Unknown,
    ];

    /// Cloudflare's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Errored => "errored",
            Status::Terminated => "terminated",
            Status::Complete => "complete",
            Status::WaitingForPause => "waitingForPause",
            Status::Waiting => "waiting",
            Status::Unknown => "unknown",
        }
    }

    /// Complete, errored or terminated: nothing more happens unless it is restarted.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Complete | Status::Errored | Status::Terminated
        )
    }

    /// The statuses in which an instance runs, or waits to run, and so needs a concurrency
    /// slot.
    pub(crate) fn wants_slot(self) -> bool {
        matches!(
            self,
            Status::Queued | Status::Running | Status::WaitingForPause
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "\"{text}\" is not an instance status (one of {})",
                    Status::ALL.map(Status::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert!("done".parse::<Status>().is_err());
    }
}
