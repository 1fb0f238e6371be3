//! The web pages, served by the API process itself: the customer's sale page
//! (`/`, `/sales/{saleId}`) and the admin dashboard (`/admin`). Pages and
//! assets are plain HTML/CSS/JS compiled into the binary (`include_bytes!`
//! from `api/web/`): no Node.js, no build step, no CDN — they work offline.
//!
//! Every page and asset carries a strict Content-Security-Policy (scripts
//! and styles only from this origin, no inline code, no framing),
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! The pages call the same JSON API as any client; the one route this
//! module adds to it is the public list of open sales.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use mongodb::bson;
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::ToSchema;

use crate::domain::{Money, SaleId};
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::routes::sales::{price_of, SaleState};
use crate::routes::time_from_bson;
use crate::state::AppState;
use crate::store::sales;

/// The policy of every page and asset: everything from this origin only,
/// scripts and styles from files (no `unsafe-inline`, no `eval`), no
/// plugins, no framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of the API docs (`/docs`, Swagger UI): the same, except
/// that Swagger UI sets `style` attributes from its scripts (React), which
/// needs `'unsafe-inline'` for styles; its scripts are files from this
/// origin (no inline script, no `eval`), so `script-src` stays `'self'`.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `router` (the Swagger UI routes) with the docs' policy on every answer.
pub fn with_docs_policy<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";

const CUSTOMER_PAGE: &[u8] = include_bytes!("../web/customer.html");
const ADMIN_PAGE: &[u8] = include_bytes!("../web/admin.html");

/// `/assets/{name}`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/app.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/common.js"),
    },
    Asset {
        name: "customer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/customer.js"),
    },
    Asset {
        name: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/admin.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../web/favicon.svg"),
    },
];

/// The pages and their assets.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(customer_page))
        .route("/sales/{saleId}", get(customer_page))
        .route("/admin", get(admin_page))
        .route("/favicon.ico", get(favicon))
        .route("/assets/{name}", get(asset))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    Router::new().merge(pages)
}

/// The one API route of this module (rate-limited and cached with the
/// other public reads, see `startup::router`).
pub fn public_router() -> Router<AppState> {
    Router::new().route("/public/flash-sales", get(open_sales))
}

fn page(body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, HTML)], body).into_response()
}

async fn customer_page() -> Response {
    page(CUSTOMER_PAGE)
}

async fn admin_page() -> Response {
    page(ADMIN_PAGE)
}

async fn favicon() -> Response {
    serve("favicon.svg").unwrap_or_else(|e| e.into_response())
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("asset_not_found", "no such asset"))?;
    Ok(([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response())
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    serve(&name)
}

/// A sale in the public list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenSale {
    pub id: String,
    pub name: String,
    pub description: String,
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// From the engine; `upcoming`, `active` or `sold_out`.
    pub status: SaleState,
    pub stock_left: u64,
}

/// The public list of open sales.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenSales {
    pub items: Vec<OpenSale>,
    pub server_time: DateTime<Utc>,
}

/// Most sales the public list shows.
pub const OPEN_SALES_LIMIT: i64 = 50;

/// Sales that are upcoming or active (not ended), soonest start first — the
/// customer page's index. Sales the engine does not know are left out.
#[utoipa::path(
    get,
    path = "/public/flash-sales",
    tag = "sales",
    responses(
        (status = 200, body = OpenSales),
        (status = 429, description = "rate_limited: over the per-client limit (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn open_sales(State(state): State<AppState>) -> Result<Json<OpenSales>, ApiError> {
    let now = Utc::now();
    let docs = sales::list_open(
        &state.db.sales,
        bson::DateTime::from_millis(now.timestamp_millis()),
        OPEN_SALES_LIMIT,
    )
    .await?;
    let statuses = futures::future::join_all(docs.iter().map(|doc| async {
        match SaleId::parse(&doc.id) {
            Ok(id) => state.live.status_if_known(&id).await,
            Err(_) => Ok(None),
        }
    }))
    .await;
    let mut items = Vec::new();
    for (doc, status) in docs.iter().zip(statuses) {
        let Some(status) = status? else { continue };
        let live = &status.sale;
        let state: SaleState = live.state.into();
        if state == SaleState::Ended {
            continue;
        }
        items.push(OpenSale {
            id: doc.id.clone(),
            name: doc.name.clone(),
            description: doc.description.clone(),
            price_per_unit: price_of(doc)?,
            starts_at: time_from_bson(doc.starts_at),
            ends_at: time_from_bson(doc.ends_at),
            status: state,
            stock_left: live.stock.saturating_sub(live.sold),
        });
    }
    Ok(Json(OpenSales {
        items,
        server_time: now,
    }))
}
