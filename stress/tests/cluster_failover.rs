//! The failover drill: the whole platform (API, two workers, MongoDB) on a
//! local Redis Cluster of 3 primaries + 3 replicas, virtual buyers as in the
//! stress test, and the primary that serves the sale SIGKILLed in the middle
//! of the sale with confirms in flight — once with its replica in step, once
//! with its replica lagging (it misses every write of the last moments, so
//! the failover really rolls the sale back). The stress verdict must still
//! pass: no oversell (Redis and MongoDB), every confirm the API acknowledged
//! is an order after the failover (the same id, for the same buyer), no
//! order id names two buyers, every order in MongoDB exactly once, no buyer
//! stuck, and the sale sold out on the new primary.
//!
//! `FLASHSALE_FAILOVER_DRILLS` (default 1) repeats each drill.

mod common;

use std::time::{Duration, Instant};

use common::{Platform, Redis};
use flashsale::{BackendChoice, EngineClient, RedisConn, RedisTarget, Timeouts};
use mongodb::bson::{doc, Document};
use tests::mongo_server::MongoServer;

fn drills() -> usize {
    std::env::var("FLASHSALE_FAILOVER_DRILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The id of the one sale the stress run creates, once it exists.
async fn the_sale(mongo: &MongoServer) -> String {
    let client = mongodb::Client::with_uri_str(mongo.url())
        .await
        .expect("mongodb");
    let sales = client
        .database(&mongo.database_name())
        .collection::<Document>(records::SALES);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(sale)) = sales.find_one(doc! {}).await {
            if let Ok(id) = sale.get_str("_id") {
                return id.to_string();
            }
        }
        assert!(Instant::now() < deadline, "the stress run created no sale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `sold` units of `sale` are sold (and confirms keep coming).
async fn wait_until_sold(engine: &mut EngineClient<RedisConn>, sale: &str, sold: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(status) = engine.status(sale, None).await {
            if status.sale.sold >= sold {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{sale}: {sold} never sold");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn drill(lagging: bool) {
    let mut cluster = common::durable_cluster().await;
    let seeds = cluster.seed_nodes().join(",");
    let mongo = MongoServer::start().await;
    let platform = Platform::start(Redis::Cluster(seeds), &mongo).await;
    let config = stress::StressConfig {
        users: 240,
        stock: 60,
        hold_ttl_seconds: 3,
        // Slow admission keeps confirms coming through the failover.
        rate: Some(8),
        concurrency: 120,
        deadline_seconds: 150,
        ..platform.stress_config(240, 60)
    };
    let run = tokio::spawn(async move { stress::run(&config).await });

    // The fault: the sale's primary dies once a few units are sold.
    let sale = the_sale(&mongo).await;
    let conn = RedisConn::open(
        &RedisTarget::Cluster(cluster.seed_nodes()),
        Timeouts::default(),
    )
    .expect("cluster connection");
    let mut engine = EngineClient::prepare(conn, BackendChoice::Module)
        .await
        .expect("engine");
    wait_until_sold(&mut engine, &sale, 8).await;
    let primary = cluster.primary_for_key(&sale);
    let replica = cluster.replica_of(primary);
    let promoted = tokio::task::spawn_blocking(move || {
        if lagging {
            // Writes from now on reach the primary only: confirms are told
            // "not durable" and the workers do not copy them.
            cluster.pause_replication(replica);
            std::thread::sleep(Duration::from_millis(1500));
        }
        cluster.kill(primary);
        if lagging {
            cluster.resume_replication(replica);
        }
        let promoted = cluster.wait_for_failover(primary);
        (cluster, promoted)
    });
    let (cluster, promoted) = promoted.await.expect("failover");
    assert_eq!(promoted, replica, "the sale's replica took over");

    let report = run
        .await
        .expect("stress task")
        .expect("the stress run completes");
    println!("lagging replica: {lagging}\n{report}");
    platform.stop().await;
    assert!(report.passed(), "verdict FAIL after a failover:\n{report}");
    assert_eq!(
        report.sold, report.stock,
        "the sale sold out on the new primary"
    );
    assert_eq!(cluster.primary_for_key(&sale), promoted);
    assert!(
        report.fifo.terms_changed >= 1,
        "the queue observer saw the new primary take over"
    );
    if lagging {
        // The replica missed the last moments: confirms made then were
        // answered "not durable" (503) and taken again on the new primary.
        let not_durable = report
            .routes
            .get("POST /orders/confirm")
            .and_then(|route| route.statuses.get(&503))
            .copied()
            .unwrap_or(0);
        assert!(
            not_durable >= 1,
            "no confirm met the lagging replica:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_mid_sale_loses_no_acknowledged_purchase() {
    for _ in 0..drills() {
        drill(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_with_a_lagging_replica_reissues_no_order_id() {
    for _ in 0..drills() {
        drill(true).await;
    }
}
