//! How fast each sale's queue moves, measured from the places buyers are
//! told. When a buyer asks again, the places they moved up per second is
//! the rate at which the queue ahead of them drains (admissions, and people
//! leaving); a moving average of those rates per sale gives every queued
//! buyer an estimated wait — in sales without a RATE too, and closer to the
//! truth than RATE in sales with one (holds that are never confirmed come
//! back, buyers leave). No Redis call: the positions come from the replies
//! the API gives anyway. Each API instance measures on its own.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Two observations of one buyer closer than this are too noisy to use;
/// the older one is kept as the baseline.
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Weight of each new sample in the sale's moving average.
const SMOOTHING: f64 = 0.2;
/// A rate not updated for this long is stale (the queue stopped, or nobody
/// asks any more): no estimate from it.
const RATE_FRESH_FOR: Duration = Duration::from_secs(30);
/// A buyer's last observation is kept at least this long, and forgotten
/// within twice this long: observations are kept in two generations of
/// this length, the older one dropped whole when a new one starts.
const BUYER_FORGOTTEN_AFTER: Duration = Duration::from_secs(60);
/// Buyers remembered per sale at most (both generations); beyond it, new
/// buyers are not remembered until the old generation is dropped.
const MAX_BUYERS_PER_SALE: usize = 500_000;
/// Sales remembered at most; beyond it, sales not seen for a while go.
const MAX_SALES: usize = 10_000;

#[derive(Clone, Default)]
pub struct QueueDrain(Arc<Drains>);

#[derive(Default)]
struct Drains {
    sales: Mutex<HashMap<String, SaleDrain>>,
    /// Buyers are remembered by a keyed 64-bit hash of their identity: no
    /// copy of the address per buy, a third of the memory, and a client
    /// cannot make two buyers collide (one collision would only be one
    /// wrong sample of a moving average).
    hasher: RandomState,
}

struct SaleDrain {
    /// Per buyer (their identity's hash): when they were last told a place,
    /// and which — since `generation_at`...
    seen: HashMap<u64, (Instant, u64)>,
    /// ...and in the generation before (a buyer's newer observation is in
    /// `seen`).
    seen_before: HashMap<u64, (Instant, u64)>,
    /// Places per second, and when it was last updated.
    rate: Option<(f64, Instant)>,
    generation_at: Instant,
    used_at: Instant,
}

impl SaleDrain {
    fn new(now: Instant) -> Self {
        SaleDrain {
            seen: HashMap::new(),
            seen_before: HashMap::new(),
            rate: None,
            generation_at: now,
            used_at: now,
        }
    }

    /// Starts a new generation when the current one is old enough: the one
    /// before is dropped whole (no sweep over every buyer; with sweeps, a
    /// sale holding its maximum of buyers all younger than a minute swept
    /// them all on every buy).
    fn age(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.generation_at);
        if age < BUYER_FORGOTTEN_AFTER {
            return;
        }
        if age >= 2 * BUYER_FORGOTTEN_AFTER {
            self.seen = HashMap::new();
            self.seen_before = HashMap::new();
        } else {
            self.seen_before = std::mem::take(&mut self.seen);
        }
        self.generation_at = now;
    }

    fn observe(&mut self, buyer: u64, position: u64, now: Instant) {
        self.used_at = now;
        self.age(now);
        let last = self
            .seen
            .get(&buyer)
            .or_else(|| self.seen_before.get(&buyer))
            .copied();
        if let Some((at, before)) = last {
            let elapsed = now.saturating_duration_since(at);
            if elapsed < MIN_INTERVAL {
                return;
            }
            // A place further back means the buyer queued again: no sample.
            if position <= before {
                let sample = (before - position) as f64 / elapsed.as_secs_f64();
                let rate = match self.rate {
                    Some((rate, _)) => rate + SMOOTHING * (sample - rate),
                    None => sample,
                };
                self.rate = Some((rate, now));
            }
        }
        if let Some(seen) = self.seen.get_mut(&buyer) {
            *seen = (now, position);
        } else if self.seen.len() + self.seen_before.len() < MAX_BUYERS_PER_SALE {
            self.seen.insert(buyer, (now, position));
        }
    }

    fn rate(&self, now: Instant) -> Option<f64> {
        let (rate, at) = self.rate?;
        (now.saturating_duration_since(at) < RATE_FRESH_FOR && rate > 0.0).then_some(rate)
    }
}

impl QueueDrain {
    /// Records that `buyer` was told `position` in `sale`'s queue at `now`.
    pub fn observe(&self, sale: &str, buyer: &str, position: u64, now: Instant) {
        self.observe_then_rate(sale, buyer, position, now);
    }

    /// [`QueueDrain::observe`], then [`QueueDrain::estimated_wait`] for
    /// that place: one lock for both (a buy does both).
    pub fn observe_and_estimate(
        &self,
        sale: &str,
        buyer: &str,
        position: u64,
        rate: u64,
        now: Instant,
    ) -> Option<u64> {
        let measured = self.observe_then_rate(sale, buyer, position, now);
        estimate(measured, position, rate)
    }

    /// Observes, and answers the sale's measured rate after it.
    fn observe_then_rate(
        &self,
        sale: &str,
        buyer: &str,
        position: u64,
        now: Instant,
    ) -> Option<f64> {
        let buyer = self.0.hasher.hash_one(buyer);
        let Ok(mut sales) = self.0.sales.lock() else {
            return None;
        };
        // A sale seen before (nearly every buy): no copy of its id.
        if let Some(drain) = sales.get_mut(sale) {
            drain.observe(buyer, position, now);
            return drain.rate(now);
        }
        if sales.len() >= MAX_SALES {
            sales.retain(|_, drain| now.saturating_duration_since(drain.used_at) < RATE_FRESH_FOR);
            if sales.len() >= MAX_SALES {
                return None;
            }
        }
        let drain = sales
            .entry(sale.to_string())
            .or_insert_with(|| SaleDrain::new(now));
        drain.observe(buyer, position, now);
        drain.rate(now)
    }

    /// The places per second `sale`'s queue moved lately; `None` when it is
    /// not known or the queue has not moved.
    pub fn rate(&self, sale: &str, now: Instant) -> Option<f64> {
        self.0.sales.lock().ok()?.get(sale)?.rate(now)
    }

    /// Seconds until a buyer at `position` is admitted, at the measured
    /// rate, or else at the sale's RATE (`rate`, 0 = none).
    pub fn estimated_wait(
        &self,
        sale: &str,
        position: u64,
        rate: u64,
        now: Instant,
    ) -> Option<u64> {
        estimate(self.rate(sale, now), position, rate)
    }
}

/// Seconds until a buyer at `position` is admitted, at the `measured` rate,
/// or else at the sale's RATE (`rate`, 0 = none).
fn estimate(measured: Option<f64>, position: u64, rate: u64) -> Option<u64> {
    match measured {
        Some(measured) => Some((position as f64 / measured).ceil() as u64),
        None => (rate > 0).then(|| position.div_ceil(rate)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_rate_is_how_fast_buyers_move_up() {
        let drain = QueueDrain::default();
        let t0 = Instant::now();
        assert_eq!(drain.rate("s", t0), None);
        // No measurement yet: the sale's RATE, if any.
        assert_eq!(drain.estimated_wait("s", 30, 0, t0), None);
        assert_eq!(drain.estimated_wait("s", 30, 4, t0), Some(8));
        drain.observe("s", "a", 30, t0);
        drain.observe("s", "b", 40, t0);
        // Too soon to measure.
        drain.observe("s", "a", 29, at(t0, 100));
        assert_eq!(drain.rate("s", at(t0, 100)), None);
        // a moved 10 places in 2 s: 5 per second.
        drain.observe("s", "a", 20, at(t0, 2000));
        assert_eq!(drain.rate("s", at(t0, 2000)), Some(5.0));
        assert_eq!(drain.estimated_wait("s", 20, 0, at(t0, 2000)), Some(4));
        // b moved 20 in 2 s (10/s): the average moves a fifth of the way.
        drain.observe("s", "b", 20, at(t0, 2000));
        assert_eq!(drain.rate("s", at(t0, 2000)), Some(6.0));
        // Another sale is measured on its own.
        assert_eq!(drain.rate("t", at(t0, 2000)), None);
    }

    #[test]
    fn a_stopped_or_stale_queue_gives_no_estimate() {
        let drain = QueueDrain::default();
        let t0 = Instant::now();
        drain.observe("s", "a", 10, t0);
        drain.observe("s", "a", 10, at(t0, 1000));
        assert_eq!(drain.rate("s", at(t0, 1000)), None, "not moving");
        drain.observe("s", "a", 5, at(t0, 2000));
        assert_eq!(drain.rate("s", at(t0, 2000)), Some(1.0));
        assert_eq!(drain.rate("s", at(t0, 40_000)), None, "stale");
        // Queued again further back: not a sample.
        drain.observe("s", "a", 50, at(t0, 3000));
        assert_eq!(drain.rate("s", at(t0, 3000)), Some(1.0));
    }

    #[test]
    fn old_buyers_are_forgotten() {
        let drain = QueueDrain::default();
        let t0 = Instant::now();
        let key = |buyer: &str| drain.0.hasher.hash_one(buyer);
        let remembered = |buyer: &str| {
            let sales = drain.0.sales.lock().expect("lock");
            let sale = &sales["s"];
            sale.seen.contains_key(&key(buyer)) || sale.seen_before.contains_key(&key(buyer))
        };
        drain.observe("s", "a", 10, t0);
        // A minute on, a is still remembered (and measured from)...
        drain.observe("s", "b", 10, at(t0, 70_000));
        assert!(remembered("a") && remembered("b"));
        drain.observe("s", "a", 4, at(t0, 71_000));
        assert_eq!(drain.rate("s", at(t0, 71_000)), Some(6.0 / 71.0));
        // ...and forgotten within two: b, seen only at 70 s, is gone at 190 s.
        drain.observe("s", "c", 10, at(t0, 135_000));
        drain.observe("s", "d", 10, at(t0, 195_000));
        assert!(!remembered("b") && remembered("d"));
        // After two quiet minutes everything is gone at once.
        drain.observe("s", "e", 10, at(t0, 500_000));
        assert!(!remembered("a") && !remembered("c") && !remembered("d") && remembered("e"));
    }

    #[test]
    fn a_sale_full_of_recent_buyers_stays_fast_and_makes_room_later() {
        let drain = QueueDrain::default();
        let t0 = Instant::now();
        {
            let mut sales = drain.0.sales.lock().expect("lock");
            let sale = sales
                .entry("s".to_string())
                .or_insert_with(|| SaleDrain::new(t0));
            sale.seen = (0..MAX_BUYERS_PER_SALE as u64)
                .map(|i| (i, (t0, 1)))
                .collect();
        }
        // Full: a new buyer is not remembered, and nothing is swept.
        let started = Instant::now();
        for i in 0..1_000 {
            drain.observe("s", &format!("new{i}"), 5, at(t0, 1_000));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let count = |drain: &QueueDrain| {
            let sales = drain.0.sales.lock().expect("lock");
            sales["s"].seen.len() + sales["s"].seen_before.len()
        };
        assert_eq!(count(&drain), MAX_BUYERS_PER_SALE);
        // Two generations on, the old buyers are gone and new ones fit.
        drain.observe("s", "late", 5, at(t0, 61_000));
        drain.observe("s", "later", 5, at(t0, 122_000));
        assert_eq!(count(&drain), 1);
    }
}
