//! Cloudflare's page-number pagination (`?page=N&per_page=M`) for the admin API's list
//! endpoints, and its `result_info` (`page`, `per_page`, `count`, `total_count`, `total_pages`).
//!
//! Clients walk pages until one comes back short or empty (the Cloudflare SDKs) or until
//! `page * per_page >= total_count` (wrangler), so a list endpoint must honour `page`: answering
//! every page with the whole list makes those clients loop forever.

use serde_json::{Value, json};

use super::envelope::{ApiError, codes};
use super::router::AdminRequest;

/// One page of a list: which slice to return and how to describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: usize,
    /// Items per page.
    pub per_page: usize,
}

impl Page {
    /// Reads `page` (default 1) and `per_page` (default `default_per_page`, at most
    /// `max_per_page`) from the query; a 400 naming the parameter and its range when either is
    /// not a positive integer in range.
    pub fn from_request(
        request: &AdminRequest,
        default_per_page: usize,
        max_per_page: usize,
    ) -> Result<Page, ApiError> {
        let number = |name: &str, default: usize, max: usize| -> Result<usize, ApiError> {
            match request.query(name).filter(|text| !text.is_empty()) {
                None => Ok(default),
                Some(text) => text
                    .parse::<usize>()
                    .ok()
                    .filter(|value| (1..=max).contains(value))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            codes::INVALID_QUERY,
                            format!("{name} must be an integer from 1 to {max}, not {text:?}"),
                        )
                    }),
            }
        };
        Ok(Page {
            page: number("page", 1, u32::MAX as usize)?,
            per_page: number("per_page", default_per_page, max_per_page)?,
        })
    }

    /// This page's items out of `all`, and its `result_info`.
    pub fn slice<T>(&self, all: Vec<T>) -> (Vec<T>, Value) {
        let total = all.len();
        let start = (self.page - 1).saturating_mul(self.per_page);
        let items: Vec<T> = all.into_iter().skip(start).take(self.per_page).collect();
        let info = self.info(items.len(), total);
        (items, info)
    }

    /// `result_info` for a page of `count` items out of `total`.
    pub fn info(&self, count: usize, total: usize) -> Value {
        json!({
            "page": self.page,
            "per_page": self.per_page,
            "count": count,
            "total_count": total,
            "total_pages": total.div_ceil(self.per_page),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;

    fn request(query: &str) -> AdminRequest {
        let (parts, ()) = http::Request::get(format!("/x?{query}"))
            .body(())
            .expect("request")
            .into_parts();
        AdminRequest::new(parts, Vec::new(), Body::empty())
    }

    #[test]
    fn pages_slice_the_list_and_describe_it() {
        let page = Page::from_request(&request("page=2&per_page=2"), 20, 100).expect("page");
        let (items, info) = page.slice(vec![1, 2, 3, 4, 5]);
        assert_eq!(items, [3, 4]);
        assert_eq!(
            info,
            json!({"page": 2, "per_page": 2, "count": 2, "total_count": 5, "total_pages": 3})
        );
        let page = Page::from_request(&request("page=9"), 20, 100).expect("page");
        let (items, info) = page.slice(vec![1, 2, 3]);
        assert!(items.is_empty(), "a page past the end is empty");
        assert_eq!(info["count"], 0);
        let page = Page::from_request(&request(""), 20, 100).expect("defaults");
        assert_eq!(
            page,
            Page {
                page: 1,
                per_page: 20
            }
        );
    }

    #[test]
    fn bad_numbers_are_rejected_naming_the_parameter() {
        for (query, name) in [
            ("page=0", "page"),
            ("page=-1", "page"),
            ("per_page=abc", "per_page"),
            ("per_page=101", "per_page"),
            ("page=99999999999999999999", "page"),
        ] {
            let error = Page::from_request(&request(query), 20, 100).expect_err(query);
            assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
            assert!(error.errors[0].message.starts_with(name), "{error}");
        }
    }
}
