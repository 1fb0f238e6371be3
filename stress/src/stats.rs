//! Per-route request counts, status codes and latency percentiles.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    routes: Mutex<BTreeMap<&'static str, RouteStats>>,
}

#[derive(Default, Clone)]
pub struct RouteStats {
    pub latencies_us: Vec<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: u64,
}

impl Stats {
    pub fn record(&self, route: &'static str, status: Option<u16>, latency: Duration) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let entry = routes.entry(route).or_default();
        entry.latencies_us.push(latency.as_micros() as u64);
        match status {
            Some(code) => *entry.statuses.entry(code).or_default() += 1,
            None => entry.errors += 1,
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, RouteStats> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}
