//! The stress program on a local Redis Cluster (3 primaries + 3 replicas,
//! the module on every node, AOF on): several sales at once, spread evenly
//! over the three primaries, through one API and two workers; every sale
//! must pass every check of the verdict and sell out.
//!
//! `FLASHSALE_CLUSTER_STRESS_USERS` sizes it (600 buyers for 6 × 30 units).

mod common;

use common::{Platform, Redis};
use tests::mongo_server::MongoServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_spread_over_every_primary_pass_every_check() {
    let cluster = common::durable_cluster().await;
    let mongo = MongoServer::start().await;
    let platform = Platform::start(Redis::Cluster(cluster.seed_nodes().join(",")), &mongo).await;
    let users = std::env::var("FLASHSALE_CLUSTER_STRESS_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let config = stress::StressConfig {
        sales: 6,
        ..platform.stress_config(users, 30)
    };
    let report = stress::run(&config)
        .await
        .expect("the stress run completes");
    println!("{report}");
    platform.stop().await;

    assert!(report.passed(), "stress verdict FAIL:\n{report}");
    assert_eq!((report.sales, report.stock), (6, 180));
    assert_eq!(report.sold, report.stock, "every sale sells out");
    assert_eq!(
        report.placement.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "two sales on each primary: {:?}",
        report.placement
    );
    drop(cluster);
}
