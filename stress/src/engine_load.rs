//! Load straight on the engine, for a single server or a Redis Cluster:
//! `--sales N` sales set up with FLASHSALE.SETUP (huge stock, open now, a
//! long hold), `--concurrency C` tasks each with one command in flight for
//! `--seconds S`, then ops/s in total and per sale, and the Redis CPU every
//! node spent (`INFO cpu`) per op.
//!
//! `redis-benchmark --cluster` cannot drive the engine: it routes by a
//! `{tag}` inside the key, and sale ids refuse braces. This tool routes
//! through [`flashsale::RedisConn`] like the platform does: every command
//! goes to the primary of its sale's slot.
//!
//! Sale ids are `<prefix>-<n>`, n = 0, 1, 2, …; each candidate's primary is
//! asked ([`RedisConn::history_of`]: a primary's replication id) and the ids
//! are dealt by [`Dealer`]: `spread` takes them so every primary gets the
//! same share (±1), `one` takes only ids served by the primary of
//! `<prefix>-0`. On a single server both are the same.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::cpu::own_cpu_seconds;
use clap::{Parser, ValueEnum};
use flashsale::{
    keys, BackendChoice, ClientError, ConfirmReply, EngineClient, EnqueueReply, GrantReply,
    RedisConn, RedisTarget, SetupParams, Timeouts,
};
use redis::aio::MultiplexedConnection;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashsale-engine-load",
    about = "Drives FLASHSALE.* commands straight at a Redis server or a Redis Cluster and \
             reports ops/s and Redis CPU per op"
)]
pub struct LoadConfig {
    /// The Redis server; not used when REDIS_CLUSTER_NODES is set.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Redis Cluster seed nodes, `host:port,host:port,…`.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    /// Which engine to drive.
    #[arg(long, env = "ENGINE", value_enum, default_value_t = Engine::Auto)]
    pub engine: Engine,
    /// Sales loaded at once; task `i` drives sale `i % sales`.
    #[arg(long, default_value_t = 6)]
    pub sales: usize,
    /// spread: the sales dealt evenly over the cluster's primaries; one:
    /// every sale on the primary of `<prefix>-0`.
    #[arg(long, value_enum, default_value_t = Placement::Spread)]
    pub placement: Placement,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Tasks, each with one command in flight.
    #[arg(long, default_value_t = 96)]
    pub concurrency: usize,
    /// Independent connections (to the server, or each to every node of the
    /// cluster) the tasks are dealt over.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// enqueue: ENQUEUE of fresh users; buy: ENQUEUE, GRANT 1, CONFIRM of
    /// whoever the GRANT admitted.
    #[arg(long, value_enum, default_value_t = LoadCommand::Enqueue)]
    pub command: LoadCommand,
    /// Sale ids are `<prefix>-<n>`.
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// Leave the sales' keys in Redis afterwards (they are deleted by default).
    #[arg(long)]
    pub keep: bool,
}

/// `ENGINE`, as the API and the worker spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Auto,
    Module,
    Lua,
}

impl From<Engine> for BackendChoice {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Auto => BackendChoice::Auto,
            Engine::Module => BackendChoice::Module,
            Engine::Lua => BackendChoice::Lua,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    Spread,
    One,
}

impl Placement {
    fn as_str(self) -> &'static str {
        match self {
            Placement::Spread => "spread",
            Placement::One => "one",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadCommand {
    Enqueue,
    Buy,
}

impl LoadCommand {
    fn as_str(self) -> &'static str {
        match self {
            LoadCommand::Enqueue => "enqueue",
            LoadCommand::Buy => "buy",
        }
    }
}

/// The longest sale id the engine takes.
const MAX_SALE_ID_LEN: usize = 64;

/// `<prefix>-<n>`; `None` when that is not a valid engine sale id
/// (`[A-Za-z0-9_.-]{1,64}`: no braces, so no hash tag of our own).
pub fn sale_id(prefix: &str, n: u64) -> Option<String> {
    let id = format!("{prefix}-{n}");
    let valid = id.len() <= MAX_SALE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    valid.then_some(id)
}

/// A fresh user id: unique per run (`run`), task and count.
pub fn user_id(run: &str, task: usize, n: u64) -> String {
    format!("u{run}.{task}.{n}")
}

/// Chooses sale ids as they are offered, each with the primary that serves
/// it, until it has `wanted`.
#[derive(Debug, Clone)]
pub struct Dealer {
    placement: Placement,
    wanted: usize,
    primaries: usize,
    target: Option<String>,
    per_node: BTreeMap<String, usize>,
    chosen: Vec<(String, String)>,
}

impl Dealer {
    /// `primaries`: how many primaries serve the data (1 on a server).
    pub fn new(placement: Placement, wanted: usize, primaries: usize) -> Dealer {
        Dealer {
            placement,
            wanted,
            primaries: primaries.max(1),
            target: None,
            per_node: BTreeMap::new(),
            chosen: Vec::new(),
        }
    }

    /// Offers sale `id`, served by `node`; true when taken.
    pub fn offer(&mut self, id: &str, node: &str) -> bool {
        if self.done() {
            return false;
        }
        let take = match self.placement {
            Placement::One => self.target.get_or_insert_with(|| node.to_string()) == node,
            Placement::Spread => {
                // Every primary gets `base`, and `extra` of them one more.
                let base = self.wanted / self.primaries;
                let extra = self.wanted % self.primaries;
                let has = self.per_node.get(node).copied().unwrap_or(0);
                let with_extra = self.per_node.values().filter(|&&n| n > base).count();
                has < base || (has == base && with_extra < extra)
            }
        };
        if take {
            *self.per_node.entry(node.to_string()).or_default() += 1;
            self.chosen.push((id.to_string(), node.to_string()));
        }
        take
    }

    pub fn done(&self) -> bool {
        self.chosen.len() >= self.wanted
    }

    /// The chosen `(sale id, node)` pairs, in the order they were taken.
    pub fn chosen(&self) -> &[(String, String)] {
        &self.chosen
    }

    /// How many sales each node got.
    pub fn per_node(&self) -> &BTreeMap<String, usize> {
        &self.per_node
    }
}

/// A number field (`name:value`) of an `INFO` reply.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The CPU seconds a server used so far: `used_cpu_user + used_cpu_sys`
/// from `INFO cpu` (the whole process, every thread).
pub fn info_cpu_seconds(info: &str) -> Option<f64> {
    let user: f64 = info_field(info, "used_cpu_user")?.parse().ok()?;
    let sys: f64 = info_field(info, "used_cpu_sys")?.parse().ok()?;
    Some(user + sys)
}

/// One Redis process, watched for its CPU.
struct NodeProbe {
    address: String,
    conn: MultiplexedConnection,
}

/// What one node said at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    pub address: String,
    pub primary: bool,
    /// The replication id of the data it holds: a primary's own, which its
    /// replicas share.
    pub history: String,
    pub cpu_seconds: f64,
}

impl NodeProbe {
    async fn open(address: &str) -> anyhow::Result<NodeProbe> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("redis://{address}/")
        };
        let client = redis::Client::open(url.as_str())?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .with_context(|| format!("connecting to {address}"))??;
        Ok(NodeProbe {
            address: address.to_string(),
            conn,
        })
    }

    async fn sample(&mut self) -> anyhow::Result<NodeSample> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .arg("replication")
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("INFO on {}", self.address))?;
        let bad = || anyhow::anyhow!("{}: INFO without CPU or replication fields", self.address);
        Ok(NodeSample {
            address: self.address.clone(),
            primary: info_field(&info, "role") == Some("master"),
            history: info_field(&info, "master_replid")
                .ok_or_else(bad)?
                .to_string(),
            cpu_seconds: info_cpu_seconds(&info).ok_or_else(bad)?,
        })
    }
}

async fn sample_all(probes: &mut [NodeProbe]) -> anyhow::Result<Vec<NodeSample>> {
    let mut samples = Vec::with_capacity(probes.len());
    for probe in probes {
        samples.push(probe.sample().await?);
    }
    Ok(samples)
}

/// Counters shared by the load tasks.
struct Counters {
    /// Commands answered as expected, per sale.
    ops: Vec<AtomicU64>,
    /// Orders confirmed (`buy`).
    orders: AtomicU64,
    /// Replies other than the expected one (e.g. `queue_full`).
    unexpected: AtomicU64,
    errors: AtomicU64,
    first_problem: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn new(sales: usize) -> Counters {
        Counters {
            ops: (0..sales).map(|_| AtomicU64::new(0)).collect(),
            orders: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_problem: std::sync::Mutex::new(None),
        }
    }

    fn problem(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_problem.lock() {
            first.get_or_insert(what);
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            ops: self.ops.iter().map(|n| n.load(Ordering::Relaxed)).collect(),
            orders: self.orders.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    ops: Vec<u64>,
    orders: u64,
    unexpected: u64,
    errors: u64,
}

/// One sale of the run and what it did in the measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleLoad {
    pub id: String,
    /// The address of the primary that serves it.
    pub primary: String,
    pub ops: u64,
}

/// One node's CPU over the measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLoad {
    pub address: String,
    pub primary: bool,
    /// Sales whose primary this node is, or whose primary this replica copies.
    pub sales: usize,
    pub cpu_seconds: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub command: LoadCommand,
    pub placement: Placement,
    pub cluster: bool,
    pub primaries: usize,
    pub primaries_used: usize,
    pub concurrency: usize,
    pub connections: usize,
    pub seconds: f64,
    pub sales: Vec<SaleLoad>,
    pub nodes: Vec<NodeLoad>,
    pub orders: u64,
    pub unexpected: u64,
    pub errors: u64,
    pub first_problem: Option<String>,
    /// The load tool's own CPU seconds in the window, when known.
    pub tool_cpu_seconds: Option<f64>,
}

impl LoadReport {
    pub fn ops(&self) -> u64 {
        self.sales.iter().map(|s| s.ops).sum()
    }

    pub fn ops_per_second(&self) -> f64 {
        per_second(self.ops(), self.seconds)
    }

    /// Microseconds of CPU per op spent by the nodes `which` selects.
    fn us_per_op(&self, which: impl Fn(&NodeLoad) -> bool) -> f64 {
        let cpu: f64 = self
            .nodes
            .iter()
            .filter(|n| which(n))
            .map(|n| n.cpu_seconds)
            .sum();
        cpu * 1e6 / self.ops().max(1) as f64
    }

    /// Redis CPU per op on the primaries (the command itself).
    pub fn primary_us_per_op(&self) -> f64 {
        self.us_per_op(|n| n.primary)
    }

    /// Redis CPU per op on the replicas (applying the replication stream).
    pub fn replica_us_per_op(&self) -> f64 {
        self.us_per_op(|n| !n.primary)
    }

    pub fn tool_us_per_op(&self) -> Option<f64> {
        self.tool_cpu_seconds
            .map(|cpu| cpu * 1e6 / self.ops().max(1) as f64)
    }

    /// One line of `key=value` pairs, for scripts.
    pub fn summary(&self) -> String {
        let tool = self
            .tool_us_per_op()
            .map_or("nan".to_string(), |us| format!("{us:.2}"));
        format!(
            "summary ops_per_sec={:.0} ops={} sales={} primaries={} primaries_used={} \
             primary_us_per_op={:.2} replica_us_per_op={:.2} tool_us_per_op={} \
             primary_cpu_cores={:.2} busiest_primary_cpu_cores={:.2} errors={} unexpected={}",
            self.ops_per_second(),
            self.ops(),
            self.sales.len(),
            self.primaries,
            self.primaries_used,
            self.primary_us_per_op(),
            self.replica_us_per_op(),
            tool,
            self.nodes
                .iter()
                .filter(|n| n.primary)
                .map(|n| n.cpu_seconds)
                .sum::<f64>()
                / self.seconds,
            self.nodes
                .iter()
                .filter(|n| n.primary)
                .map(|n| n.cpu_seconds)
                .fold(0.0, f64::max)
                / self.seconds,
            self.errors,
            self.unexpected,
        )
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.cluster {
            format!(
                "a cluster of {} primaries, {} of them used",
                self.primaries, self.primaries_used
            )
        } else {
            "one server".to_string()
        };
        writeln!(
            f,
            "flashsale engine load: {}, {} sale(s) ({}) on {what}; {} in flight over {} connection(s); {:.1} s measured",
            self.command.as_str(),
            self.sales.len(),
            self.placement.as_str(),
            self.concurrency,
            self.connections,
            self.seconds,
        )?;
        let unit = match self.command {
            LoadCommand::Enqueue => "ENQUEUE",
            LoadCommand::Buy => "command (ENQUEUE, GRANT, CONFIRM)",
        };
        writeln!(
            f,
            "total: {:.0} ops/s ({} ops, one op = one {unit})",
            self.ops_per_second(),
            self.ops()
        )?;
        if self.command == LoadCommand::Buy {
            writeln!(
                f,
                "orders: {:.0}/s ({})",
                per_second(self.orders, self.seconds),
                self.orders
            )?;
        }
        writeln!(f, "\n| sale | primary | ops/s |\n|---|---|---:|")?;
        for sale in &self.sales {
            writeln!(
                f,
                "| {} | {} | {:.0} |",
                sale.id,
                sale.primary,
                per_second(sale.ops, self.seconds)
            )?;
        }
        writeln!(
            f,
            "\nRedis CPU in the window (INFO cpu, used_cpu_user + used_cpu_sys):\n\n\
             | node | role | sales | CPU s | of one core | µs per op (all ops of the run) |\n|---|---|---:|---:|---:|---:|"
        )?;
        let ops = self.ops().max(1) as f64;
        for node in &self.nodes {
            writeln!(
                f,
                "| {} | {} | {} | {:.2} | {:.0} % | {:.2} |",
                node.address,
                if node.primary { "primary" } else { "replica" },
                node.sales,
                node.cpu_seconds,
                100.0 * node.cpu_seconds / self.seconds.max(f64::MIN_POSITIVE),
                node.cpu_seconds * 1e6 / ops,
            )?;
        }
        let primary = self.primary_us_per_op();
        writeln!(
            f,
            "\nRedis CPU per op: {primary:.2} µs on the primaries, {:.2} µs on the replicas",
            self.replica_us_per_op()
        )?;
        if primary > 0.0 {
            writeln!(
                f,
                "one primary with a core of its own: about {:.0} ops/s (1e6 / µs per op)",
                1e6 / primary
            )?;
        }
        if let Some(tool) = self.tool_us_per_op() {
            writeln!(f, "load tool CPU per op: {tool:.2} µs")?;
        }
        if self.errors > 0 || self.unexpected > 0 {
            writeln!(
                f,
                "problems: {} errors, {} unexpected replies; first: {}",
                self.errors,
                self.unexpected,
                self.first_problem.as_deref().unwrap_or("-")
            )?;
        }
        write!(f, "\n{}", self.summary())
    }
}

impl LoadConfig {
    fn target(&self) -> anyhow::Result<RedisTarget> {
        RedisTarget::from_settings(&self.redis_url, self.redis_cluster_nodes.as_deref())
            .map_err(anyhow::Error::msg)
    }
}

/// A task's client and the sale it drives.
type Client = EngineClient<RedisConn>;

/// The addresses of the nodes, and how many primaries; one node on a server.
async fn topology(
    conn: &mut RedisConn,
    target: &RedisTarget,
) -> anyhow::Result<(Vec<String>, usize)> {
    match target {
        RedisTarget::Server(url) => Ok((vec![url.clone()], 1)),
        RedisTarget::Cluster(_) => {
            let nodes = cluster_nodes(conn).await?;
            let primaries = nodes.iter().filter(|n| n.primary).count();
            Ok((nodes.into_iter().map(|n| n.address).collect(), primaries))
        }
    }
}

/// The nodes of the cluster `conn` talks to that are up, with at least one
/// primary among them.
pub(crate) async fn cluster_nodes(
    conn: &mut RedisConn,
) -> anyhow::Result<Vec<flashsale::nodes::Node>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .context("CLUSTER NODES")?;
    let nodes = flashsale::nodes::parse_cluster_nodes(&text);
    if !nodes.iter().any(|n| n.primary) {
        bail!("CLUSTER NODES lists no primary that is up");
    }
    Ok(nodes)
}

/// Deals sale ids over the primaries as `config.placement` asks.
async fn choose_sales(
    conn: &mut RedisConn,
    config: &LoadConfig,
    primaries: usize,
) -> anyhow::Result<Dealer> {
    let mut dealer = Dealer::new(config.placement, config.sales, primaries);
    let limit = 200 + 100 * config.sales as u64;
    for n in 0..limit {
        if dealer.done() {
            break;
        }
        let Some(id) = sale_id(&config.prefix, n) else {
            bail!(
                "--prefix {:?} does not make valid sale ids ([A-Za-z0-9_.-], at most {MAX_SALE_ID_LEN} with -<n>)",
                config.prefix
            );
        };
        let node = conn
            .history_of(&keys::queue(&id))
            .await
            .with_context(|| format!("finding the primary of {id}"))?;
        dealer.offer(&id, &node);
    }
    if !dealer.done() {
        bail!(
            "found only {} of {} sale ids for placement {} among {limit} candidates",
            dealer.chosen().len(),
            config.sales,
            config.placement.as_str()
        );
    }
    Ok(dealer)
}

/// Deletes a sale's keys (they share one slot, so one UNLINK).
async fn drop_sale(conn: &mut RedisConn, sale: &str) -> anyhow::Result<()> {
    let _: i64 = redis::cmd("UNLINK")
        .arg(keys::all_but_holds(sale))
        .query_async(conn)
        .await
        .with_context(|| format!("deleting the keys of {sale}"))?;
    Ok(())
}

/// A fresh sale: its keys deleted, then SETUP with a stock that never runs
/// out, open since a second ago (the primary's clock) for an hour, holds of
/// ten minutes.
async fn setup_sale(client: &mut Client, sale: &str) -> anyhow::Result<()> {
    drop_sale(client.connection(), sale).await?;
    let time: Vec<String> = redis::from_redis_value(
        client
            .connection()
            .on_primary_of(&keys::queue(sale), redis::cmd("TIME"))
            .await
            .with_context(|| format!("TIME on the primary of {sale}"))?,
    )?;
    let now_ms = time
        .first()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| s * 1000)
        .context("TIME did not answer seconds")?;
    let params = SetupParams {
        stock: 1_000_000_000,
        starts_at: now_ms.saturating_sub(1000),
        ends_at: now_ms + 3_600_000,
        hold_ttl_ms: 600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client
        .setup(sale, params)
        .await
        .with_context(|| format!("FLASHSALE.SETUP {sale}"))?;
    Ok(())
}

/// One task: commands on `sale` until `stop`.
async fn drive(
    mut client: Client,
    command: LoadCommand,
    run: Arc<str>,
    task: usize,
    sale: (usize, String),
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let (index, sale) = sale;
    let ops = &counters.ops[index];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let user = user_id(&run, task, n);
        let result = match command {
            LoadCommand::Enqueue => enqueue(&mut client, &sale, &user, ops, &counters).await,
            LoadCommand::Buy => buy(&mut client, &sale, &user, ops, &counters).await,
        };
        if let Err(error) = result {
            counters.problem(&counters.errors, error.to_string());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn enqueue(
    client: &mut Client,
    sale: &str,
    user: &str,
    ops: &AtomicU64,
    counters: &Counters,
) -> Result<(), ClientError> {
    match client.enqueue(sale, user).await? {
        EnqueueReply::Queued { .. } => {
            ops.fetch_add(1, Ordering::Relaxed);
        }
        other => counters.problem(&counters.unexpected, format!("ENQUEUE: {other:?}")),
    }
    Ok(())
}

/// ENQUEUE `user`, GRANT 1, CONFIRM whoever was admitted (the head of the
/// queue, usually another task's user; every admitted user is confirmed by
/// the task whose GRANT admitted it).
async fn buy(
    client: &mut Client,
    sale: &str,
    user: &str,
    ops: &AtomicU64,
    counters: &Counters,
) -> Result<(), ClientError> {
    enqueue(client, sale, user, ops, counters).await?;
    let admitted = match client.grant(sale, 1).await? {
        GrantReply::Granted { users, .. } => {
            ops.fetch_add(1, Ordering::Relaxed);
            users
        }
        other => {
            counters.problem(&counters.unexpected, format!("GRANT: {other:?}"));
            return Ok(());
        }
    };
    for admitted in admitted {
        match client.confirm(sale, &admitted, 999).await? {
            ConfirmReply::Confirmed { .. } => {
                ops.fetch_add(1, Ordering::Relaxed);
                counters.orders.fetch_add(1, Ordering::Relaxed);
            }
            other => counters.problem(&counters.unexpected, format!("CONFIRM: {other:?}")),
        }
    }
    Ok(())
}

/// Sets up the sales, loads them, measures, cleans up.
pub async fn run(config: &LoadConfig) -> anyhow::Result<LoadReport> {
    if config.sales == 0 || config.concurrency == 0 || config.connections == 0 {
        bail!("--sales, --concurrency and --connections must be at least 1");
    }
    if !(config.seconds > 0.0 && config.warmup_seconds >= 0.0) {
        bail!("--seconds must be positive and --warmup-seconds not negative");
    }
    let target = config.target()?;
    let choice = BackendChoice::from(config.engine);
    let mut clients: Vec<Client> = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let conn = RedisConn::open(&target, Timeouts::default())?;
        clients.push(
            EngineClient::prepare(conn, choice)
                .await
                .context("checking the engine on every node")?,
        );
    }
    let mut admin = clients[0].clone();
    let (addresses, primaries) = topology(admin.connection(), &target).await?;
    let dealer = choose_sales(admin.connection(), config, primaries).await?;
    let sales: Vec<String> = dealer.chosen().iter().map(|(id, _)| id.clone()).collect();
    for sale in &sales {
        setup_sale(&mut admin, sale).await?;
    }

    let mut probes = Vec::with_capacity(addresses.len());
    for address in &addresses {
        probes.push(NodeProbe::open(address).await?);
    }

    let counters = Arc::new(Counters::new(sales.len()));
    let stop = Arc::new(AtomicBool::new(false));
    let run_id: Arc<str> = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string()
        .into();
    let mut tasks = Vec::with_capacity(config.concurrency);
    for task in 0..config.concurrency {
        let index = task % sales.len();
        tasks.push(tokio::spawn(drive(
            clients[task % clients.len()].clone(),
            config.command,
            run_id.clone(),
            task,
            (index, sales[index].clone()),
            counters.clone(),
            stop.clone(),
        )));
    }

    tokio::time::sleep(Duration::from_secs_f64(config.warmup_seconds)).await;
    let before_nodes = sample_all(&mut probes).await;
    let before_tool = own_cpu_seconds();
    let before = counters.snapshot();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(config.seconds)).await;
    let after = counters.snapshot();
    let seconds = started.elapsed().as_secs_f64();
    let after_tool = own_cpu_seconds();
    let after_nodes = sample_all(&mut probes).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    if !config.keep {
        for sale in &sales {
            drop_sale(admin.connection(), sale).await?;
        }
    }
    let (before_nodes, after_nodes) = (before_nodes?, after_nodes?);

    // Which primary address serves each history (replication id).
    let primary_of: BTreeMap<&str, &str> = after_nodes
        .iter()
        .filter(|n| n.primary)
        .map(|n| (n.history.as_str(), n.address.as_str()))
        .collect();
    let sale_loads = dealer
        .chosen()
        .iter()
        .enumerate()
        .map(|(i, (id, history))| SaleLoad {
            id: id.clone(),
            primary: primary_of
                .get(history.as_str())
                .map_or_else(|| format!("replid {history}"), |a| a.to_string()),
            ops: after.ops[i].saturating_sub(before.ops[i]),
        })
        .collect();
    let mut nodes: Vec<NodeLoad> = after_nodes
        .iter()
        .map(|after| NodeLoad {
            address: after.address.clone(),
            primary: after.primary,
            sales: dealer.per_node().get(&after.history).copied().unwrap_or(0),
            cpu_seconds: before_nodes
                .iter()
                .find(|b| b.address == after.address)
                .map_or(0.0, |b| (after.cpu_seconds - b.cpu_seconds).max(0.0)),
        })
        .collect();
    nodes.sort_by(|a, b| (!a.primary, &a.address).cmp(&(!b.primary, &b.address)));
    Ok(LoadReport {
        command: config.command,
        placement: config.placement,
        cluster: target.is_cluster(),
        primaries,
        primaries_used: dealer.per_node().len(),
        concurrency: config.concurrency,
        connections: config.connections,
        seconds,
        sales: sale_loads,
        nodes,
        orders: after.orders.saturating_sub(before.orders),
        unexpected: after.unexpected.saturating_sub(before.unexpected),
        errors: after.errors.saturating_sub(before.errors),
        first_problem: counters.first_problem.lock().ok().and_then(|p| p.clone()),
        tool_cpu_seconds: before_tool
            .zip(after_tool)
            .map(|(before, after)| (after - before).max(0.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(placement: Placement, wanted: usize, primaries: usize, nodes: &[&str]) -> Dealer {
        let mut dealer = Dealer::new(placement, wanted, primaries);
        for (n, node) in nodes.iter().enumerate() {
            dealer.offer(&format!("load-{n}"), node);
        }
        dealer
    }

    /// A slot map in miniature: candidate n is served by `nodes[n]`.
    const NODES: [&str; 14] = [
        "a", "a", "b", "a", "a", "a", "c", "b", "a", "b", "c", "b", "c", "c",
    ];

    fn counts(dealer: &Dealer) -> Vec<(&str, usize)> {
        dealer
            .per_node()
            .iter()
            .map(|(node, n)| (node.as_str(), *n))
            .collect()
    }

    #[test]
    fn spread_deals_the_sales_evenly_over_the_primaries() {
        let dealer = deal(Placement::Spread, 6, 3, &NODES);
        assert!(dealer.done());
        assert_eq!(counts(&dealer), [("a", 2), ("b", 2), ("c", 2)]);
        let ids: Vec<&str> = dealer.chosen().iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["load-0", "load-1", "load-2", "load-6", "load-7", "load-10"]
        );
    }

    #[test]
    fn spread_that_does_not_divide_differs_by_at_most_one() {
        for wanted in 1..=7 {
            let dealer = deal(Placement::Spread, wanted, 3, &NODES);
            assert!(dealer.done(), "{wanted}");
            let per: Vec<usize> = dealer.per_node().values().copied().collect();
            assert_eq!(per.iter().sum::<usize>(), wanted);
            let (min, max) = (per.iter().min(), per.iter().max());
            if wanted >= 3 {
                assert_eq!(per.len(), 3, "{wanted}: every primary gets one");
            }
            assert!(
                max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                "{wanted}: {per:?}"
            );
        }
    }

    #[test]
    fn one_puts_every_sale_on_the_primary_of_the_first_id() {
        let dealer = deal(Placement::One, 6, 3, &NODES);
        assert!(dealer.done());
        assert_eq!(counts(&dealer), [("a", 6)]);
        assert!(dealer.chosen().iter().all(|(_, node)| node == "a"));
        // A single hot sale: the first id.
        let hot = deal(Placement::One, 1, 3, &NODES);
        assert_eq!(hot.chosen(), [("load-0".to_string(), "a".to_string())]);
    }

    #[test]
    fn a_single_server_takes_the_first_ids_either_way() {
        for placement in [Placement::Spread, Placement::One] {
            let dealer = deal(placement, 6, 1, &["s"; 10]);
            let ids: Vec<&str> = dealer.chosen().iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(
                ids,
                ["load-0", "load-1", "load-2", "load-3", "load-4", "load-5"]
            );
        }
    }

    #[test]
    fn too_few_candidates_leave_the_dealer_unfinished() {
        let mut dealer = Dealer::new(Placement::Spread, 4, 2);
        for n in 0..10 {
            dealer.offer(&format!("load-{n}"), "a");
        }
        assert!(!dealer.done());
        assert_eq!(dealer.chosen().len(), 2);
        // Once done, nothing more is taken.
        assert!(dealer.offer("load-10", "b"));
        assert!(dealer.offer("load-11", "b"));
        assert!(!dealer.offer("load-12", "b"));
    }

    #[test]
    fn sale_and_user_ids_are_engine_ids() {
        assert_eq!(sale_id("load", 12).as_deref(), Some("load-12"));
        assert_eq!(sale_id("bench.x_1", 0).as_deref(), Some("bench.x_1-0"));
        for bad in ["{load}", "lo ad", "a:b", &"x".repeat(64)] {
            assert_eq!(sale_id(bad, 1), None, "{bad}");
        }
        let user = user_id("1764000000000", 95, 123_456_789);
        assert!(user.len() <= 128);
        assert!(user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'+')));
        assert_ne!(user_id("r", 1, 23), user_id("r", 12, 3));
    }

    #[test]
    fn cpu_from_info() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
                    used_cpu_sys_children:9.000000\r\n# Replication\r\nrole:master\r\n\
                    master_replid:abc123\r\nmaster_replid2:000\r\n";
        assert_eq!(info_cpu_seconds(info), Some(3.75));
        assert_eq!(info_field(info, "role"), Some("master"));
        assert_eq!(info_field(info, "master_replid"), Some("abc123"));
        assert_eq!(info_cpu_seconds("used_cpu_sys:x\nused_cpu_user:1\n"), None);
        assert_eq!(info_cpu_seconds(""), None);
    }

    fn report() -> LoadReport {
        LoadReport {
            command: LoadCommand::Enqueue,
            placement: Placement::Spread,
            cluster: true,
            primaries: 3,
            primaries_used: 2,
            concurrency: 4,
            connections: 1,
            seconds: 2.0,
            sales: vec![
                SaleLoad {
                    id: "load-0".into(),
                    primary: "p1".into(),
                    ops: 300,
                },
                SaleLoad {
                    id: "load-2".into(),
                    primary: "p2".into(),
                    ops: 100,
                },
            ],
            nodes: vec![
                NodeLoad {
                    address: "p1".into(),
                    primary: true,
                    sales: 1,
                    cpu_seconds: 0.003,
                },
                NodeLoad {
                    address: "p2".into(),
                    primary: true,
                    sales: 1,
                    cpu_seconds: 0.001,
                },
                NodeLoad {
                    address: "r1".into(),
                    primary: false,
                    sales: 1,
                    cpu_seconds: 0.002,
                },
            ],
            orders: 0,
            unexpected: 0,
            errors: 0,
            first_problem: None,
            tool_cpu_seconds: Some(0.004),
        }
    }

    #[test]
    fn report_figures() {
        let report = report();
        assert_eq!(report.ops(), 400);
        assert_eq!(report.ops_per_second(), 200.0);
        assert!((report.primary_us_per_op() - 10.0).abs() < 1e-9);
        assert!((report.replica_us_per_op() - 5.0).abs() < 1e-9);
        assert!(report
            .tool_us_per_op()
            .is_some_and(|us| (us - 10.0).abs() < 1e-9));
        let summary = report.summary();
        assert!(summary.starts_with("summary ops_per_sec=200 ops=400 sales=2 primaries=3 primaries_used=2 primary_us_per_op=10.00 replica_us_per_op=5.00 tool_us_per_op=10.00 "), "{summary}");
        assert!(
            summary.contains("busiest_primary_cpu_cores=0.00"),
            "{summary}"
        );
        let text = report.to_string();
        assert!(text.contains("| load-0 | p1 | 150 |"), "{text}");
        assert!(text.contains("about 100000 ops/s"), "{text}");
        assert!(text.ends_with(&summary));
    }
}
