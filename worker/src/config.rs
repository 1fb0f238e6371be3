//! All settings, from flags or the environment, in one place.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flashsale::{BackendChoice, RedisTarget};

#[derive(Debug, Parser)]
#[command(
    name = "flashsale-worker",
    about = "Admission, hold expiry and the order outbox copier of flashsale"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare every sale's orders in Redis with MongoDB once, re-copy what
    /// MongoDB lacks, print the report and exit. Never deletes anything.
    Reconcile,
}

#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// The Redis server (not used when REDIS_CLUSTER_NODES is set).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Redis Cluster seed nodes, `host:port,host:port,…`; when set, the
    /// worker talks to the cluster and REDIS_URL is not used.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    #[arg(long, env = "MONGO_URL", default_value = "mongodb://127.0.0.1:27017/")]
    pub mongo_url: String,
    #[arg(long, env = "MONGO_DB", default_value = "flashsale")]
    pub mongo_db: String,
    /// Which engine backend to use: the module when loaded (auto), or the
    /// Functions library, loaded on start if missing.
    #[arg(long, env = "ENGINE", value_enum, default_value_t = BackendChoice::Auto)]
    pub engine: BackendChoice,
    /// Replicas an order must be on before it is copied to MongoDB (as the
    /// API's confirm); unset: 1 when the sale's primary has replicas.
    #[arg(long, env = "CONFIRM_MIN_REPLICAS")]
    pub confirm_min_replicas: Option<u64>,
    /// How long to wait for them before trying again later (ms).
    #[arg(long, env = "CONFIRM_WAIT_MS", default_value_t = 500)]
    pub confirm_wait_ms: u64,
    /// This worker's name in the outbox consumer group; unique per process.
    #[arg(long, env = "WORKER_CONSUMER_NAME")]
    pub consumer_name: Option<String>,
    /// How often each active sale gets a GRANT.
    #[arg(long, env = "WORKER_POLL_INTERVAL_MS", default_value_t = 25)]
    pub poll_interval_ms: u64,
    /// How often the list of sales is re-read from MongoDB.
    #[arg(long, env = "WORKER_SALES_REFRESH_MS", default_value_t = 1000)]
    pub sales_refresh_ms: u64,
    /// Most holds one GRANT call may give.
    #[arg(long, env = "WORKER_GRANT_BATCH", default_value_t = 200)]
    pub grant_batch: u64,
    /// Most outbox entries read (and written to MongoDB) at once.
    #[arg(long, env = "WORKER_OUTBOX_BATCH", default_value_t = 200)]
    pub outbox_batch: usize,
    /// A pending outbox entry idle this long belonged to a worker that died;
    /// another worker claims it.
    #[arg(long, env = "WORKER_CLAIM_IDLE_MS", default_value_t = 10_000)]
    pub claim_idle_ms: u64,
    /// How often the reconciliation job runs (0 = never).
    #[arg(long, env = "WORKER_RECONCILE_INTERVAL_S", default_value_t = 300)]
    pub reconcile_interval_s: u64,
    /// How long an ended sale keeps its engine keys in Redis; after that,
    /// once MongoDB has every order, they are removed and the API answers
    /// for the sale from MongoDB.
    #[arg(long, env = "SALE_RETENTION_SECONDS", default_value_t = 86_400)]
    pub sale_retention_s: u64,
    /// How long an order stays in the outbox after MongoDB has it, so that
    /// reconciliation can still copy it again if MongoDB loses it.
    #[arg(long, env = "WORKER_OUTBOX_KEEP_S", default_value_t = 300)]
    pub outbox_keep_s: u64,
    /// Where /metrics and /healthz are served.
    #[arg(long, env = "WORKER_METRICS_ADDR", default_value = "127.0.0.1:9187")]
    pub metrics_addr: SocketAddr,
    /// `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    pub fn sales_refresh(&self) -> Duration {
        Duration::from_millis(self.sales_refresh_ms.max(1))
    }

    pub fn consumer(&self) -> String {
        self.consumer_name.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// A single server, or the cluster when REDIS_CLUSTER_NODES is set.
    pub fn redis_target(&self) -> Result<RedisTarget, String> {
        RedisTarget::from_settings(&self.redis_url, self.redis_cluster_nodes.as_deref())
    }

    /// Settings for tests: everything local, fast polling, an ephemeral port.
    pub fn for_tests(redis_url: String, mongo_url: String, mongo_db: String) -> Self {
        Config {
            redis_url,
            redis_cluster_nodes: None,
            mongo_url,
            mongo_db,
            engine: BackendChoice::Auto,
            confirm_min_replicas: None,
            confirm_wait_ms: 500,
            consumer_name: None,
            poll_interval_ms: 10,
            sales_refresh_ms: 100,
            grant_batch: 200,
            outbox_batch: 200,
            claim_idle_ms: 1000,
            reconcile_interval_s: 0,
            sale_retention_s: 86_400,
            outbox_keep_s: 300,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_format: "text".into(),
        }
    }
}
