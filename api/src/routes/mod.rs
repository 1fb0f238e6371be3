//! The HTTP routes, one module per resource, each exporting `router()`.

pub mod admin;
pub mod admin_live;
pub mod auth;
pub mod ops;
pub mod order_events;
pub mod orders;
pub mod sales;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const MAX_PAGE_SIZE: u64 = 100;
const MAX_PAGE: u64 = 1_000_000;

/// `?page=&pageSize=` (1-based page, 1 to 100 items).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    // The bounds are MAX_PAGE and MAX_PAGE_SIZE (attributes take literals
    // only; a test below keeps them equal).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u64,
    pub page_size: u64,
}

impl PageQuery {
    pub fn validate(self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("page must be from 1 to {MAX_PAGE}"),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("pageSize must be from 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Page { page, page_size })
    }
}

impl Page {
    pub fn skip(self) -> u64 {
        (self.page - 1) * self.page_size
    }

    /// The page size as MongoDB's `limit` wants it (at most 100).
    pub fn limit(self) -> i64 {
        i64::try_from(self.page_size).unwrap_or(MAX_PAGE_SIZE as i64)
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub page_size: u64,
    /// Items in the whole list.
    pub total: u64,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, page: Page, total: u64) -> Self {
        Paged {
            items,
            page: page.page,
            page_size: page.page_size,
            total,
        }
    }
}

/// An engine time (ms since the epoch) as a UTC timestamp.
pub fn time_from_ms(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

pub fn time_from_bson(time: mongodb::bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or_default()
}

/// Whole seconds, rounded up (a hold with 200 ms left has 1 s left).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published bounds are the ones `validate` applies.
    #[test]
    fn page_bounds_in_the_schema_are_the_enforced_ones() {
        let params = serde_json::to_value(PageQuery::into_params(|| None)).unwrap_or_default();
        let bound = |name: &str, which: &str| {
            params
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name))
                .and_then(|p| p["schema"][which].as_f64())
        };
        assert_eq!(bound("page", "minimum"), Some(1.0));
        assert_eq!(bound("page", "maximum"), Some(MAX_PAGE as f64));
        assert_eq!(bound("pageSize", "minimum"), Some(1.0));
        assert_eq!(bound("pageSize", "maximum"), Some(MAX_PAGE_SIZE as f64));
        for (page, size, ok) in [
            (1, 1, true),
            (MAX_PAGE, MAX_PAGE_SIZE, true),
            (0, 1, false),
            (MAX_PAGE + 1, 1, false),
            (1, 0, false),
            (1, MAX_PAGE_SIZE + 1, false),
        ] {
            let query = PageQuery {
                page: Some(page),
                page_size: Some(size),
            };
            assert_eq!(query.validate().is_ok(), ok, "page {page}, size {size}");
        }
    }
}
