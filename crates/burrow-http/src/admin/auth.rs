//! Admin API authentication: bearer tokens compared in constant time, and the one rule about
//! where an unauthenticated admin API may listen.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, header};

use super::envelope::ApiError;

/// The environment variable that holds an admin token.
pub const TOKEN_VARIABLE: &str = "BURROW_API_TOKEN";

/// The tokens the admin API accepts. With none, every request is allowed, which
/// [`AdminAuth::check_listen_address`] permits only on loopback.
#[derive(Clone, Default)]
pub struct AdminAuth {
    tokens: Arc<[Vec<u8>]>,
}

impl std::fmt::Debug for AdminAuth {
    // Never print the tokens.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AdminAuth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// An admin API that would be reachable from other machines without a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the admin API address {address} is not a loopback address, so it needs a token: set \
     {TOKEN_VARIABLE} or [burrow] api_tokens (or use a 127.0.0.1 admin_address)"
)]
pub struct TokenRequired {
    /// The admin listener's address.
    pub address: SocketAddr,
}

impl AdminAuth {
    /// Accepts exactly these tokens (empty strings are ignored).
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        AdminAuth {
            tokens: tokens
                .into_iter()
                .filter(|token| !token.is_empty())
                .map(String::into_bytes)
                .collect(),
        }
    }

    /// Whether no token is configured (every request is allowed).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The rule: without a token, the admin API listens on loopback only.
    pub fn check_listen_address(&self, address: SocketAddr) -> Result<(), TokenRequired> {
        if self.is_open() && !address.ip().is_loopback() {
            return Err(TokenRequired { address });
        }
        Ok(())
    }

    /// Checks `Authorization: Bearer <token>`.
    pub fn verify(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().as_bytes())
            })
            .ok_or_else(ApiError::authentication)?;
        // Compare against every token, without stopping early, so timing says nothing about
        // which token came close.
        let mut matched = false;
        for token in self.tokens.iter() {
            matched |= constant_time_eq(presented, token);
        }
        if matched {
            Ok(())
        } else {
            Err(ApiError::authentication())
        }
    }
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0_u8, |difference, (left, right)| {
            difference | (left ^ right)
        });
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        headers
    }

    #[test]
    fn tokens_are_checked() {
        let auth = AdminAuth::new(["first-token-0123456".to_owned(), "second".to_owned()]);
        assert!(
            auth.verify(&headers(Some("Bearer first-token-0123456")))
                .is_ok()
        );
        assert!(auth.verify(&headers(Some("bearer second"))).is_ok());
        for wrong in [
            None,
            Some("Bearer first-token-012345"),
            Some("Bearer "),
            Some("Basic second"),
            Some("second"),
        ] {
            let error = auth.verify(&headers(wrong)).expect_err("refused");
            assert_eq!(error, ApiError::authentication(), "{wrong:?}");
        }
    }

    #[test]
    fn without_tokens_only_loopback_is_allowed() {
        let open = AdminAuth::new(Vec::new());
        assert!(open.is_open());
        assert!(open.verify(&headers(None)).is_ok());
        assert!(
            open.check_listen_address("127.0.0.1:8788".parse().expect("address"))
                .is_ok()
        );
        assert!(
            open.check_listen_address("[::1]:8788".parse().expect("address"))
                .is_ok()
        );
        let error = open
            .check_listen_address("0.0.0.0:8788".parse().expect("address"))
            .expect_err("refused");
        assert!(error.to_string().contains(TOKEN_VARIABLE), "{error}");

        let closed = AdminAuth::new(["token".to_owned()]);
        assert!(
            closed
                .check_listen_address("0.0.0.0:8788".parse().expect("address"))
                .is_ok()
        );
        assert_eq!(format!("{closed:?}"), "AdminAuth { tokens: 1 }");
    }
}
