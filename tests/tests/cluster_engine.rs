//! The platform's client on a real Redis Cluster (3 primaries + 3 replicas):
//! sales spread over every primary run the whole engine through one
//! `RedisConn`, with no redirection in the steady state; the Functions
//! library is loaded on every primary; a node without the module is named.

use std::collections::BTreeSet;

use flashsale::{
    keys, BackendChoice, ClientError, ConfirmReply, EngineClient, EnqueueReply, GrantReply,
    RedisConn, RedisTarget, SetupParams, Timeouts,
};
use redis::Commands;
use tests::{module_path, ClusterOptions, RedisCluster};

fn start(module: bool) -> RedisCluster {
    RedisCluster::start(ClusterOptions {
        module: module.then(|| (module_path(), false)),
        ..ClusterOptions::default()
    })
}

fn connection(cluster: &RedisCluster) -> RedisConn {
    let target = RedisTarget::Cluster(cluster.seed_nodes());
    RedisConn::open(&target, Timeouts::default()).expect("cluster connection")
}

/// Sale ids whose slots cover every primary, two per primary.
fn sales_on_every_primary(cluster: &RedisCluster) -> Vec<String> {
    let primaries = cluster.primaries();
    let mut chosen: Vec<String> = Vec::new();
    for primary in &primaries {
        let ids = (0..)
            .map(|n| format!("spread-{n}"))
            .filter(|id| cluster.primary_for_key(id) == *primary)
            .take(2);
        chosen.extend(ids);
    }
    chosen
}

/// `errorstat_MOVED` and `errorstat_ASK` summed over every node.
fn redirections(cluster: &RedisCluster) -> u64 {
    cluster
        .nodes()
        .iter()
        .map(|node| {
            let mut conn = cluster.connection(node.port);
            let info: String = redis::cmd("INFO")
                .arg("errorstats")
                .query(&mut conn)
                .expect("INFO errorstats");
            info.lines()
                .filter(|l| l.starts_with("errorstat_MOVED:") || l.starts_with("errorstat_ASK:"))
                .filter_map(|l| l.split("count=").nth(1))
                .filter_map(|n| n.split(',').next()?.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn params(now: u64) -> SetupParams {
    SetupParams {
        stock: 2,
        starts_at: now - 1_000,
        ends_at: now + 600_000,
        hold_ttl_ms: 60_000,
        rate: 0,
        max_queue: 0,
        price: None,
    }
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    since.as_millis() as u64
}

/// One sale's whole life: set up, two buyers queue, both admitted, one buys.
async fn sell(engine: &mut EngineClient<RedisConn>, sale: &str) -> String {
    engine.setup(sale, params(now_ms())).await.expect("SETUP");
    for user in ["ann@example.com", "bob@example.com"] {
        let queued = engine.enqueue(sale, user).await.expect("ENQUEUE");
        assert!(
            matches!(queued, EnqueueReply::Queued { .. }),
            "{sale}: {queued:?}"
        );
    }
    let granted = engine.grant(sale, 10).await.expect("GRANT");
    assert!(
        matches!(&granted, GrantReply::Granted { users, .. } if users.len() == 2),
        "{sale}: {granted:?}"
    );
    match engine
        .confirm(sale, "ann@example.com", 4999)
        .await
        .expect("CONFIRM")
    {
        ConfirmReply::Confirmed { order_id, .. } => order_id,
        other => panic!("{sale}: {other:?}"),
    }
}

async fn runs_on_every_primary_without_redirections(backend: BackendChoice) {
    let cluster = tokio::task::spawn_blocking(move || start(backend == BackendChoice::Module))
        .await
        .expect("cluster");
    let sales = sales_on_every_primary(&cluster);
    let primaries: BTreeSet<u16> = sales.iter().map(|s| cluster.primary_for_key(s)).collect();
    assert_eq!(primaries.len(), 3, "the sales cover the three primaries");

    let mut engine = EngineClient::prepare(connection(&cluster), backend)
        .await
        .expect("the engine on every node");
    // The first call of a fresh client learns the slot map.
    engine
        .status("warm-up", None)
        .await
        .expect_err("no such sale");
    let before = redirections(&cluster);
    for sale in &sales {
        let order = sell(&mut engine, sale).await;
        assert!(keys::order_number(sale, &order).is_some(), "{order}");
        let status = engine.status(sale, None).await.expect("STATUS").sale;
        assert_eq!((status.sold, status.held), (1, 1), "{sale}");
    }
    assert_eq!(
        redirections(&cluster),
        before,
        "every engine call went straight to the sale's primary"
    );

    // Every key of a sale is on that sale's primary, nowhere else (the
    // queue, emptied by the GRANT, "lapsed", and the lottery's keys of a
    // sale without a pre-queue window do not exist).
    let absent = [":lapsed", ":queue", ":registered", ":seed", ":draw"];
    for sale in &sales {
        let home = cluster.primary_for_key(sale);
        for node in cluster.primaries() {
            let mut conn = cluster.connection(node);
            // KEYS answers for the node itself, with no redirection.
            let found: Vec<String> = conn.keys(format!("fs:{{{sale}}}:*")).expect("KEYS");
            if node == home {
                let expected: BTreeSet<String> = keys::all_but_holds(sale)
                    .into_iter()
                    .filter(|k| !absent.iter().any(|suffix| k.ends_with(suffix)))
                    .chain([keys::hold(sale, "bob@example.com")])
                    .collect();
                assert_eq!(
                    found.into_iter().collect::<BTreeSet<_>>(),
                    expected,
                    "{sale}"
                );
            } else {
                assert!(
                    found.is_empty(),
                    "{sale} has keys on node {node}: {found:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_runs_sales_on_every_primary_without_redirections() {
    runs_on_every_primary_without_redirections(BackendChoice::Module).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_is_loaded_on_every_primary_and_runs_every_sale() {
    runs_on_every_primary_without_redirections(BackendChoice::Lua).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_module_is_named_and_nothing_starts() {
    let (cluster, forgotten) = tokio::task::spawn_blocking(|| {
        let mut cluster = start(true);
        let replica = cluster.replica_of(cluster.primaries()[1]);
        cluster.restart_without_module(replica);
        cluster.wait_healthy();
        (cluster, replica)
    })
    .await
    .expect("cluster");
    for choice in [BackendChoice::Module, BackendChoice::Auto] {
        let refused = EngineClient::prepare(connection(&cluster), choice).await;
        match refused {
            Err(ClientError::EngineMissing(why)) => assert!(
                why.contains(&format!(":{forgotten}")) && why.contains("replica"),
                "{why}"
            ),
            Err(other) => panic!("{choice:?}: {other}"),
            Ok(_) => panic!("{choice:?}: a replica without the module was accepted"),
        }
    }
    // The library needs no module: ENGINE=lua still works there.
    let mut lua = EngineClient::prepare(connection(&cluster), BackendChoice::Lua)
        .await
        .expect("lua");
    for primary in cluster.primaries() {
        let mut conn = cluster.connection(primary);
        let listed: redis::Value = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg("flashsale")
            .query(&mut conn)
            .expect("FUNCTION LIST");
        assert!(
            matches!(&listed, redis::Value::Array(libs) if libs.len() == 1),
            "primary {primary}: {listed:?}"
        );
    }
    let sale = sales_on_every_primary(&cluster).remove(0);
    sell(&mut lua, &sale).await;
}

/// The history id the stress program's FIFO observer relies on: the same
/// for every read of one primary's term, another after a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_starts_a_new_history_and_nothing_else_does() {
    let mut cluster = tokio::task::spawn_blocking(|| start(true))
        .await
        .expect("cluster");
    let mut conn = connection(&cluster);
    let sale = sales_on_every_primary(&cluster).remove(0);
    let queue = keys::queue(&sale);
    let first = conn.history_of(&queue).await.expect("history");
    for _ in 0..50 {
        let again = conn.history_of(&queue).await.expect("history");
        assert_eq!(again, first, "one term, one history");
    }
    let primary = cluster.primary_for_key(&sale);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.kill(primary);
        cluster.wait_for_failover(primary);
        cluster
    })
    .await
    .expect("failover");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let after = loop {
        match conn.history_of(&queue).await {
            Ok(id) if id != first => break id,
            _ if std::time::Instant::now() > deadline => panic!("no new history after failover"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    for _ in 0..50 {
        assert_eq!(conn.history_of(&queue).await.expect("history"), after);
    }
    drop(cluster);
}
