//! Request ids: every request gets one (`x-request-id`, a UUID unless the
//! caller sent one), it is in the request's log span and echoed in the
//! response. A caller's id is kept only if it is short and plain, so it
//! cannot bloat or garble the logs.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// Drops an incoming `x-request-id` that is too long or has characters
/// other than letters, digits and `-_.:`; a fresh one is generated instead.
pub async fn drop_unusable(mut request: Request, next: Next) -> Response {
    let unusable = request.headers().get(HEADER).is_some_and(|value| {
        let bytes = value.as_bytes();
        bytes.is_empty()
            || bytes.len() > MAX_LEN
            || !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if unusable {
        request.headers_mut().remove(HEADER);
    }
    next.run(request).await
}
