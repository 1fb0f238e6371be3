//! Flash sales: the public page of one sale, and the admin catalogue
//! (list, create, read, update, delete).
//!
//! A sale lives twice: its document in MongoDB (`flash_sales`, the catalogue
//! and the durable record) and its state in the engine (stock, queue, holds,
//! orders). Writes keep them in step:
//! - create: engine SETUP, then the MongoDB insert (the id is brand new, so
//!   nobody can use the sale in between; a failed insert removes the engine
//!   record again);
//! - update: engine SETUP first — the engine refuses stock below sold + held
//!   (409) and then nothing has changed — then MongoDB; a failed MongoDB
//!   write puts the engine back;
//! - delete: see [`delete_sale`].

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use flashsale::{keys, SaleStatus, SetupParams, StatusReply};
use mongodb::bson;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminUser;
use crate::domain::{Money, SaleId};
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::routes::{ceil_secs, time_from_bson, time_from_ms, PageQuery, Paged};
use crate::sale_lock::SaleLock;
use crate::state::AppState;
use crate::store::{orders, sales, sales::SaleDoc};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/flash-sales/{saleId}/public", get(public_sale))
        .route("/flash-sales", get(list_sales).post(create_sale))
        .route(
            "/flash-sales/{saleId}",
            get(get_sale).put(update_sale).delete(delete_sale),
        )
}

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// A sale's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Active,
    Ended,
    SoldOut,
}

impl From<flashsale::SaleState> for SaleState {
    fn from(state: flashsale::SaleState) -> Self {
        match state {
            flashsale::SaleState::Upcoming => SaleState::Upcoming,
            flashsale::SaleState::Active => SaleState::Active,
            flashsale::SaleState::Ended => SaleState::Ended,
            flashsale::SaleState::SoldOut => SaleState::SoldOut,
        }
    }
}

/// What a customer's page needs: the offer, the window, the live figures
/// and the server's clock (count down from `serverTime`, not the device's).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicSale {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Decimal, two places.
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: SaleState,
    /// Units on sale in total.
    pub stock: u64,
    /// Units not sold yet (stock − sold).
    pub stock_left: u64,
    /// Units neither sold nor held by someone about to confirm.
    pub available: u64,
    pub queue_length: u64,
    /// How long an admitted customer has to confirm.
    pub hold_ttl_seconds: u64,
    /// Customers admitted per second, when limited.
    pub rate: Option<u64>,
    /// The engine's clock when this was read.
    pub server_time: DateTime<Utc>,
    /// The same, in ms since the epoch.
    pub server_time_ms: u64,
}

/// Live figures of a sale, from the engine.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveFigures {
    pub status: SaleState,
    pub sold: u64,
    pub held: u64,
    pub queued: u64,
    pub stock_left: u64,
    pub available: u64,
}

impl From<&SaleStatus> for LiveFigures {
    fn from(s: &SaleStatus) -> Self {
        LiveFigures {
            status: s.state.into(),
            sold: s.sold,
            held: s.held,
            queued: s.queued,
            stock_left: s.stock.saturating_sub(s.sold),
            available: s.available(),
        }
    }
}

/// A sale as admins see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSale {
    pub id: String,
    pub name: String,
    pub description: String,
    pub initial_quantity: u64,
    /// Units not sold, as last recorded in MongoDB.
    pub current_quantity: u64,
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub hold_ttl_seconds: u64,
    pub rate: Option<u64>,
    pub max_queue: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The engine's figures; null if the engine does not have the sale.
    pub live: Option<LiveFigures>,
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The sale's price (a stored value out of range is our bug: 500).
pub fn price_of(sale: &SaleDoc) -> Result<Money, ApiError> {
    u64::try_from(sale.price_per_unit)
        .ok()
        .and_then(|p| Money::from_minor_units(p).ok())
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "sale {} has an invalid pricePerUnit {}",
                sale.id,
                sale.price_per_unit
            ))
        })
}

pub fn admin_view(
    sale: &SaleDoc,
    live: Option<&SaleStatus>,
    default_hold_secs: u64,
) -> Result<AdminSale, ApiError> {
    Ok(AdminSale {
        id: sale.id.clone(),
        name: sale.name.clone(),
        description: sale.description.clone(),
        initial_quantity: non_negative(sale.initial_quantity),
        current_quantity: non_negative(sale.current_quantity),
        price_per_unit: price_of(sale)?,
        starts_at: time_from_bson(sale.starts_at),
        ends_at: time_from_bson(sale.ends_at),
        hold_ttl_seconds: sale
            .hold_ttl_seconds
            .map(non_negative)
            .unwrap_or(default_hold_secs),
        rate: sale.rate.map(non_negative),
        max_queue: sale.max_queue.map(non_negative),
        created_at: time_from_bson(sale.created_at),
        updated_at: time_from_bson(sale.updated_at),
        live: live.map(LiveFigures::from),
    })
}

/// The public page of a sale.
#[utoipa::path(
    get,
    path = "/flash-sales/{saleId}/public",
    tag = "sales",
    params(("saleId" = String, Path, description = "The sale's id")),
    responses(
        (status = 200, body = PublicSale),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such sale", body = ErrorBody),
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
    let StatusReply { sale: live, .. } = state.engine.status(&sale_id, None).await?;
    Ok(Json(PublicSale {
        id: sale.id.clone(),
        name: sale.name.clone(),
        description: sale.description.clone(),
        price_per_unit: price_of(&sale)?,
        // The engine's window is the one that is enforced.
        starts_at: time_from_ms(live.starts_at),
        ends_at: time_from_ms(live.ends_at),
        status: live.state.into(),
        stock: live.stock,
        stock_left: live.stock.saturating_sub(live.sold),
        available: live.available(),
        queue_length: live.queued,
        hold_ttl_seconds: ceil_secs(live.hold_ttl_ms),
        rate: (live.rate > 0).then_some(live.rate),
        server_time: time_from_ms(live.now),
        server_time_ms: live.now,
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
            Ok(id) => state.engine.status_if_known(&id).await,
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
    params(("saleId" = String, Path)),
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
    let live = state.engine.status_if_known(&sale_id).await?;
    Ok(Json(admin_view(
        &sale,
        live.as_ref().map(|s| &s.sale),
        state.settings.hold_ttl_seconds,
    )?))
}

/// A new sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSale {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Units on sale, 1 to 1000000000.
    pub initial_quantity: u64,
    /// Decimal with at most two places, as a string ("49.99") or a number.
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Seconds an admitted customer has to confirm (default HOLD_TTL_SECONDS).
    pub hold_ttl_seconds: Option<u64>,
    /// Customers admitted per second (default: unlimited).
    pub rate: Option<u64>,
    /// Longest queue (default: unlimited).
    pub max_queue: Option<u64>,
}

/// Changes to a sale: absent fields keep their value; `rate` and `maxQueue`
/// may be null to remove the limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSale {
    pub name: Option<String>,
    pub description: Option<String>,
    pub initial_quantity: Option<u64>,
    #[schema(value_type = Option<String>, example = "49.99")]
    pub price_per_unit: Option<Money>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub hold_ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub rate: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_queue: Option<Option<u64>>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn invalid(field: &'static str, message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message).with_details(json!({ "field": field }))
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<i64, ApiError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("{field} must be from {min} to {max}"),
        ));
    }
    i64::try_from(value).map_err(|_| invalid(field, format!("{field} is too large")))
}

fn time_ms(field: &'static str, time: DateTime<Utc>) -> Result<bson::DateTime, ApiError> {
    let ms = time.timestamp_millis();
    let max = engine::command::MAX_TIME_MS;
    if ms < 0 || u64::try_from(ms).is_ok_and(|ms| ms > max) {
        return Err(invalid(
            field,
            format!("{field} must be between 1970 and year 33658"),
        ));
    }
    Ok(bson::DateTime::from_millis(ms))
}

/// Checks a sale's fields against the API's and the engine's limits.
fn validate(sale: &SaleDoc) -> Result<(), ApiError> {
    let name = sale.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if sale.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if sale.ends_at <= sale.starts_at {
        return Err(invalid("endsAt", "endsAt must be after startsAt".into()));
    }
    Ok(())
}

fn quantity_field(value: u64) -> Result<i64, ApiError> {
    in_range("initialQuantity", value, 1, engine::command::MAX_STOCK)
}

fn hold_field(value: u64) -> Result<i64, ApiError> {
    in_range(
        "holdTtlSeconds",
        value,
        1,
        engine::command::MAX_HOLD_TTL_MS / 1000,
    )
}

fn rate_field(value: Option<u64>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| in_range("rate", v, 1, engine::command::MAX_RATE))
        .transpose()
}

fn max_queue_field(value: Option<u64>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| in_range("maxQueue", v, 1, engine::command::MAX_QUEUE))
        .transpose()
}

fn price_field(price: Money) -> Result<i64, ApiError> {
    i64::try_from(price.minor_units())
        .map_err(|_| invalid("pricePerUnit", "pricePerUnit is too large".into()))
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
        (status = 401, body = ErrorBody),
    )
)]
pub async fn create_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Json(body): Json<CreateSale>,
) -> Result<Response, ApiError> {
    let now = bson::DateTime::now();
    let quantity = quantity_field(body.initial_quantity)?;
    let sale = SaleDoc {
        id: SaleId::generate().to_string(),
        name: body.name.trim().to_string(),
        description: body.description,
        initial_quantity: quantity,
        current_quantity: quantity,
        price_per_unit: price_field(body.price_per_unit)?,
        starts_at: time_ms("startsAt", body.starts_at)?,
        ends_at: time_ms("endsAt", body.ends_at)?,
        hold_ttl_seconds: Some(hold_field(
            body.hold_ttl_seconds
                .unwrap_or(state.settings.hold_ttl_seconds),
        )?),
        rate: rate_field(body.rate)?,
        max_queue: max_queue_field(body.max_queue)?,
        created_at: now,
        updated_at: now,
    };
    validate(&sale)?;
    let sale_id = SaleId::parse(&sale.id)?;

    state
        .engine
        .setup(&sale_id, state.engine.setup_params(&sale))
        .await?;
    if let Err(e) = sales::insert(&state.db.sales, &sale).await {
        // Nobody knows the new id yet: removing the record undoes the SETUP.
        let mut redis = state.redis.clone();
        let undo: Result<(), _> = redis::cmd("DEL")
            .arg(keys::sale(sale_id.as_str()))
            .query_async(&mut redis)
            .await;
        if let Err(undo) = undo {
            tracing::error!(sale = %sale_id, error = %undo, "could not undo the engine setup");
        }
        return Err(e.into());
    }
    tracing::info!(sale = %sale_id, "sale created");
    let live = state.engine.status_if_known(&sale_id).await?;
    let view = admin_view(
        &sale,
        live.as_ref().map(|s| &s.sale),
        state.settings.hold_ttl_seconds,
    )?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/flash-sales/{sale_id}"))],
        Json(view),
    )
        .into_response())
}

/// Change a sale (admin). Stock below what is sold or held is refused (409)
/// and changes nothing.
#[utoipa::path(
    put,
    path = "/flash-sales/{saleId}",
    tag = "sales",
    params(("saleId" = String, Path)),
    request_body = UpdateSale,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminSale),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Stock below sold + held, or another change in progress", body = ErrorBody),
    )
)]
pub async fn update_sale(
    _admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
    Json(body): Json<UpdateSale>,
) -> Result<Json<AdminSale>, ApiError> {
    let sale_id = SaleId::parse(&sale_id)?;
    let lock = SaleLock::acquire(&state.redis, &sale_id).await?;
    let result = update_locked(&state, &sale_id, body).await;
    lock.release().await;
    result.map(Json)
}

fn apply(current: &SaleDoc, body: UpdateSale) -> Result<SaleDoc, ApiError> {
    let mut sale = current.clone();
    if let Some(name) = body.name {
        sale.name = name.trim().to_string();
    }
    if let Some(description) = body.description {
        sale.description = description;
    }
    if let Some(quantity) = body.initial_quantity {
        sale.initial_quantity = quantity_field(quantity)?;
    }
    if let Some(price) = body.price_per_unit {
        sale.price_per_unit = price_field(price)?;
    }
    if let Some(starts_at) = body.starts_at {
        sale.starts_at = time_ms("startsAt", starts_at)?;
    }
    if let Some(ends_at) = body.ends_at {
        sale.ends_at = time_ms("endsAt", ends_at)?;
    }
    if let Some(hold) = body.hold_ttl_seconds {
        sale.hold_ttl_seconds = Some(hold_field(hold)?);
    }
    if let Some(rate) = body.rate {
        sale.rate = rate_field(rate)?;
    }
    if let Some(max_queue) = body.max_queue {
        sale.max_queue = max_queue_field(max_queue)?;
    }
    validate(&sale)?;
    Ok(sale)
}

/// Refuses to set up afresh (sold = 0) a sale the engine lost while
/// MongoDB has orders of it: see `engine.rs`.
async fn check_not_lost(
    state: &AppState,
    sale_id: &SaleId,
) -> Result<Option<StatusReply>, ApiError> {
    let status = state.engine.status_if_known(sale_id).await?;
    if status.is_none() && orders::count_for_sale(&state.db.orders, sale_id).await? > 0 {
        tracing::error!(sale = %sale_id, "the engine lost a sale with recorded orders");
        return Err(ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "sale_unavailable",
            "the engine lost this sale's state; restore Redis before changing it",
        ));
    }
    Ok(status)
}

async fn update_locked(
    state: &AppState,
    sale_id: &SaleId,
    body: UpdateSale,
) -> Result<AdminSale, ApiError> {
    let current = sales::find(&state.db.sales, sale_id)
        .await?
        .ok_or_else(ApiError::sale_not_found)?;
    let mut updated = apply(&current, body)?;
    let before = check_not_lost(state, sale_id).await?;

    // The engine first: it refuses a stock below sold + held, and then
    // nothing has changed anywhere.
    state
        .engine
        .setup(sale_id, state.engine.setup_params(&updated))
        .await?;
    let live = state.engine.status(sale_id, None).await?;
    updated.current_quantity =
        i64::try_from(live.sale.stock.saturating_sub(live.sale.sold)).unwrap_or(i64::MAX);
    updated.updated_at = bson::DateTime::now();

    let stored = sales::update(&state.db.sales, &updated).await;
    if !matches!(stored, Ok(true)) {
        // Put the engine back as it was, so the two agree again.
        let previous = match &before {
            Some(status) => params_of(&status.sale),
            None => state.engine.setup_params(&current),
        };
        if let Err(e) = state.engine.setup(sale_id, previous).await {
            tracing::error!(sale = %sale_id, error = ?e, "could not put the engine back after a failed update");
        }
        return Err(match stored {
            Ok(_) => ApiError::sale_not_found(),
            Err(e) => e.into(),
        });
    }
    tracing::info!(sale = %sale_id, "sale updated");
    admin_view(&updated, Some(&live.sale), state.settings.hold_ttl_seconds)
}

fn params_of(status: &SaleStatus) -> SetupParams {
    SetupParams {
        stock: status.stock,
        starts_at: status.starts_at,
        ends_at: status.ends_at,
        hold_ttl_ms: status.hold_ttl_ms,
        rate: status.rate,
        max_queue: status.max_queue,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete even if the sale has orders (the orders are kept).
    pub force: Option<bool>,
}

/// Delete a sale (admin).
///
/// A sale with orders is refused (409 `sale_has_orders`) unless
/// `force=true`; orders in MongoDB are never deleted. The engine ends the
/// sale first (SETUP with `ends_at` = now), so no buy, grant or confirm can
/// slip in while it goes. With `force`, the delete then waits for the worker:
/// while MongoDB has fewer orders than the engine sold (some are still only
/// in the outbox), it answers 409 `orders_pending` — the sale stays ended —
/// and the admin retries. Then the MongoDB document goes, and every Redis key
/// of the sale (outbox included: every entry is in MongoDB by then, and the
/// worker, which lists sales from MongoDB, no longer reads it).
#[utoipa::path(
    delete,
    path = "/flash-sales/{saleId}",
    tag = "sales",
    params(("saleId" = String, Path), DeleteQuery),
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
    let lock = SaleLock::acquire(&state.redis, &sale_id).await?;
    let result = delete_locked(&state, &sale_id, query.force.unwrap_or(false)).await;
    lock.release().await;
    result
}

async fn delete_locked(
    state: &AppState,
    sale_id: &SaleId,
    force: bool,
) -> Result<StatusCode, ApiError> {
    if sales::find(&state.db.sales, sale_id).await?.is_none() {
        return Err(ApiError::sale_not_found());
    }
    let has_orders = |sold: u64, recorded: u64| {
        ApiError::conflict(
            "sale_has_orders",
            "this sale has orders; delete with ?force=true to remove the sale and keep its orders",
        )
        .with_details(json!({ "sold": sold, "recorded": recorded }))
    };
    let recorded = orders::count_for_sale(&state.db.orders, sale_id).await?;
    let status = state.engine.status_if_known(sale_id).await?;
    let sold = status.as_ref().map_or(0, |s| s.sale.sold);
    if !force && (sold > 0 || recorded > 0) {
        return Err(has_orders(sold, recorded));
    }

    let mut sold_final = sold;
    if let Some(StatusReply { sale: before, .. }) = &status {
        if before.now < before.ends_at {
            let ending = SetupParams {
                starts_at: before.starts_at.min(before.now.saturating_sub(1)),
                ends_at: before.now.max(1),
                ..params_of(before)
            };
            state.engine.setup(sale_id, ending).await?;
            // A confirm may have landed between the check and the end.
            let after = state.engine.status_if_known(sale_id).await?;
            sold_final = after.as_ref().map_or(sold, |s| s.sale.sold);
            if !force && sold_final > 0 {
                state.engine.setup(sale_id, params_of(before)).await?;
                return Err(has_orders(sold_final, recorded));
            }
        }
    }
    if force {
        let recorded = orders::count_for_sale(&state.db.orders, sale_id).await?;
        if recorded < sold_final {
            return Err(ApiError::conflict(
                "orders_pending",
                "the sale has ended, but some of its orders are not in MongoDB yet; \
                 retry the delete once the worker has recorded them",
            )
            .with_details(json!({ "sold": sold_final, "recorded": recorded }))
            .with_retry_after(1));
        }
    }

    sales::delete(&state.db.sales, sale_id).await?;
    if let Err(e) = delete_engine_keys(state, sale_id).await {
        // The sale is out of the catalogue and ended in the engine; the
        // leftover keys do no harm.
        tracing::warn!(sale = %sale_id, error = ?e, "sale deleted but some Redis keys remain");
    }
    tracing::info!(sale = %sale_id, force, "sale deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Every key of the sale. The sale has ended, so no hold can be added
/// while the holders are listed; hold keys would expire on their own anyway.
async fn delete_engine_keys(state: &AppState, sale_id: &SaleId) -> Result<(), ApiError> {
    let sale = sale_id.as_str();
    let mut redis = state.redis.clone();
    let holders: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::holds(sale))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await?;
    let mut doomed = vec![
        keys::sale(sale),
        keys::queue(sale),
        keys::holds(sale),
        keys::lapsed(sale),
        keys::orders(sale),
        keys::outbox(sale),
    ];
    doomed.extend(holders.iter().map(|user| keys::hold(sale, user)));
    redis::cmd("UNLINK")
        .arg(&doomed)
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}
