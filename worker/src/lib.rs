//! The flashsale worker: admits waiting users for every active sale, lets
//! lapsed holds be reclaimed, and copies confirmed orders from each sale's
//! Redis outbox into MongoDB — at least once, idempotently. Several workers
//! may run against the same Redis and MongoDB.

pub mod admission;
pub mod config;
pub mod copier;
mod error;
pub mod http;
pub mod orders;
pub mod outbox;
pub mod reconcile;
pub mod sales;
pub mod telemetry;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashsale::{BackendChoice, EngineClient};
use mongodb::Database;
use redis::aio::ConnectionManager;
use tokio::sync::{watch, RwLock};
use tracing::Instrument;

pub use error::WorkerError;

use crate::admission::Admission;
use crate::config::{Config, EngineChoice};
use crate::copier::Copier;
use crate::sales::KnownSale;

type Engine = EngineClient<ConnectionManager>;

pub struct Worker {
    config: Config,
    engine: Engine,
    redis: ConnectionManager,
    db: Database,
    listener: tokio::net::TcpListener,
}

async fn connect_redis(config: &Config) -> Result<(ConnectionManager, Engine), WorkerError> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let redis = ConnectionManager::new(client).await?;
    let choice = match config.engine {
        EngineChoice::Auto => BackendChoice::Auto,
        EngineChoice::Module => BackendChoice::Module,
        EngineChoice::Lua => BackendChoice::Functions,
    };
    let engine = EngineClient::connect(redis.clone(), choice).await?;
    Ok((redis, engine))
}

async fn connect_mongo(config: &Config) -> Result<Database, WorkerError> {
    let client = mongodb::Client::with_uri_str(&config.mongo_url).await?;
    Ok(client.database(&config.mongo_db))
}

/// One reconciliation pass over every sale (the `reconcile` subcommand).
pub async fn reconcile_once(config: &Config) -> Result<reconcile::Report, WorkerError> {
    let (mut redis, _) = connect_redis(config).await?;
    let db = connect_mongo(config).await?;
    let mut report = reconcile::Report::default();
    for sale in sales::list(&db).await? {
        report
            .sales
            .push(reconcile::reconcile_sale(&mut redis, &db, &sale.id).await?);
    }
    Ok(report)
}

impl Worker {
    /// Connects to Redis and MongoDB, makes sure the engine and the order
    /// indexes are there, and binds the metrics port.
    pub async fn build(config: Config) -> Result<Worker, WorkerError> {
        let (redis, engine) = connect_redis(&config).await?;
        let db = connect_mongo(&config).await?;
        orders::ensure_indexes(&db).await?;
        let listener = tokio::net::TcpListener::bind(config.metrics_addr).await?;
        Ok(Worker {
            config,
            engine,
            redis,
            db,
            listener,
        })
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Runs until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await;
        Ok(())
    }

    /// Runs until `stop` completes, then finishes the write in flight (and
    /// its acknowledgement) and returns.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) {
        let (stopping_tx, stopping) = watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopping_tx.send(true);
        });
        let known: Arc<RwLock<Vec<KnownSale>>> = Arc::default();
        let consumer = self.config.consumer();
        tracing::info!(%consumer, metrics = ?self.metrics_addr(), "worker started");

        let server = {
            let mut stopping = stopping.clone();
            let serve =
                axum::serve(self.listener, http::router()).with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                });
            tokio::spawn(async move {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "metrics server failed");
                }
            })
        };
        let tasks = vec![
            tokio::spawn(refresh_sales(
                self.db.clone(),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
            tokio::spawn(admit_loop(
                self.engine.clone(),
                self.db.clone(),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
            tokio::spawn(copy_loop(
                self.redis.clone(),
                self.db.clone(),
                Copier::new(
                    consumer,
                    self.config.outbox_batch,
                    self.config.claim_idle_ms,
                ),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
            tokio::spawn(reconcile_loop(
                self.redis.clone(),
                self.db.clone(),
                self.config.clone(),
                known,
                stopping,
            )),
        ];
        for task in tasks {
            let _ = task.await;
        }
        let _ = server.await;
        tracing::info!("worker stopped");
    }
}

/// Sleeps, or returns `true` early when the worker is stopping.
async fn pause(stopping: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stopping.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stopping.wait_for(|s| *s) => true,
    };
    stopped || *stopping.borrow()
}

async fn refresh_sales(
    db: Database,
    config: Config,
    known: Arc<RwLock<Vec<KnownSale>>>,
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

/// GRANTs every sale that is open, as often as the poll interval; an upcoming
/// sale is not asked again before it starts, an ended one only once per
/// sales refresh (an admin may extend it, and then it is open again).
async fn admit_loop(
    mut engine: Engine,
    db: Database,
    config: Config,
    known: Arc<RwLock<Vec<KnownSale>>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut next_visit: HashMap<String, Instant> = HashMap::new();
    let mut quantity_synced: HashMap<String, (u64, Instant)> = HashMap::new();
    loop {
        let sales = known.read().await.clone();
        let now = Instant::now();
        for sale in &sales {
            if next_visit.get(&sale.id).is_some_and(|at| *at > now) {
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
                    next_visit.insert(sale.id.clone(), now + starts_in.min(config.sales_refresh()));
                }
                Ok(Admission::Ended) => {
                    tracing::debug!(sale = %sale.id, "sale ended; queue cleared");
                    next_visit.insert(sale.id.clone(), now + config.sales_refresh());
                }
                Err(error)
                    if error
                        .engine_error()
                        .is_some_and(|e| e.code == flashsale::ErrorCode::NoSale) =>
                {
                    // Not set up in Redis (yet): the API configures it.
                    next_visit.insert(sale.id.clone(), now + config.sales_refresh());
                }
                Err(error) => {
                    tracing::warn!(sale = %sale.id, %error, "GRANT failed; retrying");
                    next_visit.insert(sale.id.clone(), now + config.sales_refresh());
                }
            }
            sync_quantity(&mut engine, &db, sale, &mut quantity_synced).await;
        }
        if pause(&mut stopping, config.poll_interval()).await {
            return;
        }
    }
}

/// Keeps `currentQuantity` in MongoDB following the engine, at most once a
/// second per sale and only when it changed.
async fn sync_quantity(
    engine: &mut Engine,
    db: &Database,
    sale: &KnownSale,
    synced: &mut HashMap<String, (u64, Instant)>,
) {
    if synced
        .get(&sale.id)
        .is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(1))
    {
        return;
    }
    let Ok(status) = engine.status(&sale.id, None).await else {
        return;
    };
    let left = status.sale.stock.saturating_sub(status.sale.sold);
    metrics::gauge!("flashsale_sale_queued", "sale" => sale.id.clone())
        .set(status.sale.queued as f64);
    metrics::gauge!("flashsale_sale_held", "sale" => sale.id.clone()).set(status.sale.held as f64);
    metrics::gauge!("flashsale_sale_sold", "sale" => sale.id.clone()).set(status.sale.sold as f64);
    if synced.get(&sale.id).map(|(l, _)| *l) != Some(left) {
        if let Err(error) = sales::set_current_quantity(db, sale, left).await {
            tracing::warn!(sale = %sale.id, %error, "cannot update currentQuantity");
            return;
        }
    }
    synced.insert(sale.id.clone(), (left, Instant::now()));
}

/// Copies every sale's outbox. A failure (MongoDB or Redis away) backs off
/// exponentially up to two seconds; entries stay pending in Redis meanwhile,
/// nothing is held only in memory.
async fn copy_loop(
    mut redis: ConnectionManager,
    db: Database,
    mut copier: Copier,
    config: Config,
    known: Arc<RwLock<Vec<KnownSale>>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut grouped: HashSet<String> = HashSet::new();
    let mut backoff = Duration::ZERO;
    // A sale whose outbox was empty is looked at again after a growing pause
    // (up to a second), so old sales cost almost nothing; any copy resets it.
    let mut idle: HashMap<String, (Instant, Duration)> = HashMap::new();
    let mut gauged: HashMap<String, Instant> = HashMap::new();
    loop {
        let sales = known.read().await.clone();
        let mut copied = 0;
        let mut failed = false;
        for sale in &sales {
            if *stopping.borrow() {
                return;
            }
            if idle
                .get(&sale.id)
                .is_some_and(|(at, _)| *at > Instant::now())
            {
                continue;
            }
            if !grouped.contains(&sale.id) {
                match outbox::ensure_group(&mut redis, &sale.id).await {
                    Ok(()) => {
                        grouped.insert(sale.id.clone());
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
                    let step = idle
                        .get(&sale.id)
                        .map_or(config.poll_interval(), |(_, step)| *step * 2);
                    let step = step.min(Duration::from_secs(1));
                    idle.insert(sale.id.clone(), (Instant::now() + step, step));
                }
                Ok(n) => {
                    copied += n;
                    idle.remove(&sale.id);
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
            // The backlog gauges are for dashboards: once a second is plenty.
            if gauged
                .get(&sale.id)
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
            {
                continue;
            }
            gauged.insert(sale.id.clone(), Instant::now());
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

async fn reconcile_loop(
    mut redis: ConnectionManager,
    db: Database,
    config: Config,
    known: Arc<RwLock<Vec<KnownSale>>>,
    mut stopping: watch::Receiver<bool>,
) {
    if config.reconcile_interval_s == 0 {
        return;
    }
    let every = Duration::from_secs(config.reconcile_interval_s);
    while !pause(&mut stopping, every).await {
        let sales = known.read().await.clone();
        for sale in sales {
            let span = tracing::info_span!("reconcile", sale = %sale.id);
            if let Err(error) = reconcile::reconcile_sale(&mut redis, &db, &sale.id)
                .instrument(span)
                .await
            {
                tracing::warn!(sale = %sale.id, %error, "reconciliation failed");
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
