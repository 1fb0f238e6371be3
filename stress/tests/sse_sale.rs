//! The small stress scenario (`small_sale.rs`: 300 buyers, 60 units, a
//! whole platform on loopback) with every buyer following its place over
//! Server-Sent Events (`GET /orders/events`) instead of polling, and every
//! check of the verdict.
//!
//! `FLASHSALE_STRESS_USERS` / `FLASHSALE_STRESS_STOCK` size it (300 / 60).

mod common;

use common::{Platform, Redis};
use stress::Watch;
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_following_server_sent_events_pass_every_check() {
    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let platform = Platform::start(Redis::Server(engine.server.url()), &mongo).await;
    let config = platform.stress_config(
        env_or("FLASHSALE_STRESS_USERS", 300),
        env_or("FLASHSALE_STRESS_STOCK", 60) as u64,
    );
    let report = stress::run_watching(&config, Watch::Sse)
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
    // The buyers waited on events, never on polls.
    assert!(
        !report.routes.contains_key("GET /orders/position"),
        "no buyer polled: {:?}",
        report.routes.keys()
    );
    let streams = report
        .routes
        .get("GET /orders/events")
        .map_or(0, |route| route.statuses.get(&200).copied().unwrap_or(0));
    assert!(streams > 0, "buyers opened event streams");
    assert_eq!(report.watching.watch, Watch::Sse);
    assert!(
        report.watching.sse_events >= streams,
        "every stream sent its first event at once"
    );
    assert!(
        !report.watching.admitted_to_ready_us.is_empty(),
        "admissions were timed"
    );
}
