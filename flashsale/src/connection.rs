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
//!
//! A cluster connection is rebuilt — a fresh slot map from the seed nodes —
//! when its commands keep failing as unavailable: under concurrent load the
//! redis crate's connection can keep timing out on the slots of a primary
//! that died, long after a replica took them over (see [`ClusterLink`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
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
    Cluster(ClusterLink),
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
                Ok(RedisConn::Cluster(ClusterLink::new(client, config)))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Sends `cmd`, which names no key, to the primary that serves `key`,
    /// and only there. The cluster client sends a command whose node it
    /// cannot reach to another node of the shard or to any node at all, so
    /// `cmd` travels in one pipeline behind `EXISTS key`: a node that does
    /// not serve `key` as its primary refuses that (`MOVED`), and the answer
    /// is an error instead of another node's.
    pub async fn on_primary_of(&mut self, key: &str, cmd: Cmd) -> RedisResult<Value> {
        match self {
            RedisConn::Server(server) => cmd.query_async(server).await,
            RedisConn::Cluster(link) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EXISTS").arg(key).add_command(cmd);
                let result = link.connection().req_packed_commands(&pipe, 0, 2).await;
                link.observe(&result);
                let mut replies = result?.into_iter();
                match (replies.next(), replies.next()) {
                    (Some(probe), Some(answer)) => {
                        probe.extract_error()?;
                        answer.extract_error()
                    }
                    _ => Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "a pipeline of two commands did not answer twice",
                    ))),
                }
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

    /// The replication id of the primary that serves `key`: it changes when
    /// another node takes over (a failover) or the server restarts, so two
    /// reads with the same id saw one continuous history.
    pub async fn history_of(&mut self, key: &str) -> RedisResult<String> {
        let mut info = redis::cmd("INFO");
        info.arg("replication");
        let text: String = redis::from_redis_value(self.on_primary_of(key, info).await?)?;
        text.lines()
            .find_map(|line| line.strip_prefix("master_replid:"))
            .map(|id| id.trim().to_string())
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "INFO replication without master_replid",
                ))
            })
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
            RedisConn::Cluster(link) => Box::pin(async move {
                let result = link.connection().req_packed_command(cmd).await;
                link.observe(&result);
                result
            }),
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
            RedisConn::Cluster(link) => Box::pin(async move {
                let result = link
                    .connection()
                    .req_packed_commands(cmd, offset, count)
                    .await;
                link.observe(&result);
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Server(conn) => conn.get_db(),
            RedisConn::Cluster(link) => link.conn.get_db(),
        }
    }
}

/// A cluster connection shared by every clone, replaced by a fresh one
/// (new slot map, new node connections) after [`ClusterLink::REBUILD_AFTER`]
/// unavailable replies within [`ClusterLink::FAILURE_WINDOW`], at most once
/// per [`ClusterLink::REBUILD_EVERY`]. Each clone keeps the connection it
/// last used and picks up a rebuilt one on its next command.
#[derive(Clone)]
pub struct ClusterLink {
    shared: Arc<ClusterShared>,
    conn: ClusterConnection,
    generation: u64,
}

struct ClusterShared {
    client: ClusterClient,
    config: ClusterConfig,
    state: Mutex<LinkState>,
}

struct LinkState {
    conn: ClusterConnection,
    generation: u64,
    failures: u32,
    first_failure: Instant,
    rebuilt: Instant,
}

impl ClusterLink {
    const REBUILD_AFTER: u32 = 3;
    const FAILURE_WINDOW: Duration = Duration::from_secs(10);
    const REBUILD_EVERY: Duration = Duration::from_secs(1);

    fn new(client: ClusterClient, config: ClusterConfig) -> ClusterLink {
        let conn = client.get_pending_async_connection_with_config(config.clone());
        let now = Instant::now();
        let state = LinkState {
            conn: conn.clone(),
            generation: 0,
            failures: 0,
            first_failure: now,
            rebuilt: now,
        };
        ClusterLink {
            shared: Arc::new(ClusterShared {
                client,
                config,
                state: Mutex::new(state),
            }),
            conn,
            generation: 0,
        }
    }

    /// The current connection, after catching up with a rebuild made
    /// through another clone.
    pub fn connection(&mut self) -> &mut ClusterConnection {
        if let Ok(state) = self.shared.state.lock() {
            if state.generation != self.generation {
                self.conn = state.conn.clone();
                self.generation = state.generation;
            }
        }
        &mut self.conn
    }

    /// How many times the connection was rebuilt.
    pub fn rebuilds(&self) -> u64 {
        self.shared.state.lock().map_or(0, |state| state.generation)
    }

    fn observe<T>(&self, result: &RedisResult<T>) {
        let Err(error) = result else { return };
        if !crate::error::redis_unavailable(error) {
            return;
        }
        let Ok(mut state) = self.shared.state.lock() else {
            return;
        };
        if state.generation != self.generation {
            return; // already rebuilt since this command was sent
        }
        let now = Instant::now();
        if now.duration_since(state.first_failure) > Self::FAILURE_WINDOW {
            state.failures = 0;
        }
        if state.failures == 0 {
            state.first_failure = now;
        }
        state.failures += 1;
        if state.failures >= Self::REBUILD_AFTER
            && now.duration_since(state.rebuilt) >= Self::REBUILD_EVERY
        {
            tracing::warn!(
                %error,
                failures = state.failures,
                "the cluster keeps answering unavailable; reconnecting with a fresh slot map"
            );
            state.conn = self
                .shared
                .client
                .get_pending_async_connection_with_config(self.shared.config.clone());
            state.generation += 1;
            state.failures = 0;
            state.rebuilt = now;
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
