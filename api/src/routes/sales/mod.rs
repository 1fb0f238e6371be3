//! Flash sales: the public page of one sale, and the admin catalogue
//! (list, create, read, update, delete, pause, resume). The handlers parse, call the
//! [`SaleCatalogue`] or the engine, and answer; the request types and their
//! validation are in [`input`], the answers in [`views`].

mod input;
mod views;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::IntoParams;

pub use input::{CreateSale, UpdateSale, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
pub use views::{
    admin_view, price_of, AdminSale, DrawPage, DrawStatus, LiveFigures, PublicSale, SaleState,
};

use crate::auth::AdminUser;
use crate::catalogue::SaleCatalogue;
use crate::domain::SaleId;
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::routes::{PageQuery, Paged};
use crate::state::AppState;
use crate::store::sales;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/flash-sales/{saleId}/public", get(public_sale))
        .route("/flash-sales/{saleId}/public/draw", get(public_draw))
        .route("/flash-sales", get(list_sales).post(create_sale))
        .route(
            "/flash-sales/{saleId}",
            get(get_sale).put(update_sale).delete(delete_sale),
        )
        .route("/flash-sales/{saleId}/pause", post(pause_sale))
        .route("/flash-sales/{saleId}/resume", post(resume_sale))
}

/// The public page of a sale.
#[utoipa::path(
    get,
    path = "/flash-sales/{saleId}/public",
    tag = "sales",
    params(("saleId" = SaleId, Path, description = "The sale's id")),
    responses(
        (status = 200, body = PublicSale),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such sale", body = ErrorBody),
        (status = 429, description = "rate_limited: over the per-client limit (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn public_sale(
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Json<PublicSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let sale = sales::find(&state.db.sales, &sale_id)
        .await?
        .ok_or_else(ApiError::sale_not_found)?;
    let live = state.live.status(&sale_id, None).await?.sale;
    // One more engine call only for a sale with a pre-queue window.
    let draw = match sale.pre_queue_seconds {
        Some(_) => Some(state.live.draw(&sale_id, 0, 1).await?),
        None => None,
    };
    Ok(Json(PublicSale::new(&sale, &live, draw.as_ref())?))
}

/// The published draw of a sale's pre-queue lottery, page by page: before
/// the draw its commitment (SHA-1 of the seed) and no entries; after it the
/// seed and the registrants as SHA-1 of their identity, in queue order.
#[utoipa::path(
    get,
    path = "/flash-sales/{saleId}/public/draw",
    tag = "sales",
    params(("saleId" = SaleId, Path, description = "The sale's id"), PageQuery),
    responses(
        (status = 200, body = DrawPage),
        (status = 400, description = "Malformed id or page", body = ErrorBody),
        (status = 404, description = "No such sale", body = ErrorBody),
        (status = 429, description = "rate_limited: over the per-client limit (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn public_draw(
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<DrawPage>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let page = query.validate()?;
    if sales::find(&state.db.sales, &sale_id).await?.is_none() {
        return Err(ApiError::sale_not_found());
    }
    let live = state.live.status(&sale_id, None).await?.sale;
    let reply = state
        .live
        .draw(&sale_id, page.skip(), page.page_size)
        .await?;
    let lottery = views::LotteryView::of(Some(&reply), live.starts_at);
    let (total, entries) = match reply {
        flashsale::DrawReply::Drawn { total, entries, .. } => (total, entries),
        flashsale::DrawReply::Pending { registered, .. } => (registered, Vec::new()),
        flashsale::DrawReply::None => (0, Vec::new()),
    };
    Ok(Json(DrawPage {
        sale_id: sale_id.to_string(),
        status: lottery.status,
        pre_queue_seconds: lottery.pre_queue_seconds,
        drawn_at: lottery.drawn_at,
        seed_commitment: lottery.seed_commitment,
        seed: lottery.seed,
        total,
        page: page.page,
        page_size: page.page_size,
        entries,
    }))
}

/// All sales, newest start first (admin).
#[utoipa::path(
    get,
    path = "/flash-sales",
    tag = "sales",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Paged<AdminSale>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list_sales(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Paged<AdminSale>>, ApiError> {
    let page = query.validate()?;
    let (docs, total) = sales::list(&state.db.sales, page.skip(), page.limit()).await?;
    let statuses = futures::future::join_all(docs.iter().map(|doc| async {
        match SaleId::parse(&doc.id) {
            Ok(id) => state.live.status_if_known(&id).await,
            Err(_) => Ok(None),
        }
    }))
    .await;
    let mut items = Vec::with_capacity(docs.len());
    for (doc, status) in docs.iter().zip(statuses) {
        items.push(admin_view(
            doc,
            status?.as_ref().map(|s| &s.sale),
            state.settings.hold_ttl_seconds,
        )?);
    }
    Ok(Json(Paged::new(items, page, total)))
}

/// One sale (admin).
#[utoipa::path(
    get,
    path = "/flash-sales/{saleId}",
    tag = "sales",
    params(("saleId" = SaleId, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminSale),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn get_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let sale = sales::find(&state.db.sales, &sale_id)
        .await?
        .ok_or_else(ApiError::sale_not_found)?;
    live_admin_view(&state, &sale).await
}

/// Create a sale (admin): stored in MongoDB and set up in the engine.
#[utoipa::path(
    post,
    path = "/flash-sales",
    tag = "sales",
    request_body = CreateSale,
    security(("bearer" = [])),
    responses(
        (status = 201, body = AdminSale, headers(("Location" = String))),
        (status = 400, body = ErrorBody),
        (status = 422, description = "invalid_field: endsAt not after startsAt, or a time before 1970", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn create_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Json(body): Json<CreateSale>,
) -> Result<Response, ApiError> {
    let sale = body.into_document(state.settings.hold_ttl_seconds)?;
    let sale_id = SaleId::parse(&sale.id)?;
    if sale.pre_queue_seconds.is_some() {
        // The window and the seed first (the catalogue's SETUP keeps them):
        // nobody knows the id yet, so nobody registers in between.
        state.live.set_lottery(&sale_id, &sale).await?;
    }
    let live = match SaleCatalogue::of(&state).create(&sale).await {
        Ok(live) => live,
        Err(e) => {
            if sale.pre_queue_seconds.is_some() {
                if let Err(undo) = state.live.purge(&sale_id).await {
                    tracing::error!(sale = %sale_id, error = ?undo, "could not undo the lottery setup");
                }
            }
            return Err(e);
        }
    };
    let view = admin_view(
        &sale,
        live.as_ref().map(|s| &s.sale),
        state.settings.hold_ttl_seconds,
    )?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/flash-sales/{}", sale.id))],
        Json(view),
    )
        .into_response())
}

/// Change a sale (admin). Stock below what is sold or held, or a new price
/// while buyers hold units, is refused (409) and changes nothing.
#[utoipa::path(
    put,
    path = "/flash-sales/{saleId}",
    tag = "sales",
    params(("saleId" = SaleId, Path)),
    request_body = UpdateSale,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminSale),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "invalid_field: endsAt not after startsAt, or a time before 1970", body = ErrorBody),
        (status = 409, description = "stock_below_committed: stock below sold + held; price_locked: a new price while units are held (a buyer pays the price they were admitted at); lottery_locked: preQueueSeconds changed once the window has opened or the sale started; or another change in progress", body = ErrorBody),
    )
)]
pub async fn update_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
    Json(body): Json<UpdateSale>,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    // One seed per request, so that both applications below agree.
    let fresh_seed = input::new_lottery_seed();
    let mut previous = None;
    if body.changes_lottery() {
        // The engine decides first, atomically, whether the window may
        // still change (LOCKED once it has opened): then nothing changed
        // anywhere. The catalogue's SETUP below keeps what this one set.
        let current = sales::find(&state.db.sales, &sale_id)
            .await?
            .ok_or_else(ApiError::sale_not_found)?;
        let wanted = body.clone().apply(&current, &fresh_seed)?;
        let lottery_only = sales::SaleDoc {
            pre_queue_seconds: wanted.pre_queue_seconds,
            lottery_seed: wanted.lottery_seed,
            ..current.clone()
        };
        state.live.set_lottery(&sale_id, &lottery_only).await?;
        previous = Some(current);
    }
    let result = SaleCatalogue::of(&state)
        .update(&sale_id, |current| body.apply(current, &fresh_seed))
        .await;
    let (sale, live) = match result {
        Ok(updated) => updated,
        Err(e) => {
            // Put the engine's lottery back as MongoDB still has it.
            if let Some(current) = previous {
                if let Err(undo) = state.live.set_lottery(&sale_id, &current).await {
                    tracing::error!(sale = %sale_id, error = ?undo, "could not put the lottery back after a failed update");
                }
            }
            return Err(e);
        }
    };
    Ok(Json(admin_view(
        &sale,
        Some(&live),
        state.settings.hold_ttl_seconds,
    )?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete even if the sale has orders (the orders are kept).
    pub force: Option<bool>,
}

/// Delete a sale (admin): refused while it has orders unless `force=true`
/// (the orders are kept); see [`SaleCatalogue::delete`].
#[utoipa::path(
    delete,
    path = "/flash-sales/{saleId}",
    tag = "sales",
    params(("saleId" = SaleId, Path), DeleteQuery),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The sale has orders", body = ErrorBody),
    )
)]
pub async fn delete_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    SaleCatalogue::of(&state)
        .delete(&sale_id, query.force.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a live sale (admin): new buys answer 409 `sale_paused`, nobody is
/// admitted, those queued keep their place and holders can still confirm.
/// Pausing a paused sale changes nothing. The pause lives in the engine
/// (Redis), with the queue it protects.
#[utoipa::path(
    post,
    path = "/flash-sales/{saleId}/pause",
    tag = "sales",
    params(("saleId" = SaleId, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Paused (or already paused); `status` is `paused`", body = AdminSale),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "sale_not_live: the sale has not started, has ended or is sold out; nothing changed", body = ErrorBody),
    )
)]
pub async fn pause_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let sale = sales::find(&state.db.sales, &sale_id)
        .await?
        .ok_or_else(ApiError::sale_not_found)?;
    let reply = state.live.pause(&sale_id).await?;
    tracing::info!(sale = %sale_id, outcome = reply.outcome(), "sale paused by an admin");
    live_admin_view(&state, &sale).await
}

/// Resume a paused sale (admin): admission goes on from the same queue.
/// Resuming a sale that is not paused changes nothing.
#[utoipa::path(
    post,
    path = "/flash-sales/{saleId}/resume",
    tag = "sales",
    params(("saleId" = SaleId, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Running again (or was not paused)", body = AdminSale),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn resume_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let sale = sales::find(&state.db.sales, &sale_id)
        .await?
        .ok_or_else(ApiError::sale_not_found)?;
    let reply = state.live.resume(&sale_id).await?;
    tracing::info!(sale = %sale_id, outcome = reply.outcome(), "sale resumed by an admin");
    live_admin_view(&state, &sale).await
}

/// The admin's view of `sale` with the engine's figures as they are now.
async fn live_admin_view(
    state: &AppState,
    sale: &sales::SaleDoc,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale.id)?;
    let live = state.live.status_if_known(&sale_id).await?;
    Ok(Json(admin_view(
        sale,
        live.as_ref().map(|s| &s.sale),
        state.settings.hold_ttl_seconds,
    )?))
}
