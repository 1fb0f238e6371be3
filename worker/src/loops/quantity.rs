//! The sale gauges (queued, held, sold) and `currentQuantity` in MongoDB,
//! following the engine: a loop of its own, so that a slow or absent
//! MongoDB never holds up admission.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mongodb::Database;
use tokio::sync::watch;

use super::KnownSales;
use crate::config::Config;
use crate::connect::EngineConn;
use crate::sales::{self, KnownSale};
use crate::schedule::SaleSchedule;
use crate::shutdown::pause;

pub(crate) async fn run(
    mut engine: EngineConn,
    db: Database,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    let mut quantity = QuantitySync::default();
    loop {
        let sales = known.read().await.clone();
        for sale in &sales {
            quantity.sync(&mut engine, &db, sale).await;
        }
        if pause(&mut stopping, config.poll_interval()).await {
            return;
        }
    }
}

/// Keeps `currentQuantity` in MongoDB following the engine, at most once a
/// second per sale and only when it changed.
#[derive(Default)]
struct QuantitySync {
    /// Not again within a second of the last sync that went through.
    due: SaleSchedule,
    /// The quantity last synced, per sale.
    synced: HashMap<String, u64>,
}

impl QuantitySync {
    const EVERY: Duration = Duration::from_secs(1);

    async fn sync(&mut self, engine: &mut EngineConn, db: &Database, sale: &KnownSale) {
        if !self.due.is_due(&sale.id, Instant::now()) {
            return;
        }
        let Ok(status) = engine.status(&sale.id, None).await else {
            return;
        };
        let left = status.sale.stock.saturating_sub(status.sale.sold);
        metrics::gauge!("flashsale_sale_queued", "sale" => sale.id.clone())
            .set(status.sale.queued as f64);
        metrics::gauge!("flashsale_sale_held", "sale" => sale.id.clone())
            .set(status.sale.held as f64);
        metrics::gauge!("flashsale_sale_sold", "sale" => sale.id.clone())
            .set(status.sale.sold as f64);
        if self.synced.get(&sale.id) != Some(&left) {
            if let Err(error) = sales::set_current_quantity(db, sale, left).await {
                tracing::warn!(sale = %sale.id, %error, "cannot update currentQuantity");
                return;
            }
        }
        self.synced.insert(sale.id.clone(), left);
        self.due.not_before(&sale.id, Instant::now() + Self::EVERY);
    }
}
