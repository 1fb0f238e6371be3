//! FIFO observer: the queue, watched over and over. Between two looks, the
//! users that left the queue must be a prefix of the earlier queue (the
//! virtual users never leave the queue on their own), and newcomers must
//! stand behind everyone already there.
//!
//! Reading a whole queue holds Redis for as long as it takes (18 ms for
//! 100,000 members, then the reply), which every buyer would wait behind, so
//! the observer follows the queue in steps and keeps its own copy: every
//! [`STEP`] one script reads, atomically, the head, the members newer than
//! the newest the copy holds, and the length. The copy then drops what is
//! ahead of the head (a prefix left), must have that head first, takes the
//! newcomers at the back, and must be as long as the queue: someone who left
//! from behind the head, or cut in ahead of the newest, makes the lengths
//! differ. Every [`FULL_EVERY`] steps the whole queue is read and compared
//! member by member with the copy ([`check`]), which also catches a cut-in
//! and a skip that happened in the same step.
//!
//! Only looks of one continuous history are compared: a failover that
//! promotes a lagging replica rolls the queue back (places taken in the lost
//! moments are gone and those buyers join again at the back), so each look
//! is taken between two reads of the serving primary's replication id, and
//! a new id starts a new term (with a full read).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use flashsale::keys;
use flashsale::RedisConn;
use tokio::sync::watch;

/// Time between two looks at the queue.
const STEP: Duration = Duration::from_millis(100);

/// One look in this many reads the whole queue.
const FULL_EVERY: u64 = 25;

/// Head, newcomers (members scored above ARGV[1], in queue order) and
/// length, in one atomic read; members with their tickets (scores).
const STEP_SCRIPT: &str = r"
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local newer = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), head, newer}
";

#[derive(Debug, Default, Clone)]
pub struct FifoReport {
    /// Atomic looks at the queue (steps and whole reads).
    pub snapshots: u64,
    /// Of those, reads of the whole queue.
    pub full_reads: u64,
    /// Changes of the primary's history seen during the run (failovers,
    /// restarts); the queue order is checked within each.
    pub terms_changed: u64,
    pub violations: Vec<String>,
}

impl FifoReport {
    /// Adds `sale`'s report to the run's (its violations named by sale when
    /// the run has several).
    pub fn merge(&mut self, sale: &str, other: FifoReport, several: bool) {
        self.snapshots += other.snapshots;
        self.full_reads += other.full_reads;
        self.terms_changed += other.terms_changed;
        self.violations
            .extend(other.violations.into_iter().map(|v| {
                if several {
                    format!("{sale}: {v}")
                } else {
                    v
                }
            }));
    }
}

/// A queue member and its ticket.
type Place = (String, f64);

/// The observer's copy of the queue, in queue order.
#[derive(Debug, Default)]
struct QueueCopy {
    places: VecDeque<Place>,
    /// The newest ticket seen in this term.
    newest: Option<f64>,
}

impl QueueCopy {
    fn replace(&mut self, places: Vec<Place>) {
        self.places = places.into();
        self.newest = self.places.back().map(|(_, ticket)| *ticket);
    }

    fn users(&self) -> Vec<String> {
        self.places.iter().map(|(user, _)| user.clone()).collect()
    }

    /// Applies one step's look when it is what the rules allow from the
    /// copy: a prefix left, the head is the next known member (or, everyone
    /// known gone, the first newcomer), and the lengths agree. Otherwise
    /// the copy stays as it was and `false` says to read the queue whole
    /// and judge with [`check`]: a ticket below the newest may also be an
    /// empty queue numbering its arrivals from 1 again, which only a whole
    /// read tells apart from someone cutting in.
    fn step(&mut self, look: Step) -> bool {
        let (left, known_head) = match &look.head {
            None => (self.places.len(), false),
            Some((user, ticket)) => {
                let ahead = self.places.iter().take_while(|(_, t)| t < ticket).count();
                match self.places.get(ahead) {
                    Some((u, t)) if u == user && t == ticket => (ahead, true),
                    _ => (self.places.len(), false),
                }
            }
        };
        if !known_head && look.head.is_some() && look.newer.first() != look.head.as_ref() {
            return false;
        }
        let expected = (self.places.len() - left + look.newer.len()) as u64;
        if expected != look.length {
            return false;
        }
        self.places.drain(..left);
        self.places.extend(look.newer);
        self.newest = self.places.back().map(|(_, ticket)| *ticket);
        true
    }
}

/// One step's atomic look at the queue.
#[derive(Debug)]
struct Step {
    length: u64,
    head: Option<Place>,
    newer: Vec<Place>,
}

pub async fn observe(
    mut conn: RedisConn,
    sale: String,
    mut stop: watch::Receiver<bool>,
) -> FifoReport {
    let mut report = FifoReport::default();
    let queue = keys::queue(&sale);
    let script = redis::Script::new(STEP_SCRIPT);
    let mut copy = QueueCopy::default();
    // The history the copy belongs to (`None` before the first read).
    let mut term: Option<String> = None;
    let mut read_whole_next = true;
    let mut looks: u64 = 0;
    loop {
        looks += 1;
        if read_whole_next || looks.is_multiple_of(FULL_EVERY) {
            if let Some((now_term, places)) = read_whole(&mut conn, &queue).await {
                report.snapshots += 1;
                report.full_reads += 1;
                match &term {
                    Some(before) if *before == now_term => {
                        let after: Vec<String> = places.iter().map(|(u, _)| u.clone()).collect();
                        check(&copy.users(), &after, &mut report.violations);
                    }
                    Some(_) => report.terms_changed += 1,
                    None => {}
                }
                copy.replace(places);
                term = Some(now_term);
                read_whole_next = false;
            }
        } else if let Some((now_term, look)) = read_step(&mut conn, &script, &queue, &copy).await {
            report.snapshots += 1;
            // A new history, or a look the copy cannot follow: the next
            // look reads the queue whole (and counts the new term).
            read_whole_next = term.as_ref() != Some(&now_term) || !copy.step(look);
        }
        tokio::select! {
            _ = tokio::time::sleep(STEP) => {}
            _ = stop.changed() => return report,
        }
    }
}

/// Pairs of member and score, as Redis answers WITHSCORES.
fn places(flat: Vec<String>) -> Vec<Place> {
    let mut places = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(user), Some(score)) = (items.next(), items.next()) {
        places.push((user, score.parse().unwrap_or(f64::NAN)));
    }
    places
}

/// The whole queue with its history; `None` when the primary changed while
/// it was read or could not be asked.
async fn read_whole(conn: &mut RedisConn, queue: &str) -> Option<(String, Vec<Place>)> {
    let term = conn.history_of(queue).await.ok()?;
    let flat: Vec<String> = redis::cmd("ZRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .ok()?;
    let term_after = conn.history_of(queue).await.ok()?;
    (term == term_after).then(|| (term, places(flat)))
}

/// One step's look with its history, as [`read_whole`].
async fn read_step(
    conn: &mut RedisConn,
    script: &redis::Script,
    queue: &str,
    copy: &QueueCopy,
) -> Option<(String, Step)> {
    let term = conn.history_of(queue).await.ok()?;
    let newest = copy
        .newest
        .map_or_else(|| "-inf".to_string(), |n| format!("{n}"));
    let (length, head, newer): (u64, Vec<String>, Vec<String>) = script
        .key(queue)
        .arg(newest)
        .invoke_async(conn)
        .await
        .ok()?;
    let term_after = conn.history_of(queue).await.ok()?;
    let step = Step {
        length,
        head: places(head).into_iter().next(),
        newer: places(newer),
    };
    (term == term_after).then_some((term, step))
}

fn check(before: &[String], after: &[String], violations: &mut Vec<String>) {
    let still: HashSet<&String> = after.iter().collect();
    // Everyone who left must have been ahead of everyone who stayed.
    if let Some(first_stayer) = before.iter().position(|u| still.contains(u)) {
        for user in &before[first_stayer..] {
            if !still.contains(user) {
                violations.push(format!(
                    "{user} left the queue while earlier arrivals still waited"
                ));
            }
        }
    }
    // Those who stayed keep their order, and newcomers come after them.
    let was: HashSet<&String> = before.iter().collect();
    let stayers: Vec<&String> = after.iter().filter(|u| was.contains(u)).collect();
    let expected: Vec<&String> = before.iter().filter(|u| still.contains(u)).collect();
    if stayers != expected {
        violations.push("the order of waiting users changed".to_string());
    }
    if let Some(first_new) = after.iter().position(|u| !was.contains(u)) {
        if after[first_new..].iter().any(|u| was.contains(u)) {
            violations.push("a newcomer was placed ahead of an earlier arrival".to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check, Place, QueueCopy, Step};

    fn v(users: &[&str]) -> Vec<String> {
        users.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn admission_from_the_head_and_arrivals_at_the_back_are_fine() {
        let mut violations = Vec::new();
        check(&v(&["a", "b", "c"]), &v(&["c", "d"]), &mut violations);
        check(&v(&["a", "b"]), &v(&[]), &mut violations);
        check(&v(&[]), &v(&["x"]), &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn skipping_reordering_and_cutting_in_are_violations() {
        let mut violations = Vec::new();
        check(&v(&["a", "b", "c"]), &v(&["a", "c"]), &mut violations);
        assert_eq!(violations.len(), 1);
        check(&v(&["a", "b"]), &v(&["b", "a"]), &mut violations);
        assert_eq!(violations.len(), 2);
        check(&v(&["a", "b"]), &v(&["x", "a", "b"]), &mut violations);
        assert_eq!(violations.len(), 3);
    }

    fn p(places: &[(&str, f64)]) -> Vec<Place> {
        places.iter().map(|(u, t)| (u.to_string(), *t)).collect()
    }

    fn copy_of(places: &[(&str, f64)]) -> QueueCopy {
        let mut copy = QueueCopy::default();
        copy.replace(p(places));
        copy
    }

    fn look(length: u64, head: Option<(&str, f64)>, newer: &[(&str, f64)]) -> Step {
        Step {
            length,
            head: head.map(|(u, t)| (u.to_string(), t)),
            newer: p(newer),
        }
    }

    #[test]
    fn steps_follow_admission_from_the_head_and_arrivals_at_the_back() {
        let mut copy = copy_of(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        // a and b admitted, d and e joined.
        assert!(copy.step(look(3, Some(("c", 3.0)), &[("d", 4.0), ("e", 5.0)])));
        assert_eq!(copy.users(), ["c", "d", "e"]);
        // Everyone known admitted; f joined and heads the queue.
        assert!(copy.step(look(1, Some(("f", 6.0)), &[("f", 6.0)])));
        assert_eq!(copy.users(), ["f"]);
        // Empty: the next arrivals may be numbered from 1 again.
        assert!(copy.step(look(0, None, &[])));
        assert!(copy.users().is_empty());
        assert!(copy.step(look(1, Some(("g", 1.0)), &[("g", 1.0)])));
        assert_eq!(copy.users(), ["g"]);
    }

    #[test]
    fn steps_hand_skipping_cutting_in_and_a_wrong_head_to_a_whole_read() {
        let queue = [("a", 1.0), ("b", 2.0), ("c", 3.0)];
        for wrong in [
            // b admitted while a still waits: the queue is one shorter.
            look(2, Some(("a", 1.0)), &[]),
            // x placed with a ticket below the newest: not among the newer.
            look(4, Some(("a", 1.0)), &[]),
            // x at the head, ahead of a (or the queue emptied and numbered
            // its arrivals from 1 again: only a whole read tells).
            look(4, Some(("x", 0.5)), &[]),
        ] {
            let mut copy = copy_of(&queue);
            assert!(!copy.step(wrong));
            // The copy stays as it was, for the whole read to judge.
            assert_eq!(copy.users(), ["a", "b", "c"]);
        }
        // The whole read then judges: a queue numbered again is fine,
        // b skipped is not.
        let mut violations = Vec::new();
        check(&copy_of(&queue).users(), &v(&["x", "y"]), &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
        check(&copy_of(&queue).users(), &v(&["a", "c"]), &mut violations);
        assert_eq!(violations.len(), 1);
    }
}
