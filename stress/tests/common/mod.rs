//! The whole platform for the stress tests: the API in-process on a free
//! port and two workers, on a Redis server or a Redis Cluster and a
//! MongoDB-compatible server the test started; and the stress program's
//! settings for it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use api::config::SeedAdminArgs;
use api::{Application, Settings};
use tests::mongo_server::MongoServer;
use tests::{module_path, ClusterOptions, RedisCluster};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the platform's Redis is.
#[derive(Debug, Clone)]
pub enum Redis {
    Server(String),
    /// Seed nodes, `host:port,…`.
    Cluster(String),
}

pub struct Platform {
    pub api_url: String,
    redis: Redis,
    mongo_url: String,
    mongo_db: String,
    api: (oneshot::Sender<()>, JoinHandle<()>),
    workers: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Platform {
    pub async fn start(redis: Redis, mongo: &MongoServer) -> Platform {
        let mut settings = Settings::defaults().expect("default settings");
        settings.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        settings.port = 0;
        settings.dev_mode = true;
        settings.jwt_secret = Some("stress-test-secret-that-is-long-enough-0123456789".into());
        match &redis {
            Redis::Server(url) => settings.redis_url = url.clone(),
            Redis::Cluster(seeds) => settings.redis_cluster_nodes = Some(seeds.clone()),
        }
        settings.mongo_url = mongo.url();
        settings.mongo_db = mongo.database_name();
        // One address plays every buyer: the per-IP limits would stop a real one.
        settings.rate_limit_buy_per_second = 1_000_000;
        settings.rate_limit_buy_burst = 1_000_000;
        seed_dev_admin(&settings).await;
        let app = Application::build(settings).await.expect("api builds");
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
                String::new(),
                mongo.url(),
                mongo.database_name(),
            );
            match &redis {
                Redis::Server(url) => config.redis_url = url.clone(),
                Redis::Cluster(seeds) => config.redis_cluster_nodes = Some(seeds.clone()),
            }
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
        Platform {
            api_url,
            redis,
            mongo_url: mongo.url(),
            mongo_db: mongo.database_name(),
            api: (stop_api, api),
            workers,
        }
    }

    /// The stress program against this platform: `users` buyers for
    /// `stock` units, one sale, the rest as a small CI run wants it.
    pub fn stress_config(&self, users: usize, stock: u64) -> stress::StressConfig {
        let (redis_url, redis_cluster_nodes) = match &self.redis {
            Redis::Server(url) => (url.clone(), None),
            Redis::Cluster(seeds) => (String::new(), Some(seeds.clone())),
        };
        stress::StressConfig {
            api_url: self.api_url.clone(),
            redis_url,
            redis_cluster_nodes,
            mongo_url: self.mongo_url.clone(),
            mongo_db: self.mongo_db.clone(),
            admin_email: api::seed_admin::DEV_ADMIN_EMAIL.into(),
            admin_password: api::seed_admin::DEV_ADMIN_PASSWORD.into(),
            users,
            stock,
            sales: 1,
            abandon_percent: 10,
            hold_ttl_seconds: 2,
            rate: None,
            concurrency: 150,
            start_in_seconds: 1,
            deadline_seconds: 90,
        }
    }

    /// Stops the API and the workers (each finishes what it has in flight).
    pub async fn stop(self) {
        let (stop, task) = self.api;
        let _ = stop.send(());
        let _ = task.await;
        for (stop, task) in self.workers {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// The dev admin (admin@example.com), as `scripts/run` creates it.
pub async fn seed_dev_admin(settings: &Settings) {
    api::seed_admin::seed_admin(
        settings,
        &SeedAdminArgs {
            email: None,
            password: None,
        },
    )
    .await
    .expect("seed the dev admin");
}

/// A local Redis Cluster of 3 primaries + 3 replicas, the module on every
/// node and AOF on, as `CLUSTER=3 scripts/run` runs it.
pub async fn durable_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(|| {
        RedisCluster::start(ClusterOptions {
            module: Some((module_path(), false)),
            aof: true,
            ..ClusterOptions::default()
        })
    })
    .await
    .expect("cluster")
}
