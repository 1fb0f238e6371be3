//! A short-lived cache of the public reads (`GET /public/flash-sales` and
//! `GET /flash-sales/{saleId}/public`). Every customer's page asks for them,
//! and each answer costs engine STATUS calls (up to 50 for the list) that
//! compete with ENQUEUE, GRANT and CONFIRM on Redis; reusing an answer for a
//! fraction of a second (`PUBLIC_CACHE_MS`) makes N readers cost about one
//! engine read per period. A cached answer is a consistent snapshot (its
//! `serverTime` is the engine clock of that read) and says how old it is in
//! `Age` (whole seconds, RFC 9111).
//!
//! One request per route and sale fills an expired entry while the others
//! wait for it (a per-key async lock), so a burst of readers after the
//! expiry is still one engine read. Only 200 answers are kept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::response::IntoResponse;
use futures::future::{BoxFuture, Either};
use tower::{Layer, Service, ServiceExt};

use crate::domain::SaleId;
use crate::error::ApiError;

const SALE_LIST: &str = "/public/flash-sales";
const SALE_VIEW: &str = "/flash-sales/{saleId}/public";
/// The published draw of a pre-queue lottery (paged by a query, so not
/// cached: a query in the key would let clients skip the cache).
const SALE_DRAW: &str = "/flash-sales/{saleId}/public/draw";

/// The routes (templates) whose GET answers are cached.
pub const CACHED_ROUTES: &[&str] = &[SALE_LIST, SALE_VIEW];
/// Readiness: a Redis PING, an engine check and a MongoDB ping a call.
const READINESS: &str = "/readyz";

/// Every public read that costs Redis or MongoDB work: limited per client
/// (RATE_LIMIT_PUBLIC_*). `/healthz` costs nothing and is not.
pub const PUBLIC_READS: &[&str] = &[SALE_LIST, SALE_VIEW, SALE_DRAW, READINESS];

/// Largest answer kept (the list of 50 sales is a few tens of KiB).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Entries kept before idle ones are dropped (distinct sale ids seen).
const MAX_ENTRIES: usize = 10_000;

struct Cached {
    at: Instant,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

#[derive(Clone)]
pub struct PublicCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, Slot>>>,
}

impl PublicCache {
    pub fn new(ttl: Duration) -> Self {
        PublicCache {
            ttl,
            entries: Arc::default(),
        }
    }

    fn slot(&self, key: &str) -> Option<Slot> {
        let mut entries = self.entries.lock().ok()?;
        if let Some(slot) = entries.get(key) {
            return Some(slot.clone());
        }
        if entries.len() >= MAX_ENTRIES {
            // Keep only the entries somebody is filling or reading now.
            entries.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = Slot::default();
        entries.insert(key.to_string(), slot.clone());
        Some(slot)
    }
}

fn answer(cached: &Cached) -> Response<Body> {
    let mut response = Response::new(Body::from(cached.body.clone()));
    if let Some(content_type) = &cached.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response.headers_mut().insert(
        header::AGE,
        HeaderValue::from(cached.at.elapsed().as_secs()),
    );
    response
}

/// The route and its sale id as the handler will read it: not the raw path,
/// whose spellings (`%64rop`, `d%72op`, … all reach sale `drop`) would let a
/// client skip the cache, and whose junk segments would fill it. Not the
/// query either (neither route reads one). `None`: not a valid sale id.
async fn cache_key(parts: &mut axum::http::request::Parts) -> Option<String> {
    let template = parts.extensions.get::<MatchedPath>()?.as_str().to_string();
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    match params.iter().find(|(name, _)| *name == "saleId") {
        Some((_, raw)) => {
            let sale = SaleId::parse(raw).ok()?;
            Some(format!("{template} {sale}"))
        }
        None => Some(template),
    }
}

/// A route layer (`Router::route_layer(cache)`): answers a cached route's
/// GET from the cache when the entry is younger than the TTL, otherwise runs
/// the handler once and keeps a 200 answer. A plain tower layer, not
/// `middleware::from_fn`: every other route (`/healthz`, the draw, the admin
/// catalogue) goes straight to its handler, with no boxed future and no
/// second copy of the route made for it.
impl<S> Layer<S> for PublicCache {
    type Service = ServeCached<S>;

    fn layer(&self, inner: S) -> ServeCached<S> {
        ServeCached {
            cache: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct ServeCached<S> {
    cache: PublicCache,
    inner: S,
}

impl<S> Service<Request> for ServeCached<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let cached_route = request.method() == Method::GET
            && request
                .extensions()
                .get::<MatchedPath>()
                .is_some_and(|p| CACHED_ROUTES.contains(&p.as_str()));
        if self.cache.ttl.is_zero() || !cached_route {
            return Either::Left(self.inner.call(request));
        }
        // The ready service answers this request; its clone waits for the
        // next one (tower's rule for services moved into a future).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let cache = self.cache.clone();
        Either::Right(Box::pin(async move {
            Ok(serve_cached(cache, request, inner).await)
        }))
    }
}

async fn serve_cached<S>(cache: PublicCache, request: Request, inner: S) -> Response<Body>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    let (mut parts, body) = request.into_parts();
    let key = cache_key(&mut parts).await;
    let request = Request::from_parts(parts, body);
    let Some(key) = key else {
        // Not a sale id: the handler refuses it, nothing to keep.
        return run(inner, request).await;
    };
    let Some(slot) = cache.slot(&key) else {
        return run(inner, request).await;
    };
    let mut entry = slot.lock().await;
    if let Some(cached) = entry.as_ref().filter(|c| c.at.elapsed() < cache.ttl) {
        return answer(cached);
    }
    let at = Instant::now();
    let response = run(inner, request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => return ApiError::internal(anyhow::anyhow!("public cache: {e}")).into_response(),
    };
    let cached = Cached {
        at,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        body,
    };
    let response = Response::from_parts(parts, Body::from(cached.body.clone()));
    *entry = Some(cached);
    response
}

async fn run<S>(inner: S, request: Request) -> Response<Body>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
