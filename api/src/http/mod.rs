//! HTTP plumbing shared by every route: extractors with JSON rejections,
//! the error-shape net, client addresses, rate limits, request ids and
//! metrics.

pub mod client_ip;
pub mod error_shape;
pub mod extract;
pub mod metrics;
pub mod public_cache;
pub mod rate_limit;
pub mod request_id;
pub mod sse_schema;
