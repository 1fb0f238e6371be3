//! One feed per sale that somebody follows (Server-Sent Events): a single
//! task reads the sale's state — its STATUS and the tickets at the head and
//! the tail of the queue — a few times a second, and publishes a snapshot
//! when it changed. Every connection of that sale derives its buyer's place
//! from the snapshot (`ticket - head + 1` while the queue's tickets have no
//! gap), so a thousand followers cost the engine what one does; a buyer is
//! asked about on their own only when their state changes (admitted, hold
//! over). The task ends when the last follower goes.
//!
//! Admins watching a sale's live view (`GET /flash-sales/{saleId}/live`)
//! follow the same feed: the snapshot's STATUS has every figure the view
//! shows, so N dashboards and M buyers on one sale still cost one read per
//! tick. The feeds also count the streams each admin account holds open
//! ([`SaleFeeds::take_viewer_slot`]): the per-address cap of the HTTP layer
//! is for the buyer stream, and an admin is better known by account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale::SaleStatus;
use tokio::sync::watch;

use crate::domain::SaleId;
use crate::live_sales::LiveSales;

/// How often a followed sale is read.
const TICK: Duration = Duration::from_millis(200);
/// After this many failed reads in a row (Redis away), followers are told
/// nothing new until it answers again; the feed keeps trying.
const QUIET_AFTER_FAILURES: u32 = 5;

/// What every follower of a sale sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sale: SaleStatus,
    /// The tickets at the head and the tail of the queue.
    pub queue_ends: Option<(u64, u64)>,
}

impl Snapshot {
    /// The place of the buyer holding `ticket`: `None` when they are no
    /// longer queued (admitted or gone), or when the queue has gaps (someone
    /// left from the middle) and only the engine can tell.
    pub fn place_of(&self, ticket: u64) -> Option<u64> {
        let (head, tail) = self.queue_ends?;
        if ticket < head || ticket > tail {
            return None;
        }
        let contiguous = tail - head + 1 == self.sale.queued;
        contiguous.then(|| ticket - head + 1)
    }

    /// Whether the buyer holding `ticket` has left the queue (admitted,
    /// or gone): tickets only grow, so one outside head..=tail is not
    /// queued.
    pub fn has_left(&self, ticket: u64) -> bool {
        self.queue_ends
            .is_none_or(|(head, tail)| ticket < head || ticket > tail)
    }

    /// Equal for followers: the clock alone moving is no news.
    fn same_news(&self, other: &Snapshot) -> bool {
        let mut a = self.sale.clone();
        a.now = other.sale.now;
        a == other.sale && self.queue_ends == other.queue_ends
    }
}

#[derive(Clone, Default)]
pub struct SaleFeeds {
    feeds: Arc<Mutex<HashMap<String, watch::Sender<Option<Snapshot>>>>>,
    /// Streams open now per viewer (an admin account's id).
    viewers: Arc<Mutex<HashMap<String, u32>>>,
}

/// One open stream of a viewer, given back when dropped (the stream ended
/// or its client went away).
pub struct ViewerSlot {
    viewer: String,
    viewers: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        if let Ok(mut viewers) = self.viewers.lock() {
            if let Some(n) = viewers.get_mut(&self.viewer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    viewers.remove(&self.viewer);
                }
            }
        }
    }
}

impl SaleFeeds {
    /// Follows `sale`: the latest snapshot (`None` until the first read) and
    /// every change after it. Starts the sale's feed if nobody follows it.
    pub fn follow(&self, live: &LiveSales, sale: &SaleId) -> watch::Receiver<Option<Snapshot>> {
        let Ok(mut feeds) = self.feeds.lock() else {
            // A poisoned lock: a receiver that never changes; the stream
            // still sends the buyer's first state and keep-alives.
            return watch::channel(None).1;
        };
        if let Some(sender) = feeds.get(sale.as_str()) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        feeds.insert(sale.as_str().to_string(), sender.clone());
        tokio::spawn(run(self.clone(), live.clone(), sale.clone(), sender));
        receiver
    }

    /// Sales followed now (for tests and metrics).
    pub fn followed(&self) -> usize {
        self.feeds.lock().map(|feeds| feeds.len()).unwrap_or(0)
    }

    /// A slot for one more stream of `viewer`, or `None` when they hold
    /// `cap` open already (each is a connection and a task for as long as
    /// a dashboard stays open, so a leaking client must not pile them up).
    pub fn take_viewer_slot(&self, viewer: &str, cap: u32) -> Option<ViewerSlot> {
        let mut viewers = self.viewers.lock().ok()?;
        let n = viewers.entry(viewer.to_string()).or_insert(0);
        if *n >= cap.max(1) {
            return None;
        }
        *n += 1;
        Some(ViewerSlot {
            viewer: viewer.to_string(),
            viewers: self.viewers.clone(),
        })
    }

    /// Streams `viewer` holds open now (tests, metrics).
    pub fn viewer_streams(&self, viewer: &str) -> u32 {
        self.viewers
            .lock()
            .map_or(0, |viewers| viewers.get(viewer).copied().unwrap_or(0))
    }

    /// Removes the sale's feed if nobody follows it; whether it did. Under
    /// the lock, so a follower arriving meanwhile gets a running feed.
    fn close_if_unfollowed(&self, sale: &SaleId, sender: &watch::Sender<Option<Snapshot>>) -> bool {
        let Ok(mut feeds) = self.feeds.lock() else {
            return true;
        };
        if sender.receiver_count() > 0 {
            return false;
        }
        feeds.remove(sale.as_str());
        true
    }
}

async fn run(
    feeds: SaleFeeds,
    live: LiveSales,
    sale: SaleId,
    sender: watch::Sender<Option<Snapshot>>,
) {
    let mut failures = 0u32;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if feeds.close_if_unfollowed(&sale, &sender) {
            return;
        }
        match read(&live, &sale).await {
            Ok(snapshot) => {
                failures = 0;
                sender.send_if_modified(|current| match current {
                    Some(old) if old.same_news(&snapshot) => false,
                    _ => {
                        *current = Some(snapshot);
                        true
                    }
                });
            }
            Err(error) => {
                failures += 1;
                if failures == QUIET_AFTER_FAILURES {
                    tracing::warn!(sale = %sale, %error, "cannot read a followed sale; retrying");
                }
            }
        }
    }
}

async fn read(live: &LiveSales, sale: &SaleId) -> Result<Snapshot, crate::error::ApiError> {
    let status = live.status(sale, None).await?.sale;
    let queue_ends = if status.queued > 0 {
        live.client().await?.queue_ends(sale.as_str()).await?
    } else {
        None
    };
    Ok(Snapshot {
        sale: status,
        queue_ends,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale::SaleState;

    fn snapshot(queued: u64, ends: Option<(u64, u64)>) -> Snapshot {
        Snapshot {
            sale: SaleStatus {
                state: SaleState::Active,
                stock: 10,
                sold: 0,
                held: 0,
                queued,
                starts_at: 0,
                ends_at: 10,
                hold_ttl_ms: 1000,
                rate: 0,
                max_queue: 0,
                now: 5,
            },
            queue_ends: ends,
        }
    }

    #[test]
    fn places_come_from_the_tickets_while_the_queue_has_no_gap() {
        let s = snapshot(5, Some((11, 15)));
        assert_eq!(s.place_of(11), Some(1));
        assert_eq!(s.place_of(15), Some(5));
        // Admitted (below the head) or not in this queue.
        assert_eq!(s.place_of(10), None);
        assert_eq!(s.place_of(16), None);
        // Someone left from the middle: only the engine knows.
        assert_eq!(snapshot(4, Some((11, 15))).place_of(12), None);
        assert_eq!(snapshot(0, None).place_of(1), None);
        assert!(s.has_left(10) && !s.has_left(11) && !s.has_left(15) && s.has_left(16));
        assert!(snapshot(0, None).has_left(1));
    }

    #[test]
    fn the_clock_alone_is_no_news() {
        let a = snapshot(5, Some((11, 15)));
        let mut b = a.clone();
        b.sale.now = 99;
        assert!(a.same_news(&b));
        b.sale.held = 1;
        assert!(!a.same_news(&b));
    }

    #[test]
    fn a_viewer_holds_at_most_cap_streams_and_gets_them_back() {
        let feeds = SaleFeeds::default();
        let one = feeds.take_viewer_slot("ann", 2);
        let two = feeds.take_viewer_slot("ann", 2);
        assert!(one.is_some() && two.is_some());
        assert!(feeds.take_viewer_slot("ann", 2).is_none());
        // Another account has its own count.
        assert!(feeds.take_viewer_slot("bob", 2).is_some());
        assert_eq!(feeds.viewer_streams("ann"), 2);
        drop(one);
        assert_eq!(feeds.viewer_streams("ann"), 1);
        assert!(feeds.take_viewer_slot("ann", 2).is_some());
        drop(two);
        assert_eq!(feeds.viewer_streams("ann"), 0);
    }
}
