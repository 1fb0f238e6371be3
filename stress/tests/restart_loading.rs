//! Start-up and restart do not depend on Redis being ready first: the
//! platform is restarted on a large AOF, and the API and a worker are started
//! while Redis is still loading it.
//!
//! Proved here, against a real redis-server (module engine, AOF with an RDB
//! preamble), the MongoDB-compatible server, the API and a worker in process:
//!
//! - a sale created through the admin route, [`QUEUED`] buyers in its queue,
//!   its whole stock held by the first buyers (admitted by a worker, holds
//!   of an hour), and [`FILLER_KEYS`] other keys;
//! - the API and the worker stopped, the AOF rewritten, Redis killed and
//!   started again on the same files without waiting for it;
//! - while a raw `PING` answers `LOADING` (checked before and after):
//!   `Application::build` and `Worker::build` succeed, both `/readyz` answer
//!   503, `/healthz` answers 200, and the buyer routes (position, buy,
//!   confirm) answer 503 with `Retry-After` and the JSON error shape — never
//!   a 500;
//! - then, with nothing restarted or poked, both `/readyz` turn 200 by
//!   themselves, and the state survived: the known buyer's place is the
//!   same, the held buyers still hold, one of them confirms and the worker
//!   copies the order to MongoDB, and a new buyer joins at the back.
//!
//! How the loading is made long: Redis's hidden testing settings
//! `key-load-delay` (a sleep, in µs, after each key read from the RDB
//! preamble of the AOF) and `loading-process-events-interval-bytes` (so the
//! server keeps answering, `LOADING`, while it reads). The delay is per key,
//! and a sale has only a handful of keys (its queue is one sorted set), so
//! the dataset gets [`FILLER_KEYS`] small string keys (`DEBUG POPULATE`) that
//! stand for the rest of a production keyspace. Loading then takes a few
//! seconds (`usleep` overshoots: about twice the nominal delay here).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

mod common;

use api::{Application, Settings};
use chrono::{SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer, ServerOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Buyers queued in the sale.
const QUEUED: usize = 20_000;
/// Units on sale: all held by the first buyers before the restart.
const STOCK: usize = 5;
/// The buyer whose place is checked across the restart.
const KNOWN: usize = 12_345;
/// Small keys besides the sale's, for `key-load-delay` to act on.
const FILLER_KEYS: usize = 30_000;
/// µs slept after each key loaded.
const KEY_LOAD_DELAY_US: &str = "100";
/// How long both programs get to become ready by themselves.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The buyers here are queued straight into Redis, so they never got a
/// token from a buy: the test signs the ones the API would have handed out.
const BUYER_TOKEN: &str = api::buyer_token::HEADER;

fn buyer(i: usize) -> String {
    format!("buyer{i:05}@example.com")
}

fn rfc3339(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One `PING` over a fresh TCP connection, without a client library in the
/// way: the first reply line (`+PONG`, `-LOADING …`) or why there is none.
async fn raw_ping(port: u16) -> String {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line.trim_end().to_string())
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(line)) if line.is_empty() => "connection closed".into(),
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("no connection: {e}"),
        Err(_) => "no answer within 2 s".into(),
    }
}

#[track_caller]
fn assert_loading(reply: &str, when: &str) {
    assert!(
        reply.starts_with("-LOADING"),
        "Redis must still be loading {when} (or the test proves nothing); PING answered {reply:?}"
    );
}

/// A response: status, headers, body as JSON (`Null` when not JSON) and text.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
    text: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text)
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("HTTP body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

/// A buyer route's answer while Redis loads: 503, `Retry-After`, the API's
/// JSON error shape.
#[track_caller]
fn assert_unavailable(reply: &Reply, route: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{route} while Redis loads: {reply:?}"
    );
    let retry_after = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|secs| secs > 0),
        "{route}: Retry-After in seconds: {reply:?}"
    );
    assert!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json")),
        "{route}: JSON error body: {reply:?}"
    );
    assert_eq!(
        reply.json["error"]["code"], "unavailable",
        "{route}: {reply:?}"
    );
}

fn settings(engine: &EngineServer, mongo: &MongoServer) -> Settings {
    let mut settings = Settings::defaults().expect("default settings");
    settings.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    settings.port = 0;
    settings.dev_mode = true;
    settings.jwt_secret = Some("restart-test-secret-that-is-long-enough-0123456789".into());
    settings.redis_url = engine.server.url();
    settings.mongo_url = mongo.url();
    settings.mongo_db = mongo.database_name();
    settings.rate_limit_buy_per_second = 1_000_000;
    settings.rate_limit_buy_burst = 1_000_000;
    settings
}

fn worker_config(engine: &EngineServer, mongo: &MongoServer) -> worker::config::Config {
    let mut config =
        worker::config::Config::for_tests(engine.server.url(), mongo.url(), mongo.database_name());
    config.poll_interval_ms = 20;
    config
}

/// A running program and the way to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops within 10 s")
            .expect("ran without panicking");
    }
}

fn serve_api(app: Application) -> (String, Running) {
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .expect("the API serves");
    });
    (url, Running { stop, task })
}

fn run_worker(worker: worker::Worker) -> (String, Running) {
    let addr = worker.metrics_addr().expect("the worker's metrics address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), Running { stop, task })
}

/// `INFO persistence` field.
async fn persistence_field(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(conn)
        .await
        .expect("INFO persistence");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_platform_starts_while_redis_loads_a_large_aof_and_becomes_ready_by_itself() {
    let test_started = Instant::now();
    let config = [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("aof-use-rdb-preamble", "yes"),
        ("key-load-delay", KEY_LOAD_DELAY_US),
        ("loading-process-events-interval-bytes", "1024"),
    ];
    let mut engine = EngineServer::start_with(
        Backend::Module,
        false,
        ServerOptions {
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ServerOptions::default()
        },
    )
    .await;
    let mongo = MongoServer::start().await;
    let settings = settings(&engine, &mongo);
    common::seed_dev_admin(&settings).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client");

    // Before the restart: a sale with a long queue, its stock held.
    let app = Application::build(settings.clone())
        .await
        .expect("the API builds");
    let (api_url, api) = serve_api(app);
    let worker = worker::Worker::build(worker_config(&engine, &mongo))
        .await
        .expect("the worker builds");
    let (_, first_worker) = run_worker(worker);
    let signin = send(http.post(format!("{api_url}/auth/signin")).json(&json!({
        "email": api::seed_admin::DEV_ADMIN_EMAIL,
        "password": api::seed_admin::DEV_ADMIN_PASSWORD,
    })))
    .await;
    assert_eq!(signin.status, StatusCode::OK, "sign in: {signin:?}");
    let token = signin.json["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_string();
    let created = send(
        http.post(format!("{api_url}/flash-sales"))
            .bearer_auth(&token)
            .json(&json!({
                "name": "Restart drill",
                "description": "a sale across a Redis restart",
                "initialQuantity": STOCK,
                "pricePerUnit": "49.99",
                "startsAt": rfc3339(-60),
                "endsAt": rfc3339(3600),
                "holdTtlSeconds": 3600,
            })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "create: {created:?}");
    let sale = created.json["id"].as_str().expect("sale id").to_string();

    let users: Vec<String> = (0..QUEUED).map(buyer).collect();
    let mut conn = engine.server.connection().await;
    tests::fixtures::queue_users(&mut conn, &sale, &users).await;
    let position_of = |email: String| {
        let (http, api_url, sale) = (http.clone(), api_url.clone(), sale.clone());
        let token = common::buyer_token(&settings, &sale, &email);
        async move {
            send(
                http.get(format!("{api_url}/orders/position"))
                    .header(BUYER_TOKEN, token)
                    .query(&[("flashSaleId", sale.as_str()), ("email", email.as_str())]),
            )
            .await
        }
    };
    // The worker admits the first STOCK buyers; then nobody moves (the
    // holds last an hour).
    let known_before = tests::wait_for_every(
        "the worker to admit the first buyers",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let reply = position_of(buyer(KNOWN)).await;
            (reply.json["size"] == (QUEUED - STOCK)).then_some(reply)
        },
    )
    .await;
    assert_eq!(known_before.status, StatusCode::OK, "{known_before:?}");
    assert_eq!(known_before.json["status"], "queued", "{known_before:?}");
    assert_eq!(
        known_before.json["position"],
        KNOWN - STOCK + 1,
        "{known_before:?}"
    );
    for i in 0..STOCK {
        let reply = position_of(buyer(i)).await;
        assert_eq!(reply.json["status"], "ready", "buyer {i}: {reply:?}");
    }
    api.stop().await;
    first_worker.stop().await;

    // A large AOF: filler keys, then a rewrite (RDB preamble) of everything.
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(FILLER_KEYS)
        .arg("filler")
        .arg(32)
        .query_async(&mut conn)
        .await
        .expect("DEBUG POPULATE");
    let keys: usize = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    let _: String = redis::cmd("BGREWRITEAOF")
        .query_async(&mut conn)
        .await
        .expect("BGREWRITEAOF");
    tests::wait_for_every(
        "the AOF rewrite",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let mut conn = conn.clone();
            async move {
                let idle = persistence_field(&mut conn, "aof_rewrite_in_progress").await == "0"
                    && persistence_field(&mut conn, "aof_rewrite_scheduled").await == "0";
                idle.then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        persistence_field(&mut conn, "aof_last_bgrewrite_status").await,
        "ok",
        "the AOF rewrite succeeded"
    );
    drop(conn);
    let aof_dir = engine.server.dir.join("appendonlydir");
    println!(
        "dataset: {keys} keys, AOF {:.1} MB; set up in {:.1?}",
        dir_size(&aof_dir) as f64 / 1e6,
        test_started.elapsed()
    );

    // The restart: Redis killed and started again, nobody waiting for it.
    let port = engine.server.port;
    engine.server.restart_no_wait();
    let restarted = Instant::now();
    let watch = tokio::spawn(async move {
        // When Redis first answers LOADING, and when it first answers PONG.
        let mut first_loading = None;
        loop {
            let reply = raw_ping(port).await;
            if reply.starts_with("-LOADING") && first_loading.is_none() {
                first_loading = Some(restarted.elapsed());
            }
            if reply == "+PONG" {
                return (first_loading, restarted.elapsed());
            }
            assert!(
                restarted.elapsed() < READY_WITHIN,
                "Redis did not finish loading in {READY_WITHIN:?}; last PING: {reply}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let loading = tests::wait_for(
        "the restarted Redis to answer",
        Duration::from_secs(10),
        || async {
            let reply = raw_ping(port).await;
            (!reply.starts_with("no connection")).then_some(reply)
        },
    )
    .await;
    assert_loading(&loading, "when the programs start");

    // Both programs start while it loads.
    let build = Instant::now();
    let app = Application::build(settings.clone())
        .await
        .expect("the API builds while Redis is loading");
    let api_built = build.elapsed();
    let build = Instant::now();
    let worker = worker::Worker::build(worker_config(&engine, &mongo))
        .await
        .expect("the worker builds while Redis is loading");
    let worker_built = build.elapsed();
    let (api_url, api) = serve_api(app);
    let (worker_url, worker) = run_worker(worker);
    let position_of = |email: String| {
        let (http, api_url, sale) = (http.clone(), api_url.clone(), sale.clone());
        let token = common::buyer_token(&settings, &sale, &email);
        async move {
            send(
                http.get(format!("{api_url}/orders/position"))
                    .header(BUYER_TOKEN, token)
                    .query(&[("flashSaleId", sale.as_str()), ("email", email.as_str())]),
            )
            .await
        }
    };

    // Not ready meanwhile, and buyers told to come back — never a 500.
    let ready = send(http.get(format!("{api_url}/readyz"))).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "API /readyz while Redis loads: {ready:?}"
    );
    assert_eq!(ready.json["error"]["code"], "not_ready", "{ready:?}");
    assert_ne!(ready.json["checks"]["redis"], "ok", "{ready:?}");
    println!("API /readyz while loading: {}", ready.text);
    let health = send(http.get(format!("{api_url}/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK, "API /healthz: {health:?}");
    assert_unavailable(&position_of(buyer(KNOWN)).await, "GET /orders/position");
    let buy = send(
        http.post(format!("{api_url}/orders/buy"))
            .json(&json!({ "email": "early@example.com", "flashSaleId": sale })),
    )
    .await;
    assert_unavailable(&buy, "POST /orders/buy");
    let confirm = send(
        http.post(format!("{api_url}/orders/confirm"))
            .header(
                BUYER_TOKEN,
                common::buyer_token(&settings, &sale, &buyer(0)),
            )
            .json(&json!({ "email": buyer(0), "flashSaleId": sale })),
    )
    .await;
    assert_unavailable(&confirm, "POST /orders/confirm");
    let health = send(http.get(format!("{worker_url}/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK, "worker /healthz: {health:?}");
    // Asserted at the end, so that a failure here does not hide whether
    // the rest of the requirement holds.
    let worker_ready_while_loading = send(http.get(format!("{worker_url}/readyz"))).await;
    let checked = restarted.elapsed();
    assert_loading(&raw_ping(port).await, "after the checks");

    // Ready by themselves.
    let both_ready = tests::wait_for_every(
        "the API and the worker to become ready",
        READY_WITHIN,
        Duration::from_millis(50),
        || {
            let (http, api_url, worker_url) = (http.clone(), api_url.clone(), worker_url.clone());
            async move {
                let api = send(http.get(format!("{api_url}/readyz"))).await;
                let worker = send(http.get(format!("{worker_url}/readyz"))).await;
                (api.status == StatusCode::OK && worker.status == StatusCode::OK)
                    .then(|| restarted.elapsed())
            }
        },
    )
    .await;
    let (first_loading, loaded) = watch.await.expect("the PING watch");

    // The state survived.
    let known_after = position_of(buyer(KNOWN)).await;
    assert_eq!(known_after.status, StatusCode::OK, "{known_after:?}");
    for field in ["status", "position", "size"] {
        assert_eq!(
            known_after.json[field], known_before.json[field],
            "{field} of the known buyer: before {known_before:?}, after {known_after:?}"
        );
    }
    for i in 0..STOCK {
        let reply = position_of(buyer(i)).await;
        assert_eq!(
            reply.json["status"], "ready",
            "buyer {i} still holds: {reply:?}"
        );
    }
    let confirm = send(
        http.post(format!("{api_url}/orders/confirm"))
            .header(
                BUYER_TOKEN,
                common::buyer_token(&settings, &sale, &buyer(0)),
            )
            .json(&json!({ "email": buyer(0), "flashSaleId": sale })),
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "confirm: {confirm:?}");
    let order_id = confirm.json["orderId"]
        .as_str()
        .expect("orderId")
        .to_string();
    let order = tests::wait_for_every(
        "the worker to copy the order to MongoDB",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let (http, api_url, sale) = (http.clone(), api_url.clone(), sale.clone());
            let token = common::buyer_token(&settings, &sale, &buyer(0));
            async move {
                let reply = send(
                    http.get(format!("{api_url}/orders/by-email"))
                        .header(BUYER_TOKEN, token)
                        .query(&[("flashSaleId", sale.as_str()), ("email", buyer(0).as_str())]),
                )
                .await;
                (reply.json["persisted"] == true).then_some(reply)
            }
        },
    )
    .await;
    assert_eq!(order.json["orderId"], order_id, "{order:?}");
    let buy = send(
        http.post(format!("{api_url}/orders/buy"))
            .json(&json!({ "email": "late@example.com", "flashSaleId": sale })),
    )
    .await;
    assert_eq!(buy.status, StatusCode::OK, "a new buyer: {buy:?}");
    assert_eq!(buy.json["status"], "queued", "{buy:?}");
    assert_eq!(buy.json["position"], QUEUED - STOCK + 1, "{buy:?}");

    api.stop().await;
    worker.stop().await;
    let log = std::fs::read_to_string(engine.server.dir.join("redis.log")).unwrap_or_default();
    let load_line = log
        .lines()
        .rev()
        .find(|l| l.contains("DB loaded from append only file"))
        .unwrap_or("(no load line in redis.log)");
    println!(
        "after the restart: first LOADING at {first_loading:?}; API built in {api_built:?}, \
         worker in {worker_built:?}; checks done at {checked:?}; Redis answered PONG at \
         {loaded:?}; both /readyz 200 at {both_ready:?}\nredis.log: {load_line}\ntotal {:.1?}",
        test_started.elapsed()
    );
    assert_eq!(
        worker_ready_while_loading.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "worker /readyz while Redis was loading (everything else held): \
         {worker_ready_while_loading:?}"
    );
}
