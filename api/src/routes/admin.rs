//! Admin views of orders and queues: recorded orders from MongoDB, and a
//! sale's live queue straight from the engine's keys (read-only).

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminUser;
use crate::domain::SaleId;
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::routes::orders::OrderView;
use crate::routes::sales::SaleState;
use crate::routes::{time_from_ms, PageQuery, Paged};
use crate::state::AppState;
use crate::store::orders;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/admin/list", get(list_orders))
        .route("/orders/admin/queue/{saleId}/overview", get(queue_overview))
        .route("/orders/admin/queue/{saleId}/members", get(queue_members))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Only this sale's orders.
    #[param(value_type = Option<crate::domain::SaleId>)]
    pub flash_sale_id: Option<String>,
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u64>,
}

/// Recorded orders (copied to MongoDB by the worker), newest first.
#[utoipa::path(
    get,
    path = "/orders/admin/list",
    tag = "admin",
    params(OrderListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Paged<OrderView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list_orders(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Paged<OrderView>>, ApiError> {
    let page = PageQuery {
        page: query.page,
        page_size: query.page_size,
    }
    .validate()?;
    let sale = query
        .flash_sale_id
        .as_deref()
        .map(SaleId::parse)
        .transpose()?;
    let (records, total) =
        orders::list(&state.db.orders, sale.as_ref(), page.skip(), page.limit()).await?;
    let items = records.into_iter().map(OrderView::from).collect();
    Ok(Json(Paged::new(items, page, total)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueOverview {
    pub flash_sale_id: String,
    pub status: SaleState,
    pub total_in_queue: u64,
    /// Live holds (admitted, not yet confirmed).
    pub holds: u64,
    pub sold: u64,
    pub stock: u64,
    /// stock − sold − holds.
    pub available: u64,
    /// Holds granted per second (0 = unlimited).
    pub rate: u64,
    pub server_time: DateTime<Utc>,
}

impl QueueOverview {
    /// The overview of `sale` from the engine's figures (the route and the
    /// live stream send the same).
    pub fn of(sale: &SaleId, live: &flashsale::SaleStatus) -> QueueOverview {
        QueueOverview {
            flash_sale_id: sale.to_string(),
            status: live.state.into(),
            total_in_queue: live.queued,
            holds: live.held,
            sold: live.sold,
            stock: live.stock,
            available: live.available(),
            rate: live.rate,
            server_time: time_from_ms(live.now),
        }
    }
}

/// A sale's queue and stock figures.
#[utoipa::path(
    get,
    path = "/orders/admin/queue/{saleId}/overview",
    tag = "admin",
    params(("saleId" = crate::domain::SaleId, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = QueueOverview),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn queue_overview(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Json<QueueOverview>, ApiError> {
    let sale = SaleId::parse(&sale_id)?;
    let live = state.live.status(&sale, None).await?.sale;
    Ok(Json(QueueOverview::of(&sale, &live)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueMember {
    /// 1-based.
    pub position: u64,
    pub email: String,
}

/// The queue in order, a page at a time (`ZRANGE fs:{sale}:queue`).
#[utoipa::path(
    get,
    path = "/orders/admin/queue/{saleId}/members",
    tag = "admin",
    params(("saleId" = crate::domain::SaleId, Path), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Paged<QueueMember>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn queue_members(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Paged<QueueMember>>, ApiError> {
    let sale = SaleId::parse(&sale_id)?;
    let page = query.validate()?;
    // Also proves the sale exists (restoring it if the engine lost it).
    let total = state.live.status(&sale, None).await?.sale.queued;
    let start = page.skip();
    let members = state.live.queue_page(&sale, start, page.page_size).await?;
    let items = members
        .into_iter()
        .zip(start + 1..)
        .map(|(email, position)| QueueMember { position, email })
        .collect();
    Ok(Json(Paged::new(items, page, total)))
}
