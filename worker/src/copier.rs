//! Copies one sale's outbox into MongoDB: its own pending entries first (a
//! write that failed last time), then entries idle under a dead worker, then
//! new ones. Acknowledged only after MongoDB acknowledged.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use flashsale::{keys, RedisConn};
use mongodb::Database;

use flashsale::OutboxEntry;

use crate::orders;
use crate::outbox::{self, Entry};
use crate::WorkerError;

pub struct Copier {
    pub consumer: String,
    pub batch: usize,
    pub claim_idle_ms: u64,
    /// (sale, entry id) of entries that cannot be read, or whose order
    /// conflicts with a different one already in MongoDB. They stay pending
    /// in Redis for an operator (and the metrics count them); this only stops
    /// them from being read first on every pass and blocking the rest.
    pub parked: HashSet<(String, String)>,
    /// Replicas an order must be on before it is copied (CONFIRM_MIN_REPLICAS;
    /// `None`: 1 when the sale's primary has replicas).
    pub min_replicas: Option<u64>,
    /// How long to wait for them before trying again later (CONFIRM_WAIT_MS).
    pub wait_ms: u64,
    /// Replicas per sale's primary, as last seen (for `min_replicas: None`).
    replicas_seen: HashMap<String, (Instant, u64)>,
}

/// How long a primary's replica count is trusted.
const REPLICAS_TTL: Duration = Duration::from_secs(5);

impl Copier {
    pub fn new(consumer: String, batch: usize, claim_idle_ms: u64) -> Self {
        Copier {
            consumer,
            batch,
            claim_idle_ms,
            parked: HashSet::new(),
            min_replicas: None,
            wait_ms: 500,
            replicas_seen: HashMap::new(),
        }
    }

    /// Copy an order only once it is on `min_replicas` replicas, waiting
    /// `wait_ms` for them.
    pub fn with_replication(mut self, min_replicas: Option<u64>, wait_ms: u64) -> Self {
        self.min_replicas = min_replicas;
        self.wait_ms = wait_ms;
        self
    }

    async fn replicas_required(
        &mut self,
        conn: &mut RedisConn,
        sale: &str,
    ) -> Result<u64, WorkerError> {
        if let Some(n) = self.min_replicas {
            return Ok(n);
        }
        if let Some((at, n)) = self.replicas_seen.get(sale) {
            if at.elapsed() < REPLICAS_TTL {
                return Ok(*n);
            }
        }
        let n = conn.replicas_of(&keys::outbox(sale)).await?.min(1);
        self.replicas_seen
            .insert(sale.to_string(), (Instant::now(), n));
        Ok(n)
    }

    /// Whether the entries just read are on enough replicas to survive a
    /// failover. MongoDB only ever gets such orders, so an order a failover
    /// takes back out of Redis was never recorded either, and the buyer's
    /// retry (which was told "not durable", never "confirmed") buys anew.
    /// The read itself was a write on this connection at the sale's
    /// primary, after the entries, so WAIT covers them.
    async fn replicated(&mut self, conn: &mut RedisConn, sale: &str) -> Result<bool, WorkerError> {
        let required = self.replicas_required(conn, sale).await?;
        if required == 0 {
            return Ok(true);
        }
        let acked = conn
            .wait_for_replicas(&keys::outbox(sale), required, self.wait_ms)
            .await?;
        if acked < required {
            metrics::counter!("flashsale_worker_unreplicated_waits_total").increment(1);
            tracing::warn!(
                sale,
                acked,
                required,
                "outbox entries are not on the replicas yet; copying them later"
            );
        }
        Ok(acked >= required)
    }

    fn unparked(&self, sale: &str, mut entries: Vec<Entry>) -> Vec<Entry> {
        entries.retain(|e| !self.parked.contains(&(sale.to_string(), e.id.clone())));
        entries
    }

    /// Copies one batch; how many entries it acknowledged.
    pub async fn copy_once(
        &mut self,
        conn: &mut RedisConn,
        db: &Database,
        sale: &str,
    ) -> Result<usize, WorkerError> {
        let mut entries = self.unparked(
            sale,
            outbox::read(conn, sale, &self.consumer, "0", self.batch).await?,
        );
        if entries.is_empty() {
            let claimed =
                outbox::claim_idle(conn, sale, &self.consumer, self.claim_idle_ms, self.batch)
                    .await?;
            entries = self.unparked(sale, claimed);
        }
        if entries.is_empty() {
            entries = outbox::read(conn, sale, &self.consumer, ">", self.batch).await?;
        }
        if entries.is_empty() || !self.replicated(conn, sale).await? {
            return Ok(0);
        }
        let (orders, ids) = self.decode(sale, entries);
        let started = Instant::now();
        let conflicts = orders::write(db, &orders).await?;
        for order in orders.iter().filter(|o| conflicts.contains(&o.order_id)) {
            metrics::counter!("flashsale_worker_conflicting_orders_total").increment(1);
            tracing::error!(sale, order = %order.order_id, user = %order.user_id,
                "MongoDB already holds a different order under this id or for this user; left pending");
        }
        let (order_ids, deleted_ids) = ids.split_at(orders.len());
        let mut acked: Vec<String> = Vec::with_capacity(ids.len());
        for (order, id) in orders.iter().zip(order_ids) {
            if conflicts.contains(&order.order_id) {
                self.parked.insert((sale.to_string(), id.clone()));
            } else {
                acked.push(id.clone());
            }
        }
        acked.extend(deleted_ids.iter().cloned());
        outbox::ack(conn, sale, &acked).await?;
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        for order in &orders {
            let latency = now_ms.saturating_sub(order.confirmed_at) as f64 / 1000.0;
            metrics::histogram!("flashsale_worker_copy_latency_seconds").record(latency);
        }
        metrics::histogram!("flashsale_worker_mongo_write_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("flashsale_worker_orders_copied_total").increment(orders.len() as u64);
        tracing::debug!(sale, acknowledged = acked.len(), "outbox batch copied");
        Ok(acked.len())
    }

    /// The orders with their entry ids (in the same order), followed by the
    /// ids of entries deleted from the stream by hand (nothing to copy, so
    /// acknowledged). An entry that cannot be read is parked and logged,
    /// not acknowledged and lost.
    fn decode(&mut self, sale: &str, entries: Vec<Entry>) -> (Vec<OutboxEntry>, Vec<String>) {
        let mut orders = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        let mut deleted = Vec::new();
        for entry in entries {
            if entry.deleted {
                tracing::warn!(sale, entry = %entry.id, "outbox entry deleted by hand; acknowledged");
                deleted.push(entry.id);
                continue;
            }
            match OutboxEntry::from_fields(&entry.fields) {
                Ok(order) => {
                    orders.push(order);
                    ids.push(entry.id);
                }
                Err(problem) => {
                    metrics::counter!("flashsale_worker_malformed_entries_total").increment(1);
                    tracing::error!(sale, entry = %entry.id, %problem, "outbox entry left pending");
                    self.parked.insert((sale.to_string(), entry.id));
                }
            }
        }
        ids.extend(deleted);
        (orders, ids)
    }
}
