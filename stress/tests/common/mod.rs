//! The whole platform for the stress tests: the API in-process on a free
//! port and two workers, on a Redis server or a Redis Cluster and a
//! MongoDB-compatible server the test started; and the stress program's
//! settings for it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::config::SeedAdminArgs;
use api::{Application, Settings};
use serde_json::{json, Value};
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
        Self::start_with(redis, mongo, |_| {}).await
    }

    /// [`Platform::start`], with `configure` applied to each worker's
    /// settings.
    pub async fn start_with(
        redis: Redis,
        mongo: &MongoServer,
        configure: impl Fn(&mut worker::config::Config),
    ) -> Platform {
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
            configure(&mut config);
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

/// Buyers of one sale on the platform's API, and the admin who made it.
pub struct Buyers {
    pub http: reqwest::Client,
    pub api: String,
    pub sale: String,
    /// The dev admin's access token.
    pub token: String,
    /// Each buyer's token from its first buy, sent on its later requests.
    buyer_tokens: Mutex<HashMap<String, String>>,
}

/// A buyer token as the API with `settings` hands it out at a buy, for
/// buyers a test puts into a sale without one (straight into Redis).
pub fn buyer_token(settings: &Settings, sale: &str, email: &str) -> String {
    let keys = settings.buyer_tokens().expect("buyer-token keys");
    let sale = api::domain::SaleId::parse(sale).expect("a sale id");
    let who = api::domain::Email::parse(email)
        .expect("an email")
        .buyer_identity(settings.identity_strip_plus_tags);
    keys.sign(&sale, &who, api::buyer_token::unix_now() + 3600)
}

impl Buyers {
    /// Signs the dev admin in and creates a sale from `sale` (a
    /// `POST /flash-sales` body).
    pub async fn with_new_sale(platform: &Platform, sale: Value) -> Buyers {
        let http = reqwest::Client::new();
        let signed_in: Value = http
            .post(format!("{}/auth/signin", platform.api_url))
            .json(&json!({
                "email": api::seed_admin::DEV_ADMIN_EMAIL,
                "password": api::seed_admin::DEV_ADMIN_PASSWORD,
            }))
            .send()
            .await
            .expect("sign in")
            .json()
            .await
            .expect("sign-in reply");
        let token = signed_in["accessToken"]
            .as_str()
            .expect("an access token")
            .to_string();
        let mut body = json!({ "description": "made by a test" });
        if let (Some(body), Some(sale)) = (body.as_object_mut(), sale.as_object()) {
            body.extend(sale.clone());
        }
        let created: Value = http
            .post(format!("{}/flash-sales", platform.api_url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("create the sale")
            .json()
            .await
            .expect("created sale");
        let sale = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a sale id: {created}"))
            .to_string();
        Buyers {
            http,
            api: platform.api_url.clone(),
            sale,
            token,
            buyer_tokens: Mutex::default(),
        }
    }

    /// A request as `email` (with its token, once its buy handed one out).
    pub async fn send_as(
        &self,
        email: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let token = self
            .buyer_tokens
            .lock()
            .ok()
            .and_then(|t| t.get(email).cloned());
        self.send_with(method, path, body, token.as_deref()).await
    }

    /// Any request; its status and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        self.send_with(method, path, body, None).await
    }

    async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        buyer_token: Option<&str>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = buyer_token {
            request = request.header(api::buyer_token::HEADER, token);
        }
        // Far below MongoDB's own server-selection wait (30 s): an answer
        // that had waited for MongoDB would not come back in time.
        let response = request
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Any request, which must answer 2xx; its JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A request as `email` that must answer 2xx; its JSON body.
    async fn call_as(
        &self,
        email: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, body) = self.send_as(email, method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    pub async fn buy(&self, email: &str) -> Value {
        let body = json!({ "email": email, "flashSaleId": self.sale });
        let reply = self
            .call_as(email, reqwest::Method::POST, "/orders/buy", Some(body))
            .await;
        if let (Some(token), Ok(mut tokens)) =
            (reply["buyerToken"].as_str(), self.buyer_tokens.lock())
        {
            tokens.insert(email.to_string(), token.to_string());
        }
        reply
    }

    pub async fn position(&self, email: &str) -> Value {
        let path = format!(
            "/orders/position?flashSaleId={}&email={}",
            self.sale,
            email.replace('@', "%40")
        );
        self.call_as(email, reqwest::Method::GET, &path, None).await
    }

    pub async fn confirm(&self, email: &str) -> Value {
        let body = json!({ "email": email, "flashSaleId": self.sale });
        self.call_as(email, reqwest::Method::POST, "/orders/confirm", Some(body))
            .await
    }

    /// Polls the position until the worker admits `email`.
    pub async fn until_ready(&self, email: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let place = self.position(email).await;
            if place["status"] == "ready" {
                return;
            }
            assert!(Instant::now() < deadline, "{email} never admitted: {place}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
