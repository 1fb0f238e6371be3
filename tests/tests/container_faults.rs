//! Faults only containers make natural, on the container backend:
//!
//! - `docker kill` (SIGKILL) of the Redis container (module image, AOF with
//!   `appendfsync always`, data on a bind-mounted volume) in the middle of a
//!   burst of concurrent CONFIRMs, then `docker start` of the same container
//!   on the same volume: every acknowledged confirm is still an order with
//!   the id it was given, nothing is sold twice, sold == orders == outbox.
//! - `docker network disconnect` of the MongoDB-compatible container while
//!   orders keep arriving and an in-process worker copies them, then
//!   `docker network connect`: the backlog drains and every order is in
//!   MongoDB exactly once.
//!
//! With the process backend these tests print why and skip, unless
//! `FLASHSALE_TEST_BACKEND=containers` (then they run, and fail when Docker
//! does not work). `FLASHSALE_FAULT_CONFIRMS` sizes the burst (default
//! 2000 holders, SIGKILL after a fifth of them were acknowledged);
//! `FLASHSALE_FAULT_ORDERS` the orders of the partition test (default 600).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashsale::{keys, ConfirmReply, GrantReply, SetupParams};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use redis::aio::MultiplexedConnection;
use tests::backend::containers_or_skip;
use tests::{server_time_ms, wait_for_every, Backend, EngineServer, MongoServer, ServerOptions};

const AMOUNT: u64 = 1999;

fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn setup_sale(
    conn: &mut MultiplexedConnection,
    engine: &EngineServer,
    sale: &str,
    stock: u64,
) {
    let now = server_time_ms(conn).await;
    let params = SetupParams {
        stock,
        starts_at: now,
        ends_at: now + 3_600_000,
        hold_ttl_ms: 3_600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    engine
        .client()
        .await
        .setup(sale, params)
        .await
        .expect("SETUP");
}

/// user → order id, as the engine recorded them.
async fn orders_in_redis(conn: &mut MultiplexedConnection, sale: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(keys::orders(sale))
        .query_async(conn)
        .await
        .expect("HGETALL orders")
}

/// The order ids in the sale's outbox stream, in order.
async fn outbox_order_ids(conn: &mut MultiplexedConnection, sale: &str) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys::outbox(sale))
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE outbox");
    reply
        .ids
        .iter()
        .map(|entry| {
            let id: Option<String> = entry.get("order_id");
            id.unwrap_or_else(|| panic!("outbox entry {} without order_id: {entry:?}", entry.id))
        })
        .collect()
}

/// What one CONFIRM came to, from the buyer's side.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged: the buyer was told this order id.
    Acked(String),
    /// No answer (the server died under it): bought or not, unknown.
    Unknown(String),
    /// Answered with something else (a bug here).
    Other(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_confirms_survive_a_sigkilled_redis_container() {
    if !containers_or_skip("acknowledged_confirms_survive_a_sigkilled_redis_container") {
        return;
    }
    const SALE: &str = "kill9";
    const BUYERS: usize = 16;
    let n = env_count("FLASHSALE_FAULT_CONFIRMS", 2000);
    let aof = ServerOptions {
        config: vec![
            ("appendonly".into(), "yes".into()),
            ("appendfsync".into(), "always".into()),
        ],
        ..ServerOptions::default()
    };
    let mut engine = EngineServer::start_with(Backend::Module, false, aof).await;
    let container = engine.server.container().expect("a container");
    println!(
        "redis container {} ({}), data {} on /data",
        container.name(),
        container.image(),
        engine.server.dir.display()
    );
    let mut conn = engine.server.connection().await;
    setup_sale(&mut conn, &engine, SALE, n as u64).await;
    let users: Vec<String> = (0..n).map(|i| format!("buyer{i}@example.com")).collect();
    tests::fixtures::queue_users(&mut conn, SALE, &users).await;
    let mut client = engine.client().await;
    let holders = match client.grant(SALE, n as u64).await.expect("GRANT") {
        GrantReply::Granted { users, .. } => users,
        other => panic!("GRANT answered {other:?}"),
    };
    assert_eq!(holders.len(), n, "every buyer holds a unit");

    // The burst: BUYERS connections confirm the holders as fast as they can.
    let todo = Arc::new(Mutex::new(holders.iter().cloned().collect::<VecDeque<_>>()));
    let outcomes = Arc::new(Mutex::new(Vec::<(String, Outcome)>::new()));
    let mut tasks = Vec::new();
    for _ in 0..BUYERS {
        let mut client = engine.client().await;
        let (todo, outcomes) = (todo.clone(), outcomes.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(user) = todo.lock().expect("todo").pop_front() else {
                    return;
                };
                let reply = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.confirm(SALE, &user, AMOUNT),
                )
                .await;
                let outcome = match reply {
                    Ok(Ok(ConfirmReply::Confirmed { order_id, .. })) => Outcome::Acked(order_id),
                    Ok(Ok(other)) => Outcome::Other(format!("{other:?}")),
                    Ok(Err(e)) => Outcome::Unknown(e.to_string()),
                    Err(_) => Outcome::Unknown("no reply in 5 s".into()),
                };
                outcomes.lock().expect("outcomes").push((user, outcome));
            }
        }));
    }
    // SIGKILL once a fifth of the buyers were acknowledged.
    let acked = || {
        outcomes
            .lock()
            .expect("outcomes")
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked() < n / 5 {
        assert!(Instant::now() < deadline, "the burst did not get going");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let killed_at = acked();
    let kill_started = Instant::now();
    container.kill_async().await;
    let kill_took = kill_started.elapsed();
    for task in tasks {
        task.await.expect("buyer task");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    let acked: BTreeMap<String, String> = outcomes
        .iter()
        .filter_map(|(u, o)| match o {
            Outcome::Acked(id) => Some((u.clone(), id.clone())),
            _ => None,
        })
        .collect();
    let unknown: Vec<&String> = outcomes
        .iter()
        .filter_map(|(u, o)| matches!(o, Outcome::Unknown(_)).then_some(u))
        .collect();
    let other: Vec<String> = outcomes
        .iter()
        .filter_map(|(u, o)| match o {
            Outcome::Other(reply) => Some(format!("{u}: {reply}")),
            _ => None,
        })
        .collect();
    assert!(other.is_empty(), "unexpected replies: {other:?}");
    let first_error = outcomes
        .iter()
        .find_map(|(_, o)| match o {
            Outcome::Unknown(e) => Some(e.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(acked.len() + unknown.len(), n);
    assert!(
        !unknown.is_empty(),
        "the kill landed after the burst ({} acknowledged): it tested nothing",
        acked.len()
    );
    assert!(
        acked.len() >= killed_at,
        "acknowledged before the kill: {killed_at}"
    );

    // docker start: same container, same volume, the AOF replayed.
    let restart_started = Instant::now();
    tokio::task::block_in_place(|| engine.server.restart());
    let restart_took = restart_started.elapsed();
    let mut conn = engine.server.connection().await;
    let mut client = engine.client().await;

    let orders = orders_in_redis(&mut conn, SALE).await;
    for (user, id) in &acked {
        assert_eq!(
            orders.get(user),
            Some(id),
            "{user} was told order {id}: it must survive the SIGKILL"
        );
    }
    let applied_unacked = unknown.iter().filter(|u| orders.contains_key(**u)).count();
    let status = client.status(SALE, None).await.expect("STATUS").sale;
    assert_eq!(status.sold as usize, orders.len(), "sold == orders");
    assert_eq!(
        status.sold + status.held,
        n as u64,
        "no unit lost or made up"
    );
    let outbox = outbox_order_ids(&mut conn, SALE).await;
    assert_eq!(
        outbox.iter().collect::<BTreeSet<_>>(),
        orders.values().collect::<BTreeSet<_>>(),
        "every order in the outbox"
    );
    assert_eq!(outbox.len(), orders.len(), "each order once in the outbox");

    // The buyers who heard nothing try again: each gets exactly one order.
    for user in &unknown {
        match client
            .confirm(SALE, user, AMOUNT)
            .await
            .expect("CONFIRM again")
        {
            ConfirmReply::Confirmed { order_id, .. } => {
                assert!(!orders.contains_key(*user), "{user} sold twice: {order_id}");
            }
            ConfirmReply::Purchased { order_id } => {
                assert_eq!(orders.get(*user), Some(&order_id), "{user}: the same order");
            }
            other => panic!("{user}: CONFIRM after the restart answered {other:?}"),
        }
    }
    for (user, id) in acked.iter().take(20) {
        assert_eq!(
            client.confirm(SALE, user, AMOUNT).await.expect("CONFIRM"),
            ConfirmReply::Purchased {
                order_id: id.clone()
            },
            "an acknowledged buyer asking again"
        );
    }
    let orders = orders_in_redis(&mut conn, SALE).await;
    let status = client.status(SALE, None).await.expect("STATUS").sale;
    assert_eq!(orders.len(), n, "every holder bought once");
    assert_eq!(status.sold as usize, n);
    assert_eq!(status.held, 0);
    let ids: BTreeSet<&String> = orders.values().collect();
    assert_eq!(ids.len(), n, "no order id given twice");
    assert!(ids.iter().all(|id| keys::order_number(SALE, id).is_some()));
    let outbox = outbox_order_ids(&mut conn, SALE).await;
    assert_eq!(outbox.len(), n, "one outbox entry per order");
    assert_eq!(outbox.iter().collect::<BTreeSet<_>>(), ids);
    println!(
        "{n} holders, {BUYERS} connections; SIGKILL (docker kill, {kill_took:.0?}) after \
         {killed_at} acknowledged confirms; {} acknowledged in all, {} unanswered ({} of them \
         applied before the kill; first error: {first_error}); restart from the volume {restart_took:.1?}; every \
         acknowledged order kept, sold == orders == outbox == {n}",
        acked.len(),
        unknown.len(),
        applied_unacked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnected_mongodb_container_gets_every_order_once() {
    if !containers_or_skip("a_disconnected_mongodb_container_gets_every_order_once") {
        return;
    }
    const SALE: &str = "netsplit";
    let n = env_count("FLASHSALE_FAULT_ORDERS", 600);
    let (first, during) = (n / 3, n - n / 3);
    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let container = mongo.container().expect("a MongoDB container");
    println!(
        "mongo container {} ({}) on network {}",
        container.name(),
        container.image(),
        container.network()
    );
    let db = mongo.database().await;
    let mut conn = engine.server.connection().await;
    db.collection::<Document>("flash_sales")
        .insert_one(doc! {
            "_id": SALE, "name": SALE,
            "initialQuantity": n as i64, "currentQuantity": n as i64,
        })
        .await
        .expect("insert sale");
    setup_sale(&mut conn, &engine, SALE, n as u64).await;

    let config =
        worker::config::Config::for_tests(engine.server.url(), mongo.url(), mongo.database_name());
    let worker = worker::Worker::build(config).await.expect("worker builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));

    let mut client = engine.client().await;
    let users: Vec<String> = (0..n).map(|i| format!("buyer{i}@example.com")).collect();
    tests::fixtures::confirm_orders(&mut client, &mut conn, SALE, &users[..first]).await;
    wait_for_orders(&db, first, Duration::from_secs(60)).await;

    // The partition: MongoDB's container leaves its network.
    container.disconnect().await;
    let cut_at = Instant::now();
    // Orders keep arriving, in waves, while MongoDB cannot be reached.
    for wave in users[first..].chunks(during.div_ceil(4)) {
        tests::fixtures::confirm_orders(&mut client, &mut conn, SALE, wave).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unreachable = impatient_count(&mongo).await;
    assert!(
        unreachable.is_err(),
        "MongoDB still answers while disconnected: {unreachable:?}"
    );
    let (lag, pending) = worker::outbox::backlog(&mut conn, SALE)
        .await
        .expect("XINFO GROUPS")
        .unwrap_or((0, 0));
    assert_eq!(
        lag + pending,
        during as u64,
        "every order made during the partition waits in the outbox"
    );
    let partition = cut_at.elapsed();

    container.connect().await;
    let healed = Instant::now();
    wait_for_orders(&db, n, Duration::from_secs(120)).await;
    let drained_in = healed.elapsed();
    wait_for_every(
        "the outbox to drain",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let mut conn = conn.clone();
            async move {
                let backlog = worker::outbox::backlog(&mut conn, SALE).await.ok()??;
                (backlog == (0, 0)).then_some(())
            }
        },
    )
    .await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;

    // Exactly once: one document per order id, the id the engine gave.
    let docs: Vec<Document> = db
        .collection::<Document>("orders")
        .find(doc! { "flashSaleId": SALE })
        .await
        .expect("find orders")
        .try_collect()
        .await
        .expect("read orders");
    let in_mongo: BTreeMap<String, String> = docs
        .iter()
        .map(|d| {
            (
                d.get_str("_id").expect("_id").to_string(),
                d.get_str("userEmail").expect("userEmail").to_string(),
            )
        })
        .collect();
    assert_eq!(docs.len(), n, "one document per order");
    let issued = orders_in_redis(&mut conn, SALE).await;
    assert_eq!(issued.len(), n);
    assert_eq!(
        in_mongo,
        issued
            .iter()
            .map(|(user, id)| (id.clone(), user.clone()))
            .collect::<BTreeMap<_, _>>(),
        "every order id once, with its buyer"
    );
    println!(
        "{n} orders: {first} copied before the partition, {during} made during it \
         ({partition:.1?} disconnected); after `docker network connect` the backlog \
         drained in {drained_in:.1?}; every order in MongoDB exactly once"
    );
}

async fn wait_for_orders(db: &mongodb::Database, n: usize, timeout: Duration) {
    let db = db.clone();
    wait_for_every(
        &format!("{n} orders in MongoDB"),
        timeout,
        Duration::from_millis(100),
        || {
            let db = db.clone();
            async move {
                let count = db
                    .collection::<Document>("orders")
                    .count_documents(doc! {})
                    .await
                    .ok()?;
                (count as usize >= n).then_some(())
            }
        },
    )
    .await;
}

/// A count with a client that gives up after a second.
async fn impatient_count(mongo: &MongoServer) -> Result<u64, String> {
    let mut options = mongodb::options::ClientOptions::parse(mongo.url())
        .await
        .map_err(|e| e.to_string())?;
    options.server_selection_timeout = Some(Duration::from_secs(1));
    options.connect_timeout = Some(Duration::from_secs(1));
    let client = mongodb::Client::with_options(options).map_err(|e| e.to_string())?;
    let count = client
        .database(&mongo.database_name())
        .collection::<Document>("orders")
        .count_documents(doc! {})
        .await
        .map_err(|e| e.to_string());
    client.shutdown().await;
    count
}
