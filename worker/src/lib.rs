//! The flashsale worker: admits waiting users for every active sale, lets
//! lapsed holds be reclaimed, and copies confirmed orders from each sale's
//! Redis outbox into MongoDB — at least once, idempotently. Several workers
//! may run against the same Redis and MongoDB.

pub mod admission;
pub mod config;
mod connect;
pub mod copier;
mod error;
pub mod http;
mod loops;
pub mod orders;
pub mod outbox;
pub mod reconcile;
pub mod sales;
mod schedule;
mod shutdown;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;

use mongodb::Database;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

pub use error::WorkerError;

use crate::config::Config;
use crate::connect::{connect_mongo, connect_redis, EngineConn};
use crate::copier::Copier;
use crate::loops::KnownSales;

pub struct Worker {
    config: Config,
    engine: EngineConn,
    redis: ConnectionManager,
    db: Database,
    listener: tokio::net::TcpListener,
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
        self.run_until(shutdown::signal()).await;
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
        let known = KnownSales::default();
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
            tokio::spawn(loops::sales_refresh::run(
                self.db.clone(),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
            tokio::spawn(loops::admission::run(
                self.engine.clone(),
                self.db.clone(),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
            tokio::spawn(loops::outbox_copy::run(
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
            tokio::spawn(loops::reconcile::run(
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
