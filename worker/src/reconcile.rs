//! Reconciliation: each sale's orders in Redis against MongoDB. Orders that
//! MongoDB lacks are logged by id and copied again from the outbox; orders
//! only MongoDB has (Redis lost a write the worker had copied: a failover,
//! a restore from an old snapshot) are given back to the engine with
//! `FLASHSALE.RESTORE`, so their buyers count as purchased and their units
//! are not sold again. Nothing is ever deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use flashsale::{keys, EngineClient, ErrorCode};
use mongodb::Database;
use redis::aio::ConnectionLike;

use crate::orders;
use crate::WorkerError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleReport {
    pub sale: String,
    pub in_redis: usize,
    pub in_mongo: usize,
    /// In Redis, not in MongoDB: copied again.
    pub repaired: Vec<String>,
    /// In Redis, not in MongoDB, and no outbox entry to copy from.
    pub unrecoverable: Vec<String>,
    /// In MongoDB only.
    pub only_in_mongo: Vec<String>,
    /// Of those, given back to the engine.
    pub restored: Vec<String>,
    /// Of those, not given back: not an id the engine issues (left alone),
    /// or refused by the engine (the buyer holds another order there, or
    /// the sale has no unit left for it) — logged as an error.
    pub not_restored: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub sales: Vec<SaleReport>,
}

impl Report {
    pub fn repaired(&self) -> usize {
        self.sales.iter().map(|s| s.repaired.len()).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sales {
            writeln!(
                f,
                "sale {}: {} orders in redis, {} in mongodb; repaired {:?}; unrecoverable {:?}; \
                 only in mongodb {:?}: restored {:?}, not restored {:?}",
                s.sale,
                s.in_redis,
                s.in_mongo,
                s.repaired,
                s.unrecoverable,
                s.only_in_mongo,
                s.restored,
                s.not_restored
            )?;
        }
        write!(
            f,
            "{} sales checked, {} orders repaired",
            self.sales.len(),
            self.repaired()
        )
    }
}

pub async fn reconcile_sale<C: ConnectionLike + Send>(
    engine: &mut EngineClient<C>,
    db: &Database,
    sale: &str,
) -> Result<SaleReport, WorkerError> {
    let in_redis: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::orders(sale))
        .query_async(engine.connection())
        .await?;
    let redis_ids: BTreeSet<String> = in_redis.into_values().collect();
    let recorded = records::order::buyers_of_sale(&orders::collection(db), sale).await?;
    let mongo_ids: BTreeSet<String> = recorded.iter().map(|(id, _)| id.clone()).collect();
    let mut report = SaleReport {
        sale: sale.to_string(),
        in_redis: redis_ids.len(),
        in_mongo: mongo_ids.len(),
        only_in_mongo: mongo_ids.difference(&redis_ids).cloned().collect(),
        ..SaleReport::default()
    };
    let mut recovered = Vec::new();
    for order_id in redis_ids.difference(&mongo_ids) {
        match flashsale::outbox::order_entry(engine.connection(), sale, order_id).await? {
            Some(order) => {
                recovered.push(order);
                report.repaired.push(order_id.clone());
            }
            None => report.unrecoverable.push(order_id.clone()),
        }
    }
    let conflicts = orders::write(db, &recovered).await?;
    report.repaired.retain(|id| !conflicts.contains(id));
    report.unrecoverable.extend(conflicts);
    if !report.repaired.is_empty() || !report.unrecoverable.is_empty() {
        tracing::warn!(sale, repaired = ?report.repaired, unrecoverable = ?report.unrecoverable, "orders missing from MongoDB");
    }
    if !report.only_in_mongo.is_empty() {
        restore_lost(engine, sale, recorded, &redis_ids, &mut report).await?;
    }
    metrics::counter!("flashsale_worker_reconcile_repaired_total")
        .increment(report.repaired.len() as u64);
    Ok(report)
}

/// Gives the engine back the orders only MongoDB has.
async fn restore_lost<C: ConnectionLike + Send>(
    engine: &mut EngineClient<C>,
    sale: &str,
    recorded: Vec<(String, String)>,
    in_redis: &BTreeSet<String>,
    report: &mut SaleReport,
) -> Result<(), WorkerError> {
    let lost: Vec<(String, String)> = recorded
        .into_iter()
        .filter(|(id, _)| !in_redis.contains(id))
        .collect();
    match engine.restore_recorded(sale, lost).await {
        Ok(restored) => {
            report.not_restored = restored.skipped;
            report.restored = report
                .only_in_mongo
                .iter()
                .filter(|id| !report.not_restored.contains(id))
                .cloned()
                .collect();
            tracing::warn!(
                sale,
                restored = ?report.restored,
                left_alone = ?report.not_restored,
                "orders only in MongoDB given back to the engine"
            );
        }
        Err(e)
            if e.engine_error()
                .is_some_and(|e| e.code == ErrorCode::Conflict) =>
        {
            report.not_restored = report.only_in_mongo.clone();
            tracing::error!(
                sale,
                orders = ?report.only_in_mongo,
                error = %e,
                "orders only in MongoDB contradict the engine; not restored"
            );
        }
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("flashsale_worker_reconcile_restored_total")
        .increment(report.restored.len() as u64);
    Ok(())
}
