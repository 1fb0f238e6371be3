//! The stress scenario, small enough for every CI run: a few hundred virtual
//! buyers against a whole platform (redis-server with the module, the
//! MongoDB-compatible server, the API and two workers, all on loopback), and
//! every verification of the full run.
//!
//! `FLASHSALE_STRESS_USERS` / `FLASHSALE_STRESS_STOCK` size it (300 / 60).

use std::net::{IpAddr, Ipv4Addr};

use api::config::SeedAdminArgs;
use api::{Application, Settings};
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};
use tokio::sync::oneshot;

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

    let mut settings = Settings::defaults().expect("default settings");
    settings.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    settings.port = 0;
    settings.dev_mode = true;
    settings.jwt_secret = Some("stress-test-secret-that-is-long-enough-0123456789".into());
    settings.redis_url = engine.server.url();
    settings.mongo_url = mongo.url();
    settings.mongo_db = mongo.database_name();
    // One address plays every buyer: the per-IP limits would stop a real one.
    settings.rate_limit_buy_per_second = 1_000_000;
    settings.rate_limit_buy_burst = 1_000_000;
    api::seed_admin::seed_admin(
        &settings,
        &SeedAdminArgs {
            email: None,
            password: None,
        },
    )
    .await
    .expect("seed the dev admin");
    let app = Application::build(settings.clone())
        .await
        .expect("api builds");
    let api_url = format!("http://127.0.0.1:{}", app.port());
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let api = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = api_stopped.await;
            })
            .await;
    });

    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut config = worker::config::Config::for_tests(
            engine.server.url(),
            mongo.url(),
            mongo.database_name(),
        );
        config.poll_interval_ms = 20;
        let worker = worker::Worker::build(config).await.expect("worker builds");
        let (stop, stopped) = oneshot::channel::<()>();
        workers.push((
            stop,
            tokio::spawn(worker.run_until(async move {
                let _ = stopped.await;
            })),
        ));
    }

    let config = stress::StressConfig {
        api_url,
        redis_url: engine.server.url(),
        redis_cluster_nodes: None,
        mongo_url: mongo.url(),
        mongo_db: mongo.database_name(),
        admin_email: api::seed_admin::DEV_ADMIN_EMAIL.into(),
        admin_password: api::seed_admin::DEV_ADMIN_PASSWORD.into(),
        users: env_or("FLASHSALE_STRESS_USERS", 300),
        stock: env_or("FLASHSALE_STRESS_STOCK", 60) as u64,
        abandon_percent: 10,
        hold_ttl_seconds: 2,
        rate: None,
        concurrency: 150,
        start_in_seconds: 1,
        deadline_seconds: 90,
    };
    let report = stress::run(&config)
        .await
        .expect("the stress run completes");
    println!("{report}");

    let _ = stop_api.send(());
    let _ = api.await;
    for (stop, task) in workers {
        let _ = stop.send(());
        let _ = task.await;
    }
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
