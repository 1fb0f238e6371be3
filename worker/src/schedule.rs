//! When each sale is next looked at, for the loops that go over every sale
//! again and again: "not before T", "back off: double the pause up to a cap,
//! reset on activity", and "at most once per interval". The time is always
//! passed in, so the rules are tested without a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per sale id: the earliest time it is due again, and the last back-off
/// pause. A sale never scheduled (or reset) is due.
#[derive(Debug, Default)]
pub(crate) struct SaleSchedule {
    sales: HashMap<String, Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    not_before: Instant,
    /// The pause of the last [`SaleSchedule::back_off`], doubled by the next.
    pause: Option<Duration>,
}

impl SaleSchedule {
    /// Whether `sale` may be looked at `now`.
    pub(crate) fn is_due(&self, sale: &str, now: Instant) -> bool {
        match self.sales.get(sale) {
            Some(slot) => slot.not_before <= now,
            None => true,
        }
    }

    /// `sale` is not due again before `at` (replacing any earlier time); the
    /// back-off pause is kept.
    pub(crate) fn not_before(&mut self, sale: &str, at: Instant) {
        match self.sales.get_mut(sale) {
            Some(slot) => slot.not_before = at,
            None => {
                self.sales.insert(
                    sale.to_string(),
                    Slot {
                        not_before: at,
                        pause: None,
                    },
                );
            }
        }
    }

    /// Nothing to do for `sale`: it is not due for a pause of `first`, then
    /// twice the last pause on each further call, never more than `cap`.
    /// Returns the pause.
    pub(crate) fn back_off(
        &mut self,
        sale: &str,
        now: Instant,
        first: Duration,
        cap: Duration,
    ) -> Duration {
        let last = self.sales.get(sale).and_then(|slot| slot.pause);
        let pause = last.map_or(first, |pause| pause * 2).min(cap);
        self.sales.insert(
            sale.to_string(),
            Slot {
                not_before: now + pause,
                pause: Some(pause),
            },
        );
        pause
    }

    /// Something happened for `sale`: it is due at once, and the next
    /// back-off starts from its first pause again.
    pub(crate) fn reset(&mut self, sale: &str) {
        self.sales.remove(sale);
    }

    /// At most once per `interval`: `true` when `sale` is due `now`, and
    /// then it is not due again before `now + interval`.
    pub(crate) fn once_per(&mut self, sale: &str, now: Instant, interval: Duration) -> bool {
        if !self.is_due(sale, now) {
            return false;
        }
        self.not_before(sale, now + interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_sale_never_scheduled_is_due() {
        let schedule = SaleSchedule::default();
        assert!(schedule.is_due("s1", Instant::now()));
    }

    #[test]
    fn not_before_holds_a_sale_until_that_time_and_no_other() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        schedule.not_before("s1", t0 + 100 * MS);
        assert!(!schedule.is_due("s1", t0));
        assert!(!schedule.is_due("s1", t0 + 99 * MS));
        assert!(schedule.is_due("s1", t0 + 100 * MS));
        assert!(schedule.is_due("s1", t0 + 5000 * MS));
        assert!(schedule.is_due("s2", t0));
    }

    #[test]
    fn not_before_replaces_the_earlier_time_even_with_a_sooner_one() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        schedule.not_before("s1", t0 + 1000 * MS);
        schedule.not_before("s1", t0 + 10 * MS);
        assert!(schedule.is_due("s1", t0 + 10 * MS));
    }

    #[test]
    fn back_off_doubles_the_pause_up_to_the_cap() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        let pauses: Vec<u64> = (0..10)
            .map(|_| schedule.back_off("s1", t0, 25 * MS, 1000 * MS).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [25, 50, 100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn a_backed_off_sale_is_due_after_its_pause() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        schedule.back_off("s1", t0, 25 * MS, 1000 * MS);
        assert!(!schedule.is_due("s1", t0 + 24 * MS));
        assert!(schedule.is_due("s1", t0 + 25 * MS));

        let t1 = t0 + 30 * MS;
        assert_eq!(schedule.back_off("s1", t1, 25 * MS, 1000 * MS), 50 * MS);
        assert!(!schedule.is_due("s1", t1 + 49 * MS));
        assert!(schedule.is_due("s1", t1 + 50 * MS));
        assert!(schedule.is_due("s2", t1), "other sales are not held");
    }

    #[test]
    fn a_first_pause_above_the_cap_is_capped() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        assert_eq!(schedule.back_off("s1", t0, 5 * MS, 2 * MS), 2 * MS);
        assert!(schedule.is_due("s1", t0 + 2 * MS));
    }

    #[test]
    fn reset_makes_a_sale_due_and_restarts_the_back_off() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        for _ in 0..4 {
            schedule.back_off("s1", t0, 25 * MS, 1000 * MS);
        }
        assert!(!schedule.is_due("s1", t0 + 100 * MS));
        schedule.reset("s1");
        assert!(schedule.is_due("s1", t0));
        assert_eq!(schedule.back_off("s1", t0, 25 * MS, 1000 * MS), 25 * MS);
    }

    #[test]
    fn back_offs_of_different_sales_are_separate() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        schedule.back_off("s1", t0, 25 * MS, 1000 * MS);
        schedule.back_off("s1", t0, 25 * MS, 1000 * MS);
        assert_eq!(schedule.back_off("s2", t0, 25 * MS, 1000 * MS), 25 * MS);
        assert_eq!(schedule.back_off("s1", t0, 25 * MS, 1000 * MS), 100 * MS);
    }

    #[test]
    fn not_before_keeps_the_back_off_pause() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        schedule.back_off("s1", t0, 25 * MS, 1000 * MS);
        schedule.not_before("s1", t0 + 500 * MS);
        assert!(!schedule.is_due("s1", t0 + 499 * MS));
        assert_eq!(schedule.back_off("s1", t0, 25 * MS, 1000 * MS), 50 * MS);
    }

    #[test]
    fn once_per_interval_says_yes_once_then_waits_the_whole_interval() {
        let t0 = Instant::now();
        let mut schedule = SaleSchedule::default();
        assert!(schedule.once_per("s1", t0, 1000 * MS));
        assert!(!schedule.once_per("s1", t0, 1000 * MS));
        // A refused call does not move the window.
        assert!(!schedule.once_per("s1", t0 + 999 * MS, 1000 * MS));
        assert!(schedule.once_per("s1", t0 + 1000 * MS, 1000 * MS));
        assert!(!schedule.once_per("s1", t0 + 1999 * MS, 1000 * MS));
        assert!(schedule.once_per("s1", t0 + 2500 * MS, 1000 * MS));
        assert!(!schedule.once_per("s1", t0 + 3499 * MS, 1000 * MS));
        assert!(schedule.once_per("s2", t0 + 3499 * MS, 1000 * MS));
    }
}
