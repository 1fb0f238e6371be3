use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::fifo::FifoReport;
use crate::stats::{percentile, RouteStats};
use crate::verify::{Check, Verification};
use crate::{Outcome, Run};

pub struct Report {
    pub users: usize,
    /// Sales run at once.
    pub sales: usize,
    /// On a cluster: sales per primary (by its replication id).
    pub placement: BTreeMap<String, usize>,
    pub stock: u64,
    pub sold: u64,
    pub buying_took: Duration,
    pub time_to_sell_out: Option<Duration>,
    pub routes: BTreeMap<&'static str, RouteStats>,
    pub outcomes: BTreeMap<&'static str, usize>,
    pub fifo: FifoReport,
    pub checks: Vec<Check>,
}

impl Report {
    pub(crate) fn new(
        run: &Run,
        outcomes: BTreeMap<String, Outcome>,
        fifo: FifoReport,
        verification: Verification,
        buying_took: Duration,
    ) -> Report {
        let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
        for outcome in outcomes.values() {
            let name = match outcome {
                Outcome::Purchased(_) => "purchased",
                Outcome::Abandoned => "abandoned on purpose",
                Outcome::Lapsed => "confirmed too late",
                Outcome::SoldOut => "told sold out",
                Outcome::Ended => "told ended",
                Outcome::GaveUp(_) => "gave up",
            };
            *tally.entry(name).or_default() += 1;
        }
        let mut checks = verification.checks;
        checks.push(Check {
            name: "admission in queue order (FIFO violations = 0)".into(),
            passed: fifo.violations.is_empty() && fifo.snapshots > 1,
            detail: format!(
                "{} violations in {} queue snapshots{}",
                fifo.violations.len(),
                fifo.snapshots,
                match fifo.terms_changed {
                    0 => String::new(),
                    n => format!(" ({n} change(s) of primary, each term checked on its own)"),
                }
            ),
        });
        Report {
            users: outcomes.len(),
            sales: run.sales.len(),
            placement: run.placement.clone(),
            stock: verification.stock,
            sold: verification.sold,
            buying_took,
            time_to_sell_out: verification.time_to_sell_out,
            routes: run.stats.snapshot(),
            outcomes: tally,
            fifo,
            checks,
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.buying_took.as_secs_f64().max(0.001);
        writeln!(
            f,
            "flashsale stress: {} users, {} units in {} sale(s); buying took {:.1} s",
            self.users, self.stock, self.sales, secs
        )?;
        if !self.placement.is_empty() {
            let per_node: Vec<String> = self
                .placement
                .iter()
                .map(|(node, n)| format!("{}…×{n}", &node[..node.len().min(8)]))
                .collect();
            writeln!(f, "sales per primary: {}", per_node.join(", "))?;
        }
        match self.time_to_sell_out {
            Some(t) => writeln!(f, "sold out {:.2} s after the start", t.as_secs_f64())?,
            None => writeln!(f, "did not sell out ({} of {} sold)", self.sold, self.stock)?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "| route | requests | req/s | p50 ms | p95 ms | p99 ms | statuses |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---|")?;
        for (route, stats) in &self.routes {
            let mut sorted = stats.latencies_us.clone();
            sorted.sort_unstable();
            let statuses: Vec<String> = stats
                .statuses
                .iter()
                .map(|(code, n)| format!("{code}×{n}"))
                .collect();
            let errors = if stats.errors > 0 {
                format!(" errors×{}", stats.errors)
            } else {
                String::new()
            };
            writeln!(
                f,
                "| {route} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {}{errors} |",
                sorted.len(),
                sorted.len() as f64 / secs,
                percentile(&sorted, 50.0),
                percentile(&sorted, 95.0),
                percentile(&sorted, 99.0),
                statuses.join(" ")
            )?;
        }
        writeln!(f)?;
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        writeln!(f, "outcomes: {}", outcomes.join(", "))?;
        writeln!(f)?;
        for check in &self.checks {
            writeln!(
                f,
                "[{}] {} — {}",
                if check.passed { "ok" } else { "FAIL" },
                check.name,
                check.detail
            )?;
        }
        for violation in self.fifo.violations.iter().take(5) {
            writeln!(f, "  FIFO: {violation}")?;
        }
        write!(
            f,
            "\nverdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
