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

use std::time::Duration;

use flashsale::RedisConn;
use mongodb::Database;
use tokio::sync::watch;

pub use error::WorkerError;

use crate::config::Config;
pub use crate::connect::Readiness;
use crate::connect::{connect_mongo, open_redis, try_engine, wait_for_engine, EngineConn};
use crate::copier::Copier;
use crate::loops::KnownSales;

pub struct Worker {
    config: Config,
    /// `None` while Redis could not be asked yet (see [`Worker::build`]).
    engine: Option<EngineConn>,
    ready: Readiness,
    redis: RedisConn,
    db: Database,
    listener: tokio::net::TcpListener,
}

/// One reconciliation pass over every sale (the `reconcile` subcommand).
pub async fn reconcile_once(config: &Config) -> Result<reconcile::Report, WorkerError> {
    let redis = open_redis(config)?;
    let mut engine = flashsale::EngineClient::prepare(redis, config.engine).await?;
    let db = connect_mongo(config).await?;
    let mut report = reconcile::Report::default();
    for sale in sales::list(&db).await? {
        report
            .sales
            .push(reconcile::reconcile_sale(&mut engine, &db, &sale.id).await?);
    }
    Ok(report)
}

impl Worker {
    /// Connects to MongoDB (creating the order indexes) and binds the
    /// metrics port. Redis is asked for a moment whether every node runs the
    /// engine: a node without it stops the start with the reason; a Redis
    /// that is still loading or not reachable is waited for in the
    /// background (`/readyz` answers 503 meanwhile).
    pub async fn build(config: Config) -> Result<Worker, WorkerError> {
        let redis = open_redis(&config)?;
        let ready = Readiness::default();
        let engine =
            match tokio::time::timeout(Duration::from_secs(3), try_engine(&redis, &config, &ready))
                .await
            {
                Ok(found) => found?,
                Err(_) => None,
            };
        let db = connect_mongo(&config).await?;
        orders::ensure_indexes(&db).await?;
        let listener = tokio::net::TcpListener::bind(config.metrics_addr).await?;
        Ok(Worker {
            config,
            engine,
            ready,
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
            let serve = axum::serve(
                self.listener,
                http::router(self.ready.clone(), self.redis.clone()),
            )
            .with_graceful_shutdown(async move {
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
            tokio::spawn({
                let (engine, redis, ready) = (self.engine, self.redis.clone(), self.ready);
                let (db, config, known, mut stopping) = (
                    self.db.clone(),
                    self.config.clone(),
                    known.clone(),
                    stopping.clone(),
                );
                async move {
                    let engine = match engine {
                        Some(engine) => Some(engine),
                        None => wait_for_engine(&redis, &config, &ready, &mut stopping).await,
                    };
                    if let Some(engine) = engine {
                        let reconcile = tokio::spawn(loops::reconcile::run(
                            engine.clone(),
                            db.clone(),
                            config.clone(),
                            known.clone(),
                            stopping.clone(),
                        ));
                        let retention = tokio::spawn(loops::retention::run(
                            engine.clone(),
                            db.clone(),
                            config.clone(),
                            known.clone(),
                            stopping.clone(),
                        ));
                        let quantity = tokio::spawn(loops::quantity::run(
                            engine.clone(),
                            db,
                            config.clone(),
                            known.clone(),
                            stopping.clone(),
                        ));
                        loops::admission::run(engine, config, known, stopping).await;
                        let _ = reconcile.await;
                        let _ = quantity.await;
                        let _ = retention.await;
                    }
                }
            }),
            tokio::spawn(loops::outbox_copy::run(
                self.redis.clone(),
                self.db.clone(),
                Copier::new(
                    consumer,
                    self.config.outbox_batch,
                    self.config.claim_idle_ms,
                )
                .with_replication(
                    self.config.confirm_min_replicas,
                    self.config.confirm_wait_ms,
                ),
                self.config.clone(),
                known.clone(),
                stopping.clone(),
            )),
        ];
        for task in tasks {
            let _ = task.await;
        }
        let _ = server.await;
        tracing::info!("worker stopped");
    }
}
