//! The sales refresh loop: re-reads the sales from MongoDB every sales
//! refresh interval.

use mongodb::Database;
use tokio::sync::watch;

use super::KnownSales;
use crate::config::Config;
use crate::sales;
use crate::shutdown::pause;

pub(crate) async fn run(
    db: Database,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        match sales::list(&db).await {
            Ok(list) => *known.write().await = list,
            Err(error) => {
                tracing::warn!(%error, "cannot read the sales from MongoDB; keeping the last list")
            }
        }
        if pause(&mut stopping, config.sales_refresh()).await {
            return;
        }
    }
}
