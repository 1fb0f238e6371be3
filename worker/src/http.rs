//! The worker's own small HTTP server: `/metrics` (Prometheus), `/healthz`
//! (the process runs) and `/readyz` (the engine was found on Redis, and
//! Redis answers now: a restart or a failover makes it not ready again).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use flashsale::RedisConn;

use crate::connect::Readiness;

/// One recorder per process (several workers in one test process share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then this
            // handle simply renders nothing, which is visible, not fatal.
            let _ = metrics::set_global_recorder(recorder);
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Without upkeep the recorder keeps every histogram sample until a scrape:
/// a worker nobody scrapes would grow for ever. A plain thread, because the
/// handle outlives any one runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread");
    }
}

pub fn router(ready: Readiness, redis: RedisConn) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let (ready, redis) = (ready.clone(), redis.clone());
                async move { readiness(&ready, redis).await }
            }),
        )
}

async fn readiness(ready: &Readiness, mut redis: RedisConn) -> (StatusCode, &'static str) {
    if !ready.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the engine on Redis",
        );
    }
    let ping = redis::cmd("PING");
    match tokio::time::timeout(Duration::from_secs(1), ping.query_async::<()>(&mut redis)).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        // Loading, unreachable, between primaries: the loops wait it out.
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: Redis unavailable",
        ),
    }
}
