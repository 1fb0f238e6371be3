//! Admission by several workers at once: FIFO, never beyond stock, RATE kept.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Platform, RunningWorker};
use flashsale::keys;
use tests::wait_for;

async fn holds(p: &mut Platform, sale: &str) -> BTreeMap<String, u64> {
    let pairs: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(keys::holds(sale))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut p.conn)
        .await
        .expect("ZRANGE holds");
    pairs.into_iter().map(|(u, s)| (u, s as u64)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_admit_the_head_of_the_queue_and_never_beyond_stock() {
    let mut p = Platform::start().await;
    p.sale("launch", 100, 600_000, 0).await;
    let users: Vec<String> = (0..1000)
        .map(|i| format!("fan{i:04}@example.com"))
        .collect();
    p.queue("launch", &users).await;
    let workers = [
        RunningWorker::spawn(p.config()).await,
        RunningWorker::spawn(p.config()).await,
        RunningWorker::spawn(p.config()).await,
    ];
    let mut client = p.client.clone();
    wait_for("100 holds", Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let status = client.status("launch", None).await.ok()?;
            assert!(
                status.sale.held + status.sale.sold <= status.sale.stock,
                "oversold: {status:?}"
            );
            (status.sale.held == 100).then_some(())
        }
    })
    .await;
    // Give the workers more rounds: nothing more may be admitted.
    for _ in 0..20 {
        let status = client.status("launch", None).await.expect("status");
        assert_eq!((status.sale.held, status.sale.queued), (100, 900));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held: Vec<String> = holds(&mut p, "launch").await.into_keys().collect();
    let mut first: Vec<String> = users[..100].to_vec();
    first.sort();
    assert_eq!(held, first, "exactly the first 100 in the queue hold");
    for worker in workers {
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_together_keep_the_rate() {
    const RATE: u64 = 100;
    const TTL: u64 = 600_000;
    let mut p = Platform::start().await;
    p.sale("paced", 10_000, TTL, RATE).await;
    let users: Vec<String> = (0..400).map(|i| format!("p{i}@example.com")).collect();
    p.queue("paced", &users).await;
    let workers = [
        RunningWorker::spawn(p.config()).await,
        RunningWorker::spawn(p.config()).await,
        RunningWorker::spawn(p.config()).await,
    ];
    let client = p.client.clone();
    wait_for("250 admissions", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move { (client.status("paced", None).await.ok()?.sale.held >= 250).then_some(()) }
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }
    // Admission times on the server clock: expiry minus the hold TTL.
    let mut granted_at: Vec<u64> = holds(&mut p, "paced")
        .await
        .into_values()
        .map(|e| e - TTL)
        .collect();
    granted_at.sort();
    // A token bucket of one second: in any second at most RATE, plus the
    // one-second burst it may have banked before.
    for (i, start) in granted_at.iter().enumerate() {
        let in_window = granted_at[i..]
            .iter()
            .take_while(|t| **t < start + 1000)
            .count() as u64;
        assert!(
            in_window <= 2 * RATE,
            "{in_window} admissions within 1 s of {start}"
        );
    }
    let span_ms = granted_at.last().unwrap_or(&0) - granted_at.first().unwrap_or(&0);
    let admitted = granted_at.len() as u64;
    assert!(
        admitted <= RATE * span_ms / 1000 + RATE + 1,
        "{admitted} admissions in {span_ms} ms at {RATE}/s"
    );
    // And in queue order: holds were given to the first users.
    let held: std::collections::BTreeSet<String> =
        holds(&mut p, "paced").await.into_keys().collect();
    let expected: std::collections::BTreeSet<String> =
        users[..held.len()].iter().cloned().collect();
    assert_eq!(held, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lapsed_holds_free_their_units_for_the_next_users() {
    let mut p = Platform::start().await;
    p.sale("brief", 5, 300, 0).await;
    let users: Vec<String> = (0..10).map(|i| format!("u{i}@example.com")).collect();
    p.queue("brief", &users).await;
    let worker = RunningWorker::spawn(p.config()).await;
    let client = p.client.clone();
    // Nobody confirms: after 300 ms the first five lapse and the next five
    // are admitted, by the worker alone.
    let later = users[5..].to_vec();
    wait_for("the next five to hold", Duration::from_secs(20), || {
        let (mut client, later) = (client.clone(), later.clone());
        async move {
            for user in &later {
                match client.status("brief", Some(user)).await.ok()?.user? {
                    flashsale::UserStatus::Holding { .. } => {}
                    _ => return None,
                }
            }
            Some(())
        }
    })
    .await;
    let mut client = p.client.clone();
    for user in &users[..5] {
        let status = client.status("brief", Some(user)).await.expect("status");
        assert_eq!(status.user, Some(flashsale::UserStatus::Expired), "{user}");
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_health_are_served() {
    let mut p = Platform::start().await;
    p.sale("observed", 10, 600_000, 0).await;
    p.confirmed_orders("observed", 0, 3).await;
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("observed", 3, Duration::from_secs(20))
        .await;
    let base = format!("http://{}", worker.metrics_addr);
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("GET /healthz");
    assert!(health.status().is_success());
    let body = wait_for(
        "metrics with the copied orders",
        Duration::from_secs(10),
        || {
            let base = base.clone();
            async move {
                let text = reqwest::get(format!("{base}/metrics"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.contains("flashsale_worker_orders_copied_total")
                    .then_some(text)
            }
        },
    )
    .await;
    assert!(
        body.contains("flashsale_worker_copy_latency_seconds"),
        "{body}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_sale_ends_the_queue_is_cleared_and_waiting_users_are_told() {
    let mut p = Platform::start().await;
    let now = tests::server_time_ms(&mut p.conn).await;
    p.sale("closing", 1, 600_000, 0).await;
    let params = flashsale::SetupParams {
        stock: 1,
        starts_at: now - 1000,
        ends_at: now + 400,
        hold_ttl_ms: 600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    p.client
        .setup("closing", params)
        .await
        .expect("shorten the sale");
    let users: Vec<String> = (0..5).map(|i| format!("late{i}@example.com")).collect();
    p.queue("closing", &users).await;
    let worker = RunningWorker::spawn(p.config()).await;
    let client = p.client.clone();
    wait_for(
        "the queue to be cleared after the end",
        Duration::from_secs(20),
        || {
            let mut client = client.clone();
            async move {
                let status = client.status("closing", None).await.ok()?;
                (status.sale.state == flashsale::SaleState::Ended && status.sale.queued == 0)
                    .then_some(())
            }
        },
    )
    .await;
    let mut client = p.client.clone();
    assert_eq!(
        client.enqueue("closing", &users[4]).await.expect("enqueue"),
        flashsale::EnqueueReply::Ended
    );
    assert_eq!(
        client
            .status("closing", Some(&users[4]))
            .await
            .expect("status")
            .user,
        Some(flashsale::UserStatus::None)
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_extended_after_its_end_is_admitted_again() {
    let mut p = Platform::start().await;
    let now = tests::server_time_ms(&mut p.conn).await;
    p.sale("encore", 5, 600_000, 0).await;
    let ended = flashsale::SetupParams {
        stock: 5,
        starts_at: now - 2000,
        ends_at: now - 1000,
        hold_ttl_ms: 600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    p.client
        .setup("encore", ended.clone())
        .await
        .expect("end the sale");
    let worker = RunningWorker::spawn(p.config()).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the worker sees it ended
    let extended = flashsale::SetupParams {
        ends_at: now + 3_600_000,
        ..ended
    };
    p.client
        .setup("encore", extended)
        .await
        .expect("extend the sale");
    let users: Vec<String> = (0..3).map(|i| format!("encore{i}@example.com")).collect();
    p.queue("encore", &users).await;
    let client = p.client.clone();
    wait_for(
        "admission after the extension",
        Duration::from_secs(20),
        || {
            let mut client = client.clone();
            async move { (client.status("encore", None).await.ok()?.sale.held == 3).then_some(()) }
        },
    )
    .await;
    worker.stop().await;
}

/// A worker on the Functions library whose Redis lost the library (a
/// restart without data, a primary that joined the cluster since) loads it
/// again and goes on admitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_loads_the_library_again_when_redis_lost_it() {
    let mut p = Platform::start().await;
    p.sale("relib", 100, 600_000, 0).await;
    let users: Vec<String> = (0..10).map(|i| format!("r{i}@example.com")).collect();
    let mut config = p.config();
    config.engine = flashsale::BackendChoice::Lua;
    let worker = RunningWorker::spawn(config).await;
    let client = p.client.clone();
    let held = move |want: u64| {
        let client = client.clone();
        async move {
            wait_for(&format!("{want} holds"), Duration::from_secs(15), || {
                let mut client = client.clone();
                async move {
                    let status = client.status("relib", None).await.ok()?;
                    (status.sale.held == want).then_some(())
                }
            })
            .await;
        }
    };
    p.queue("relib", &users[..5]).await;
    held(5).await;

    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut p.conn)
        .await
        .expect("FUNCTION FLUSH");
    p.queue("relib", &users[5..]).await;
    held(10).await;
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("flashsale")
        .query_async(&mut p.conn)
        .await
        .expect("FUNCTION LIST");
    assert_eq!(libraries.len(), 1, "the library is back");
    worker.stop().await;
}
