//! A local Redis Cluster: N primaries and N×R replicas of `redis-server`,
//! each a child process on free loopback ports with a data dir of its own,
//! joined with `redis-cli --cluster create`, killed by PID on drop.
//!
//! Everything here is blocking (std and the redis crate's synchronous
//! connections) and polls with deadlines; from an async test, call the slow
//! parts (`start`, `wait_for_failover`, `wait_healthy`) from
//! `tokio::task::spawn_blocking` when other tasks must keep running.
//!
//! Faults for failover tests: [`RedisCluster::kill`] (SIGKILL, the data dir
//! stays), [`RedisCluster::restart`], and [`RedisCluster::pause_replication`],
//! which makes a replica miss writes for real: it stops the replica (SIGSTOP)
//! and drops its replication link on the primary. Stopping alone is not
//! enough: the kernel keeps receiving the stream into the stopped replica's
//! socket, so the writes still reach it when it resumes, even after its
//! primary is gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis_server::{free_port, spawn, wait_ready, ServerOptions};

/// How a cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// At least 3 (`redis-cli --cluster create` refuses fewer).
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// `cluster-node-timeout`: how long a node may be unreachable before it
    /// is failed over (promotion takes about twice that).
    pub node_timeout: Duration,
    /// Load this module on every node, with `TEST_CLOCK` when the flag is set
    /// (as in [`ServerOptions::module`]).
    pub module: Option<(PathBuf, bool)>,
    /// `appendonly yes` with `appendfsync always`; otherwise no persistence.
    pub aof: bool,
    /// Extra `--name value` settings for every node.
    pub config: Vec<(String, String)>,
    /// Deadline for the cluster to become healthy, and for a failover.
    pub timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            primaries: 3,
            replicas_per_primary: 1,
            node_timeout: Duration::from_millis(2000),
            module: None,
            aof: false,
            config: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// One node as the cluster sees it (`CLUSTER NODES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub port: u16,
    pub id: String,
    pub role: Role,
    /// A replica's primary (its port); `None` for a primary.
    pub primary: Option<u16>,
    /// The slot ranges a primary serves, both ends included.
    pub slots: Vec<(u16, u16)>,
    /// Flagged `fail` or `pfail`, or not yet known (`handshake`, `noaddr`).
    pub failing: bool,
}

impl ClusterNode {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(from, to)| from <= slot && slot <= to)
    }
}

struct Node {
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
    /// `None` once killed.
    child: Option<Child>,
    /// SIGSTOPped by `pause_replication`.
    stopped: bool,
    /// The slots it served when it was killed, for `wait_for_failover`.
    slots_when_killed: Vec<(u16, u16)>,
}

impl Node {
    fn live(&self) -> bool {
        self.child.is_some() && !self.stopped
    }
}

/// A running cluster; every node is killed when it is dropped.
pub struct RedisCluster {
    nodes: Vec<Node>,
    options: ClusterOptions,
    _root: TempDir,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until it is healthy
    /// (see [`RedisCluster::wait_healthy`]).
    pub fn start(options: ClusterOptions) -> RedisCluster {
        assert!(
            options.primaries >= 3,
            "a cluster needs at least 3 primaries"
        );
        let root = tempfile::tempdir().expect("temp dir");
        let count = options.primaries * (1 + options.replicas_per_primary);
        let nodes = (0..count)
            .map(|i| start_node(&root.path().join(format!("node-{i}")), &options))
            .collect();
        let cluster = RedisCluster {
            nodes,
            options,
            _root: root,
        };
        cluster.create();
        cluster.wait_healthy();
        cluster
    }

    /// `redis-cli --cluster create`: the first nodes become the primaries.
    fn create(&self) {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--cluster", "create"])
            .args(self.seed_nodes())
            .args([
                "--cluster-replicas",
                &self.options.replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null());
        let output = run_with_deadline(cmd, self.options.timeout);
        if let Err(output) = output {
            panic!(
                "redis-cli --cluster create failed:\n{output}\n{}",
                self.logs()
            );
        }
    }

    /// Every node as `127.0.0.1:port`, killed ones too: the seed list a
    /// cluster client is given.
    pub fn seed_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn url(&self, port: u16) -> String {
        self.node(port);
        format!("redis://127.0.0.1:{port}/")
    }

    /// A plain (not cluster-aware) connection to one node, with timeouts so
    /// that a stopped node cannot hang the caller.
    pub fn connection(&self, port: u16) -> redis::Connection {
        connect(port).unwrap_or_else(|e| panic!("connect to node {port}: {e}"))
    }

    /// The process of a node that was not killed.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.node(port).child.as_ref().map(Child::id)
    }

    /// The cluster as a live node sees it, sorted by port.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let port = self.any_live_port();
        view(port).unwrap_or_else(|e| panic!("CLUSTER NODES on {port}: {e}"))
    }

    /// The primaries, as a live node sees them.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == Role::Primary && !n.slots.is_empty())
            .map(|n| n.port)
            .collect()
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.connection(self.any_live_port()))
            .expect("CLUSTER KEYSLOT")
    }

    /// The port of the primary serving `key`'s slot.
    pub fn primary_for_key(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.nodes()
            .into_iter()
            .find(|n| n.role == Role::Primary && n.serves(slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot} (key {key:?})"))
            .port
    }

    /// The port of a replica of `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        self.nodes()
            .into_iter()
            .find(|n| n.primary == Some(primary))
            .unwrap_or_else(|| panic!("node {primary} has no replica"))
            .port
    }

    /// `FUNCTION LOAD REPLACE code` on every primary (a library reaches only
    /// the primary it is loaded on, and that primary's replicas).
    pub fn load_library(&self, code: &str) {
        for port in self.primaries() {
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg(code)
                .query::<String>(&mut self.connection(port))
                .unwrap_or_else(|e| panic!("FUNCTION LOAD on {port}: {e}"));
        }
    }

    /// Kills the node (SIGKILL) and waits for it; its data dir stays.
    pub fn kill(&mut self, port: u16) {
        if self.node(port).child.is_none() {
            return;
        }
        // The slots it serves, as the others see it (it may be stopped).
        let slots = self
            .nodes
            .iter()
            .filter(|n| n.live())
            .find_map(|n| view(n.port).ok())
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.port == port && n.role == Role::Primary)
            .map(|n| n.slots)
            .unwrap_or_default();
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.stopped = false;
        node.slots_when_killed = slots;
    }

    /// Starts a killed node again on the same port and data dir with the same
    /// settings (a running one is killed first), and waits until it answers
    /// and has loaded its data. It rejoins the cluster from its `nodes.conf`;
    /// [`RedisCluster::wait_healthy`] waits for that.
    pub fn restart(&mut self, port: u16) {
        self.kill(port);
        let node = self.node_mut(port);
        // The port may be taken for a moment (e.g. by another test's probe).
        for _ in 0..5 {
            let mut child = spawn(node.port, &node.dir, &node.options);
            if wait_ready(node.port, &mut child) {
                node.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node {port} did not restart\n{}", self.logs());
    }

    /// Restarts the node without the module (a node the operator forgot to
    /// configure); later restarts keep it so.
    pub fn restart_without_module(&mut self, port: u16) {
        self.node_mut(port).options.module = None;
        self.restart(port);
    }

    /// Makes `replica` miss every write its primary takes from now on until
    /// [`RedisCluster::resume_replication`]: stops the replica (SIGSTOP) and
    /// closes its replication link on the primary, so that the writes stay
    /// in the primary's backlog only (`WAIT 1 <ms>` returns 0). Killing the
    /// primary meanwhile loses them for good.
    pub fn pause_replication(&mut self, replica: u16) {
        let mut conn = self.connection(replica);
        let info = info(&mut conn, "replication").expect("INFO replication");
        let primary: u16 = match (info.get("role"), info.get("master_port")) {
            (Some(role), Some(port)) if role == "slave" => port.parse().expect("master_port"),
            _ => panic!("node {replica} is not a replica: {info:?}"),
        };
        // The replica's end of the link, as the primary knows the client.
        let link: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("master")
            .query(&mut conn)
            .expect("CLIENT LIST TYPE master");
        let laddr = link
            .split_whitespace()
            .find_map(|field| field.strip_prefix("laddr="))
            .unwrap_or_else(|| panic!("node {replica} has no link to its primary: {link:?}"))
            .to_string();
        self.signal(replica, "STOP");
        self.node_mut(replica).stopped = true;
        let killed = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ADDR")
            .arg(&laddr)
            .query::<String>(&mut self.connection(primary));
        // "No such client": the link was down already.
        if let Err(e) = killed {
            assert!(
                e.to_string().contains("No such client"),
                "CLIENT KILL ADDR {laddr} on {primary}: {e}"
            );
        }
    }

    /// Lets a paused replica run again (SIGCONT); it reconnects to its
    /// primary, if that is still alive, and catches up from the backlog.
    pub fn resume_replication(&mut self, replica: u16) {
        self.signal(replica, "CONT");
        self.node_mut(replica).stopped = false;
    }

    fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .pid(port)
            .unwrap_or_else(|| panic!("node {port} is not running"));
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill on PATH");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits until every running node is healthy: loaded, `cluster_state:ok`,
    /// every replica's link up and synced, and every node's view agrees with
    /// every running node's own role and serves each slot from a running
    /// node. Killed and paused nodes are left out.
    pub fn wait_healthy(&self) {
        self.wait_until("a healthy cluster", |cluster| cluster.check_healthy());
    }

    /// After `kill(old_primary)`: waits until one of its replicas serves its
    /// slots, as every running node sees it, and the cluster is healthy
    /// again; returns the new primary's port.
    pub fn wait_for_failover(&self, old_primary: u16) -> u16 {
        let node = self.node(old_primary);
        assert!(
            node.child.is_none(),
            "node {old_primary} was not killed: kill it first"
        );
        let Some(&(slot, _)) = node.slots_when_killed.first() else {
            panic!("node {old_primary} was not a primary when it was killed");
        };
        self.wait_until(&format!("a failover of node {old_primary}"), |cluster| {
            cluster.check_healthy()?;
            let view = view(cluster.any_live_port())?;
            view.into_iter()
                .find(|n| n.role == Role::Primary && n.serves(slot) && n.port != old_primary)
                .map(|n| n.port)
                .ok_or_else(|| format!("slot {slot} has no new primary yet"))
        })
    }

    fn wait_until<T>(&self, what: &str, check: impl Fn(&Self) -> Result<T, String>) -> T {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            match check(self) {
                Ok(value) => return value,
                Err(reason) if Instant::now() >= deadline => panic!(
                    "timed out after {:?} waiting for {what}: {reason}\n{}",
                    self.options.timeout,
                    self.logs()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn check_healthy(&self) -> Result<(), String> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.live())
            .map(|n| n.port)
            .collect();
        // Each live node's own idea of its role: (port, primary's port).
        let mut roles: HashMap<u16, Option<u16>> = HashMap::new();
        for &port in &live {
            let mut conn = connect(port).map_err(|e| format!("node {port}: {e}"))?;
            let info = info(&mut conn, "all").map_err(|e| format!("node {port}: {e}"))?;
            let field = |name: &str| info.get(name).map(String::as_str).unwrap_or("?");
            if field("loading") != "0" {
                return Err(format!("node {port} is loading"));
            }
            if field("cluster_enabled") != "1" {
                return Err(format!("node {port} is not in cluster mode"));
            }
            let primary = match field("role") {
                "master" => None,
                _ if field("master_link_status") != "up" => {
                    return Err(format!("node {port}: replication link down"))
                }
                _ if field("master_sync_in_progress") != "0" => {
                    return Err(format!("node {port}: still syncing"))
                }
                _ => Some(
                    field("master_port")
                        .parse()
                        .map_err(|_| format!("node {port}: no master_port"))?,
                ),
            };
            roles.insert(port, primary);
            let cluster_info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .map_err(|e| format!("node {port}: CLUSTER INFO: {e}"))?;
            if !cluster_info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("node {port}: cluster_state is not ok"));
            }
        }
        for &port in &live {
            let view = view(port)?;
            for (&other, &primary) in &roles {
                let seen = view
                    .iter()
                    .find(|n| n.port == other)
                    .ok_or_else(|| format!("node {port} does not know node {other}"))?;
                if seen.failing {
                    return Err(format!("node {port} sees node {other} failing"));
                }
                let role = if primary.is_some() {
                    Role::Replica
                } else {
                    Role::Primary
                };
                if seen.role != role || seen.primary != primary {
                    return Err(format!(
                        "node {port} sees node {other} as {:?} of {:?}, it is {role:?} of {primary:?}",
                        seen.role, seen.primary
                    ));
                }
            }
            if let Some(dead) = view
                .iter()
                .find(|n| !n.slots.is_empty() && !live.contains(&n.port))
            {
                return Err(format!(
                    "node {port} has slots served by node {}, which is down",
                    dead.port
                ));
            }
        }
        Ok(())
    }

    fn any_live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.live())
            .map(|n| n.port)
            .expect("no running node")
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The end of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(node.dir.join("redis.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!(
                "--- node 127.0.0.1:{} ({}) ---\n{}\n",
                node.port,
                node.dir.display(),
                tail.join("\n")
            ));
        }
        out
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts one cluster-enabled node on free ports (client and bus).
fn start_node(dir: &Path, options: &ClusterOptions) -> Node {
    std::fs::create_dir_all(dir).expect("node dir");
    for _ in 0..5 {
        let port = free_port();
        let bus_port = free_port();
        if bus_port == port {
            continue;
        }
        let server = ServerOptions {
            module: options.module.clone(),
            config: node_config(bus_port, options),
            dir: Some(dir.to_path_buf()),
        };
        let mut child = spawn(port, dir, &server);
        if wait_ready(port, &mut child) {
            return Node {
                port,
                dir: dir.to_path_buf(),
                options: server,
                child: Some(child),
                stopped: false,
                slots_when_killed: Vec::new(),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    panic!(
        "cluster node did not start in {}; log:\n{log}",
        dir.display()
    );
}

fn node_config(bus_port: u16, options: &ClusterOptions) -> Vec<(String, String)> {
    let mut config = vec![
        ("cluster-enabled", "yes".to_string()),
        ("cluster-port", bus_port.to_string()),
        ("cluster-config-file", "nodes.conf".to_string()),
        (
            "cluster-node-timeout",
            options.node_timeout.as_millis().to_string(),
        ),
        // Replicas sync at once rather than after the default 5 s.
        ("repl-diskless-sync-delay", "0".to_string()),
    ];
    if options.aof {
        config.push(("appendonly", "yes".to_string()));
        config.push(("appendfsync", "always".to_string()));
    }
    let mut config: Vec<(String, String)> = config
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    config.extend(options.config.iter().cloned());
    config
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(conn)
}

/// `INFO <section>` as name → value.
fn info(
    conn: &mut redis::Connection,
    section: &str,
) -> redis::RedisResult<HashMap<String, String>> {
    let text: String = redis::cmd("INFO").arg(section).query(conn)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.trim().to_string()))
        .collect())
}

/// `CLUSTER NODES` of the node on `port`, sorted by port.
fn view(port: u16) -> Result<Vec<ClusterNode>, String> {
    let text: String = connect(port)
        .and_then(|mut conn| redis::cmd("CLUSTER").arg("NODES").query(&mut conn))
        .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
    let mut nodes = parse_cluster_nodes(&text)
        .ok_or_else(|| format!("node {port}: unreadable CLUSTER NODES:\n{text}"))?;
    nodes.sort_by_key(|n| n.port);
    Ok(nodes)
}

/// Lines of `<id> <ip:port@bus> <flags> <primary id|-> <ping> <pong> <epoch>
/// <link> <slot ranges...>`.
fn parse_cluster_nodes(text: &str) -> Option<Vec<ClusterNode>> {
    struct Line<'a> {
        id: &'a str,
        port: u16,
        flags: Vec<&'a str>,
        primary_id: &'a str,
        slots: Vec<(u16, u16)>,
    }
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let address = fields[1].split(['@', ',']).next()?;
        let port = address.rsplit_once(':')?.1.parse().ok()?;
        let mut slots = Vec::new();
        // `[slot->-id]` entries are slots being migrated: not served here.
        for range in fields[8..].iter().filter(|r| !r.starts_with('[')) {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            slots.push((from.parse().ok()?, to.parse().ok()?));
        }
        lines.push(Line {
            id: fields[0],
            port,
            flags: fields[2].split(',').collect(),
            primary_id: fields[3],
            slots,
        });
    }
    let port_of: HashMap<&str, u16> = lines.iter().map(|l| (l.id, l.port)).collect();
    Some(
        lines
            .iter()
            .map(|l| {
                let replica = l.flags.contains(&"slave");
                ClusterNode {
                    port: l.port,
                    id: l.id.to_string(),
                    role: if replica {
                        Role::Replica
                    } else {
                        Role::Primary
                    },
                    primary: if replica {
                        port_of.get(l.primary_id).copied()
                    } else {
                        None
                    },
                    slots: l.slots.clone(),
                    failing: l
                        .flags
                        .iter()
                        .any(|f| matches!(*f, "fail" | "fail?" | "handshake" | "noaddr")),
                }
            })
            .collect(),
    )
}

/// Runs `cmd` to its end, killed after `timeout`; its output either way.
fn run_with_deadline(mut cmd: Command, timeout: Duration) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("output file");
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("redis-cli on PATH");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for redis-cli") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(output),
        Some(status) => Err(format!("{status}\n{output}")),
        None => Err(format!("still running after {timeout:?}\n{output}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@31004,host slave 07c1 0 1426238317239 4 connected
07c1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-e7d1]
07c9 127.0.0.1:30002@31002 master,fail - 1426238316232 1426238315000 2 disconnected
";
        let nodes = parse_cluster_nodes(text).expect("parsed");
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].port, 30004);
        assert_eq!(nodes[0].role, Role::Replica);
        assert_eq!(nodes[0].primary, Some(30001));
        assert_eq!(nodes[1].role, Role::Primary);
        assert_eq!(nodes[1].slots, vec![(0, 5460), (5462, 5462)]);
        assert!(nodes[1].serves(5462) && !nodes[1].serves(5461));
        assert!(nodes[2].failing && nodes[2].slots.is_empty());
    }
}
