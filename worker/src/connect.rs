//! The connections a worker, or a one-off reconciliation, opens.

use flashsale::EngineClient;
use mongodb::Database;
use redis::aio::ConnectionManager;

use crate::config::Config;
use crate::WorkerError;

/// A client for the engine's commands (`FLASHSALE.*`, through the module or
/// the Functions library) over the worker's Redis connection.
pub(crate) type EngineConn = EngineClient<ConnectionManager>;

pub(crate) async fn connect_redis(
    config: &Config,
) -> Result<(ConnectionManager, EngineConn), WorkerError> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let redis = ConnectionManager::new(client).await?;
    let engine = EngineClient::connect(redis.clone(), config.engine).await?;
    Ok((redis, engine))
}

pub(crate) async fn connect_mongo(config: &Config) -> Result<Database, WorkerError> {
    let client = mongodb::Client::with_uri_str(&config.mongo_url).await?;
    Ok(client.database(&config.mongo_db))
}
