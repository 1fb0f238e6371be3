//! A sale's live figures pushed to the admin dashboard (Server-Sent
//! Events), instead of polled: an `overview` event — the same JSON as
//! `GET /orders/admin/queue/{saleId}/overview` — at once and whenever a
//! figure changes (queue, holds, sold, stock, rate, state), and a keep-alive
//! comment every 15 s in between. Driven by the sale's feed
//! ([`crate::sale_feed`]), which buyers' streams share: any number of admin
//! and buyer streams on one sale cost the engine one read per feed tick,
//! not a timer per connection.
//!
//! Admin-only like the other sale routes (`Authorization: Bearer`, which a
//! browser's EventSource cannot send, so the dashboard reads the stream with
//! `fetch`; the token never goes in the URL). The stream ends when the
//! client goes away, when the token expires, or when it is signed out
//! (checked every 30 s); the dashboard then reconnects or signs in again.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use flashsale::SaleStatus;
use futures::Stream;
use tokio::sync::watch;
use tokio::time::{Instant, Interval};

use crate::auth::{revocation, AdminUser};
use crate::domain::SaleId;
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::Path;
use crate::routes::admin::QueueOverview;
use crate::sale_feed::{Snapshot, ViewerSlot};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/flash-sales/{saleId}/live", get(live))
}

/// Streams one admin account may hold open at once: a dashboard needs one
/// per tab; each is a connection and a task for as long as the tab stays.
pub const MAX_STREAMS_PER_ADMIN: u32 = 10;
/// A comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream asks whether its token was signed out (one
/// Redis EXISTS, never the engine).
const REVOCATION_CHECK: Duration = Duration::from_secs(30);

/// Follow a sale's live figures (Server-Sent Events; admin).
#[utoipa::path(
    get,
    path = "/flash-sales/{saleId}/live",
    tag = "admin",
    params(("saleId" = crate::domain::SaleId, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `overview` events, each data a QueueOverview (as `GET /orders/admin/queue/{saleId}/overview`); the first at once, then on every change of a figure; a keep-alive comment every 15 s. Ends when the token expires or is signed out", content_type = "text/event-stream", body = crate::http::sse_schema::OverviewEvent),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not_admin", body = ErrorBody),
        (status = 404, description = "sale_not_found", body = ErrorBody),
        (status = 429, description = "rate_limited: this account holds 10 live streams open already (Retry-After)", body = ErrorBody),
    )
)]
pub async fn live(
    admin: AdminUser,
    State(state): State<AppState>,
    Path(sale_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let sale = SaleId::parse(&sale_id)?;
    let slot = state
        .live
        .feeds
        .take_viewer_slot(&admin.id.to_hex(), MAX_STREAMS_PER_ADMIN)
        .ok_or_else(|| {
            ApiError::client(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("at most {MAX_STREAMS_PER_ADMIN} live streams open at once per admin"),
            )
            .with_retry_after(1)
        })?;
    // The first figures exactly, and an unknown sale refused before
    // streaming (one read per stream opened, not per second).
    let first = state.live.status(&sale, None).await?.sale;
    let feed = state.live.feeds.follow(&state.live, &sale);
    let viewer = Viewer {
        expires_at: token_deadline(admin.claims.exp),
        revocation: tokio::time::interval_at(Instant::now() + REVOCATION_CHECK, REVOCATION_CHECK),
        jti: admin.claims.jti,
        state,
        sale,
        last: Figures::of(&first),
        first: Some(first),
        feed,
        _slot: slot,
    };
    let stream = futures::stream::unfold(viewer, |mut viewer| async move {
        let view = viewer.next().await?;
        Some((Ok(event(&view)), viewer))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// When a token expiring at `exp` (unix seconds) stops being good.
fn token_deadline(exp: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

fn event(view: &QueueOverview) -> Event {
    Event::default()
        .event("overview")
        .json_data(view)
        .unwrap_or_else(|_| Event::default().event("overview"))
}

/// What the dashboard shows: a change here is news, the clock or the
/// queue's tickets alone are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    state: flashsale::SaleState,
    queued: u64,
    held: u64,
    sold: u64,
    stock: u64,
    rate: u64,
}

impl Figures {
    fn of(live: &SaleStatus) -> Figures {
        Figures {
            state: live.state,
            queued: live.queued,
            held: live.held,
            sold: live.sold,
            stock: live.stock,
            rate: live.rate,
        }
    }
}

struct Viewer {
    state: AppState,
    sale: SaleId,
    /// The figures last sent.
    last: Figures,
    /// The first figures, until sent.
    first: Option<SaleStatus>,
    feed: watch::Receiver<Option<Snapshot>>,
    /// The token's expiry: the stream ends there.
    expires_at: Instant,
    revocation: Interval,
    jti: String,
    /// Counts this stream against its admin's cap while it lives.
    _slot: ViewerSlot,
}

impl Viewer {
    /// The next figures worth sending; `None` ends the stream.
    async fn next(&mut self) -> Option<QueueOverview> {
        if let Some(first) = self.first.take() {
            return Some(QueueOverview::of(&self.sale, &first));
        }
        loop {
            tokio::select! {
                changed = self.feed.changed() => {
                    // The feed gone (it never goes while followed): end,
                    // and the dashboard falls back to polling.
                    changed.ok()?;
                    let snapshot = self.feed.borrow_and_update().clone();
                    if let Some(snapshot) = snapshot {
                        let figures = Figures::of(&snapshot.sale);
                        if figures != self.last {
                            self.last = figures;
                            return Some(QueueOverview::of(&self.sale, &snapshot.sale));
                        }
                    }
                }
                () = tokio::time::sleep_until(self.expires_at) => return None,
                _ = self.revocation.tick() => {
                    // Redis away: keep streaming; the next check decides.
                    let mut redis = self.state.redis.clone();
                    if revocation::is_revoked(&mut redis, &self.jti).await.unwrap_or(false) {
                        return None;
                    }
                }
            }
        }
    }
}
