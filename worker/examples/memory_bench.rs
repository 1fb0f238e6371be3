//! Redis memory across many sales: does it grow with history? N sales of M
//! orders each are sold through the engine (no worker running), then one
//! worker copies the orders to MongoDB and trims the outboxes
//! (`outbox_keep_s = 0`), then a worker with `sale_retention_s = 0` removes
//! the ended sales' keys. `INFO memory` and `DBSIZE` are read before
//! selling, after selling, after trimming and after retention.
//!
//! `cargo run --release -p worker --example memory_bench -- [sales] [orders]`
//! (`bench/memory.sh`).
//!
//! The retention check reads each sale's orders from MongoDB; on the local
//! test server (FerretDB on SQLite, one command at a time) that is a scan of
//! the whole `orders` collection: 7.6 s per sale with 100,000 orders
//! stored, 78 s with 1,000,000 on a 2-core machine — about two hours at
//! 100 × 10,000. `SKIP_RETENTION=1` stops after trimming.

use std::time::{Duration, Instant};

use flashsale::{BackendChoice, EngineClient, GrantReply, SetupParams};
use mongodb::bson::{doc, Document};
use mongodb::Database;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tests::mongo_server::MongoServer;
use tests::{server_time_ms, wait_for_every, Backend, EngineServer};
use worker::config::Config;
use worker::Worker;

/// Commands per pipeline round trip.
const PIPELINE: usize = 1_000;
/// Each sale stays open this long after its set-up, plus 1 ms per order, so
/// that it ends a few seconds after its orders are confirmed.
const WINDOW_MS: u64 = 5_000;
/// Long enough for every hold to be confirmed.
const HOLD_TTL_MS: u64 = 600_000;
const PRICE: u64 = 999;
/// How long the worker may take to copy and trim, or to retire the sales.
const TIMEOUT: Duration = Duration::from_secs(3_600);

/// One reading of the server.
struct Reading {
    stage: &'static str,
    used: u64,
    dataset: u64,
    rss: u64,
    keys: u64,
    /// `MEMORY USAGE` of the first sale's keys, by suffix.
    first_sale: Vec<(&'static str, Option<u64>)>,
}

fn sale_id(i: usize) -> String {
    format!("mem{i}")
}

fn user(sale: usize, n: usize, orders: usize) -> String {
    format!("buyer{}@example.com", sale * orders + n)
}

/// The first word of an engine reply (`["confirmed", …]` → `confirmed`).
fn reply_word(value: &Value) -> Option<String> {
    match value {
        Value::Array(parts) => parts.first().and_then(reply_word),
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Sends `command sale <user>` for every user, `PIPELINE` at a time;
/// asserts every reply's first word is `expect`.
async fn pipelined(
    conn: &mut MultiplexedConnection,
    command: &str,
    sale: &str,
    users: &[String],
    expect: &str,
) {
    for chunk in users.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for user in chunk {
            pipe.cmd(command).arg(sale).arg(user);
        }
        let replies: Vec<Value> = pipe.query_async(conn).await.expect(command);
        for reply in &replies {
            assert_eq!(
                reply_word(reply).as_deref(),
                Some(expect),
                "{command} {sale}: {reply:?}"
            );
        }
    }
}

/// Sets up `sale` (in MongoDB as the API writes it, and in the engine) and
/// confirms one order for each of `users`; returns the sale's end (server ms).
async fn sell(
    client: &mut EngineClient<MultiplexedConnection>,
    conn: &mut MultiplexedConnection,
    db: &Database,
    sale: &str,
    users: &[String],
) -> u64 {
    let stock = users.len() as u64;
    db.collection::<Document>("flash_sales")
        .insert_one(doc! {
            "_id": sale,
            "name": sale,
            "initialQuantity": stock as i64,
            "currentQuantity": stock as i64,
        })
        .await
        .expect("insert sale");
    let now = server_time_ms(conn).await;
    let ends_at = now + WINDOW_MS + stock;
    let params = SetupParams {
        stock,
        starts_at: now,
        ends_at,
        hold_ttl_ms: HOLD_TTL_MS,
        rate: 0,
        max_queue: 0,
        price: Some(PRICE),
    };
    client.setup(sale, params).await.expect("setup");
    pipelined(conn, "FLASHSALE.ENQUEUE", sale, users, "queued").await;
    let mut granted = 0;
    while granted < users.len() {
        let max = (users.len() - granted).min(engine::command::MAX_GRANT as usize) as u64;
        match client.grant(sale, max).await.expect("grant") {
            GrantReply::Granted { users: got, .. } if !got.is_empty() => granted += got.len(),
            other => panic!("GRANT {sale} after {granted} holds: {other:?}"),
        }
    }
    pipelined(conn, "FLASHSALE.CONFIRM", sale, users, "confirmed").await;
    ends_at
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO memory has no {name}"))
}

/// Reads the server once freed memory is freed (UNLINK frees in the
/// background).
async fn measure(conn: &mut MultiplexedConnection, stage: &'static str) -> Reading {
    let info = loop {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(conn)
            .await
            .expect("INFO");
        if info_field(&info, "lazyfree_pending_objects") == 0 {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let keys: u64 = redis::cmd("DBSIZE")
        .query_async(conn)
        .await
        .expect("DBSIZE");
    let first = sale_id(0);
    let mut first_sale = Vec::new();
    for (suffix, _) in engine::keys::TYPES {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(format!(
                "{}{first}{}{suffix}",
                engine::keys::OPEN,
                engine::keys::CLOSE
            ))
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await
            .expect("MEMORY USAGE");
        first_sale.push((suffix, usage));
    }
    Reading {
        stage,
        used: info_field(&info, "used_memory"),
        dataset: info_field(&info, "used_memory_dataset"),
        rss: info_field(&info, "used_memory_rss"),
        keys,
        first_sale,
    }
}

/// A worker inside this process until `stop`.
struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    async fn start(config: Config) -> RunningWorker {
        let worker = Worker::build(config).await.expect("worker");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));
        RunningWorker { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Polls `check` (the number of sales not done yet) every half second
/// until it is 0, up to [`TIMEOUT`]; reports progress every 10 s.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let started = Instant::now();
    let mut reported = Instant::now();
    wait_for_every(what, TIMEOUT, Duration::from_millis(500), || {
        let left = check();
        let report = reported.elapsed() >= Duration::from_secs(10);
        if report {
            reported = Instant::now();
        }
        async move {
            let left = left.await;
            if report {
                eprintln!(
                    "  {:.0} s: {left} sales left ({what})",
                    started.elapsed().as_secs_f64()
                );
            }
            (left == 0).then_some(())
        }
    })
    .await;
}

/// How many of `sales` still have an outbox entry to copy or more than one
/// entry in the outbox.
async fn untrimmed(conn: &mut MultiplexedConnection, sales: &[String]) -> usize {
    let mut left = 0;
    for sale in sales {
        let backlog = worker::outbox::backlog(conn, sale).await.expect("XINFO");
        let len: u64 = redis::cmd("XLEN")
            .arg(flashsale::keys::outbox(sale))
            .query_async(conn)
            .await
            .expect("XLEN");
        if backlog != Some((0, 0)) || len > 1 {
            left += 1;
        }
    }
    left
}

/// How many of `sales` still have any engine key (confirmed sales have no
/// hold keys, so these are all of them).
async fn retained(conn: &mut MultiplexedConnection, sales: &[String]) -> usize {
    let mut pipe = redis::pipe();
    for sale in sales {
        pipe.cmd("EXISTS").arg(engine::keys::all_but_holds(sale));
    }
    let counts: Vec<u64> = pipe.query_async(conn).await.expect("EXISTS");
    counts.iter().filter(|&&n| n > 0).count()
}

/// The orders in MongoDB, and how long counting them took.
async fn orders_in_mongo(db: &Database) -> (u64, Duration) {
    let started = Instant::now();
    let count = db
        .collection::<Document>("orders")
        .estimated_document_count()
        .await
        .expect("count orders");
    (count, started.elapsed())
}

/// The MongoDB URL with patient timeouts. The local test server runs one
/// command at a time and reads a sale's orders by scanning the collection,
/// which takes seconds at a million orders; a heartbeat queued behind such a
/// read must not time out (10 s by default) and cut the connections.
fn patient(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connectTimeoutMS=900000&serverSelectionTimeoutMS=900000")
}

/// A connection that waits up to a minute for a reply (the redis crate's
/// default is 500 ms; a GRANT of 10,000 can take longer on a busy machine).
async fn patient_redis(url: &str) -> MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to redis")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n_sales: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let n_orders: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let total = (n_sales * n_orders) as u64;
    let skip_retention = std::env::var("SKIP_RETENTION").is_ok_and(|v| v == "1");
    let run_started = Instant::now();

    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let mongo_url = patient(&mongo.url());
    let db = mongodb::Client::with_uri_str(&mongo_url)
        .await
        .expect("MongoDB client")
        .database(&mongo.database_name());
    worker::orders::ensure_indexes(&db).await.expect("indexes");
    let mut conn = patient_redis(&engine.server.url()).await;
    let mut client = EngineClient::connect(conn.clone(), BackendChoice::Module)
        .await
        .expect("engine client");
    let mut readings = vec![measure(&mut conn, "empty (before selling)").await];

    // 1. Sell, no worker running.
    let started = Instant::now();
    let sales: Vec<String> = (0..n_sales).map(sale_id).collect();
    let mut last_end = 0;
    for (i, sale) in sales.iter().enumerate() {
        let users: Vec<String> = (0..n_orders).map(|n| user(i, n, n_orders)).collect();
        last_end = last_end.max(sell(&mut client, &mut conn, &db, sale, &users).await);
    }
    let selling = started.elapsed();
    eprintln!(
        "sold {total} orders in {n_sales} sales in {:.1} s",
        selling.as_secs_f64()
    );
    readings.push(measure(&mut conn, "after selling (no worker)").await);

    // 2. A worker copies every order and trims the outboxes at once.
    let mut config = Config::for_tests(
        engine.server.url(),
        mongo_url.clone(),
        mongo.database_name(),
    );
    config.outbox_keep_s = 0;
    config.sale_retention_s = 86_400;
    let started = Instant::now();
    let running = RunningWorker::start(config.clone()).await;
    wait_until("every outbox copied and trimmed", || {
        let (mut conn, sales) = (conn.clone(), sales.clone());
        async move { untrimmed(&mut conn, &sales).await }
    })
    .await;
    let trimming = started.elapsed();
    running.stop().await;
    let (copied, counting) = orders_in_mongo(&db).await;
    assert_eq!(copied, total, "every order in MongoDB");
    eprintln!(
        "copied and trimmed in {:.1} s; MongoDB has {copied} orders (counted in {:.1} s)",
        trimming.as_secs_f64(),
        counting.as_secs_f64()
    );
    readings.push(measure(&mut conn, "after trimming (outbox_keep_s=0)").await);
    // What the retention check reads from MongoDB for each sale.
    let started = Instant::now();
    let recorded = records::order::buyers_of_sale(&worker::orders::collection(&db), &sales[0])
        .await
        .expect("orders of a sale");
    assert_eq!(recorded.len(), n_orders);
    let one_sale_read = started.elapsed();
    eprintln!(
        "reading one sale's {n_orders} orders from MongoDB: {:.2} s",
        one_sale_read.as_secs_f64()
    );

    // 3. Once every sale has ended, a worker with no retention retires them.
    let retiring = if skip_retention {
        eprintln!("SKIP_RETENTION: not retiring the sales");
        None
    } else {
        let now = server_time_ms(&mut conn).await;
        if now <= last_end {
            let wait = last_end + 100 - now;
            eprintln!("waiting {wait} ms for the last sale to end");
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        config.sale_retention_s = 0;
        let started = Instant::now();
        let running = RunningWorker::start(config).await;
        wait_until("every sale's keys removed", || {
            let (mut conn, sales) = (conn.clone(), sales.clone());
            async move { retained(&mut conn, &sales).await }
        })
        .await;
        let retiring = started.elapsed();
        running.stop().await;
        let (kept, _) = orders_in_mongo(&db).await;
        assert_eq!(kept, total, "MongoDB keeps every order");
        eprintln!("retired in {:.1} s", retiring.as_secs_f64());
        readings.push(measure(&mut conn, "after retention (sale_retention_s=0)").await);
        Some(retiring)
    };

    let (_, left): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(5)
        .query_async(&mut conn)
        .await
        .expect("SCAN");

    let empty = readings[0].used;
    println!(
        "Redis memory: {n_sales} sales × {n_orders} confirmed orders = {total} orders; \
         module engine, no persistence; one in-process worker"
    );
    println!(
        "(bytes/order: used_memory above the empty server's, over all {total} orders; \
         dataset/order: used_memory_dataset over all orders)"
    );
    println!();
    println!("| stage | used_memory | dataset | rss | keys | bytes/order | dataset/order |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &readings {
        println!(
            "| {} | {} ({}) | {} ({}) | {} | {} | {:.1} | {:.1} |",
            r.stage,
            r.used,
            mib(r.used),
            r.dataset,
            mib(r.dataset),
            mib(r.rss),
            r.keys,
            r.used.saturating_sub(empty) as f64 / total as f64,
            r.dataset as f64 / total as f64,
        );
    }
    println!();
    println!(
        "First sale's keys (`MEMORY USAGE … SAMPLES 0`, bytes; – = no key), {n_orders} orders:"
    );
    println!();
    let suffixes: Vec<&str> = readings[0].first_sale.iter().map(|(s, _)| *s).collect();
    println!("| stage | {} |", suffixes.join(" | "));
    println!("|---|{}", "---:|".repeat(suffixes.len()));
    for r in &readings {
        let cells: Vec<String> = r
            .first_sale
            .iter()
            .map(|(_, usage)| usage.map_or("–".into(), |b| b.to_string()))
            .collect();
        println!("| {} | {} |", r.stage, cells.join(" | "));
    }
    println!();
    println!(
        "selling {:.1} s; copy + trim {:.1} s; one sale's orders read from MongoDB (as \
         the retention check does) {:.2} s; retention {}; whole run {:.1} s; \
         keys left at the end: {} (e.g. {left:?})",
        selling.as_secs_f64(),
        trimming.as_secs_f64(),
        one_sale_read.as_secs_f64(),
        retiring.map_or("skipped".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        run_started.elapsed().as_secs_f64(),
        readings.last().map_or(0, |r| r.keys),
    );
}
