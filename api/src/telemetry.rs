//! Logs: `tracing` events as text or JSON lines, filtered by `RUST_LOG`
//! (default `info`). Each request runs in a span with its method, path and
//! request id (see `startup::router`).
//!
//! The request span's fields are written into the log's text only when an
//! event inside the request is logged. The `fmt` layer formats a span's
//! fields into a `String` when the span opens, whether or not anything is
//! ever logged in it; for a `/healthz` that was 6–8% of the API's CPU, and
//! at `info` almost no request logs anything. So the span opens with its
//! fields empty, [`defer_request_fields`] keeps the request's method, path
//! and id beside it (cheap copies), and [`DeferredFields`] records them into
//! the span just before the first event in it reaches the `fmt` layer: the
//! log lines read as before. (A `RUST_LOG` directive that filters on these
//! fields' values no longer sees them; filter on the span name or target.)

use axum::extract::Request;
use axum::http::{Method, Uri};
use tracing::field::{display, Value};
use tracing::span::Record;
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, JsonFields};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;
use crate::http::request_id;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry
            .with(DeferredFields(LogFormat::Text))
            .with(tracing_subscriber::fmt::layer())
            .try_init(),
        LogFormat::Json => registry
            .with(DeferredFields(LogFormat::Json))
            .with(tracing_subscriber::fmt::layer().json())
            .try_init(),
    };
}

/// The request span: its fields declared, their values recorded later (see
/// the module's documentation).
pub fn request_span(request: &Request) -> Span {
    let span = tracing::info_span!(
        "request",
        method = tracing::field::Empty,
        path = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    defer_request_fields(&span, request);
    span
}

/// What a request span's fields will say. The path only, never the query:
/// GET /orders/events may carry a buyer token there (EventSource cannot
/// send headers).
struct RequestFields {
    method: Method,
    /// The path is read from it when needed: a clone shares the bytes.
    uri: Uri,
    request_id: RequestIdText,
}

/// The request id as the log shows it, copied without an allocation: by the
/// time the span opens it is a generated UUID or a caller's id of at most
/// [`request_id::MAX_LEN`] plain characters.
struct RequestIdText {
    len: usize,
    bytes: [u8; request_id::MAX_LEN],
}

impl RequestIdText {
    fn of(request: &Request) -> RequestIdText {
        let mut text = RequestIdText {
            len: 0,
            bytes: [0; request_id::MAX_LEN],
        };
        let value = request
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= request_id::MAX_LEN)
            // Not usable ids are dropped before the span opens; served
            // without that layer (examples) an odd one shows as "-".
            .unwrap_or("-");
        text.bytes[..value.len()].copy_from_slice(value.as_bytes());
        text.len = value.len();
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("-")
    }
}

/// Keeps `request`'s method, path and id beside `span` until an event in it
/// is logged. Nothing when the span is disabled; recorded at once when the
/// subscriber is not the one [`init`] installs (say, a test's), so the
/// fields are never lost.
pub fn defer_request_fields(span: &Span, request: &Request) {
    let fields = || RequestFields {
        method: request.method().clone(),
        uri: request.uri().clone(),
        request_id: RequestIdText::of(request),
    };
    let deferred = span.with_subscriber(|(id, dispatch)| {
        if dispatch.downcast_ref::<DeferredFields>().is_none() {
            return false;
        }
        let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        else {
            return false;
        };
        span.extensions_mut().insert(fields());
        true
    });
    if deferred == Some(false) {
        let fields = fields();
        span.record("method", display(&fields.method));
        span.record("path", display(fields.uri.path()));
        span.record("request_id", fields.request_id.as_str());
    }
}

/// The layer that records a request span's deferred fields when the first
/// event inside it is logged. It sits between the filter (so only events
/// that will be written reach it) and the `fmt` layer, which then finds the
/// fields formatted as if they had been there from the start.
pub struct DeferredFields(LogFormat);

impl<S> Layer<S> for DeferredFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            match self.0 {
                LogFormat::Text => record_deferred::<S, DefaultFields>(&span),
                LogFormat::Json => record_deferred::<S, JsonFields>(&span),
            }
        }
    }
}

fn record_deferred<'a, S, N>(span: &SpanRef<'a, S>)
where
    S: LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + Default + 'static,
{
    let mut extensions = span.extensions_mut();
    let Some(fields) = extensions.remove::<RequestFields>() else {
        return;
    };
    let Some(formatted) = extensions.get_mut::<FormattedFields<N>>() else {
        return;
    };
    let set = span.metadata().fields();
    let (Some(method), Some(path), Some(request_id)) = (
        set.field("method"),
        set.field("path"),
        set.field("request_id"),
    ) else {
        return;
    };
    let method_value = display(&fields.method);
    let path_value = display(fields.uri.path());
    let id_value = fields.request_id.as_str();
    let values = [
        (&method, Some(&method_value as &dyn Value)),
        (&path, Some(&path_value as &dyn Value)),
        (&request_id, Some(&id_value as &dyn Value)),
    ];
    let values = set.value_set(&values);
    let _ = N::default().add_fields(formatted, &Record::new(&values));
}
