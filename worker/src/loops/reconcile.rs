//! The reconciliation loop: every `WORKER_RECONCILE_INTERVAL_S` (never when
//! 0), [`crate::reconcile::reconcile_sale`] for every known sale. It starts
//! once the engine is ready, with the admission loop.

use std::time::Duration;

use mongodb::Database;
use tokio::sync::watch;
use tracing::Instrument;

use super::KnownSales;
use crate::config::Config;
use crate::connect::EngineConn;
use crate::reconcile;
use crate::shutdown::pause;

pub(crate) async fn run(
    mut engine: EngineConn,
    db: Database,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    if config.reconcile_interval_s == 0 {
        return;
    }
    let every = Duration::from_secs(config.reconcile_interval_s);
    while !pause(&mut stopping, every).await {
        let sales = known.read().await.clone();
        for sale in sales {
            // No record: archived by retention (MongoDB has it all), or lost
            // (the API sets it up again, orders first, when it is used).
            if let Ok(None) = engine.raw_record(&sale.id).await {
                continue;
            }
            let span = tracing::info_span!("reconcile", sale = %sale.id);
            if let Err(error) = reconcile::reconcile_sale(&mut engine, &db, &sale.id)
                .instrument(span)
                .await
            {
                tracing::warn!(sale = %sale.id, %error, "reconciliation failed");
            }
        }
    }
}
