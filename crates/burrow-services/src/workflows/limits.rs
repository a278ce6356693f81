//! Workflows' limits and name rules, with Cloudflare's values (spec §3).

/// The longest instance id (`^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`).
pub const MAX_INSTANCE_ID_LENGTH: usize = 100;
/// The longest step name.
pub const MAX_STEP_NAME_LENGTH: usize = 256;
/// The longest event type (the REST API's `event_type`).
pub const MAX_EVENT_TYPE_LENGTH: usize = 100;
/// The largest serialized step result, event payload, instance params or output: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The most instances one `create_batch` makes.
pub const MAX_BATCH_INSTANCES: usize = 100;
/// The longest sleep: 365 days.
pub const MAX_SLEEP_MS: u64 = 365 * DAY_MS;
/// `wait_for_event`'s timeout when none is given: 24 hours.
pub const DEFAULT_EVENT_TIMEOUT_MS: u64 = 24 * HOUR_MS;
/// Steps per instance (Cloudflare's paid plan; `[burrow] workflow_max_steps`).
pub const DEFAULT_MAX_STEPS: u32 = 10_000;
/// Days a finished instance is kept (`[burrow] workflow_retention_days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Instances of one workflow running at once before more are queued (Cloudflare's account-wide
/// figure for the paid plan).
pub const DEFAULT_MAX_CONCURRENT_INSTANCES: u32 = 50_000;

pub(crate) const SECOND_MS: u64 = 1_000;
pub(crate) const MINUTE_MS: u64 = 60 * SECOND_MS;
pub(crate) const HOUR_MS: u64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: u64 = 24 * HOUR_MS;

/// `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`, at most [`MAX_INSTANCE_ID_LENGTH`] characters.
pub fn is_valid_instance_id(id: &str) -> bool {
    is_identifier(id, MAX_INSTANCE_ID_LENGTH)
}

/// Event types follow the instance id rule, up to [`MAX_EVENT_TYPE_LENGTH`] characters.
pub fn is_valid_event_type(event_type: &str) -> bool {
    is_identifier(event_type, MAX_EVENT_TYPE_LENGTH)
}

/// At most [`MAX_STEP_NAME_LENGTH`] characters and no control characters (Miniflare's rule).
pub fn is_valid_step_name(name: &str) -> bool {
    name.chars().count() <= MAX_STEP_NAME_LENGTH && !name.chars().any(|c| (c as u32) < 0x20)
}

fn is_identifier(text: &str, max_length: usize) -> bool {
    let mut bytes = text.bytes();
    text.len() <= max_length
        && matches!(bytes.next(), Some(first) if first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_follow_cloudflares_pattern() {
        assert!(is_valid_instance_id("order-42"));
        assert!(is_valid_instance_id("_x"));
        assert!(is_valid_instance_id(&"a".repeat(100)));
        assert!(!is_valid_instance_id(&"a".repeat(101)));
        assert!(!is_valid_instance_id(""));
        assert!(!is_valid_instance_id("-leading-dash"));
        assert!(!is_valid_instance_id("has space"));
        assert!(!is_valid_instance_id("slash/inside"));
    }

    #[test]
    fn step_names_allow_anything_printable_up_to_256_characters() {
        assert!(is_valid_step_name("send welcome email"));
        assert!(is_valid_step_name(&"é".repeat(256)));
        assert!(!is_valid_step_name(&"é".repeat(257)));
        assert!(!is_valid_step_name("tab\tinside"));
    }
}
