use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::cpu::CpuUse;
use crate::fifo::FifoReport;
use crate::stats::{percentile, RouteStats};
use crate::verify::{Check, Verification};
use crate::{Outcome, Run, Watch};

pub struct Report {
    pub users: usize,
    /// Sales run at once.
    pub sales: usize,
    /// On a cluster: sales per primary (by its replication id).
    pub placement: BTreeMap<String, usize>,
    pub stock: u64,
    pub sold: u64,
    /// The load model: buyers in their journey at once (`--concurrency`),
    /// and HTTP requests in flight at once (`--requests-in-flight`).
    pub journeys: usize,
    pub requests_in_flight: usize,
    pub buying_took: Duration,
    /// The stress program's own CPU next to the machine's, while buying.
    pub cpu: Option<CpuUse>,
    pub time_to_sell_out: Option<Duration>,
    pub routes: BTreeMap<&'static str, RouteStats>,
    pub outcomes: BTreeMap<&'static str, usize>,
    pub fifo: FifoReport,
    pub checks: Vec<Check>,
    pub watching: Watching,
}

/// How the buyers followed their place, and how soon they saw their
/// admission.
#[derive(Debug, Clone)]
pub struct Watching {
    pub watch: Watch,
    /// `status` events received (SSE).
    pub sse_events: u64,
    /// Event streams opened again after a break (SSE).
    pub sse_reopened: u64,
    /// Buyers told `expired` while waiting, never having seen `ready`:
    /// their whole hold went by unseen (polling: the backoff can be longer
    /// than a short hold; SSE: should not happen).
    pub expired_unseen: u64,
    /// From each admission (the GRANT, on the server's clock: the hold's
    /// length minus its PTTL) to the buyer seeing `ready`, sorted (µs).
    pub admitted_to_ready_us: Vec<u64>,
}

impl Report {
    pub(crate) fn new(
        run: &Run,
        outcomes: BTreeMap<String, Outcome>,
        fifo: FifoReport,
        verification: Verification,
        buying_took: Duration,
        cpu: Option<CpuUse>,
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
            passed: fifo.violations.is_empty() && fifo.snapshots > 1 && fifo.full_reads > 0,
            detail: format!(
                "{} violations in {} atomic looks at the queue ({} of them whole reads){}",
                fifo.violations.len(),
                fifo.snapshots,
                fifo.full_reads,
                match fifo.terms_changed {
                    0 => String::new(),
                    n => format!(" ({n} change(s) of primary, each term checked on its own)"),
                }
            ),
        });
        let mut admitted_to_ready_us = run
            .admitted_to_ready_us
            .lock()
            .map(|taken| taken.clone())
            .unwrap_or_default();
        admitted_to_ready_us.sort_unstable();
        let watching = Watching {
            watch: run.watch,
            sse_events: run.sse_events.load(std::sync::atomic::Ordering::Relaxed),
            sse_reopened: run.sse_reopened.load(std::sync::atomic::Ordering::Relaxed),
            expired_unseen: run
                .expired_unseen
                .load(std::sync::atomic::Ordering::Relaxed),
            admitted_to_ready_us,
        };
        Report {
            users: outcomes.len(),
            sales: run.sales.len(),
            placement: run.placement.clone(),
            stock: verification.stock,
            sold: verification.sold,
            journeys: run.config.concurrency.max(1),
            requests_in_flight: run.requests_in_flight(),
            buying_took,
            cpu,
            time_to_sell_out: verification.time_to_sell_out,
            routes: run.stats.snapshot(),
            outcomes: tally,
            fifo,
            checks,
            watching,
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
            "flashsale stress: {} users, {} units in {} sale(s); at most {} buyers in their \
             journey and {} HTTP requests in flight at once; buying took {:.1} s",
            self.users, self.stock, self.sales, self.journeys, self.requests_in_flight, secs
        )?;
        if !self.placement.is_empty() {
            let per_node: Vec<String> = self
                .placement
                .iter()
                .map(|(node, n)| format!("{}…×{n}", &node[..node.len().min(8)]))
                .collect();
            writeln!(f, "sales per primary: {}", per_node.join(", "))?;
        }
        if let Some(cpu) = &self.cpu {
            writeln!(
                f,
                "stress program's own CPU: {:.2} cores of the {:.2} busy ({:.0}% of the work; the machine has {:.0} cores)",
                cpu.own_cores,
                cpu.busy_cores,
                cpu.share() * 100.0,
                cpu.cores
            )?;
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
        if self.routes.contains_key("GET /orders/events") {
            writeln!(
                f,
                "(GET /orders/events: streams opened, latency to the first event)"
            )?;
        }
        writeln!(f)?;
        let watching = &self.watching;
        match watching.watch {
            Watch::Poll => writeln!(
                f,
                "buyers followed their place by polling GET /orders/position"
            )?,
            Watch::Sse => writeln!(
                f,
                "buyers followed their place over GET /orders/events (SSE): \
                 {} status events, {} streams opened again after a break",
                watching.sse_events, watching.sse_reopened
            )?,
        }
        if watching.expired_unseen > 0 {
            writeln!(
                f,
                "{} buyer(s) were told `expired` while waiting: admitted, never told `ready`",
                watching.expired_unseen
            )?;
        }
        let seen = &watching.admitted_to_ready_us;
        if !seen.is_empty() {
            writeln!(
                f,
                "admission → buyer saw `ready`: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, \
                 max {:.1} ms ({} buyers; from the hold's PTTL)",
                percentile(seen, 50.0),
                percentile(seen, 95.0),
                percentile(seen, 99.0),
                percentile(seen, 100.0),
                seen.len()
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
