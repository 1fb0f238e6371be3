//! What the sale routes answer: the public page of a sale and the admin's
//! view, built from the MongoDB document and the engine's live figures.

use chrono::{DateTime, Utc};
use flashsale::{DrawReply, SaleStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Money;
use crate::error::ApiError;
use crate::routes::{ceil_secs, time_from_bson, time_from_ms};
use crate::store::sales::SaleDoc;

/// A sale's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Active,
    Ended,
    SoldOut,
    /// Live, but stopped by an admin: nobody new queues or is admitted;
    /// those queued keep their place, holders can still buy.
    Paused,
}

impl From<flashsale::SaleState> for SaleState {
    fn from(state: flashsale::SaleState) -> Self {
        match state {
            flashsale::SaleState::Upcoming => SaleState::Upcoming,
            flashsale::SaleState::Active => SaleState::Active,
            flashsale::SaleState::Ended => SaleState::Ended,
            flashsale::SaleState::SoldOut => SaleState::SoldOut,
            flashsale::SaleState::Paused => SaleState::Paused,
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
    /// The pre-queue window, when the sale has one: buys from
    /// `registrationOpensAt` until the start are registered, and enter the
    /// queue at the start in the order drawn.
    pub pre_queue_seconds: Option<u64>,
    pub registration_opens_at: Option<DateTime<Utc>>,
    /// When the draw happens: the start (within a worker poll of it).
    pub draw_at: Option<DateTime<Utc>>,
    /// When it happened; null until then.
    pub drawn_at: Option<DateTime<Utc>>,
    /// Buyers registered so far (before the draw) or drawn (after it).
    pub registered: Option<u64>,
    /// SHA-1 (hex) of the seed, published before the window opens: the
    /// seed revealed after the draw must hash to it.
    pub seed_commitment: Option<String>,
    /// The seed (64 hex), revealed after the draw only. Recompute the order
    /// with `GET /flash-sales/{saleId}/public/draw`.
    pub seed: Option<String>,
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
    /// Units not sold: the engine's stock − sold when it has the sale,
    /// otherwise as last recorded in MongoDB (the worker keeps it).
    pub current_quantity: u64,
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub hold_ttl_seconds: u64,
    pub rate: Option<u64>,
    pub max_queue: Option<u64>,
    /// The pre-queue window in seconds; null: none.
    pub pre_queue_seconds: Option<u64>,
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
        current_quantity: live.map_or(non_negative(sale.current_quantity), |l| {
            l.stock.saturating_sub(l.sold)
        }),
        price_per_unit: price_of(sale)?,
        starts_at: time_from_bson(sale.starts_at),
        ends_at: time_from_bson(sale.ends_at),
        hold_ttl_seconds: sale
            .hold_ttl_seconds
            .map(non_negative)
            .unwrap_or(default_hold_secs),
        rate: sale.rate.map(non_negative),
        max_queue: sale.max_queue.map(non_negative),
        pre_queue_seconds: sale.pre_queue_seconds.map(non_negative),
        created_at: time_from_bson(sale.created_at),
        updated_at: time_from_bson(sale.updated_at),
        live: live.map(LiveFigures::from),
    })
}

impl PublicSale {
    /// The offer from MongoDB; the window and the figures from the engine,
    /// whose window is the one that is enforced; the lottery from the
    /// engine's DRAW (`None`: not asked, the sale has no window).
    pub fn new(
        sale: &SaleDoc,
        live: &SaleStatus,
        draw: Option<&DrawReply>,
    ) -> Result<PublicSale, ApiError> {
        let lottery = LotteryView::of(draw, live.starts_at);
        Ok(PublicSale {
            id: sale.id.clone(),
            name: sale.name.clone(),
            description: sale.description.clone(),
            price_per_unit: price_of(sale)?,
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
            pre_queue_seconds: lottery.pre_queue_seconds,
            registration_opens_at: lottery.registration_opens_at,
            draw_at: lottery.draw_at,
            drawn_at: lottery.drawn_at,
            registered: lottery.registered,
            seed_commitment: lottery.seed_commitment,
            seed: lottery.seed,
        })
    }
}

/// Where a sale's lottery stands, from the engine's DRAW: what the public
/// sale and the draw page show.
#[derive(Debug, Default)]
pub struct LotteryView {
    pub status: DrawStatus,
    pub pre_queue_seconds: Option<u64>,
    pub registration_opens_at: Option<DateTime<Utc>>,
    pub draw_at: Option<DateTime<Utc>>,
    pub drawn_at: Option<DateTime<Utc>>,
    pub registered: Option<u64>,
    pub seed_commitment: Option<String>,
    pub seed: Option<String>,
}

/// The lottery's stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrawStatus {
    /// The sale has no pre-queue window.
    #[default]
    None,
    /// Registrations open or to come; the seed is hidden, its commitment
    /// published.
    Pending,
    /// Drawn: the seed is revealed and the order published.
    Drawn,
}

impl LotteryView {
    pub fn of(draw: Option<&DrawReply>, starts_at: u64) -> LotteryView {
        let window = |prequeue_ms: u64| LotteryView {
            pre_queue_seconds: Some(prequeue_ms / 1000),
            registration_opens_at: Some(time_from_ms(starts_at.saturating_sub(prequeue_ms))),
            draw_at: Some(time_from_ms(starts_at)),
            ..LotteryView::default()
        };
        match draw {
            None | Some(DrawReply::None) => LotteryView::default(),
            Some(DrawReply::Pending {
                prequeue_ms,
                registered,
                commitment,
            }) => LotteryView {
                status: DrawStatus::Pending,
                registered: Some(*registered),
                seed_commitment: Some(commitment.clone()),
                ..window(*prequeue_ms)
            },
            Some(DrawReply::Drawn {
                prequeue_ms,
                drawn_at,
                total,
                seed,
                ..
            }) => LotteryView {
                status: DrawStatus::Drawn,
                drawn_at: Some(time_from_ms(*drawn_at)),
                registered: Some(*total),
                seed_commitment: Some(engine::lottery::commitment(seed)),
                seed: Some(seed.clone()),
                ..window(*prequeue_ms)
            },
        }
    }
}

/// A page of a sale's published draw: the buyers registered in the
/// pre-queue window, as SHA-1 (hex) of their identity (the normalised
/// e-mail address), in the order they entered the queue. To check it: sort
/// all entries by SHA-1 of `seed + ":" + entry` (hex, ascending) — that is
/// the order — and find your own place as the position of SHA-1 of your
/// address.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrawPage {
    pub sale_id: String,
    pub status: DrawStatus,
    pub pre_queue_seconds: Option<u64>,
    pub drawn_at: Option<DateTime<Utc>>,
    pub seed_commitment: Option<String>,
    /// Null until the draw.
    pub seed: Option<String>,
    /// Entries in the whole draw (registered so far, before it).
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    /// This page's entries, in draw order; empty before the draw.
    pub entries: Vec<String>,
}
