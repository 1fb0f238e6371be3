//! Operations: liveness and readiness on the public port; Prometheus
//! metrics on a listener of their own (`METRICS_ADDR`, loopback by
//! default): a scrape costs up to 200 engine STATUS calls and shows every
//! sale's figures, neither of which the public should have.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::SaleId;
use crate::error::ErrorDetail;
use crate::http::extract::Json;
use crate::state::AppState;
use crate::store::sales;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The metrics listener's routes (see `startup::Application`).
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// How long a readiness check may take per dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Sales shown in the gauges: those that ended less than this ago, or later.
const GAUGE_WINDOW: Duration = Duration::from_secs(3600);
const GAUGE_MAX_SALES: i64 = 200;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Each dependency `ok` or `down`; why it is down goes to the log, not to
/// whoever asks (error text names hosts, ports and versions).
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// `ok` or `down`.
    pub redis: String,
    /// `ok` or `down`.
    pub mongodb: String,
    /// `ok (module)` / `ok (functions)` or `down`.
    pub engine: String,
}

const DOWN: &str = "down";

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub checks: Checks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    pub error: ErrorDetail,
    pub checks: Checks,
}

/// `ok`, or `down` with the reason logged.
async fn within<F, T, E>(dependency: &'static str, check: F) -> String
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let reason = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(_)) => return "ok".into(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    };
    tracing::warn!(dependency, %reason, "readiness check failed");
    DOWN.into()
}

/// Redis and MongoDB answer and the engine's commands are there.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = NotReady)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut redis = state.redis.clone();
    let ping = async move { redis::cmd("PING").query_async::<String>(&mut redis).await };
    let (redis, mongodb, engine) = tokio::join!(
        within("redis", ping),
        within("mongodb", state.db.ping()),
        within("engine", state.live.check()),
    );
    let engine = if engine == "ok" {
        format!("ok ({})", state.live.backend_name().unwrap_or("unknown"))
    } else {
        engine
    };
    let ready = redis == "ok" && mongodb == "ok" && engine.starts_with("ok");
    let checks = Checks {
        redis,
        mongodb,
        engine,
    };
    if ready {
        Json(Readiness {
            status: "ready".into(),
            checks,
        })
        .into_response()
    } else {
        tracing::warn!(?checks, "not ready");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(NotReady {
                error: ErrorDetail {
                    code: "not_ready".into(),
                    message: "a dependency is not available".into(),
                    details: None,
                },
                checks,
            }),
        )
            .into_response()
    }
}

/// Prometheus text: request counts and latencies, and per-sale gauges
/// (queue length, live holds, sold, stock) read from the engine at scrape
/// time — collected rather than kept, so they are never stale and deleted
/// sales simply stop appearing.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&sale_gauges(&state).await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One figure of a sale's status.
type Figure = fn(&flashsale::SaleStatus) -> u64;

async fn sale_gauges(state: &AppState) -> String {
    let since = mongodb::bson::DateTime::from_millis(
        mongodb::bson::DateTime::now().timestamp_millis()
            - i64::try_from(GAUGE_WINDOW.as_millis()).unwrap_or(0),
    );
    let docs = match tokio::time::timeout(
        CHECK_TIMEOUT,
        sales::list_recent(&state.db.sales, since, GAUGE_MAX_SALES),
    )
    .await
    {
        Ok(Ok(docs)) => docs,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot list sales");
            return String::new();
        }
        Err(_) => return String::new(),
    };
    let ids: Vec<SaleId> = docs
        .iter()
        .filter_map(|d| SaleId::parse(&d.id).ok())
        .collect();
    let statuses = join_all(ids.iter().map(|id| state.live.status_if_known(id))).await;
    let rows: Vec<(&SaleId, flashsale::SaleStatus)> = ids
        .iter()
        .zip(statuses)
        .filter_map(|(id, s)| s.ok().flatten().map(|s| (id, s.sale)))
        .collect();
    let mut out = String::new();
    let gauges: [(&str, &str, Figure); 5] = [
        (
            "flashsale_queue_length",
            "Customers waiting in the queue",
            |s| s.queued,
        ),
        (
            "flashsale_holds",
            "Live holds (admitted, not confirmed)",
            |s| s.held,
        ),
        ("flashsale_sold", "Units sold", |s| s.sold),
        ("flashsale_stock", "Units on sale in total", |s| s.stock),
        ("flashsale_available", "Units neither sold nor held", |s| {
            s.available()
        }),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        // Sale ids are [A-Za-z0-9_.-]: nothing to escape in a label.
        for (id, status) in &rows {
            let _ = writeln!(out, "{name}{{sale=\"{id}\"}} {}", value(status));
        }
    }
    out
}
