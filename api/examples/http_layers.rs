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

use anyhow::Context;
use api::config::LogFormat;
use api::http::client_ip::TrustedProxies;
use api::http::metrics::prometheus_handle;
use api::http::rate_limit::{limit, Quota};
use api::routes::ops::healthz;
use api::startup::{with_limits, with_metrics, with_request_id, with_safety_net, with_tracing};
use api::telemetry;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

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
/// up to it, nested as in `startup::router`.
fn variant(level: usize) -> Router {
    let has = |name: &str| {
        VARIANTS
            .iter()
            .position(|v| *v == name)
            .is_some_and(|at| at <= level)
    };
    let mut app = Router::new().route("/healthz", get(healthz));
    if has("rate-limit") {
        // Never refuses: what is measured is the bucket lookup.
        app = limit(
            app,
            TrustedProxies::default(),
            Quota::per_second(u32::MAX, u32::MAX),
        )
        .0;
    }
    if has("limits") {
        app = with_limits(app, 16 * 1024, std::time::Duration::from_secs(10));
    }
    if has("safety-net") {
        app = with_safety_net(app);
    }
    if has("metrics") {
        app = with_metrics(app);
    }
    if has("tracing") {
        app = with_tracing(app);
    }
    if has("request-id") {
        app = with_request_id(app);
    }
    app
}

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
