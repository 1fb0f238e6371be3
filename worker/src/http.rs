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
            handle
        })
        .clone()
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
