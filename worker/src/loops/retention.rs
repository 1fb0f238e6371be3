//! Retention: Redis does not grow with the platform's history. A sale that
//! ended more than `SALE_RETENTION_SECONDS` ago, whose every order is in
//! MongoDB and whose outbox is fully copied, has its engine keys removed;
//! the API then answers for it from MongoDB (ended, its orders readable).
//! The removal is one script that first checks the sale record is still
//! the one looked at, so a late CONFIRM or an admin reopening the sale
//! keeps the keys.

use std::collections::BTreeSet;

use engine::SaleRecord;
use mongodb::bson::doc;
use mongodb::Database;
use tokio::sync::watch;

use super::KnownSales;
use crate::config::Config;
use crate::connect::EngineConn;
use crate::shutdown::pause;
use crate::{orders, outbox, WorkerError};

pub(crate) async fn run(
    mut engine: EngineConn,
    db: Database,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    let Some(retention_ms) = config.sale_retention_s.checked_mul(1000) else {
        return;
    };
    // Looking costs a GET per sale: not more often than every ten refreshes.
    let every = config.sales_refresh() * 10;
    while !pause(&mut stopping, every).await {
        let sales = known.read().await.clone();
        for sale in sales {
            match archive_if_due(&mut engine, &db, &sale.id, retention_ms).await {
                Ok(true) => {
                    metrics::counter!("flashsale_worker_sales_archived_total").increment(1);
                    tracing::info!(sale = %sale.id, "ended sale archived: its engine keys are removed, MongoDB has every order");
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(sale = %sale.id, %error, "retention check failed"),
            }
        }
    }
}

/// Removes `sale`'s engine keys if it ended `retention_ms` ago and MongoDB
/// has every order; whether it did.
async fn archive_if_due(
    engine: &mut EngineConn,
    db: &Database,
    sale: &str,
    retention_ms: u64,
) -> Result<bool, WorkerError> {
    let Some(raw) = engine.raw_record(sale).await? else {
        return Ok(false);
    };
    let Ok(record) = SaleRecord::decode(raw.as_bytes()) else {
        return Ok(false);
    };
    let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    if now < record.ends_at.saturating_add(retention_ms) {
        return Ok(false);
    }
    // Every entry copied and acknowledged (no group: nothing was confirmed,
    // or it was never copied — then the orders check below decides).
    if let Some((lag, pending)) = outbox::backlog(engine.connection(), sale).await? {
        if lag > 0 || pending > 0 {
            return Ok(false);
        }
    }
    // Counting first: a sale whose orders are not all in MongoDB yet (or
    // never will be without an operator) is looked at every pass, and
    // counting is cheaper than reading every order id.
    let orders_key = flashsale::keys::orders(sale);
    let engine_count: u64 = redis::cmd("HLEN")
        .arg(&orders_key)
        .query_async(engine.connection())
        .await?;
    let recorded_count = orders::collection(db)
        .count_documents(doc! { records::order::field::SALE_ID: sale })
        .await?;
    if recorded_count < engine_count {
        return Ok(false);
    }
    let in_engine: Vec<String> = redis::cmd("HVALS")
        .arg(&orders_key)
        .query_async(engine.connection())
        .await?;
    let recorded: BTreeSet<String> = records::order::buyers_of_sale(&orders::collection(db), sale)
        .await?
        .into_iter()
        .map(|(order_id, _)| order_id)
        .collect();
    if !in_engine.iter().all(|id| recorded.contains(id)) {
        return Ok(false);
    }
    Ok(engine.purge_if_unchanged(sale, &raw).await?)
}
