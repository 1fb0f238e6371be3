//! Request metrics for Prometheus: a counter by method, route and status and
//! a latency histogram by method and route. The route label is the matched
//! route template (`/flash-sales/{saleId}/public`), never the raw path, and
//! the method one of the standard ones; anything else (a request no route
//! matched, a method like `M123`) is `other`, so the number of series stays
//! bounded whatever clients send.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder. A global recorder can be installed
/// once per process, and tests build many applications in one process, so
/// the first build installs it and later builds share its handle.
pub fn prometheus_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)
                .and_then(|builder| builder.install_recorder())
                .map_err(|e| e.to_string())?;
            spawn_upkeep(handle.clone()).map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot install the Prometheus recorder: {e}"))
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until something drains it; a
/// scrape does, but a platform nobody scrapes (`scripts/run`) would grow by
/// ~18 bytes per request for ever. A plain thread, because the handle
/// outlives any one runtime (tests build many).
fn spawn_upkeep(handle: PrometheusHandle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        })
        .map(drop)
}

/// Counts and times every request (`http_requests_total`,
/// `http_request_duration_seconds`). A route-level layer, so the route
/// template ([`MatchedPath`]) is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S, B> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response<B>>,
    // The layers inside answer with boxed (so movable) futures somewhere
    // down the stack (the timeout's), so this one needs no box of its own.
    S::Future: Unpin,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        TrackFuture {
            started: Instant::now(),
            labels: Some((method, route)),
            inner: self.inner.call(request),
        }
    }
}

/// The response future of [`Track`]: records when the response is ready.
pub struct TrackFuture<F> {
    inner: F,
    started: Instant,
    labels: Option<(&'static str, Option<MatchedPath>)>,
}

impl<F, B, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let (Ok(response), Some((method, route))) = (&result, this.labels.take()) {
            let route = route.as_ref().map_or(OTHER, MatchedPath::as_str);
            record(method, route, response.status(), this.started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// The label of anything outside the known set: unmatched routes and
/// non-standard methods.
pub const OTHER: &str = "other";

/// The method label: the standard methods by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// The handles of one route's series, by method (and status).
#[derive(Default)]
struct RouteSeries {
    requests: Vec<(&'static str, StatusCode, Counter)>,
    latency: Vec<(&'static str, Histogram)>,
}

thread_local! {
    /// Handles already registered, per route template: a request looks
    /// its series up here instead of building a label set (three Strings)
    /// and hashing it in the recorder. Bounded: route templates and
    /// `other`, the method labels, status codes.
    static SERIES: RefCell<HashMap<Box<str>, RouteSeries>> = RefCell::new(HashMap::new());
}

fn record(method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let cached = SERIES
        .try_with(|series| {
            let mut series = series.borrow_mut();
            let route_series = match series.get_mut(route) {
                Some(found) => found,
                None => series.entry(route.into()).or_default(),
            };
            route_series.count(method, route, status);
            route_series.time(method, route, seconds);
        })
        .is_ok();
    if !cached {
        requests_counter(method, route, status).increment(1);
        latency_histogram(method, route).record(seconds);
    }
}

impl RouteSeries {
    fn count(&mut self, method: &'static str, route: &str, status: StatusCode) {
        if let Some((_, _, counter)) = self
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            counter.increment(1);
            return;
        }
        let counter = requests_counter(method, route, status);
        counter.increment(1);
        self.requests.push((method, status, counter));
    }

    fn time(&mut self, method: &'static str, route: &str, seconds: f64) {
        if let Some((_, histogram)) = self.latency.iter().find(|(m, _)| *m == method) {
            histogram.record(seconds);
            return;
        }
        let histogram = latency_histogram(method, route);
        histogram.record(seconds);
        self.latency.push((method, histogram));
    }
}

fn requests_counter(method: &'static str, route: &str, status: StatusCode) -> Counter {
    metrics::counter!(
        REQUESTS_TOTAL,
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.as_str().to_owned()
    )
}

fn latency_histogram(method: &'static str, route: &str) -> Histogram {
    metrics::histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route.to_owned()
    )
}
