//! The API's HTTP stack, layer by layer: the same `/healthz` handler served
//! bare and then with each layer of `startup::router` added in turn, each
//! variant on a port of its own, so `bench/http.sh` can load them in
//! interleaved rounds and price every layer.
//!
//! ```text
//! cargo run --release -p api --example http_layers [variant ...]
//! ```
//!
//! With no argument every variant is served; one line per variant,
//! `variant <name> <port>`, goes to stdout, then `ready`. Each variant adds
//! one layer to the one before it, nested where `startup::router` nests it:
//!
//! | variant | adds |
//! |---|---|
//! | `bare` | axum, the real `healthz` handler, connect info |
//! | `tracing` | the request span (`TraceLayer`, logs as `flashsale-api`) |
//! | `request-id` | `x-request-id`: check, generate, echo |
//! | `metrics` | request counter and latency histogram (recorder installed) |
//! | `safety-net` | catch-panic, `nosniff`, `no-referrer`, JSON error bodies |
//! | `limits` | request timeout and body limit |
//! | `rate-limit` | the per-IP limiter (a quota it never reaches) |

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use api::config::LogFormat;
use api::http::client_ip::TrustedProxies;
use api::http::metrics::prometheus_handle;
use api::http::rate_limit::{limit, Quota};
use api::routes::ops::healthz;
use api::startup::{
    limits_layers, metrics_layers, request_id_layers, safety_net_layers, tracing_layers,
};
use api::telemetry;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

const VARIANTS: [&str; 7] = [
    "bare",
    "tracing",
    "request-id",
    "metrics",
    "safety-net",
    "limits",
    "rate-limit",
];

/// The router of variant `level` (an index into [`VARIANTS`]): every layer
/// up to it, in one `ServiceBuilder` nested as in `startup::router`
/// (outermost first: request id, tracing, metrics, safety net, limits).
fn variant(level: usize) -> Router {
    let mut app = Router::new().route("/healthz", get(healthz));
    if level >= 6 {
        // Never refuses: what is measured is the bucket lookup.
        let quota = Quota::per_second(u32::MAX, u32::MAX);
        app = limit(app, TrustedProxies::default(), quota).0;
    }
    let none = ServiceBuilder::new;
    match level {
        0 => app,
        1 => app.layer(tracing_layers(none())),
        2 => app.layer(tracing_layers(request_id_layers(none()))),
        3 => app.layer(metrics_layers(tracing_layers(request_id_layers(none())))),
        4 => app.layer(safety_net_layers(metrics_layers(tracing_layers(
            request_id_layers(none()),
        )))),
        _ => app.layer(limits_layers(
            safety_net_layers(metrics_layers(tracing_layers(request_id_layers(none())))),
            BODY_LIMIT,
            TIMEOUT,
        )),
    }
}

/// The API's defaults (BODY_LIMIT_BYTES, REQUEST_TIMEOUT_MS).
const BODY_LIMIT: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As flashsale-api: RUST_LOG or info, text lines; the recorder installed.
    telemetry::init(LogFormat::Text);
    prometheus_handle()?;
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for name in &wanted {
        if !VARIANTS.contains(&name.as_str()) {
            anyhow::bail!("unknown variant {name:?}; variants: {}", VARIANTS.join(" "));
        }
    }
    let mut servers = Vec::new();
    for (level, name) in VARIANTS.iter().enumerate() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen")?;
        println!("variant {name} {}", listener.local_addr()?.port());
        let app = variant(level).into_make_service_with_connect_info::<SocketAddr>();
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    println!("ready");
    for server in servers {
        server.await??;
    }
    Ok(())
}
