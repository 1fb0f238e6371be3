//! Copies one sale's outbox into MongoDB: its own pending entries first (a
//! write that failed last time), then entries idle under a dead worker, then
//! new ones. Acknowledged only after MongoDB acknowledged.

use std::time::Instant;

use mongodb::Database;
use redis::aio::ConnectionLike;

use crate::orders::{self, Order};
use crate::outbox::{self, Entry};
use crate::WorkerError;

pub struct Copier {
    pub consumer: String,
    pub batch: usize,
    pub claim_idle_ms: u64,
}

impl Copier {
    /// Copies one batch; how many entries it acknowledged.
    pub async fn copy_once<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        db: &Database,
        sale: &str,
    ) -> Result<usize, WorkerError> {
        let mut entries = outbox::read(conn, sale, &self.consumer, "0", self.batch).await?;
        if entries.is_empty() {
            entries =
                outbox::claim_idle(conn, sale, &self.consumer, self.claim_idle_ms, self.batch)
                    .await?;
        }
        if entries.is_empty() {
            entries = outbox::read(conn, sale, &self.consumer, ">", self.batch).await?;
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let (orders, ids) = decode(sale, entries);
        let started = Instant::now();
        orders::write(db, &orders).await?;
        outbox::ack(conn, sale, &ids).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        for order in &orders {
            let latency = (now_ms - order.confirmed_at).max(0) as f64 / 1000.0;
            metrics::histogram!("flashsale_worker_copy_latency_seconds").record(latency);
        }
        metrics::histogram!("flashsale_worker_mongo_write_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("flashsale_worker_orders_copied_total").increment(ids.len() as u64);
        tracing::debug!(sale, copied = ids.len(), "outbox batch copied");
        Ok(ids.len())
    }
}

/// The orders and the ids to acknowledge. An entry that cannot be read is
/// left pending (and logged) rather than acknowledged and lost.
fn decode(sale: &str, entries: Vec<Entry>) -> (Vec<Order>, Vec<String>) {
    let mut orders = Vec::with_capacity(entries.len());
    let mut ids = Vec::with_capacity(entries.len());
    for entry in entries {
        match Order::from_fields(&entry.fields) {
            Ok(order) => {
                orders.push(order);
                ids.push(entry.id);
            }
            Err(problem) => {
                metrics::counter!("flashsale_worker_malformed_entries_total").increment(1);
                tracing::error!(sale, entry = %entry.id, %problem, "outbox entry left pending");
            }
        }
    }
    (orders, ids)
}
