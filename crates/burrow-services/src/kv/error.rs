//! KV's limits and the errors that enforce them, worded as Cloudflare's runtime words them (the
//! `KV <METHOD> failed: <status> <message>` form workerd gives to errors from the KV service,
//! and workerd's own TypeErrors for empty and dot keys), so users can search for them.
//!
//! Every check here runs in the client before anything is sent, so a rejected call stores
//! nothing; the partition repeats the storage checks as a second line of defence.

use burrow_runtime::ObjectError;

/// The longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// The largest value, in bytes (25 MiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
/// The largest metadata, as serialized JSON, in bytes.
pub const MAX_METADATA_BYTES: usize = 1024;
/// The soonest an expiration may be, in seconds from now (both `expiration` and
/// `expiration_ttl`).
pub const MIN_EXPIRATION_TTL_SECONDS: i64 = 60;
/// The most keys one bulk get may name.
pub const MAX_BULK_KEYS: usize = 100;
/// The most bytes of values one bulk get may return (25 MiB).
pub const MAX_BULK_BYTES: usize = 25 * 1024 * 1024;
/// The most keys one `list` may return, and its default.
pub const MAX_LIST_LIMIT: usize = 1000;

/// The KV operation a failure belongs to, as Cloudflare names it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `get`, `getWithMetadata` and `list` (which Cloudflare also reports as GET).
    Get,
    /// Bulk `get(keys)`.
    GetBulk,
    /// `put`.
    Put,
    /// `delete`.
    Delete,
}

impl std::fmt::Display for Method {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Method::Get => "GET",
            Method::GetBulk => "GET_BULK",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        })
    }
}

/// Why a KV call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The key is the empty string.
    #[error("Key name cannot be empty.")]
    EmptyKey,
    /// The key is `.` or `..`.
    #[error("\"{0}\" is not allowed as a key name.")]
    IllegalKey(String),
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error(
        "KV {method} failed: 414 UTF-8 encoded length of {length} exceeds key length limit of {MAX_KEY_BYTES}."
    )]
    KeyTooLong {
        /// The operation.
        method: Method,
        /// The key's length in bytes.
        length: usize,
    },
    /// A bulk get named an empty, `.` or `..` key.
    #[error("KV GET_BULK failed: 400 Key name {0} is not legal")]
    IllegalBulkKey(String),
    /// A bulk get named more than [`MAX_BULK_KEYS`] keys.
    #[error("KV GET_BULK failed: 400 You can request a maximum of {MAX_BULK_KEYS} keys")]
    TooManyBulkKeys,
    /// A bulk get named no key.
    #[error("KV GET_BULK failed: 400 You must request a minimum of 1 key")]
    NoBulkKeys,
    /// A bulk get's values add up to more than [`MAX_BULK_BYTES`].
    #[error("KV GET_BULK failed: 413 Total size of request exceeds the limit of 25MB")]
    BulkTooLarge,
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("KV PUT failed: 413 Value length of {0} exceeds limit of {MAX_VALUE_BYTES}.")]
    ValueTooLarge(usize),
    /// The metadata's JSON is longer than [`MAX_METADATA_BYTES`].
    #[error("KV PUT failed: 413 Metadata length of {0} exceeds limit of {MAX_METADATA_BYTES}.")]
    MetadataTooLarge(usize),
    /// `expiration_ttl` is not positive.
    #[error(
        "KV PUT failed: 400 Invalid expiration_ttl of {0}. Please specify integer greater than 0."
    )]
    ExpirationTtlNotPositive(i64),
    /// `expiration_ttl` is under [`MIN_EXPIRATION_TTL_SECONDS`].
    #[error(
        "KV PUT failed: 400 Invalid expiration_ttl of {0}. Expiration TTL must be at least {MIN_EXPIRATION_TTL_SECONDS}."
    )]
    ExpirationTtlTooShort(i64),
    /// `expiration` is not after now.
    #[error(
        "KV PUT failed: 400 Invalid expiration of {0}. Please specify integer greater than the current number of seconds since the UNIX epoch."
    )]
    ExpirationInPast(i64),
    /// `expiration` is less than [`MIN_EXPIRATION_TTL_SECONDS`] ahead.
    #[error(
        "KV PUT failed: 400 Invalid expiration of {0}. Expiration times must be at least {MIN_EXPIRATION_TTL_SECONDS} seconds in the future."
    )]
    ExpirationTooSoon(i64),
    /// The list limit is 0.
    #[error(
        "KV GET failed: 400 Invalid key_count_limit of {0}. Please specify an integer greater than 0."
    )]
    ListLimitNotPositive(usize),
    /// The list limit is over [`MAX_LIST_LIMIT`].
    #[error(
        "KV GET failed: 400 Invalid key_count_limit of {0}. Please specify an integer less than {MAX_LIST_LIMIT}."
    )]
    ListLimitTooLarge(usize),
    /// A streaming read found the value overwritten, deleted or expired before its end.
    #[error("KV GET failed: 409 The value of key {0:?} changed while it was being streamed")]
    ValueChanged(String),
    /// The cursor was not made by `list`.
    #[error("KV GET failed: 400 Invalid cursor")]
    InvalidCursor,
    /// `get_json` found a value that is not valid JSON for the type asked for.
    #[error("KV value of key {key:?} is not valid JSON: {message}")]
    Json {
        /// The key.
        key: String,
        /// serde_json's description.
        message: String,
    },
    /// The metadata could not be serialized to JSON.
    #[error("KV PUT failed: 400 metadata is not serializable to JSON: {0}")]
    MetadataNotJson(String),
    /// A partition rejected the call with one of the errors above (its message).
    #[error("{0}")]
    Rejected(String),
    /// The platform failed: the partition is overloaded, unreachable or its storage failed.
    #[error("KV {method} failed: 503 {error}")]
    Unavailable {
        /// The operation.
        method: Method,
        /// What the runtime reported.
        error: ObjectError,
    },
    /// A partition answered with something that is not the KV wire format.
    #[error("KV {method} failed: 500 malformed response from partition: {reason}")]
    Protocol {
        /// The operation.
        method: Method,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The HTTP status the admin API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::KeyTooLong { .. } => 414,
            Error::BulkTooLarge | Error::ValueTooLarge(_) | Error::MetadataTooLarge(_) => 413,
            Error::ValueChanged(_) => 409,
            Error::Unavailable { .. } => 503,
            Error::Protocol { .. } => 500,
            Error::Rejected(message) => parse_status(message).unwrap_or(400),
            _ => 400,
        }
    }

    /// Turns a failed stub call into the error its caller sees: a partition's own rejections
    /// keep their message, platform failures become [`Error::Unavailable`].
    pub(crate) fn from_object(method: Method, error: ObjectError) -> Error {
        // A partition's rejections are the messages above; anything else that arrives marked
        // remote (a reset after a failed commit) is the platform's failure, not the caller's.
        let rejection = error.message.starts_with("KV ")
            || error.message == Error::EmptyKey.to_string()
            || error.message.ends_with(" is not allowed as a key name.");
        if error.remote && rejection {
            Error::Rejected(error.message)
        } else {
            Error::Unavailable { method, error }
        }
    }
}

/// The status inside a `KV <METHOD> failed: <status> …` message.
fn parse_status(message: &str) -> Option<u16> {
    let rest = message.strip_prefix("KV ")?;
    let (_, rest) = rest.split_once(" failed: ")?;
    rest.get(..3)?.parse().ok()
}

/// Checks a key for `method`: not empty, not `.` or `..`, at most [`MAX_KEY_BYTES`].
pub fn check_key(method: Method, key: &str) -> Result<(), Error> {
    if method == Method::GetBulk {
        if key.is_empty() || key == "." || key == ".." {
            return Err(Error::IllegalBulkKey(key.to_owned()));
        }
    } else if key.is_empty() {
        return Err(Error::EmptyKey);
    } else if key == "." || key == ".." {
        return Err(Error::IllegalKey(key.to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong {
            method,
            length: key.len(),
        });
    }
    Ok(())
}

/// Checks a value's size.
pub fn check_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge(value.len()));
    }
    Ok(())
}

/// Checks serialized metadata's size.
pub fn check_metadata(metadata_json: &str) -> Result<(), Error> {
    if metadata_json.len() > MAX_METADATA_BYTES {
        return Err(Error::MetadataTooLarge(metadata_json.len()));
    }
    Ok(())
}

/// Resolves `expiration` / `expiration_ttl` (seconds) against `now_ms` into an absolute
/// expiration in epoch seconds. As in Miniflare, a TTL wins over an absolute time.
pub fn resolve_expiration(
    expiration: Option<i64>,
    expiration_ttl: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, Error> {
    let now_seconds = now_ms.div_euclid(1000);
    if let Some(ttl) = expiration_ttl {
        if ttl <= 0 {
            return Err(Error::ExpirationTtlNotPositive(ttl));
        }
        if ttl < MIN_EXPIRATION_TTL_SECONDS {
            return Err(Error::ExpirationTtlTooShort(ttl));
        }
        return Ok(Some(now_seconds.saturating_add(ttl)));
    }
    if let Some(at) = expiration {
        if at <= now_seconds {
            return Err(Error::ExpirationInPast(at));
        }
        if at < now_seconds.saturating_add(MIN_EXPIRATION_TTL_SECONDS) {
            return Err(Error::ExpirationTooSoon(at));
        }
        return Ok(Some(at));
    }
    Ok(None)
}

/// Checks a list limit; `None` means the default, [`MAX_LIST_LIMIT`].
pub fn check_list_limit(limit: Option<usize>) -> Result<usize, Error> {
    match limit {
        None => Ok(MAX_LIST_LIMIT),
        Some(0) => Err(Error::ListLimitNotPositive(0)),
        Some(limit) if limit > MAX_LIST_LIMIT => Err(Error::ListLimitTooLarge(limit)),
        Some(limit) => Ok(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_come_from_the_message() {
        assert_eq!(Error::ValueTooLarge(1).status(), 413);
        assert_eq!(
            Error::Rejected(Error::ExpirationTooSoon(5).to_string()).status(),
            400
        );
        assert_eq!(
            Error::Rejected(
                Error::KeyTooLong {
                    method: Method::Put,
                    length: 600
                }
                .to_string()
            )
            .status(),
            414
        );
    }

    #[test]
    fn only_kv_rejections_count_as_the_callers_error() {
        let rejected = Error::from_object(
            Method::Put,
            ObjectError::remote(Error::ValueTooLarge(5).to_string()),
        );
        assert_eq!(
            rejected,
            Error::Rejected(Error::ValueTooLarge(5).to_string())
        );
        let reset = Error::from_object(Method::Put, ObjectError::remote("disk I/O error"));
        assert_eq!(reset.status(), 503);
        assert_eq!(reset.to_string(), "KV PUT failed: 503 disk I/O error");
    }

    #[test]
    fn expiration_rules_follow_miniflare() {
        let now_ms = 1_000_000_500;
        assert_eq!(resolve_expiration(None, None, now_ms), Ok(None));
        assert_eq!(
            resolve_expiration(None, Some(60), now_ms),
            Ok(Some(1_000_060))
        );
        assert_eq!(
            resolve_expiration(Some(5), Some(60), now_ms),
            Ok(Some(1_000_060))
        );
        assert_eq!(
            resolve_expiration(None, Some(0), now_ms),
            Err(Error::ExpirationTtlNotPositive(0))
        );
        assert_eq!(
            resolve_expiration(None, Some(59), now_ms),
            Err(Error::ExpirationTtlTooShort(59))
        );
        assert_eq!(
            resolve_expiration(Some(1_000_000), None, now_ms),
            Err(Error::ExpirationInPast(1_000_000))
        );
        assert_eq!(
            resolve_expiration(Some(1_000_059), None, now_ms),
            Err(Error::ExpirationTooSoon(1_000_059))
        );
        assert_eq!(
            resolve_expiration(Some(1_000_060), None, now_ms),
            Ok(Some(1_000_060))
        );
    }
}
