//! The admission loop: the GRANT step ([`crate::admission::admit`]) for
//! every sale that is due. It never waits for MongoDB (buyers are admitted
//! while it is down); [`super::quantity`] writes `currentQuantity`.

use std::time::Instant;

use flashsale::{Backend, BackendChoice};
use tokio::sync::watch;
use tracing::Instrument;

use super::KnownSales;
use crate::admission::{self, Admission};
use crate::config::Config;
use crate::connect::EngineConn;
use crate::schedule::SaleSchedule;
use crate::shutdown::pause;

/// GRANTs every sale that is open or paused, as often as the poll interval; an upcoming
/// sale is not asked again before it starts, an ended one only once per
/// sales refresh (an admin may extend it, and then it is open again).
pub(crate) async fn run(
    mut engine: EngineConn,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    let mut visits = SaleSchedule::default();
    loop {
        let sales = known.read().await.clone();
        let now = Instant::now();
        for sale in &sales {
            if !visits.is_due(&sale.id, now) {
                continue;
            }
            let span = tracing::info_span!("admit", sale = %sale.id);
            let outcome = admission::admit(&mut engine, &sale.id, config.grant_batch)
                .instrument(span)
                .await;
            match outcome {
                Ok(Admission::Active { granted, released }) => {
                    if granted + released > 0 {
                        tracing::debug!(sale = %sale.id, granted, released, "admitted");
                    }
                }
                Ok(Admission::Upcoming { starts_in }) => {
                    visits.not_before(&sale.id, now + starts_in.min(config.sales_refresh()));
                }
                Ok(Admission::Paused { released }) => {
                    // Asked again at the usual pace, so that admission goes
                    // on as soon as an admin resumes the sale, and lapsed
                    // holds are still reclaimed meanwhile.
                    tracing::debug!(sale = %sale.id, released, "sale paused; nobody admitted");
                }
                Ok(Admission::Ended) => {
                    tracing::debug!(sale = %sale.id, "sale ended; queue cleared");
                    visits.not_before(&sale.id, now + config.sales_refresh());
                }
                Err(error)
                    if error
                        .engine_error()
                        .is_some_and(|e| e.code == flashsale::ErrorCode::NoSale) =>
                {
                    // Not set up in Redis (yet): the API configures it.
                    visits.not_before(&sale.id, now + config.sales_refresh());
                }
                Err(error) if error.is_missing_library() && engine.backend() == Backend::Lua => {
                    // A primary without the library: Redis restarted
                    // without its data, or the node joined the cluster
                    // since the start. Load it where it is missing.
                    tracing::warn!(sale = %sale.id, "the Functions library is missing; loading it");
                    if let Err(error) =
                        flashsale::nodes::prepare(engine.connection(), BackendChoice::Lua).await
                    {
                        tracing::warn!(%error, "cannot load the Functions library; retrying");
                        visits.not_before(&sale.id, now + config.sales_refresh());
                    }
                }
                Err(error) => {
                    tracing::warn!(sale = %sale.id, %error, "GRANT failed; retrying");
                    visits.not_before(&sale.id, now + config.sales_refresh());
                }
            }
        }
        if pause(&mut stopping, config.poll_interval()).await {
            return;
        }
    }
}
