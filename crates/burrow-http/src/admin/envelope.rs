//! Cloudflare's v4 API envelope, `{success, errors, messages, result, result_info}`, and
//! [`ApiError`], the one way an admin endpoint fails. Every error an admin client can see is
//! built here, so each status and code is declared once.

use http::{HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::body::Body;

/// One entry of `errors` or `messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMessage {
    /// Cloudflare's numeric code.
    pub code: u32,
    /// What happened, for a person.
    pub message: String,
}

/// A v4 response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T = serde_json::Value> {
    /// Whether the call succeeded.
    pub success: bool,
    /// Why it failed; empty on success.
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    /// Notes that do not change the outcome.
    #[serde(default)]
    pub messages: Vec<ApiMessage>,
    /// The payload; `null` on failure.
    pub result: Option<T>,
    /// Pagination (`page`, `per_page`, `count`, `total_count`, or `count` and `cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_info: Option<serde_json::Value>,
}

/// Cloudflare's error codes that Burrow answers with.
pub mod codes {
    /// Missing or invalid credentials (Cloudflare: "Authentication error").
    pub const AUTHENTICATION: u32 = 10_000;
    /// No route for the path (Cloudflare: "Could not route to …").
    pub const COULD_NOT_ROUTE: u32 = 7_003;
    /// Follows [`COULD_NOT_ROUTE`] (Cloudflare: "No route for that URI").
    pub const NO_ROUTE: u32 = 7_000;
    /// The request body is not the JSON the endpoint takes (Cloudflare: "Malformed JSON in
    /// request body").
    pub const MALFORMED_JSON: u32 = 6_007;
    /// Burrow's own (99xxx: Cloudflare documents no code for these cases). Burrow failed on its
    /// side; the message says how.
    pub const INTERNAL: u32 = 99_500;
    /// Burrow's own. The request body is over a limit; the message names it.
    pub const PAYLOAD_TOO_LARGE: u32 = 99_413;
    /// Burrow's own. A query parameter is not what the endpoint takes; the message names it.
    pub const INVALID_QUERY: u32 = 99_400;
}

/// A failed admin call: an HTTP status and Cloudflare-shaped errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {}", describe(.errors))]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `errors` array; never empty.
    pub errors: Vec<ApiMessage>,
}

fn describe(errors: &[ApiMessage]) -> String {
    errors
        .iter()
        .map(|error| format!("{} [code: {}]", error.message, error.code))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// An error with one entry.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![ApiMessage {
                code,
                message: message.into(),
            }],
        }
    }

    /// 401: missing or wrong bearer token.
    pub fn authentication() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::AUTHENTICATION,
            "Authentication error",
        )
    }

    /// 404: nothing is routed at `path`.
    pub fn no_route(path: &str) -> Self {
        Self::unroutable(StatusCode::NOT_FOUND, path)
    }

    /// 405: `path` exists, but not for this method.
    pub fn method_not_allowed(path: &str) -> Self {
        Self::unroutable(StatusCode::METHOD_NOT_ALLOWED, path)
    }

    fn unroutable(status: StatusCode, path: &str) -> Self {
        ApiError {
            status,
            errors: vec![
                ApiMessage {
                    code: codes::COULD_NOT_ROUTE,
                    message: format!(
                        "Could not route to {path}, perhaps your object identifier is invalid?"
                    ),
                },
                ApiMessage {
                    code: codes::NO_ROUTE,
                    message: "No route for that URI".to_owned(),
                },
            ],
        }
    }

    /// 400: the body is not valid JSON for the endpoint; `detail` names the field.
    pub fn malformed_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_JSON,
            format!("Malformed JSON in request body: {detail}"),
        )
    }

    /// 400 with an endpoint's own code and message.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500: Burrow failed; never for bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
    }

    /// The error as a response in the envelope.
    pub fn into_response(self) -> Response<Body> {
        let envelope = Envelope::<()> {
            success: false,
            errors: self.errors,
            messages: Vec::new(),
            result: None,
            result_info: None,
        };
        let mut response = json_response(self.status, &envelope);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// 200 with `result` in a successful envelope.
pub fn success(result: impl Serialize) -> Response<Body> {
    success_with_info(result, None)
}

/// 200 with `result` and `result_info` (pagination) in a successful envelope.
pub fn success_with_info(
    result: impl Serialize,
    result_info: Option<serde_json::Value>,
) -> Response<Body> {
    let envelope = Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result: Some(result),
        result_info,
    };
    json_response(StatusCode::OK, &envelope)
}

/// `value` as a JSON response with `status`.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(bytes) => (status, bytes),
        // Serializing our own result types fails only on a bug (a map with non-string keys);
        // answer in the envelope rather than with an empty 500.
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                r#"{{"success":false,"errors":[{{"code":{},"message":"cannot serialize the result: {}"}}],"messages":[],"result":null}}"#,
                codes::INTERNAL,
                error.to_string().replace(['"', '\\'], "'")
            )
            .into_bytes(),
        ),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response<Body>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect_limited(1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn success_and_errors_have_cloudflare_shape() {
        let value = body_json(success(serde_json::json!([1, 2]))).await;
        assert_eq!(
            value,
            serde_json::json!({"success": true, "errors": [], "messages": [], "result": [1, 2]})
        );

        let response = ApiError::authentication().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_json(response).await,
            serde_json::json!({
                "success": false,
                "errors": [{"code": 10000, "message": "Authentication error"}],
                "messages": [],
                "result": null
            })
        );

        let value = body_json(ApiError::no_route("/client/v4/nothing").into_response()).await;
        assert_eq!(value["errors"][0]["code"], 7003);
        assert_eq!(value["errors"][1]["message"], "No route for that URI");
    }

    #[test]
    fn an_envelope_parses_back() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"success":true,"errors":[],"messages":[],"result":{"id":"x"},"result_info":{"count":1}}"#,
        )
        .expect("parse");
        assert!(envelope.success);
        assert_eq!(envelope.result_info, Some(serde_json::json!({"count": 1})));
    }
}
