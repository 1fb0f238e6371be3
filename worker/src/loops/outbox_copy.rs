//! The outbox copy loop: [`Copier::copy_once`] for every sale that is due,
//! trimming what MongoDB has from the outbox, and the outbox backlog gauges.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flashsale::RedisConn;
use mongodb::Database;
use tokio::sync::watch;
use tracing::Instrument;

use super::KnownSales;
use crate::config::Config;
use crate::copier::Copier;
use crate::outbox;
use crate::schedule::SaleSchedule;
use crate::shutdown::pause;
use crate::WorkerError;

/// The longest pause before an idle sale's outbox is read again.
const IDLE_PAUSE_CAP: Duration = Duration::from_secs(1);
/// How often each sale's backlog gauges are read.
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// How often a sale whose entries were copied has its outbox trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Copies every sale's outbox. A failure (MongoDB or Redis away) backs off
/// exponentially up to two seconds; entries stay pending in Redis meanwhile,
/// nothing is held only in memory.
pub(crate) async fn run(
    mut redis: RedisConn,
    db: Database,
    mut copier: Copier,
    config: Config,
    known: KnownSales,
    mut stopping: watch::Receiver<bool>,
) {
    let mut grouped: HashSet<String> = HashSet::new();
    let mut backoff = Duration::ZERO;
    // A sale whose outbox was empty is looked at again after a growing pause
    // (up to a second), so old sales cost almost nothing; any copy resets it.
    let mut idle = SaleSchedule::default();
    let mut gauged = SaleSchedule::default();
    // Sales whose outbox may hold entries to trim (copied, or kept for
    // WORKER_OUTBOX_KEEP_S).
    let mut untrimmed: HashSet<String> = HashSet::new();
    let mut trimmed = SaleSchedule::default();
    loop {
        let sales = known.read().await.clone();
        let mut copied = 0;
        let mut failed = false;
        for sale in &sales {
            if *stopping.borrow() {
                return;
            }
            if !idle.is_due(&sale.id, Instant::now()) {
                continue;
            }
            if !grouped.contains(&sale.id) {
                // A sale the engine does not have (archived, or not set up
                // yet) has nothing to copy: do not create its stream.
                let exists: Result<bool, _> = redis::cmd("EXISTS")
                    .arg(flashsale::keys::sale(&sale.id))
                    .query_async(&mut redis)
                    .await;
                if !matches!(exists, Ok(true)) {
                    idle.back_off(
                        &sale.id,
                        Instant::now(),
                        config.poll_interval(),
                        IDLE_PAUSE_CAP,
                    );
                    continue;
                }
                match outbox::ensure_group(&mut redis, &sale.id).await {
                    Ok(()) => {
                        grouped.insert(sale.id.clone());
                        // What an earlier worker copied but had not trimmed
                        // yet: this process has not seen it copied.
                        untrimmed.insert(sale.id.clone());
                    }
                    Err(error) => {
                        tracing::warn!(sale = %sale.id, %error, "cannot create the outbox group");
                        failed = true;
                        continue;
                    }
                }
            }
            let span = tracing::info_span!("copy", sale = %sale.id);
            match copier
                .copy_once(&mut redis, &db, &sale.id)
                .instrument(span)
                .await
            {
                Ok(0) => {
                    idle.back_off(
                        &sale.id,
                        Instant::now(),
                        config.poll_interval(),
                        IDLE_PAUSE_CAP,
                    );
                }
                Ok(n) => {
                    copied += n;
                    idle.reset(&sale.id);
                    untrimmed.insert(sale.id.clone());
                }
                Err(error) => {
                    metrics::counter!("flashsale_worker_copy_errors_total").increment(1);
                    tracing::warn!(sale = %sale.id, %error, "outbox copy failed; will retry");
                    failed = true;
                    if matches!(error, WorkerError::Redis(ref e) if e.code() == Some("NOGROUP")) {
                        grouped.remove(&sale.id);
                    }
                }
            }
            // Redis must not grow with a sale's history: once MongoDB has
            // the orders, their entries go (a second's worth at a time).
            if untrimmed.contains(&sale.id)
                && trimmed.once_per(&sale.id, Instant::now(), TRIM_EVERY)
            {
                let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
                let keep_ms = config.outbox_keep_s.saturating_mul(1000);
                match outbox::trim_copied(&mut redis, &sale.id, now_ms, keep_ms).await {
                    Ok((removed, left)) => {
                        if left <= 1 {
                            untrimmed.remove(&sale.id);
                        }
                        metrics::counter!("flashsale_worker_outbox_trimmed_total")
                            .increment(removed);
                    }
                    Err(error) => {
                        tracing::warn!(sale = %sale.id, %error, "cannot trim the outbox; will retry");
                    }
                }
            }
            // The backlog gauges are for dashboards: once a second is plenty.
            if !gauged.once_per(&sale.id, Instant::now(), GAUGE_EVERY) {
                continue;
            }
            if let Ok(Some((lag, pending))) = outbox::backlog(&mut redis, &sale.id).await {
                metrics::gauge!("flashsale_worker_outbox_backlog", "sale" => sale.id.clone())
                    .set(lag as f64);
                metrics::gauge!("flashsale_worker_outbox_pending", "sale" => sale.id.clone())
                    .set(pending as f64);
            }
        }
        backoff = if failed {
            (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(2))
        } else {
            Duration::ZERO
        };
        // Busy: go straight on. Idle: poll. Failing: back off.
        let wait = if failed {
            backoff
        } else if copied > 0 {
            Duration::ZERO
        } else {
            config.poll_interval()
        };
        if pause(&mut stopping, wait).await {
            return;
        }
    }
}
