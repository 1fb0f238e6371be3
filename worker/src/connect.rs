//! The connections a worker, or a one-off reconciliation, opens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashsale::{ClientError, EngineClient, RedisConn, Timeouts};
use mongodb::Database;
use tokio::sync::watch;

use crate::config::Config;
use crate::shutdown::pause;
use crate::WorkerError;

/// A client for the engine's commands (`FLASHSALE.*`, through the module or
/// the Functions library) over the worker's Redis connection.
pub(crate) type EngineConn = EngineClient<RedisConn>;

/// The Redis connection (a server or a cluster), made lazily: the worker
/// starts while Redis is loading or not reachable yet.
pub(crate) fn open_redis(config: &Config) -> Result<RedisConn, WorkerError> {
    let target = config
        .redis_target()
        .map_err(|e| WorkerError::Config(e.to_string()))?;
    Ok(RedisConn::open(&target, Timeouts::default())?)
}

/// Whether the engine was found on every node (the worker's `/readyz`).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checks every node runs the engine, once; `Ok(None)` while Redis cannot
/// answer yet, an error when a node lacks the engine.
pub(crate) async fn try_engine(
    redis: &RedisConn,
    config: &Config,
    ready: &Readiness,
) -> Result<Option<EngineConn>, WorkerError> {
    match EngineClient::prepare(redis.clone(), config.engine).await {
        Ok(engine) => {
            tracing::info!(backend = engine.backend().as_str(), "engine ready");
            ready.set();
            Ok(Some(engine))
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "Redis is not ready yet; retrying");
            Ok(None)
        }
        Err(e @ ClientError::EngineMissing(_)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

/// [`try_engine`] until it succeeds; `None` if the worker is stopped first.
pub(crate) async fn wait_for_engine(
    redis: &RedisConn,
    config: &Config,
    ready: &Readiness,
    stopping: &mut watch::Receiver<bool>,
) -> Option<EngineConn> {
    loop {
        match try_engine(redis, config, ready).await {
            Ok(Some(engine)) => return Some(engine),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot use the flashsale engine on this Redis"),
        }
        if pause(stopping, Duration::from_secs(1)).await {
            return None;
        }
    }
}

pub(crate) async fn connect_mongo(config: &Config) -> Result<Database, WorkerError> {
    let client = mongodb::Client::with_uri_str(&config.mongo_url).await?;
    Ok(client.database(&config.mongo_db))
}
