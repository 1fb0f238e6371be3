//! Reconciliation: each sale's orders in Redis against MongoDB. Orders that
//! MongoDB lacks are logged by id and copied again from the outbox; orders
//! only MongoDB has are logged. Nothing is ever deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use flashsale::keys;
use futures::TryStreamExt;
use mongodb::bson::doc;
use mongodb::Database;
use redis::aio::ConnectionLike;

use records::order::field;

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
    /// In MongoDB only (left alone).
    pub only_in_mongo: Vec<String>,
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
                "sale {}: {} orders in redis, {} in mongodb; repaired {:?}; unrecoverable {:?}; only in mongodb {:?}",
                s.sale, s.in_redis, s.in_mongo, s.repaired, s.unrecoverable, s.only_in_mongo
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
    conn: &mut C,
    db: &Database,
    sale: &str,
) -> Result<SaleReport, WorkerError> {
    let in_redis: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::orders(sale))
        .query_async(conn)
        .await?;
    let redis_ids: BTreeSet<String> = in_redis.into_values().collect();
    let mut cursor = orders::collection(db)
        .find(doc! { field::SALE_ID: sale })
        .projection(doc! { field::ID: 1 })
        .await?;
    let mut mongo_ids = BTreeSet::new();
    while let Some(document) = cursor.try_next().await? {
        if let Ok(id) = document.get_str(field::ID) {
            mongo_ids.insert(id.to_string());
        }
    }
    let mut report = SaleReport {
        sale: sale.to_string(),
        in_redis: redis_ids.len(),
        in_mongo: mongo_ids.len(),
        only_in_mongo: mongo_ids.difference(&redis_ids).cloned().collect(),
        ..SaleReport::default()
    };
    let mut recovered = Vec::new();
    for order_id in redis_ids.difference(&mongo_ids) {
        match flashsale::outbox::order_entry(conn, sale, order_id).await? {
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
        tracing::warn!(sale, orders = ?report.only_in_mongo, "orders only in MongoDB (left alone)");
    }
    metrics::counter!("flashsale_worker_reconcile_repaired_total")
        .increment(report.repaired.len() as u64);
    Ok(report)
}
