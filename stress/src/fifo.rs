//! FIFO observer: atomic snapshots of the queue, taken over and over. Between
//! two snapshots, the users that left the queue must be a prefix of the
//! earlier snapshot (the virtual users never leave the queue on their own),
//! and newcomers must stand behind everyone already there.
//!
//! Only snapshots of one continuous history are compared: a failover that
//! promotes a lagging replica rolls the queue back (places taken in the lost
//! moments are gone and those buyers join again at the back), so each
//! snapshot is taken between two reads of the serving primary's replication
//! id, and a new id starts a new term.

use std::collections::HashSet;
use std::time::Duration;

use flashsale::keys;
use flashsale::RedisConn;
use tokio::sync::watch;

#[derive(Debug, Default, Clone)]
pub struct FifoReport {
    pub snapshots: u64,
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

pub async fn observe(
    mut conn: RedisConn,
    sale: String,
    mut stop: watch::Receiver<bool>,
) -> FifoReport {
    let mut report = FifoReport::default();
    let mut previous: Option<(String, Vec<String>)> = None;
    let queue = keys::queue(&sale);
    loop {
        if let Some((term, current)) = snapshot(&mut conn, &queue).await {
            report.snapshots += 1;
            match &previous {
                Some((before_term, before)) if *before_term == term => {
                    check(before, &current, &mut report.violations);
                }
                Some(_) => report.terms_changed += 1,
                None => {}
            }
            previous = Some((term, current));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return report,
        }
    }
}

/// The queue, with the history it belongs to; `None` when the primary
/// changed while it was read or could not be asked.
async fn snapshot(conn: &mut RedisConn, queue: &str) -> Option<(String, Vec<String>)> {
    let term = conn.history_of(queue).await.ok()?;
    let users: Vec<String> = redis::cmd("ZRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .ok()?;
    let term_after = conn.history_of(queue).await.ok()?;
    (term == term_after).then_some((term, users))
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
    use super::check;

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
}
