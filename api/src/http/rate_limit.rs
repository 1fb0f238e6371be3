//! Per-client rate limits (a GCRA token bucket per key, [`limit_by`]),
//! and a cap on the event streams a client holds open at once. The key is
//! [`TrustedProxies::client_ip_of`] (never a header from an untrusted
//! peer), an IPv6 address cut to its prefix. A refused request gets 429,
//! `Retry-After` and the JSON error shape.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Ready;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::future::RouteFuture;
use axum::routing::Route;
use axum::Router;
use futures::future::{BoxFuture, Either};
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::http::client_ip::TrustedProxies;

/// The bucket key of a request: its client address, an IPv6 one cut to
/// `ipv6_prefix` bits.
#[derive(Debug, Clone)]
pub struct ClientIpKey {
    pub trusted: TrustedProxies,
    pub ipv6_prefix: u8,
}

/// A client's IPv6 unit when nothing else is configured: a subscriber
/// usually holds a whole /64 and could use a fresh address per request.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

impl ClientIpKey {
    pub fn new(trusted: TrustedProxies, ipv6_prefix: u8) -> Self {
        ClientIpKey {
            trusted,
            ipv6_prefix,
        }
    }

    pub fn of<T>(&self, request: &Request<T>) -> IpAddr {
        bucket_of(self.trusted.client_ip_of(request), self.ipv6_prefix)
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::{admit, Buckets, Quota};
    use governor::clock::FakeRelativeClock;
    use governor::state::keyed::DefaultKeyedStateStore;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_per_period() {
        // A burst of 3, then one every 100 ms.
        let clock = FakeRelativeClock::default();
        let buckets: Buckets<FakeRelativeClock> = governor::RateLimiter::new(
            Quota::per_second(10, 3).governor(),
            DefaultKeyedStateStore::default(),
            clock.clone(),
        );
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        for _ in 0..3 {
            assert_eq!(admit(&buckets, a), Ok(()));
        }
        assert_eq!(admit(&buckets, a), Err(Duration::from_millis(100)));
        clock.advance(Duration::from_millis(40));
        assert_eq!(admit(&buckets, a), Err(Duration::from_millis(60)));
        // Another client has its own bucket.
        assert_eq!(admit(&buckets, b), Ok(()));
        // One period on: one more, not two.
        clock.advance(Duration::from_millis(60));
        assert_eq!(admit(&buckets, a), Ok(()));
        assert!(admit(&buckets, a).is_err());
        // Idle long enough, the bucket is full again and forgotten.
        clock.advance(Duration::from_secs(1));
        buckets.retain_recent();
        assert_eq!(buckets.len(), 0);
        for _ in 0..3 {
            assert_eq!(admit(&buckets, a), Ok(()));
        }
        assert!(admit(&buckets, a).is_err());
    }
}

/// The rate-limit bucket of an address: an IPv4 address (or IPv4-mapped
/// IPv6) itself, an IPv6 address with all but its first `ipv6_prefix` bits
/// cleared.
pub fn bucket_of(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let keep = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
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
            bucket_of(ip("2001:db8:1:2:aaaa::1"), 64),
            bucket_of(ip("2001:db8:1:2:ffff:1:2:3"), 64)
        );
        assert_ne!(
            bucket_of(ip("2001:db8:1:2::1"), 64),
            bucket_of(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(
            bucket_of(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
    }

    #[test]
    fn ipv6_addresses_of_one_48_share_the_network_bucket() {
        // Two /64s of one /48: different clients, one network.
        let (a, b) = (ip("2001:db8:1:2::1"), ip("2001:db8:1:ffff::9"));
        assert_ne!(bucket_of(a, 64), bucket_of(b, 64));
        assert_eq!(bucket_of(a, 48), bucket_of(b, 48));
        assert_eq!(bucket_of(a, 48), ip("2001:db8:1::"));
        assert_ne!(bucket_of(a, 48), bucket_of(ip("2001:db8:2::1"), 48));
        assert_eq!(bucket_of(a, 128), a);
        assert_eq!(bucket_of(a, 0), ip("::"));
    }

    #[test]
    fn ipv4_and_mapped_ipv4_are_per_address() {
        assert_eq!(bucket_of(ip("203.0.113.7"), 64), ip("203.0.113.7"));
        assert_eq!(bucket_of(ip("::ffff:203.0.113.7"), 48), ip("203.0.113.7"));
        assert_ne!(
            bucket_of(ip("203.0.113.7"), 64),
            bucket_of(ip("203.0.113.8"), 64)
        );
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

    /// The same quota for the `governor` crate.
    fn governor(self) -> governor::Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        governor::Quota::with_period(self.period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }

    /// `factor` times this quota (a wider network's bucket).
    pub fn times(self, factor: u32) -> Quota {
        let factor = factor.max(1);
        Quota {
            period: self.period / factor,
            burst: self.burst.saturating_mul(factor),
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

/// Puts `quota` (one bucket per client IP, an IPv6 client being its /64,
/// shared by all of `router`'s routes) in front of every route of `router`.
pub fn limit<S>(
    router: Router<S>,
    trusted: TrustedProxies,
    quota: Quota,
) -> (Router<S>, IdleSweeper)
where
    S: Clone + Send + Sync + 'static,
{
    limit_by(router, trusted, &[(DEFAULT_IPV6_PREFIX, quota)], None)
}

/// Puts the buckets of `quotas` — per IPv6 prefix length, one bucket per
/// client address cut to it, shared by the limited routes — in front of
/// the routes of `router` whose template is in `only`, or of every route
/// when `only` is `None`. A request must pass every bucket, tried in order:
/// one that refuses it leaves the buckets after it untouched (so a client
/// over its own limit does not drain its network's), the ones before it
/// have counted it. One layer and one client address however many buckets.
pub fn limit_by<S>(
    router: Router<S>,
    trusted: TrustedProxies,
    quotas: &[(u8, Quota)],
    only: Option<&'static [&'static str]>,
) -> (Router<S>, IdleSweeper)
where
    S: Clone + Send + Sync + 'static,
{
    let limits = Arc::new(Limits {
        trusted,
        buckets: quotas
            .iter()
            .map(|&(prefix, quota)| (prefix, RateLimiter::keyed(quota.governor())))
            .collect(),
    });
    let swept = limits.clone();
    let sweeper = IdleSweeper(Arc::new(move || swept.retain_recent()));
    let layer = LimitLayer(limits);
    let Some(only) = only else {
        return (router.route_layer(layer), sweeper);
    };
    // The limiter's own copy of the route is the one the other routes use
    // too: a second copy would be one more boxed route cloned per request.
    let only = Only::new(layer, only, |limited| &mut limited.inner);
    (router.route_layer(only), sweeper)
}

/// One GCRA bucket per key: the `governor` crate's keyed limiter.
type Buckets<C = DefaultClock> =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Counts a request of `key`, or says how long until one is let in.
fn admit<C: Clock>(buckets: &Buckets<C>, key: IpAddr) -> Result<(), Duration> {
    buckets
        .check_key(&key)
        .map_err(|not_until| not_until.wait_time_from(buckets.clock().now()))
}

/// The buckets a request must pass, by IPv6 prefix length.
struct Limits {
    trusted: TrustedProxies,
    buckets: Vec<(u8, Buckets)>,
}

impl Limits {
    /// Counts `request` in every bucket in turn, or the wait of the first
    /// that refuses it.
    fn check<B>(&self, request: &Request<B>) -> Result<(), Duration> {
        let client = self.trusted.client_ip_of(request);
        self.buckets
            .iter()
            .try_for_each(|(prefix, buckets)| admit(buckets, bucket_of(client, *prefix)))
    }

    fn retain_recent(&self) {
        for (_, buckets) in &self.buckets {
            buckets.retain_recent();
        }
    }
}

/// A route layer: [`Limits`] in front of a route.
#[derive(Clone)]
struct LimitLayer(Arc<Limits>);

impl<S> Layer<S> for LimitLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            limits: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct Limited<S> {
    limits: Arc<Limits>,
    inner: S,
}

impl<S> Service<Request<Body>> for Limited<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self.limits.check(&request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(wait) => Either::Right(std::future::ready(Ok(too_many_requests(wait)))),
        }
    }
}

/// `layer` in front of the routes whose template is in `only`; the others
/// go straight to the route inside it (`inner_of`). A plain tower layer
/// rather than `middleware::from_fn`, which boxed every request's future and
/// cloned the limiter for each request, limited or not (`/healthz` shares a
/// router with the limited public reads).
struct Only<L: Layer<Route>> {
    layer: L,
    only: &'static [&'static str],
    inner_of: fn(&mut L::Service) -> &mut Route,
}

impl<L: Layer<Route>> Only<L> {
    fn new(
        layer: L,
        only: &'static [&'static str],
        inner_of: fn(&mut L::Service) -> &mut Route,
    ) -> Self {
        Only {
            layer,
            only,
            inner_of,
        }
    }
}

impl<L: Layer<Route> + Clone> Clone for Only<L> {
    fn clone(&self) -> Self {
        Only {
            layer: self.layer.clone(),
            only: self.only,
            inner_of: self.inner_of,
        }
    }
}

impl<L: Layer<Route>> Layer<Route> for Only<L> {
    type Service = OnlyService<L::Service>;

    fn layer(&self, inner: Route) -> Self::Service {
        OnlyService {
            limited: self.layer.layer(inner),
            only: self.only,
            inner_of: self.inner_of,
        }
    }
}

struct OnlyService<L> {
    /// The route behind the limiter.
    limited: L,
    only: &'static [&'static str],
    inner_of: fn(&mut L) -> &mut Route,
}

impl<L: Clone> Clone for OnlyService<L> {
    fn clone(&self) -> Self {
        OnlyService {
            limited: self.limited.clone(),
            only: self.only,
            inner_of: self.inner_of,
        }
    }
}

impl<L> Service<Request<Body>> for OnlyService<L>
where
    L: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<RouteFuture<Infallible>, L::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.limited.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limited = request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| self.only.contains(&p.as_str()));
        if limited {
            Either::Right(self.limited.call(request))
        } else {
            Either::Left((self.inner_of)(&mut self.limited).call(request))
        }
    }
}

/// The 429 of a request a bucket refused, `wait` before it would be let in.
fn too_many_requests(wait: Duration) -> Response<Body> {
    // Whole seconds, rounded up so a client that waits exactly Retry-After
    // is let in (a wait under a second is 1).
    let secs = wait.as_secs().saturating_add(1);
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

/// The route whose responses are open event streams.
const EVENT_STREAM_ROUTE: &str = "/orders/events";

/// At most `cap` event streams open at once per client: each holds a
/// connection and a task for minutes, so the per-second limit alone would
/// let one client pile up thousands.
#[derive(Clone)]
pub struct StreamCap {
    key: ClientIpKey,
    cap: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Gives a client's slot back when the stream's body is dropped (the
/// stream ended or the client went away).
struct StreamSlot {
    client: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.client);
                }
            }
        }
    }
}

impl StreamCap {
    pub fn new(key: ClientIpKey, cap: u32) -> Self {
        StreamCap {
            key,
            cap: cap.max(1),
            open: Arc::default(),
        }
    }

    fn take(&self, client: IpAddr) -> Option<StreamSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(client).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            client,
            open: self.open.clone(),
        })
    }

    /// Streams open now for the client of this address (tests, metrics).
    pub fn open_for(&self, client: IpAddr) -> u32 {
        self.open
            .lock()
            .map_or(0, |open| open.get(&client).copied().unwrap_or(0))
    }
}

/// A route layer (`Router::route_layer(cap)`): a request to the event
/// stream route takes a slot for as long as its response body lives, or is
/// answered 429. The other routes (`/orders/position`, a buyer's poll) go
/// straight to their handler.
impl<S> Layer<S> for StreamCap {
    type Service = CapStreams<S>;

    fn layer(&self, inner: S) -> CapStreams<S> {
        CapStreams {
            cap: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct CapStreams<S> {
    cap: StreamCap,
    inner: S,
}

impl<S> Service<Request<Body>> for CapStreams<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let is_stream = request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == EVENT_STREAM_ROUTE);
        if !is_stream {
            return Either::Left(self.inner.call(request));
        }
        let cap = &self.cap;
        let Some(slot) = cap.take(cap.key.of(&request)) else {
            let refused = ApiError::client(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("at most {} event streams open at once per client", cap.cap),
            )
            .with_retry_after(1)
            .into_response();
            return Either::Right(Box::pin(std::future::ready(Ok(refused))));
        };
        let response = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let (parts, body) = response.await?.into_parts();
            let body = body.into_data_stream().map(move |chunk| {
                let _held = &slot;
                chunk
            });
            Ok(Response::from_parts(parts, Body::from_stream(body)))
        }))
    }
}
