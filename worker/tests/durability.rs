//! Durable orders: every confirmed order reaches MongoDB exactly once,
//! whatever happens to the worker or to MongoDB.
//!
//! `FLASHSALE_DURABILITY_ORDERS` sets the number of orders (default 5000).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{spawn_worker_process, Platform, RunningWorker};
use flashsale::keys;
use mongodb::bson::doc;
use rand::Rng;

fn order_count() -> usize {
    std::env::var("FLASHSALE_DURABILITY_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

/// Every buyer's order id as the engine gave it: user → order id.
async fn orders_in_redis(p: &mut Platform, sale: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(keys::orders(sale))
        .query_async(&mut p.conn)
        .await
        .expect("HGETALL orders")
}

async fn assert_exactly_once(p: &mut Platform, sale: &str, users: &[String]) {
    let docs = p.orders_in_mongo(sale).await;
    let ids: BTreeMap<String, String> = docs
        .iter()
        .filter_map(|d| {
            Some((
                d.get_str("_id").ok()?.to_string(),
                d.get_str("userEmail").ok()?.to_string(),
            ))
        })
        .collect();
    let emails: BTreeSet<String> = docs
        .iter()
        .filter_map(|d| d.get_str("userEmail").ok().map(str::to_string))
        .collect();
    assert_eq!(docs.len(), users.len(), "one document per confirmed order");
    let issued = orders_in_redis(p, sale).await;
    assert_eq!(
        issued.len(),
        users.len(),
        "the engine sold one unit per buyer"
    );
    assert!(issued
        .values()
        .all(|id| keys::order_number(sale, id).is_some()));
    assert_eq!(
        ids,
        issued
            .iter()
            .map(|(user, id)| (id.clone(), user.clone()))
            .collect::<BTreeMap<_, _>>(),
        "every order id once, with the buyer the engine gave it to"
    );
    assert_eq!(
        emails,
        users.iter().cloned().collect::<BTreeSet<_>>(),
        "every buyer once"
    );
    for d in &docs {
        assert_eq!(d.get_str("paymentStatus"), Ok("paid"));
        assert_eq!(d.get_i64("totalAmount"), Ok(1999));
    }
    assert_eq!(
        p.outbox_backlog(sale).await,
        (0, 0),
        "nothing undelivered, nothing pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_a_worker_killed_again_and_again() {
    const KILLS: usize = 12;
    let n = order_count();
    let mut p = Platform::start().await;
    p.sale("crash", n as u64, 3_600_000, 0).await;
    let config = p.config();
    // Small batches and a short claim time, so kills land between a write
    // and its XACK and the next worker must claim what the dead one left.
    let env = [
        ("WORKER_OUTBOX_BATCH", "25"),
        ("WORKER_CLAIM_IDLE_MS", "300"),
    ];
    let mut rng = rand::thread_rng();
    let mut users = Vec::new();
    let mut kills_with_pending = 0;
    let mut worker = spawn_worker_process(&config, &env);
    // Orders keep arriving in waves while the worker is killed.
    for kill in 0..KILLS {
        let wave = n / KILLS + usize::from(kill < n % KILLS);
        users.extend(p.confirmed_orders("crash", users.len(), wave).await);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..200))).await;
        worker.kill();
        if p.outbox_backlog("crash").await.1 > 0 {
            kills_with_pending += 1;
        }
        worker = spawn_worker_process(&config, &env);
    }
    assert_eq!(users.len(), n);
    eprintln!("kills that left entries pending: {kills_with_pending} of {KILLS}");
    assert!(
        kills_with_pending > 0,
        "no kill left an entry pending: the test did not test claiming"
    );
    p.wait_for_orders("crash", n, Duration::from_secs(120))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.outbox_backlog("crash").await != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A graceful stop (SIGTERM) exits cleanly.
    let pid = worker.0.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = worker.0.wait().expect("worker exits");
    assert!(status.success(), "graceful shutdown exit status {status:?}");
    assert_exactly_once(&mut p, "crash", &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mongodb_outage_is_waited_out_and_the_backlog_drained() {
    let mut p = Platform::start().await;
    p.sale("outage", 600, 3_600_000, 0).await;
    let mut users = p.confirmed_orders("outage", 0, 200).await;
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("outage", 200, Duration::from_secs(30))
        .await;

    p.mongo.stop();
    users.extend(p.confirmed_orders("outage", 200, 300).await);
    // While MongoDB is away the orders wait in Redis, delivered but never
    // acknowledged, or not delivered yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (lag, pending) = p.outbox_backlog("outage").await;
    assert_eq!(lag + pending, 300, "every new order still in the outbox");

    p.mongo.restart().await;
    p.wait_for_orders("outage", 500, Duration::from_secs(60))
        .await;
    worker.stop().await;
    assert_exactly_once(&mut p, "outage", &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_restores_an_order_deleted_by_hand() {
    let mut p = Platform::start().await;
    p.sale("audit", 10, 3_600_000, 0).await;
    let users = p.confirmed_orders("audit", 0, 10).await;
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("audit", 10, Duration::from_secs(30))
        .await;
    worker.stop().await;

    // The orders of the fourth and the seventh buyer go missing.
    let issued = orders_in_redis(&mut p, "audit").await;
    let (fourth, seventh) = (&issued[&users[3]], &issued[&users[6]]);
    let orders = p.db.collection::<mongodb::bson::Document>("orders");
    orders
        .delete_one(doc! { "_id": fourth })
        .await
        .expect("delete by hand");
    assert_eq!(p.orders_in_mongo("audit").await.len(), 9);

    // The CLI subcommand finds it and copies it again.
    let config = p.config();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashsale-worker"))
        .arg("reconcile")
        .env("REDIS_URL", &config.redis_url)
        .env("MONGO_URL", &config.mongo_url)
        .env("MONGO_DB", &config.mongo_db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run flashsale-worker reconcile");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains(&format!("repaired [{fourth:?}]")),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(fourth.as_str()),
        "the missing order is logged by id"
    );
    assert_exactly_once(&mut p, "audit", &users).await;

    // The periodic job does the same on its own; it never deletes: an order
    // only MongoDB has stays.
    orders
        .delete_one(doc! { "_id": seventh })
        .await
        .expect("delete by hand");
    orders
        .insert_one(
            doc! { "_id": "audit-legacy", "flashSaleId": "audit", "userEmail": "old@example.com" },
        )
        .await
        .expect("insert by hand");
    let mut config = p.config();
    config.reconcile_interval_s = 1;
    let worker = RunningWorker::spawn(config).await;
    p.wait_for_orders("audit", 11, Duration::from_secs(20))
        .await;
    worker.stop().await;
    let ids: BTreeSet<String> = p
        .orders_in_mongo("audit")
        .await
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
        .collect();
    assert!(ids.contains(seventh) && ids.contains("audit-legacy"));
}

/// Redis lost a write the worker had already copied (a failover to a
/// replica that missed it, a restore from an old snapshot): reconciliation
/// gives the order back to the engine, so its buyer counts as purchased and
/// the unit is not sold again. One the engine cannot take (its buyer holds
/// another order there) changes nothing and is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_gives_the_engine_back_an_order_only_mongodb_has() {
    let mut p = Platform::start().await;
    p.sale("lost", 5, 3_600_000, 0).await;
    let users = p.confirmed_orders("lost", 0, 3).await;
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("lost", 3, Duration::from_secs(30)).await;
    worker.stop().await;

    let now = tests::server_time_ms(&mut p.conn).await;
    let lost_id = keys::order_id("lost", (now + 60_000) * engine::rules::ORDERS_PER_MS);
    let orders = p.db.collection::<mongodb::bson::Document>("orders");
    orders
        .insert_one(doc! { "_id": &lost_id, "flashSaleId": "lost", "userEmail": "dan@example.com" })
        .await
        .expect("insert the copied order");

    let mut config = p.config();
    config.reconcile_interval_s = 1;
    let worker = RunningWorker::spawn(config).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dan = loop {
        let status = p
            .client
            .status("lost", Some("dan@example.com"))
            .await
            .expect("STATUS");
        if status.sale.sold == 4 || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker.stop().await;
    assert_eq!(
        dan.user,
        Some(flashsale::UserStatus::Purchased {
            order_id: lost_id.clone()
        })
    );
    assert_eq!(dan.sale.sold, 4, "the restored order counts as sold");
    assert_eq!(
        orders_in_redis(&mut p, "lost").await.get("dan@example.com"),
        Some(&lost_id)
    );
    // The next order is numbered above the restored one.
    let next = p.confirmed_orders("lost", 3, 1).await;
    let issued = orders_in_redis(&mut p, "lost").await;
    let number = |id: &str| keys::order_number("lost", id).expect("engine id");
    assert!(number(&issued[&next[0]]) > number(&lost_id));

    // An order MongoDB has for a buyer who holds another one in the engine
    // is not restored: the report says so and the engine is unchanged.
    orders
        .delete_one(doc! { "_id": &issued[&users[0]] })
        .await
        .expect("delete");
    let other_id = keys::order_id("lost", (now + 120_000) * engine::rules::ORDERS_PER_MS);
    orders
        .insert_one(doc! { "_id": &other_id, "flashSaleId": "lost", "userEmail": &users[0] })
        .await
        .expect("insert a contradicting order");
    let report = worker::reconcile_once(&p.config())
        .await
        .expect("reconcile");
    let sale = report
        .sales
        .iter()
        .find(|s| s.sale == "lost")
        .expect("sale reported");
    assert_eq!(sale.not_restored, vec![other_id.clone()], "{report}");
    assert!(sale.restored.is_empty(), "{report}");
    let after = p.client.status("lost", None).await.expect("STATUS");
    assert_eq!(after.sale.sold, 5);
    assert_eq!(
        orders_in_redis(&mut p, "lost").await.get(&users[0]),
        Some(&issued[&users[0]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_reconnects_after_redis_restarts() {
    let mut p = Platform::start_persistent().await;
    p.sale("bounce", 100, 3_600_000, 0).await;
    let mut users = p.confirmed_orders("bounce", 0, 20).await;
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("bounce", 20, Duration::from_secs(30))
        .await;
    p.restart_redis().await;
    users.extend(p.confirmed_orders("bounce", 20, 30).await);
    p.wait_for_orders("bounce", 50, Duration::from_secs(30))
        .await;
    worker.stop().await;
    assert_exactly_once(&mut p, "bounce", &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_entry_is_left_pending_without_blocking_the_rest() {
    let mut p = Platform::start().await;
    p.sale("junk", 10, 3_600_000, 0).await;
    p.confirmed_orders("junk", 0, 3).await;
    let outbox = flashsale::keys::outbox("junk");
    // By hand, after the engine's three: one entry no order can be read
    // from, and a valid one behind it.
    let last = orders_in_redis(&mut p, "junk")
        .await
        .values()
        .filter_map(|id| keys::order_number("junk", id))
        .max()
        .expect("three orders");
    let _: String = redis::cmd("XADD")
        .arg(&outbox)
        .arg(keys::outbox_entry_id(last + 1))
        .arg("garbage")
        .arg("1")
        .query_async(&mut p.conn)
        .await
        .expect("XADD junk");
    let fifth = keys::order_id("junk", last + 2);
    let valid = [
        ("order_id", fifth.as_str()),
        ("sale_id", "junk"),
        ("user_id", "hand@example.com"),
        ("amount", "1"),
        ("confirmed_at", "1"),
    ];
    let mut xadd = redis::cmd("XADD");
    xadd.arg(&outbox).arg(keys::outbox_entry_id(last + 2));
    for (k, v) in valid {
        xadd.arg(k).arg(v);
    }
    let _: String = xadd.query_async(&mut p.conn).await.expect("XADD valid");
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("junk", 4, Duration::from_secs(20)).await;
    // The junk entry now comes first among this worker's pending entries;
    // a later entry must still get through.
    let sixth = keys::order_id("junk", last + 3);
    let later = [
        ("order_id", sixth.as_str()),
        ("sale_id", "junk"),
        ("user_id", "late@example.com"),
        ("amount", "1"),
        ("confirmed_at", "1"),
    ];
    let mut xadd = redis::cmd("XADD");
    xadd.arg(&outbox).arg(keys::outbox_entry_id(last + 3));
    for (k, v) in later {
        xadd.arg(k).arg(v);
    }
    let _: String = xadd.query_async(&mut p.conn).await.expect("XADD later");
    p.wait_for_orders("junk", 5, Duration::from_secs(20)).await;
    worker.stop().await;
    assert_eq!(
        p.outbox_backlog("junk").await,
        (0, 1),
        "only the unreadable entry is still pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_that_collides_with_a_different_one_is_not_acknowledged() {
    let mut p = Platform::start().await;
    p.sale("clash", 10, 3_600_000, 0).await;
    let users = p.confirmed_orders("clash", 0, 3).await;
    // MongoDB already holds a different purchase under the id the engine
    // gave the first order (data from before order ids came from the
    // clock: Redis lost data and re-issued the id).
    let first = orders_in_redis(&mut p, "clash").await[&users[0]].clone();
    let orders = p.db.collection::<mongodb::bson::Document>("orders");
    orders
        .insert_one(doc! { "_id": &first, "flashSaleId": "clash", "userEmail": "earlier@example.com", "totalAmount": 5_i64 })
        .await
        .expect("insert the earlier order");
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("clash", 3, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.outbox_backlog("clash").await != (0, 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    assert_eq!(
        p.outbox_backlog("clash").await,
        (0, 1),
        "the colliding order stays pending, the others are acknowledged"
    );
    let earlier = orders
        .find_one(doc! { "_id": &first })
        .await
        .expect("find")
        .expect("still there");
    assert_eq!(
        earlier.get_str("userEmail"),
        Ok("earlier@example.com"),
        "the earlier order is untouched"
    );
}

/// (entries in the outbox now, entries ever added to it).
async fn outbox_sizes(p: &mut Platform, sale: &str) -> (u64, u64) {
    let outbox = keys::outbox(sale);
    let len: u64 = redis::cmd("XLEN")
        .arg(&outbox)
        .query_async(&mut p.conn)
        .await
        .expect("XLEN");
    let info: BTreeMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&outbox)
        .query_async(&mut p.conn)
        .await
        .expect("XINFO STREAM");
    let added = match info.get("entries-added") {
        Some(redis::Value::Int(n)) => *n as u64,
        other => panic!("entries-added: {other:?}"),
    };
    (len, added)
}

/// Redis does not grow with a sale's history: entries MongoDB has leave the
/// outbox (the last one copied stays, to show the newest order), and an
/// entry still pending holds back everything from it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copied_entries_leave_the_outbox_and_a_pending_one_holds_them_back() {
    let mut p = Platform::start().await;
    p.sale("trim", 50, 3_600_000, 0).await;
    p.confirmed_orders("trim", 0, 20).await;
    let mut config = p.config();
    config.outbox_keep_s = 0;
    let worker = RunningWorker::spawn(config).await;
    p.wait_for_orders("trim", 20, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox_sizes(&mut p, "trim").await.0 > 1 {
        assert!(Instant::now() < deadline, "the outbox was not trimmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outbox_sizes(&mut p, "trim").await, (1, 20));

    // An entry no order can be read from stays pending (for an operator):
    // it and everything after it stay in the outbox.
    let last = orders_in_redis(&mut p, "trim")
        .await
        .values()
        .filter_map(|id| keys::order_number("trim", id))
        .max()
        .expect("orders");
    let junk = keys::outbox_entry_id(last + 1);
    let _: String = redis::cmd("XADD")
        .arg(keys::outbox("trim"))
        .arg(&junk)
        .arg("garbage")
        .arg("1")
        .query_async(&mut p.conn)
        .await
        .expect("XADD junk");
    p.confirmed_orders("trim", 20, 5).await;
    p.wait_for_orders("trim", 25, Duration::from_secs(20)).await;
    // Past a few trims.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    worker.stop().await;
    assert_eq!(outbox_sizes(&mut p, "trim").await, (6, 26));
    let first: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(keys::outbox("trim"))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut p.conn)
        .await
        .expect("XRANGE");
    assert_eq!(first[0].0, junk);
    assert_eq!(p.outbox_backlog("trim").await, (0, 1));
}
