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
/// A follower whose question failed (Redis away) asks again no sooner.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

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
        asked_at: Instant::now(),
        first_sent: false,
        done: false,
    };
    let first = follower.last.clone();
    follower.learn_ticket(&first).await;
    if first.status == CustomerStatus::Queued && follower.ticket.is_none() {
        // Queued a moment ago, not now: admitted (or gone) in between —
        // the first own check is due at once.
        follower.checked_at = Instant::now()
            .checked_sub(OWN_CHECK_EVERY)
            .unwrap_or(follower.checked_at);
        follower.asked_at = follower.checked_at;
    }
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        let view = follower.next().await?;
        Some((Ok(event(&view)), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// When a follower must ask the engine about its buyer even if the sale's
/// feed says nothing new: at the hold's end (the feed does not tell one
/// buyer's hold from another's), and — every [`OWN_CHECK_EVERY`] — while
/// queued at a ticket it does not know. The ticket is read right after the
/// first state, so a buyer admitted between the two reads is "queued" with
/// no ticket; in a quiet sale the feed may never change again, and without
/// this the stream would say "queued" for ever.
fn own_check_due(
    last: &PositionResponse,
    knows_ticket: bool,
    checked_at: Instant,
) -> Option<Instant> {
    match (last.status, last.hold_ttl_sec) {
        (CustomerStatus::Ready, Some(secs)) => {
            Some(checked_at + Duration::from_secs(secs) + HOLD_END_SLACK)
        }
        (CustomerStatus::Queued, _) if !knows_ticket => Some(checked_at + OWN_CHECK_EVERY),
        _ => None,
    }
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
    /// When the engine last told this buyer's state.
    checked_at: Instant,
    /// When the engine was last asked, answering or not.
    asked_at: Instant,
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
            let wake_at = own_check_due(&self.last, self.ticket.is_some(), self.checked_at)
                .map(|at| at.max(self.asked_at + RETRY_PAUSE));
            let snapshot = match wake_at {
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
            let due = wake_at.is_some_and(|at| Instant::now() >= at);
            let Some(view) = self.view(snapshot.as_ref(), due).await else {
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
    /// yet (no snapshot, or the engine was asked too recently). `due`: the
    /// time [`own_check_due`] gave has come.
    async fn view(&mut self, snapshot: Option<&Snapshot>, due: bool) -> Option<PositionResponse> {
        let mut ask_now = due;
        match self.last.status {
            CustomerStatus::Queued => {
                if let Some(ticket) = self.ticket {
                    let snapshot = snapshot?;
                    if let Some(place) = snapshot.place_of(ticket) {
                        return Some(self.queued_at(snapshot, place));
                    }
                    // Admitted (or gone): worth asking at once.
                    ask_now = snapshot.has_left(ticket);
                }
            }
            // Confirming is the buyer's own request: only the hold's end
            // is news the feed cannot tell.
            CustomerStatus::Ready if !due => {
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
        self.asked_at = Instant::now();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: CustomerStatus, hold_ttl_sec: Option<u64>) -> PositionResponse {
        PositionResponse {
            status,
            position: None,
            size: 0,
            hold_ttl_sec,
            estimated_wait_sec: None,
            order_id: None,
            sale_status: SaleState::Active,
            server_time: time_from_ms(0),
        }
    }

    #[test]
    fn a_hold_is_checked_at_its_end() {
        let at = Instant::now();
        assert_eq!(
            own_check_due(&view(CustomerStatus::Ready, Some(3)), false, at),
            Some(at + Duration::from_secs(3) + HOLD_END_SLACK)
        );
    }

    #[test]
    fn a_place_the_feed_cannot_tell_is_checked_on_its_own() {
        let at = Instant::now();
        // Queued with no ticket known: the feed alone may never say more.
        assert_eq!(
            own_check_due(&view(CustomerStatus::Queued, None), false, at),
            Some(at + OWN_CHECK_EVERY)
        );
        // With the ticket the feed tells the place and the admission.
        assert_eq!(
            own_check_due(&view(CustomerStatus::Queued, None), true, at),
            None
        );
        assert_eq!(
            own_check_due(&view(CustomerStatus::Purchased, None), false, at),
            None
        );
    }
}
