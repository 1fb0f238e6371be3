//! Request ids: every request gets one (`x-request-id`, a UUID unless the
//! caller sent one), it is in the request's log span and echoed in the
//! response. A caller's id is kept only if it is short and plain, so it
//! cannot bloat or garble the logs.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response};
use tower::{Layer, Service};
use uuid::{Builder, Uuid};

pub const HEADER: &str = "x-request-id";

fn header_name() -> HeaderName {
    // Built at compile time: a custom name is otherwise checked per call.
    const { HeaderName::from_static(HEADER) }
}

/// The longest caller's id kept.
pub const MAX_LEN: usize = 128;

/// Whether a caller's id may be kept: 1 to 128 letters, digits and `-_.:`.
pub fn is_usable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Gives every request an id and echoes it in the response: the caller's
/// `x-request-id` when [usable](is_usable), else a fresh UUID, which
/// replaces it in the request. One layer rather than tower-http's three
/// (`map_request` to drop an unusable id, `SetRequestId`,
/// `PropagateRequestId`): each was one more level of service cloned and
/// future polled per request, and `SetRequestId` also stored the id as a
/// request extension nothing here reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> RequestIds<S> {
        RequestIds { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestIds<S> {
    inner: S,
}

impl<S, B> Service<Request> for RequestIds<S>
where
    S: Service<Request, Response = Response<B>>,
    // Boxed further down the stack (the timeout's future), so movable.
    S::Future: Unpin,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = match request.headers().get(header_name()) {
            Some(id) if is_usable(id) => Some(id.clone()),
            _ => {
                let fresh = fresh_id();
                if let Some(id) = &fresh {
                    request.headers_mut().insert(header_name(), id.clone());
                } else {
                    request.headers_mut().remove(header_name());
                }
                fresh
            }
        };
        RequestIdFuture {
            inner: self.inner.call(request),
            id,
        }
    }
}

/// The response future of [`RequestIds`]: adds the id to the response
/// unless the handler set one.
pub struct RequestIdFuture<F> {
    inner: F,
    id: Option<HeaderValue>,
}

impl<F, B, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let (Ok(response), Some(id)) = (&mut result, this.id.take()) {
            if !response.headers().contains_key(header_name()) {
                response.headers_mut().insert(header_name(), id);
            }
        }
        Poll::Ready(result)
    }
}

/// Fresh ids: random (version 4) UUIDs, as tower-http's `MakeRequestUuid`
/// makes, without a `getrandom` system call per request. Each thread seeds
/// itself once from the OS and then mixes a counter (splitmix64), so ids are
/// unpredictable without the seed and never repeat within a thread; two
/// threads collide only if their 64-bit seeds do.
fn fresh_id() -> Option<HeaderValue> {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = next_uuid().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).ok()
}

#[derive(Clone, Copy)]
struct IdSeed {
    key: u64,
    salt: u64,
    count: u64,
}

impl IdSeed {
    fn from_os() -> IdSeed {
        let (key, salt) = Uuid::new_v4().as_u64_pair();
        let (count, _) = Uuid::new_v4().as_u64_pair();
        IdSeed { key, salt, count }
    }
}

fn next_uuid() -> Uuid {
    thread_local! {
        static SEED: Cell<Option<IdSeed>> = const { Cell::new(None) };
    }
    let seeded = SEED.try_with(|cell| {
        let mut seed = cell.get().unwrap_or_else(IdSeed::from_os);
        seed.count = seed.count.wrapping_add(1);
        cell.set(Some(seed));
        seed
    });
    // Only while the thread is being torn down: ask the OS.
    let Ok(seed) = seeded else {
        return Uuid::new_v4();
    };
    let high = splitmix64(seed.count ^ seed.key);
    // A bijection of the counter: distinct within the thread.
    let low = splitmix64(seed.count.wrapping_add(seed.salt));
    let bits = (u128::from(high) << 64) | u128::from(low);
    Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

/// The splitmix64 finaliser: a bijection of `u64` that spreads every input
/// bit over the output.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_ids_are_distinct_version_4_uuids() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = next_uuid();
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(id), "{id} twice");
        }
        let value = fresh_id();
        assert!(value.is_some_and(|v| v.len() == 36 && is_usable(&v)));
    }

    #[test]
    fn unusable_ids_are_dropped() {
        let keep = |value: &'static str| is_usable(&HeaderValue::from_static(value));
        assert!(keep("trace-me-123"));
        assert!(keep("a.b_c:d"));
        assert!(!keep(""));
        assert!(!keep("a b"));
        assert!(!keep("quote\"d"));
        assert!(is_usable(
            &HeaderValue::from_bytes(&[b'x'; 128]).unwrap_or(HeaderValue::from_static("-"))
        ));
        assert!(!is_usable(
            &HeaderValue::from_bytes(&[b'x'; 129]).unwrap_or(HeaderValue::from_static(" "))
        ));
    }
}
