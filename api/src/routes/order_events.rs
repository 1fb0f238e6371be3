//! A buyer's state pushed as it changes (Server-Sent Events), instead of
//! polled: `queued` with each new place, `ready` with the hold's seconds
//! when admitted, then `purchased` or `expired` — each a `status` event
//! whose data is the same JSON as `GET /orders/position`. The stream ends
//! after a state that no longer changes by itself (purchased, expired, not
//! in the sale, the sale over). Driven by the sale's feed
//! ([`crate::sale_feed`]), not by a timer per connection.
//!
//! Like every request about a buyer it needs the buyer's token, in its
//! header: never in the URL, where proxies and browsers keep it (the pages
//! read the stream with `fetch`, which can set headers; `EventSource`
//! cannot).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use tokio::sync::watch;

use super::orders::{
    authorised, estimated_wait, position_view, CustomerQuery, CustomerStatus, PositionResponse,
};
use super::sales::SaleState;
use super::time_from_ms;
use crate::domain::{Email, SaleId};
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::Query;
use crate::sale_feed::Snapshot;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/orders/events", get(events))
}

/// A follower asks the engine about its own buyer at most this often (a
/// queue with gaps; the common case needs no call of its own).
const OWN_CHECK_EVERY: Duration = Duration::from_secs(2);
/// After the hold's end, the engine is asked again this much later.
const HOLD_END_SLACK: Duration = Duration::from_millis(200);

/// Follow a customer's state (Server-Sent Events; the buyer's token
/// required, in its header).
#[utoipa::path(
    get,
    path = "/orders/events",
    tag = "orders",
    params(
        CustomerQuery,
        ("X-Buyer-Token" = String, Header, description = "The buyer token from the buy"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `status` events, each data a PositionResponse; the first at once", content_type = "text/event-stream", body = crate::http::sse_schema::StatusEvent),
        (status = 400, body = ErrorBody),
        (status = 401, description = "buyer_token_required or invalid_buyer_token", body = ErrorBody),
        (status = 403, description = "buyer_token_mismatch: another buyer's or another sale's token", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "rate_limited: over the per-client limit, or too many streams open (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(customer): Query<CustomerQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (sale, email) = authorised(&state, &headers, &customer)?;
    // The first state exactly, and an unknown sale refused before streaming.
    let reply = state.live.status(&sale, Some(&email)).await?;
    let first = position_view(&state, &sale, &email, reply);
    let feed = state.live.feeds.follow(&state.live, &sale);
    let mut follower = Follower {
        state,
        sale,
        email,
        ticket: None,
        last: first,
        feed,
        checked_at: Instant::now(),
        first_sent: false,
        done: false,
    };
    let first = follower.last.clone();
    follower.learn_ticket(&first).await;
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        let view = follower.next().await?;
        Some((Ok(event(&view)), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn event(view: &PositionResponse) -> Event {
    Event::default()
        .event("status")
        .json_data(view)
        .unwrap_or_else(|_| Event::default().event("status"))
}

/// Whether a buyer would see a difference (not the clock, not the queue
/// growing behind them).
fn news(before: &PositionResponse, after: &PositionResponse) -> bool {
    before.status != after.status
        || before.position != after.position
        || before.sale_status != after.sale_status
        || before.order_id != after.order_id
        || before.hold_ttl_sec.is_some() != after.hold_ttl_sec.is_some()
}

/// A state that no longer changes by itself: the stream ends after it.
fn settled(view: &PositionResponse) -> bool {
    match view.status {
        CustomerStatus::Purchased | CustomerStatus::Expired => true,
        CustomerStatus::None => true,
        // Waits for the draw at the start; an ended sale draws nobody.
        CustomerStatus::Registered => matches!(view.sale_status, SaleState::Ended),
        CustomerStatus::Queued | CustomerStatus::Ready => {
            matches!(view.sale_status, SaleState::Ended | SaleState::SoldOut)
                && view.status == CustomerStatus::Queued
        }
    }
}

struct Follower {
    state: AppState,
    sale: SaleId,
    email: Email,
    /// The buyer's arrival ticket while queued.
    ticket: Option<u64>,
    last: PositionResponse,
    feed: watch::Receiver<Option<Snapshot>>,
    /// When the engine was last asked about this buyer.
    checked_at: Instant,
    first_sent: bool,
    done: bool,
}

impl Follower {
    /// Reads the buyer's ticket if `view` says they are queued.
    async fn learn_ticket(&mut self, view: &PositionResponse) {
        self.ticket = None;
        if view.status != CustomerStatus::Queued {
            return;
        }
        if let Ok(mut client) = self.state.live.client().await {
            self.ticket = client
                .queue_ticket(self.sale.as_str(), self.email.as_str())
                .await
                .ok()
                .flatten();
        }
    }

    /// The next state worth sending; `None` ends the stream.
    async fn next(&mut self) -> Option<PositionResponse> {
        if !self.first_sent {
            self.first_sent = true;
            self.done = settled(&self.last);
            return Some(self.last.clone());
        }
        if self.done {
            return None;
        }
        loop {
            let hold_ends = match (self.last.status, self.last.hold_ttl_sec) {
                (CustomerStatus::Ready, Some(secs)) => {
                    Some(self.checked_at + Duration::from_secs(secs) + HOLD_END_SLACK)
                }
                _ => None,
            };
            let snapshot = match hold_ends {
                Some(at) => tokio::select! {
                    changed = self.feed.changed() => {
                        changed.ok()?;
                        self.feed.borrow_and_update().clone()
                    }
                    () = tokio::time::sleep_until(at.into()) => None,
                },
                None => {
                    self.feed.changed().await.ok()?;
                    self.feed.borrow_and_update().clone()
                }
            };
            let hold_over = hold_ends.is_some_and(|at| Instant::now() >= at);
            let Some(view) = self.view(snapshot.as_ref(), hold_over).await else {
                continue;
            };
            if news(&self.last, &view) {
                self.done = settled(&view);
                self.last = view.clone();
                return Some(view);
            }
            self.last = view;
        }
    }

    /// The buyer's state after `snapshot`; `None` when nothing can be said
    /// yet (no snapshot, or the engine was asked too recently).
    async fn view(
        &mut self,
        snapshot: Option<&Snapshot>,
        hold_over: bool,
    ) -> Option<PositionResponse> {
        let mut ask_now = hold_over;
        match self.last.status {
            CustomerStatus::Queued => {
                let snapshot = snapshot?;
                if let Some(ticket) = self.ticket {
                    if let Some(place) = snapshot.place_of(ticket) {
                        return Some(self.queued_at(snapshot, place));
                    }
                    // Admitted (or gone): worth asking at once.
                    ask_now = snapshot.has_left(ticket);
                }
            }
            // Confirming is the buyer's own request: only the hold's end
            // is news the feed cannot tell.
            CustomerStatus::Ready if !hold_over => {
                let mut view = self.last.clone();
                if let Some(snapshot) = snapshot {
                    view.sale_status = snapshot.sale.state.into();
                    view.server_time = time_from_ms(snapshot.sale.now);
                }
                return Some(view);
            }
            _ => {}
        }
        if !ask_now && self.checked_at.elapsed() < OWN_CHECK_EVERY {
            return None;
        }
        let reply = self
            .state
            .live
            .status(&self.sale, Some(&self.email))
            .await
            .ok()?;
        self.checked_at = Instant::now();
        let view = position_view(&self.state, &self.sale, &self.email, reply);
        if view.status == CustomerStatus::Queued && self.ticket.is_none() {
            self.learn_ticket(&view).await;
        }
        Some(view)
    }

    fn queued_at(&self, snapshot: &Snapshot, place: u64) -> PositionResponse {
        let sale = &snapshot.sale;
        PositionResponse {
            status: CustomerStatus::Queued,
            position: Some(place),
            size: sale.queued,
            hold_ttl_sec: None,
            estimated_wait_sec: estimated_wait(
                &self.state,
                &self.sale,
                &self.email,
                place,
                sale.rate,
            ),
            order_id: None,
            sale_status: sale.state.into(),
            server_time: time_from_ms(sale.now),
        }
    }
}
