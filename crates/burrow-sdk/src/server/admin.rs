//! The admin API's routes every server answers: `/healthz`, `/metrics`, and the Workers scripts
//! list. Later features add theirs to the same [`AdminRouter`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use burrow_config::LoadedConfig;
use burrow_http::{AdminRouter, admin};
use http::{HeaderValue, Method, header};
use serde_json::{Value, json};

/// The Workers scripts list path (Cloudflare's "List Workers").
pub const SCRIPTS_PATH: &str = "/client/v4/accounts/:account/workers/scripts";

/// Every route the server answers on the admin listener.
pub(super) fn router(loaded: &LoadedConfig, sources: super::metrics::Sources) -> AdminRouter {
    let scripts: Arc<Value> = Arc::new(scripts(loaded, SystemTime::now()));
    let mut router = AdminRouter::new();
    router
        .public_route(Method::GET, "/healthz", |_| async {
            Ok(admin::success(json!({"status": "ok"})))
        })
        .route(Method::GET, "/metrics", move |_| {
            let sources = sources.clone();
            async move {
                let text = super::metrics::render(&sources).await;
                let mut response = burrow_http::text_response(http::StatusCode::OK, text);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                Ok(response)
            }
        })
        .route(Method::GET, SCRIPTS_PATH, move |_| {
            let scripts = Arc::clone(&scripts);
            async move { Ok(admin::success(&*scripts)) }
        });
    router
}

/// Cloudflare's script objects for the loaded Workers. Burrow loads scripts at start-up, so
/// creation and modification times are the start time.
fn scripts(loaded: &LoadedConfig, started: SystemTime) -> Value {
    let started = rfc3339(started);
    loaded
        .workers()
        .map(|worker| {
            let config = &worker.config;
            json!({
                "id": worker.name(),
                "created_on": started,
                "modified_on": started,
                "compatibility_date": config.compatibility_date,
                "compatibility_flags": config.compatibility_flags,
                "usage_model": "standard",
                "has_modules": true,
            })
        })
        .collect()
}

/// `2025-01-02T03:04:05.000Z`, as Cloudflare's API writes times.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_written_as_cloudflare_does() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_709_251_199_250);
        assert_eq!(rfc3339(time), "2024-02-29T23:59:59.250Z");
        let time = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(time), "2000-02-29T00:00:00.000Z");
    }
}
