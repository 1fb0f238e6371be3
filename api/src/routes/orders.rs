//! The customer's path: join the queue, watch the position, confirm with a
//! live hold, see the order. The customer is their identity — the normalised
//! e-mail address, without a `+tag` by default ([`Email::buyer_identity`]) —
//! which is also the engine's user id.
//!
//! The buy that first puts an identity into a sale hands out a buyer token
//! ([`crate::buyer_token`]); every later request about that buyer must carry
//! it, and is checked before the engine is asked anything, so a refused
//! request changes nothing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use flashsale::{ConfirmReply, EnqueueReply, StatusReply, UserStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::buyer_claims;
use crate::buyer_token::{self, ClientKey};
use crate::domain::{Email, Money, SaleId};
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Query};
use crate::routes::sales::SaleState;
use crate::routes::{ceil_secs, time_from_ms};
use crate::state::AppState;
use crate::store::{orders, orders::OrderRecord};

/// Routes that are rate-limited per client IP (buy and confirm).
pub fn limited_router() -> Router<AppState> {
    Router::new()
        .route("/orders/buy", post(buy))
        .route("/orders/confirm", post(confirm))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/position", get(position))
        .route("/orders/by-email", get(by_email))
        .merge(super::order_events::router())
}

/// Where the customer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerStatus {
    /// Waiting in the queue.
    Queued,
    /// Admitted: holds a unit and may confirm until the hold runs out.
    Ready,
    /// Bought.
    Purchased,
    /// Was admitted but let the hold run out (may buy again: back of the queue).
    Expired,
    /// Registered in the pre-queue window; enters the queue at the draw
    /// when the sale starts (see the sale's public view).
    Registered,
    /// Not in this sale.
    None,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuyRequest {
    #[schema(value_type = Email)]
    pub email: String,
    #[schema(value_type = SaleId)]
    pub flash_sale_id: String,
    /// Optional: a random string (16 to 64 of `A-Z a-z 0-9 _ -`) the client
    /// makes once per sale and buyer and sends with every buy. A repeated
    /// buy with the same key gets the buyer token again — the first answer
    /// may have been lost on the way; without it, none is handed out twice.
    #[serde(default)]
    // Literals only in attributes: buyer_token::CLIENT_KEY_LEN (tested).
    #[schema(pattern = "^[A-Za-z0-9_-]+$", min_length = 16, max_length = 64)]
    pub client_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuyResponse {
    /// `registered` (in a pre-queue window), `queued`, `ready` (holding) or
    /// `purchased`.
    pub status: CustomerStatus,
    /// Whether the customer is waiting in the queue.
    pub queued: bool,
    /// 1-based place in the queue, when queued.
    pub position: Option<u64>,
    /// Customers in the queue.
    pub size: u64,
    pub has_active_hold: bool,
    /// Seconds left on the hold, when holding.
    pub hold_ttl_sec: Option<u64>,
    /// How long a hold lasts once admitted (seconds).
    pub hold_duration_sec: u64,
    /// Seconds until admission: the place over how fast the queue moved
    /// lately (or, before it has moved, the sale's RATE); null when unknown.
    pub estimated_wait_sec: Option<u64>,
    /// When purchased.
    pub order_id: Option<String>,
    /// The buyer token, handed out once: by the buy that first puts this
    /// person into the sale. Send it as `X-Buyer-Token` on position,
    /// confirm, by-email and events. Null on any later buy — which then, if
    /// it carries no token, answers the state only (no place, hold, wait or
    /// order id): knowing an address is not enough to act for its owner.
    pub buyer_token: Option<String>,
}

impl BuyResponse {
    /// The answer to someone who names a buyer already in the sale but
    /// cannot prove to be them: that they are in, nothing more.
    fn withhold_details(&mut self) {
        self.position = None;
        self.hold_ttl_sec = None;
        self.estimated_wait_sec = None;
        self.order_id = None;
        self.buyer_token = None;
    }
}

/// A buyer as a request names them: the address as typed (trimmed; the
/// order keeps it) and the identity the engine counts (one place per
/// identity).
pub(crate) struct Buyer {
    pub typed: String,
    pub identity: Email,
}

impl Buyer {
    pub(crate) fn parse(state: &AppState, raw: &str) -> Result<Buyer, ApiError> {
        let email = Email::parse(raw)?;
        Ok(Buyer {
            typed: raw.trim().to_string(),
            identity: email.buyer_identity(state.settings.identity_strip_plus_tags),
        })
    }

    /// The address for the order when it is not the identity itself
    /// (CONFIRM's CONTACT).
    pub(crate) fn contact(&self) -> Option<&str> {
        (self.typed != self.identity.as_str()).then_some(self.typed.as_str())
    }
}

/// Notes where `email` stands (the queue's speed is measured from these)
/// and estimates the wait.
pub(crate) fn estimated_wait(
    state: &AppState,
    sale: &SaleId,
    email: &Email,
    position: u64,
    rate: u64,
) -> Option<u64> {
    let now = std::time::Instant::now();
    state
        .live
        .drain
        .observe_and_estimate(sale.as_str(), email.as_str(), position, rate, now)
}

/// Join the queue (repeating it never creates a second place). The first
/// buy of a person in a sale returns their `buyerToken`.
#[utoipa::path(
    post,
    path = "/orders/buy",
    tag = "orders",
    request_body = BuyRequest,
    params(
        ("X-Buyer-Token" = Option<String>, Header, description = "Optional: the buyer's token from their first buy; with it a repeated buy answers in full"),
    ),
    responses(
        (status = 200, description = "Registered (pre-queue window), queued, holding or already purchased", body = BuyResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_buyer_token: a token was sent but is not valid", body = ErrorBody),
        (status = 403, description = "buyer_token_mismatch: the token sent is another buyer's or another sale's", body = ErrorBody),
        (status = 404, description = "No such sale", body = ErrorBody),
        (status = 409, description = "sale_not_started, sale_ended, sold_out, queue_full or sale_paused", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn buy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<BuyRequest>,
) -> Result<Json<BuyResponse>, ApiError> {
    // The identity only: a buy keeps no typed address (unlike confirm).
    let email =
        &Email::parse(&body.email)?.into_buyer_identity(state.settings.identity_strip_plus_tags);
    let sale = SaleId::parse(&body.flash_sale_id)?;
    let client_key = body
        .client_key
        .as_deref()
        .map(ClientKey::parse)
        .transpose()?;
    // A token is optional here, but one that is sent must be this buyer's.
    let presented = buyer_token::from_headers(&headers);
    if presented.is_some() {
        state.buyer_tokens.check(presented, &sale, email)?;
    }
    // Only a place just taken earns a token (holding or bought without one
    // means it went to whoever queued first); "queued" may also be a
    // repeat, which the claim in Redis tells apart.
    let (reply, token) = match presented {
        None => buyer_claims::enqueue_and_claim(&state, &sale, email, client_key.as_ref()).await?,
        // Boxed, like the rarer answers below: the buy's future (made and
        // moved on every buy) stays the size of the usual way's.
        Some(_) => (Box::pin(state.live.enqueue(&sale, email)).await?, None),
    };
    let newly_queued = buyer_claims::takes_a_place(&reply);
    let mut response = match reply {
        EnqueueReply::Queued { position, length } => {
            let params = state.live.params(&sale).await?;
            BuyResponse {
                status: CustomerStatus::Queued,
                queued: true,
                position: Some(position),
                size: length,
                has_active_hold: false,
                hold_ttl_sec: None,
                hold_duration_sec: ceil_secs(params.hold_ttl_ms),
                estimated_wait_sec: estimated_wait(&state, &sale, email, position, params.rate),
                order_id: None,
                buyer_token: None,
            }
        }
        EnqueueReply::Holding { ms_left } => {
            let live = Box::pin(state.live.status(&sale, None)).await?.sale;
            BuyResponse {
                status: CustomerStatus::Ready,
                queued: false,
                position: None,
                size: live.queued,
                has_active_hold: true,
                hold_ttl_sec: Some(ceil_secs(ms_left)),
                hold_duration_sec: ceil_secs(live.hold_ttl_ms),
                estimated_wait_sec: None,
                order_id: None,
                buyer_token: None,
            }
        }
        EnqueueReply::Purchased { order_id } => {
            let live = Box::pin(state.live.status(&sale, None)).await?.sale;
            BuyResponse {
                status: CustomerStatus::Purchased,
                queued: false,
                position: None,
                size: live.queued,
                has_active_hold: false,
                hold_ttl_sec: None,
                hold_duration_sec: ceil_secs(live.hold_ttl_ms),
                estimated_wait_sec: None,
                order_id: Some(order_id),
                buyer_token: None,
            }
        }
        EnqueueReply::NotStarted { ms_until_start } => {
            return Err(
                ApiError::conflict("sale_not_started", "the sale has not started yet")
                    .with_details(json!({ "msUntilStart": ms_until_start }))
                    .with_retry_after(ceil_secs(ms_until_start)),
            )
        }
        // In the pre-queue window: a place in the draw, not yet in the queue.
        EnqueueReply::Registered { count } => {
            let params = state.live.params(&sale).await?;
            BuyResponse {
                status: CustomerStatus::Registered,
                queued: false,
                position: None,
                size: count,
                has_active_hold: false,
                hold_ttl_sec: None,
                hold_duration_sec: ceil_secs(params.hold_ttl_ms),
                estimated_wait_sec: None,
                order_id: None,
                buyer_token: None,
            }
        }
        EnqueueReply::Ended => return Err(sale_ended()),
        EnqueueReply::SoldOut => return Err(sold_out()),
        EnqueueReply::Paused => {
            return Err(ApiError::conflict(
                "sale_paused",
                "the sale is paused; buyers in the queue keep their place",
            ))
        }
        EnqueueReply::QueueFull { length } => {
            return Err(
                ApiError::conflict("queue_full", "the queue is full; try again later")
                    .with_details(json!({ "size": length })),
            )
        }
    };
    match presented {
        None => match token {
            Some(token) => response.buyer_token = Some(token),
            None => response.withhold_details(),
        },
        // The buyer rejoins with their token (a failover lost the place, or
        // the claim with it): the place is theirs, so is the claim — else a
        // stranger's buy after this one would be handed a token for them.
        Some(_) if newly_queued => {
            Box::pin(buyer_claims::claim(&state, &sale, email, None, true)).await?;
        }
        Some(_) => {}
    }
    Ok(Json(response))
}

fn sale_ended() -> ApiError {
    ApiError::conflict("sale_ended", "the sale has ended")
}

fn sold_out() -> ApiError {
    ApiError::conflict("sold_out", "the sale is sold out")
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    #[param(value_type = SaleId)]
    pub flash_sale_id: String,
    #[param(value_type = Email)]
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionResponse {
    pub status: CustomerStatus,
    /// 1-based place in the queue, when queued.
    pub position: Option<u64>,
    /// Customers in the queue.
    pub size: u64,
    /// Seconds left on the hold, when ready.
    pub hold_ttl_sec: Option<u64>,
    /// When queued: seconds until admission, from how fast the queue moved
    /// lately (or, before it has moved, the sale's RATE); null when unknown.
    pub estimated_wait_sec: Option<u64>,
    /// When purchased.
    pub order_id: Option<String>,
    /// The sale's state, so a page can say "sold out" or "ended".
    pub sale_status: SaleState,
    pub server_time: DateTime<Utc>,
}

/// Where a customer stands in a sale (the buyer's token required).
#[utoipa::path(
    get,
    path = "/orders/position",
    tag = "orders",
    params(
        CustomerQuery,
        ("X-Buyer-Token" = String, Header, description = "The buyer token from the buy"),
    ),
    responses(
        (status = 200, body = PositionResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "buyer_token_required or invalid_buyer_token", body = ErrorBody),
        (status = 403, description = "buyer_token_mismatch: another buyer's or another sale's token", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "rate_limited: over the per-client limit (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn position(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CustomerQuery>,
) -> Result<Json<PositionResponse>, ApiError> {
    let (sale, email) = authorised(&state, &headers, &query)?;
    let reply = state.live.status(&sale, Some(&email)).await?;
    Ok(Json(position_view(&state, &sale, &email, reply)))
}

/// The sale and the buyer a request is about, once its buyer token proves
/// it comes from that buyer (`fallback`: a token from the query string,
/// where a header cannot be set). Before any engine call: a refused request
/// changes nothing and learns nothing.
pub(crate) fn authorised(
    state: &AppState,
    headers: &HeaderMap,
    query: &CustomerQuery,
) -> Result<(SaleId, Email), ApiError> {
    let buyer = Buyer::parse(state, &query.email)?;
    let sale = SaleId::parse(&query.flash_sale_id)?;
    let presented = buyer_token::from_headers(headers);
    state
        .buyer_tokens
        .check(presented, &sale, &buyer.identity)?;
    Ok((sale, buyer.identity))
}

/// Where the customer stands, from the engine's STATUS of them.
pub(crate) fn position_view(
    state: &AppState,
    sale: &SaleId,
    email: &Email,
    reply: StatusReply,
) -> PositionResponse {
    let live = reply.sale;
    let mut response = PositionResponse {
        status: CustomerStatus::None,
        position: None,
        size: live.queued,
        hold_ttl_sec: None,
        estimated_wait_sec: None,
        order_id: None,
        sale_status: live.state.into(),
        server_time: time_from_ms(live.now),
    };
    match reply.user.unwrap_or(UserStatus::None) {
        UserStatus::Queued { position } => {
            response.status = CustomerStatus::Queued;
            response.position = Some(position);
            response.estimated_wait_sec = estimated_wait(state, sale, email, position, live.rate);
        }
        UserStatus::Holding { ms_left } => {
            response.status = CustomerStatus::Ready;
            response.hold_ttl_sec = Some(ceil_secs(ms_left));
        }
        UserStatus::Purchased { order_id } => {
            response.status = CustomerStatus::Purchased;
            response.order_id = Some(order_id);
        }
        UserStatus::Expired => response.status = CustomerStatus::Expired,
        UserStatus::Registered => response.status = CustomerStatus::Registered,
        UserStatus::None => {}
    }
    response
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    #[schema(value_type = Email)]
    pub email: String,
    #[schema(value_type = SaleId)]
    pub flash_sale_id: String,
    /// Optional; must equal the sale's price (one unit per customer), which
    /// cannot change while the buyer holds a unit. The client cannot choose
    /// what it pays.
    pub total_amount: Option<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmResponse {
    pub order_id: String,
    /// False when this repeats an earlier confirmation (same order id).
    pub created: bool,
    pub flash_sale_id: String,
    /// The address the order is recorded with: as the buyer typed it.
    pub email: String,
    /// What the order was confirmed at: the sale's price when the buyer
    /// was admitted. Null only on a repeat whose order has already left the
    /// engine's outbox (see `GET /orders/by-email`).
    #[schema(value_type = Option<String>, example = "49.99")]
    pub total_amount: Option<Money>,
}

/// Buy the held unit.
#[utoipa::path(
    post,
    path = "/orders/confirm",
    tag = "orders",
    request_body = ConfirmRequest,
    params(
        ("X-Buyer-Token" = String, Header, description = "The buyer token from the buy"),
    ),
    responses(
        (status = 200, body = ConfirmResponse),
        (status = 400, description = "amount_mismatch: totalAmount is not the sale's price, or invalid input", body = ErrorBody),
        (status = 401, description = "buyer_token_required or invalid_buyer_token", body = ErrorBody),
        (status = 403, description = "no_hold: not admitted (yet); buyer_token_mismatch: another buyer's or another sale's token", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "sold_out or sale_ended", body = ErrorBody),
        (status = 410, description = "hold_expired", body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<ConfirmRequest>,
) -> Result<Json<ConfirmResponse>, ApiError> {
    let buyer = Buyer::parse(&state, &body.email)?;
    let email = &buyer.identity;
    let sale_id = SaleId::parse(&body.flash_sale_id)?;
    state
        .buyer_tokens
        .check(buyer_token::from_headers(&headers), &sale_id, email)?;
    // Redis only: the engine charges the price it keeps for the sale; the
    // order keeps the address as typed.
    let reply = state
        .live
        .confirm(&sale_id, email, buyer.contact(), body.total_amount)
        .await?;
    let (order_id, created, total_amount, recorded_as) = match reply {
        ConfirmReply::Confirmed { order_id, amount } => (
            order_id,
            true,
            Money::from_minor_units(amount).ok(),
            buyer.typed.clone(),
        ),
        ConfirmReply::Purchased { order_id } => {
            let mut redis = state.redis.clone();
            let earlier =
                flashsale::outbox::order_entry(&mut redis, sale_id.as_str(), &order_id).await?;
            let amount = earlier
                .as_ref()
                .and_then(|e| Money::from_minor_units(e.amount).ok());
            let contact = earlier.map_or_else(|| buyer.typed.clone(), |e| e.contact().to_string());
            (order_id, false, amount, contact)
        }
        ConfirmReply::AmountMismatch { price } => {
            let price = Money::from_minor_units(price).map_err(|_| {
                ApiError::internal(anyhow::anyhow!(
                    "sale {sale_id} has an invalid price {price}"
                ))
            })?;
            return Err(ApiError::bad_request(
                "amount_mismatch",
                format!("totalAmount must be the sale's price, {price}"),
            )
            .with_details(json!({ "expected": price })));
        }
        ConfirmReply::Expired => {
            return Err(ApiError::client(
                StatusCode::GONE,
                "hold_expired",
                "your hold has expired; buy again to rejoin the queue",
            ))
        }
        ConfirmReply::NoHold => {
            return Err(ApiError::forbidden(
                "no_hold",
                "you have no hold in this sale; buy first and wait for your turn",
            ))
        }
        ConfirmReply::SoldOut => return Err(sold_out()),
        ConfirmReply::Ended => return Err(sale_ended()),
    };
    if created {
        tracing::info!(sale = %sale_id, order = order_id, "order confirmed");
    }
    Ok(Json(ConfirmResponse {
        order_id,
        created,
        flash_sale_id: sale_id.to_string(),
        email: recorded_as,
        total_amount,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: String,
    pub user_email: String,
    pub flash_sale_id: String,
    pub payment_status: String,
    #[schema(value_type = Option<String>, example = "49.99")]
    pub total_amount: Option<Money>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// True once the worker has copied the order to MongoDB; false while it
    /// is only in the engine (just confirmed).
    pub persisted: bool,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        OrderView {
            order_id: o.order_id,
            user_email: o.user_email,
            flash_sale_id: o.flash_sale_id,
            payment_status: o.payment_status,
            total_amount: o.total_amount,
            created_at: o.created_at,
            updated_at: o.updated_at,
            persisted: true,
        }
    }
}

/// A customer's order in a sale — from MongoDB, or straight from the engine
/// when the worker has not copied it yet (read your own write).
#[utoipa::path(
    get,
    path = "/orders/by-email",
    tag = "orders",
    params(
        CustomerQuery,
        ("X-Buyer-Token" = String, Header, description = "The buyer token from the buy"),
    ),
    responses(
        (status = 200, body = OrderView),
        (status = 400, body = ErrorBody),
        (status = 401, description = "buyer_token_required or invalid_buyer_token", body = ErrorBody),
        (status = 403, description = "buyer_token_mismatch: another buyer's or another sale's token", body = ErrorBody),
        (status = 404, description = "sale_not_found or order_not_found", body = ErrorBody),
        (status = 429, description = "rate_limited: over the per-client limit (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn by_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CustomerQuery>,
) -> Result<Json<OrderView>, ApiError> {
    let (sale, email) = authorised(&state, &headers, &query)?;
    if let Some(order) = orders::find_for_user(&state.db.orders, &sale, &email).await? {
        return Ok(Json(order.into()));
    }
    let reply = state.live.status(&sale, Some(&email)).await?;
    let Some(UserStatus::Purchased { order_id }) = reply.user else {
        return Err(ApiError::not_found(
            "order_not_found",
            "no order for this email in this sale",
        ));
    };
    if let Some(view) = from_outbox(&state, &sale, &order_id).await? {
        return Ok(Json(view));
    }
    // The worker copied it and trimmed the outbox since we looked.
    if let Some(order) = orders::find_for_user(&state.db.orders, &sale, &email).await? {
        return Ok(Json(order.into()));
    }
    Ok(Json(OrderView {
        order_id,
        user_email: email.to_string(),
        flash_sale_id: sale.to_string(),
        payment_status: records::order::PAID.into(),
        total_amount: None,
        created_at: None,
        updated_at: None,
        persisted: false,
    }))
}

/// The order as the engine's outbox has it, before the worker copied it.
async fn from_outbox(
    state: &AppState,
    sale: &SaleId,
    order_id: &str,
) -> Result<Option<OrderView>, ApiError> {
    let mut redis = state.redis.clone();
    let Some(entry) = flashsale::outbox::order_entry(&mut redis, sale.as_str(), order_id).await?
    else {
        return Ok(None);
    };
    let confirmed_at = Some(time_from_ms(entry.confirmed_at));
    let user_email = entry.contact().to_string();
    Ok(Some(OrderView {
        order_id: entry.order_id,
        user_email,
        flash_sale_id: sale.to_string(),
        payment_status: records::order::PAID.into(),
        total_amount: Money::from_minor_units(entry.amount).ok(),
        created_at: confirmed_at,
        updated_at: confirmed_at,
        persisted: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published bounds of `clientKey` are the ones the server applies.
    #[test]
    fn client_key_schema_is_the_rule() {
        let schema = serde_json::to_value(<BuyRequest as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let key = &schema["properties"]["clientKey"];
        let bounds = buyer_token::CLIENT_KEY_LEN;
        assert_eq!(key["minLength"], *bounds.start(), "{key}");
        assert_eq!(key["maxLength"], *bounds.end(), "{key}");
        let short = "a".repeat(*bounds.start() - 1);
        let long = "a".repeat(*bounds.end() + 1);
        let fits = "a-b_C".repeat(*bounds.end() / 5);
        assert!(ClientKey::parse(&short).is_err());
        assert!(ClientKey::parse(&long).is_err());
        assert!(ClientKey::parse(&fits).is_ok());
        assert!(ClientKey::parse("abcdefghijklmnop!").is_err());
    }
}
