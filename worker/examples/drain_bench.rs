//! Outbox drain benchmark: how fast one worker copies confirmed orders from
//! Redis into MongoDB, against a baseline measured in the same run — the same
//! documents inserted straight into MongoDB with the same batch size and
//! write concern, with no Redis and no worker in between.
//!
//! `cargo run --release -p worker --example drain_bench -- [orders] [rounds]`

use std::time::{Duration, Instant};

use flashsale::OutboxEntry;
use flashsale::SetupParams;
use mongodb::bson::{doc, Document};
use tests::mongo_server::MongoServer;
use tests::{server_time_ms, wait_for, Backend, EngineServer};
use worker::config::Config;
use worker::orders;
use worker::Worker;

async fn baseline(db: &mongodb::Database, n: usize, batch: usize, round: usize) -> Duration {
    let orders: Vec<OutboxEntry> = (1..=n)
        .map(|i| OutboxEntry {
            order_id: format!("baseline{round}-{i}"),
            sale_id: format!("baseline{round}"),
            user_id: format!("buyer{i}@example.com"),
            amount: 1999,
            confirmed_at: 0,
            contact: None,
        })
        .collect();
    let started = Instant::now();
    for chunk in orders.chunks(batch) {
        let conflicts = orders::write(db, chunk).await.expect("baseline insert");
        assert!(conflicts.is_empty());
    }
    started.elapsed()
}

async fn drain(
    engine: &EngineServer,
    mongo: &MongoServer,
    n: usize,
    batch: usize,
    round: usize,
) -> Duration {
    let mut client = engine.client().await;
    let mut conn = engine.server.connection().await;
    let db = mongo.database().await;
    let sale = format!("drain{round}");
    let now = server_time_ms(&mut conn).await;
    db.collection::<Document>("flash_sales")
        .insert_one(doc! { "_id": &sale })
        .await
        .expect("sale doc");
    let params = SetupParams {
        stock: n as u64,
        starts_at: now,
        ends_at: now + 3_600_000,
        hold_ttl_ms: 3_600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client.setup(&sale, params).await.expect("setup");
    let users: Vec<String> = (0..n).map(|i| format!("buyer{i}@example.com")).collect();
    tests::fixtures::confirm_orders(&mut client, &mut conn, &sale, &users).await;

    let mut config = Config::for_tests(engine.server.url(), mongo.url(), mongo.database_name());
    config.outbox_batch = batch;
    let worker = Worker::build(config).await.expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    // Every entry acknowledged = every order acknowledged by MongoDB. Asked
    // of Redis, so the polling costs MongoDB nothing.
    wait_for("the backlog to drain", Duration::from_secs(600), || {
        let (mut conn, sale) = (conn.clone(), sale.clone());
        async move {
            let backlog = worker::outbox::backlog(&mut conn, &sale).await.ok()?;
            (backlog == Some((0, 0))).then_some(())
        }
    })
    .await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = task.await;
    let copied = db
        .collection::<Document>("orders")
        .count_documents(doc! { "flashSaleId": &sale })
        .await
        .expect("count");
    assert_eq!(copied as usize, n, "every order copied");
    elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let batch = 200;
    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let db = mongo.database().await;
    orders::ensure_indexes(&db).await.expect("indexes");
    let (mut base, mut worker) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let b = baseline(&db, n, batch, round).await;
        let w = drain(&engine, &mongo, n, batch, round).await;
        eprintln!(
            "round {round}: baseline {:.2} s, worker drain {:.2} s",
            b.as_secs_f64(),
            w.as_secs_f64()
        );
        base.push(n as f64 / b.as_secs_f64());
        worker.push(n as f64 / w.as_secs_f64());
    }
    let ratios: Vec<f64> = worker.iter().zip(&base).map(|(w, b)| w / b).collect();
    let (b, w) = (median(base), median(worker));
    println!("Outbox drain: {n} confirmed orders, {batch} per batch, majority+journaled writes, median of {rounds} interleaved rounds");
    println!();
    println!("| path | orders/s | drain time for {n} | vs direct insert |");
    println!("|---|---:|---:|---:|");
    println!(
        "| direct insert_many into MongoDB (baseline) | {b:.0} | {:.2} s | 1.00x |",
        n as f64 / b
    );
    println!(
        "| one worker: outbox → MongoDB → XACK | {w:.0} | {:.2} s | {:.2}x |",
        n as f64 / w,
        median(ratios)
    );
}
