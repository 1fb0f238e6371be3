//! Per-client-IP rate limits (tower_governor: a GCRA token bucket per key).
//! The key is [`TrustedProxies::client_ip_of`], never a header from an
//! untrusted peer. A refused request gets 429, `Retry-After` and the JSON
//! error shape.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::error::ApiError;
use crate::http::client_ip::TrustedProxies;

#[derive(Debug, Clone)]
pub struct ClientIpKey(pub TrustedProxies);

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(bucket_of(self.0.client_ip_of(request)))
    }
}

/// The rate-limit bucket of an address. An IPv6 client usually holds a whole
/// /64 and could use a fresh address per request, so the /64 is the unit.
pub fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        assert_eq!(
            bucket_of(ip("2001:db8:1:2:aaaa::1")),
            bucket_of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            bucket_of(ip("2001:db8:1:2::1")),
            bucket_of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(bucket_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn ipv4_and_mapped_ipv4_are_per_address() {
        assert_eq!(bucket_of(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(bucket_of(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_ne!(bucket_of(ip("203.0.113.7")), bucket_of(ip("203.0.113.8")));
    }
}

/// How fast a client may call: `burst` requests at once, then one more
/// every `period`.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    pub fn per_minute(per_minute: u32, burst: u32) -> Quota {
        Quota {
            period: Duration::from_nanos(60_000_000_000 / u64::from(per_minute.max(1))),
            burst: burst.max(1),
        }
    }

    pub fn per_second(per_second: u32, burst: u32) -> Quota {
        Quota {
            period: Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1))),
            burst: burst.max(1),
        }
    }
}

/// Forgets clients whose bucket is full again, so the map of keys does not
/// grow with every address ever seen; run it every minute or so.
#[derive(Clone)]
pub struct IdleSweeper(Arc<dyn Fn() + Send + Sync>);

impl IdleSweeper {
    pub fn sweep(&self) {
        (self.0)();
    }
}

/// Puts `quota` (one bucket per client IP, shared by all of `router`'s
/// routes) in front of every route of `router`.
pub fn limit<S>(
    router: Router<S>,
    trusted: TrustedProxies,
    quota: Quota,
) -> (Router<S>, IdleSweeper)
where
    S: Clone + Send + Sync + 'static,
{
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientIpKey(trusted))
        .period(quota.period.max(Duration::from_nanos(1)))
        .burst_size(quota.burst.max(1))
        .finish();
    let Some(config) = config else {
        // Only a zero period or burst gives no config; both are clamped.
        return (router, IdleSweeper(Arc::new(|| {})));
    };
    let config = Arc::new(config);
    let limiter = config.limiter().clone();
    let sweeper = IdleSweeper(Arc::new(move || limiter.retain_recent()));
    let layer = GovernorLayer::new(config).error_handler(governor_error);
    (router.route_layer(layer), sweeper)
}

fn governor_error(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // governor truncates to whole seconds; round up so a client that
            // waits exactly Retry-After is let in.
            let secs = wait_time.saturating_add(1);
            let mut response = ApiError::client(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this address; retry in {secs} s"),
            )
            .with_retry_after(secs)
            .into_response();
            response.headers_mut().insert(
                header::HeaderName::from_static("x-ratelimit-after"),
                HeaderValue::from(secs),
            );
            response
        }
        // Our key extractor never fails; answer like an overload anyway.
        other => ApiError::unavailable(anyhow::anyhow!("rate limiter: {other}")).into_response(),
    }
}
