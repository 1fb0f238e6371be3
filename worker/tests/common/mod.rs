//! Shared set-up for the worker's tests: a real redis-server with the engine,
//! a MongoDB-compatible server, sales, queued users and confirmed orders.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flashsale::{EngineClient, SetupParams};
use mongodb::bson::{doc, Document};
use mongodb::Database;
use redis::aio::MultiplexedConnection;
use tests::mongo_server::MongoServer;
use tests::{server_time_ms, wait_for_every, Backend, EngineServer, ServerOptions};
use tokio::sync::oneshot;
use worker::config::Config;
use worker::Worker;

pub struct Platform {
    pub engine: EngineServer,
    pub mongo: MongoServer,
    pub client: EngineClient<MultiplexedConnection>,
    pub conn: MultiplexedConnection,
    pub db: Database,
}

impl Platform {
    pub async fn start() -> Platform {
        Self::start_with(ServerOptions::default()).await
    }

    /// With the Redis data on disk (AOF, fsync always), to restart Redis.
    pub async fn start_persistent() -> Platform {
        let aof = vec![
            ("appendonly".into(), "yes".into()),
            ("appendfsync".into(), "always".into()),
        ];
        Self::start_with(ServerOptions {
            config: aof,
            ..ServerOptions::default()
        })
        .await
    }

    async fn start_with(options: ServerOptions) -> Platform {
        let engine = EngineServer::start_with(Backend::Module, false, options).await;
        let mongo = MongoServer::start().await;
        let client = engine.client().await;
        let conn = engine.server.connection().await;
        let db = mongo.database().await;
        Platform {
            engine,
            mongo,
            client,
            conn,
            db,
        }
    }

    /// Kills Redis and starts it again on its port and data; reconnects.
    pub async fn restart_redis(&mut self) {
        self.engine.server.restart();
        self.client = self.engine.client().await;
        self.conn = self.engine.server.connection().await;
    }

    pub fn config(&self) -> Config {
        Config::for_tests(
            self.engine.server.url(),
            self.mongo.url(),
            self.mongo.database_name(),
        )
    }

    /// A sale open from now for an hour, in MongoDB (as the API writes it)
    /// and in the engine.
    pub async fn sale(&mut self, id: &str, stock: u64, hold_ttl_ms: u64, rate: u64) {
        let now = server_time_ms(&mut self.conn).await;
        self.db
            .collection::<Document>("flash_sales")
            .insert_one(doc! { "_id": id, "name": id, "initialQuantity": stock as i64, "currentQuantity": stock as i64 })
            .await
            .expect("insert sale");
        let params = SetupParams {
            stock,
            starts_at: now,
            ends_at: now + 3_600_000,
            hold_ttl_ms,
            rate,
            max_queue: 0,
            price: None,
        };
        self.client.setup(id, params).await.expect("setup");
    }

    /// `n` confirmed orders in the outbox, from users `buyer<first>`...
    pub async fn confirmed_orders(&mut self, sale: &str, first: usize, n: usize) -> Vec<String> {
        let users: Vec<String> = (first..first + n)
            .map(|i| format!("buyer{i}@example.com"))
            .collect();
        tests::fixtures::confirm_orders(&mut self.client, &mut self.conn, sale, &users).await;
        users
    }

    pub async fn queue(&mut self, sale: &str, users: &[String]) {
        tests::fixtures::queue_users(&mut self.conn, sale, users).await;
    }

    pub async fn orders_in_mongo(&self, sale: &str) -> Vec<Document> {
        use futures::TryStreamExt;
        self.db
            .collection::<Document>("orders")
            .find(doc! { "flashSaleId": sale })
            .await
            .expect("find orders")
            .try_collect()
            .await
            .expect("read orders")
    }

    pub async fn wait_for_orders(&self, sale: &str, n: usize, timeout: Duration) {
        let db = self.db.clone();
        let sale = sale.to_string();
        // Counting costs the (serialised) test server a scan: poll gently.
        wait_for_every(
            &format!("{n} orders of {sale} in MongoDB"),
            timeout,
            Duration::from_millis(100),
            || {
                let (db, sale) = (db.clone(), sale.clone());
                async move {
                    let count = db
                        .collection::<Document>("orders")
                        .count_documents(doc! { "flashSaleId": &sale })
                        .await
                        .ok()?;
                    (count as usize >= n).then_some(())
                }
            },
        )
        .await;
    }

    /// (entries not yet delivered, delivered but unacknowledged); the whole
    /// outbox counts as undelivered while no worker has made the group yet.
    pub async fn outbox_backlog(&mut self, sale: &str) -> (u64, u64) {
        match worker::outbox::backlog(&mut self.conn, sale)
            .await
            .expect("XINFO GROUPS")
        {
            Some(backlog) => backlog,
            None => {
                let len: u64 = redis::cmd("XLEN")
                    .arg(flashsale::keys::outbox(sale))
                    .query_async(&mut self.conn)
                    .await
                    .expect("XLEN");
                (len, 0)
            }
        }
    }
}

/// A worker running inside the test process; stops when dropped or stopped.
pub struct RunningWorker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub metrics_addr: std::net::SocketAddr,
}

impl RunningWorker {
    pub async fn spawn(config: Config) -> RunningWorker {
        let worker = Worker::build(config).await.expect("worker builds");
        let metrics_addr = worker.metrics_addr().expect("metrics address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        RunningWorker {
            stop: Some(tx),
            task: Some(task),
            metrics_addr,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The worker binary as a child process, killed when dropped (so a failing
/// test leaves no worker behind).
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The worker binary as a child process (to SIGKILL it), configured by env.
pub fn spawn_worker_process(config: &Config, extra_env: &[(&str, &str)]) -> WorkerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashsale-worker"));
    cmd.env("REDIS_URL", &config.redis_url)
        .env("MONGO_URL", &config.mongo_url)
        .env("MONGO_DB", &config.mongo_db)
        .env("WORKER_METRICS_ADDR", "127.0.0.1:0")
        .env("WORKER_POLL_INTERVAL_MS", "10")
        .env("WORKER_SALES_REFRESH_MS", "100")
        .env("WORKER_RECONCILE_INTERVAL_S", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    WorkerProcess(cmd.spawn().expect("spawn flashsale-worker"))
}
