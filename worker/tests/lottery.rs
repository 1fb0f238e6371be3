//! Issue 13 item 5: the worker draws a sale's pre-queue lottery at the
//! start — its GRANT is the first command there, so the draw happens
//! within a poll even if nobody buys — and admits in the drawn order.

mod common;

use std::time::Duration;

use common::{Platform, RunningWorker};
use flashsale::{lottery, DrawReply, EnqueueReply, LotteryParams, SetupParams};
use mongodb::bson::{doc, Document};
use tests::{server_time_ms, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_draws_at_the_start_and_admits_in_the_drawn_order() {
    let mut p = Platform::start().await;
    let now = server_time_ms(&mut p.conn).await;
    let starts_at = now + 1500;
    p.db.collection::<Document>("flash_sales")
        .insert_one(doc! { "_id": "draw", "name": "draw", "initialQuantity": 3_i64, "currentQuantity": 3_i64 })
        .await
        .expect("insert sale");
    let seed = "7e".repeat(32);
    let params = SetupParams {
        stock: 3,
        starts_at,
        ends_at: starts_at + 3_600_000,
        hold_ttl_ms: 600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    let lottery_params = LotteryParams {
        prequeue_ms: Some(60_000),
        seed: Some(seed.clone()),
    };
    let mut client = p.client.clone();
    client
        .setup_with_lottery("draw", params, lottery_params)
        .await
        .expect("SETUP");
    let users: Vec<String> = (0..8).map(|i| format!("r{i}@example.com")).collect();
    for user in &users {
        assert!(matches!(
            client.enqueue("draw", user).await.expect("ENQUEUE"),
            EnqueueReply::Registered { .. }
        ));
    }
    let worker = RunningWorker::spawn(p.config()).await;
    // Nobody buys at the start: the worker's GRANT draws and admits.
    let entries = wait_for("the draw", Duration::from_secs(10), || {
        let mut client = client.clone();
        async move {
            match client.draw("draw", 0, 100).await.ok()? {
                DrawReply::Drawn { entries, .. } => Some(entries),
                _ => None,
            }
        }
    })
    .await;
    worker.stop().await;
    let expected = lottery::order_entries(&seed, users.iter().map(|u| lottery::entry(u)));
    assert_eq!(entries, expected);
    // The three units went to the first three drawn, the rest wait in order.
    let holders: Vec<String> = redis::cmd("ZRANGE")
        .arg(flashsale::keys::holds("draw"))
        .arg(0)
        .arg(-1)
        .query_async(&mut p.conn)
        .await
        .expect("ZRANGE holds");
    let mut held: Vec<String> = holders.iter().map(|u| lottery::entry(u)).collect();
    held.sort();
    let mut first: Vec<String> = entries[..3].to_vec();
    first.sort();
    assert_eq!(held, first);
    let queue: Vec<String> = redis::cmd("ZRANGE")
        .arg(flashsale::keys::queue("draw"))
        .arg(0)
        .arg(-1)
        .query_async(&mut p.conn)
        .await
        .expect("ZRANGE queue");
    let queued: Vec<String> = queue.iter().map(|u| lottery::entry(u)).collect();
    assert_eq!(queued, entries[3..].to_vec());
}
