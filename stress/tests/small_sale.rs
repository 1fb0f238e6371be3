//! The stress scenario, small enough for every CI run: a few hundred virtual
//! buyers against a whole platform (redis-server with the module, the
//! MongoDB-compatible server, the API and two workers, all on loopback), and
//! every verification of the full run.
//!
//! `FLASHSALE_STRESS_USERS` / `FLASHSALE_STRESS_STOCK` size it (300 / 60).

mod common;

use common::{Platform, Redis};
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_flash_sale_under_load_passes_every_check() {
    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let platform = Platform::start(Redis::Server(engine.server.url()), &mongo).await;
    let config = platform.stress_config(
        env_or("FLASHSALE_STRESS_USERS", 300),
        env_or("FLASHSALE_STRESS_STOCK", 60) as u64,
    );
    let report = stress::run(&config)
        .await
        .expect("the stress run completes");
    println!("{report}");
    platform.stop().await;

    assert!(report.passed(), "stress verdict FAIL:\n{report}");
    assert_eq!(report.sold, report.stock, "the sale sells out");
    assert!(
        report
            .outcomes
            .get("abandoned on purpose")
            .copied()
            .unwrap_or(0)
            > 0,
        "some holds were abandoned and recycled"
    );
}
