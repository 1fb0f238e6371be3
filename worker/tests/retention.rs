//! Redis does not keep what MongoDB has: trimming survives a worker
//! restart, and removing a big ended sale's keys works whatever its size.

mod common;

use std::time::{Duration, Instant};

use common::{Platform, RunningWorker};
use flashsale::{keys, GrantReply};

async fn outbox_len(p: &mut Platform, sale: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(keys::outbox(sale))
        .query_async(&mut p.conn)
        .await
        .expect("XLEN")
}

/// A worker learns which outboxes to trim from the entries it copies; one
/// started after another copied everything must still trim them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_worker_trims_what_an_earlier_one_copied() {
    let mut p = Platform::start().await;
    p.sale("restart", 50, 3_600_000, 0).await;
    p.confirmed_orders("restart", 0, 20).await;

    // The first worker keeps copied entries for an hour.
    let mut keeping = p.config();
    keeping.outbox_keep_s = 3600;
    let first = RunningWorker::spawn(keeping).await;
    p.wait_for_orders("restart", 20, Duration::from_secs(20))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.outbox_backlog("restart").await != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "the orders were not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.stop().await;
    assert_eq!(outbox_len(&mut p, "restart").await, 20, "kept for an hour");

    // The next one keeps nothing, and has no new order to copy.
    let mut trimming = p.config();
    trimming.outbox_keep_s = 0;
    let second = RunningWorker::spawn(trimming).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while outbox_len(&mut p, "restart").await > 1 {
        assert!(
            Instant::now() < deadline,
            "the restarted worker never trimmed the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.stop().await;
    assert_eq!(outbox_len(&mut p, "restart").await, 1);
    assert_eq!(p.orders_in_mongo("restart").await.len(), 20);
}

/// The removal is one script over every key of the sale; Lua's `unpack`
/// cannot take more than ~8,000 values at once, and a sale can have more
/// live holds than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_with_ten_thousand_holds_is_removed_whole() {
    const HOLDERS: usize = 10_000;
    let mut p = Platform::start().await;
    p.sale("wide", HOLDERS as u64, 3_600_000, 0).await;
    let users: Vec<String> = (0..HOLDERS).map(|i| format!("h{i}@example.com")).collect();
    p.queue("wide", &users).await;
    // GRANT may admit fewer per call than asked: until everyone holds.
    let mut holding = 0;
    while holding < HOLDERS {
        match p.client.grant("wide", HOLDERS as u64).await.expect("GRANT") {
            GrantReply::Granted { users, .. } if !users.is_empty() => holding += users.len(),
            other => panic!("after {holding} holds: {other:?}"),
        }
    }
    let keys_before: u64 = redis::cmd("DBSIZE")
        .query_async(&mut p.conn)
        .await
        .expect("DBSIZE");
    assert!(keys_before > HOLDERS as u64, "{keys_before} keys");

    let record = p
        .client
        .raw_record("wide")
        .await
        .expect("GET record")
        .expect("the sale exists");
    // A record that changed since it was read keeps everything.
    assert!(!p
        .client
        .purge_if_unchanged("wide", "stale record")
        .await
        .expect("purge script"));
    assert_eq!(
        redis::cmd("DBSIZE")
            .query_async::<u64>(&mut p.conn)
            .await
            .expect("DBSIZE"),
        keys_before
    );

    assert!(p
        .client
        .purge_if_unchanged("wide", &record)
        .await
        .expect("purge script"));
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut p.conn)
        .await
        .expect("KEYS");
    assert!(
        left.is_empty(),
        "left behind: {:?}",
        &left[..left.len().min(5)]
    );
}
