//! The one Redis connection of the platform's programs: a single server or a
//! Redis Cluster, chosen by configuration (`REDIS_URL`, or
//! `REDIS_CLUSTER_NODES` when set).
//!
//! Both kinds connect lazily and reconnect by themselves, so a program starts
//! while Redis is still loading its data or not reachable yet; until then its
//! commands fail (and the API answers 503). On a cluster every command that
//! names a key — every engine command names the sale id — goes straight to
//! the primary of that key's slot (the client keeps the slot map), so the
//! steady state has no redirections.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://host:port/`).
    Server(String),
    /// A Redis Cluster, found through these seed nodes (`host:port`).
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// `cluster_nodes` (`host:port,host:port,…`) when set and not blank;
    /// otherwise the single server at `url`.
    pub fn from_settings(url: &str, cluster_nodes: Option<&str>) -> Result<Self, String> {
        let Some(nodes) = cluster_nodes.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(RedisTarget::Server(url.to_string()));
        };
        let seeds: Vec<String> = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        for seed in &seeds {
            let valid = seed
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!(
                    "REDIS_CLUSTER_NODES: {seed:?} is not host:port (expected host:port,host:port,…)"
                ));
            }
        }
        Ok(RedisTarget::Cluster(seeds))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Server(url) => write!(f, "{url}"),
            RedisTarget::Cluster(seeds) => write!(f, "cluster {}", seeds.join(",")),
        }
    }
}

/// How long to wait for a connection and for each reply.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
        }
    }
}

/// A multiplexed, self-reconnecting connection to a server or a cluster.
#[derive(Clone)]
pub enum RedisConn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Does not wait for Redis: the connection is made on first use and
    /// made again after a failure.
    pub fn open(target: &RedisTarget, timeouts: Timeouts) -> RedisResult<RedisConn> {
        match target {
            RedisTarget::Server(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Ok(RedisConn::Server(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisTarget::Cluster(seeds) => {
                let nodes: Vec<String> = seeds.iter().map(|s| format!("redis://{s}/")).collect();
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.response);
                Ok(RedisConn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Sends `cmd`, which names no key, to the primary that serves `key`.
    async fn on_primary_of(&mut self, key: &str, cmd: Cmd) -> RedisResult<Value> {
        match self {
            RedisConn::Server(server) => cmd.query_async(server).await,
            RedisConn::Cluster(cluster) => {
                let primary = Route::with_key(key, SlotAddr::Master);
                cluster
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(primary)),
                    )
                    .await
            }
        }
    }

    /// How many replicas the primary that serves `key` has: on a cluster,
    /// the replicas the cluster assigns to it (`CLUSTER NODES`), whether
    /// their link is up or not — a replica that is down still counts, so an
    /// order is never taken as durable on its primary alone; on a single
    /// server, the replicas connected now (`INFO replication`).
    pub async fn replicas_of(&mut self, key: &str) -> RedisResult<u64> {
        if self.is_cluster() {
            let mut nodes = redis::cmd("CLUSTER");
            nodes.arg("NODES");
            let text: String = redis::from_redis_value(self.on_primary_of(key, nodes).await?)?;
            return Ok(crate::nodes::replicas_of_myself(&text));
        }
        let mut info = redis::cmd("INFO");
        info.arg("replication");
        let text: String = redis::from_redis_value(self.on_primary_of(key, info).await?)?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// `WAIT replicas timeout_ms` on the primary that serves `key`: how many
    /// replicas acknowledged every write this connection made there so far.
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u64,
        timeout_ms: u64,
    ) -> RedisResult<u64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        Ok(redis::from_redis_value(
            self.on_primary_of(key, wait).await?,
        )?)
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Server(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Server(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Server(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_win_over_the_url_when_set() {
        let url = "redis://127.0.0.1:6390/";
        assert_eq!(
            RedisTarget::from_settings(url, None),
            Ok(RedisTarget::Server(url.into()))
        );
        assert_eq!(
            RedisTarget::from_settings(url, Some("  ")),
            Ok(RedisTarget::Server(url.into()))
        );
        assert_eq!(
            RedisTarget::from_settings(url, Some("10.0.0.1:7000, redis-b:7001,")),
            Ok(RedisTarget::Cluster(vec![
                "10.0.0.1:7000".into(),
                "redis-b:7001".into()
            ]))
        );
        for bad in ["10.0.0.1", "host:port", ":7000", "a:70000"] {
            assert!(RedisTarget::from_settings(url, Some(bad)).is_err(), "{bad}");
        }
    }
}
