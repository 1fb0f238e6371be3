//! The admin order list (`GET /orders/admin/list`) over orders written as
//! the worker writes them, in several sales.

use std::time::Instant;

use engine::OutboxEntry;
use futures::TryStreamExt;
use mongodb::action::Action;
use mongodb::bson::{doc, DateTime as BsonDateTime, Document};
use mongodb::options::Hint;
use mongodb::Collection;

use crate::support::TestApp;

/// `count` orders of `sale` as the worker writes them: in batches that
/// share one `createdAt` (the worker stamps a batch with one `now`), one
/// millisecond apart, starting at `start_ms`.
fn worker_orders(sale: &str, count: usize, batch: usize, start_ms: i64) -> Vec<Document> {
    (0..count)
        .map(|i| {
            let entry = OutboxEntry {
                order_id: format!("{sale}-{}", i + 1),
                sale_id: sale.to_string(),
                user_id: format!("buyer{i}@example.com"),
                amount: 4999,
                confirmed_at: 1_800_000_000_000,
                contact: None,
            };
            let batch_no = i64::try_from(i / batch).unwrap_or(i64::MAX);
            records::order::document(&entry, BsonDateTime::from_millis(start_ms + batch_no))
        })
        .collect()
}

async fn insert_all(orders: &Collection<Document>, docs: Vec<Document>) {
    for chunk in docs.chunks(1000) {
        orders
            .insert_many(chunk.to_vec())
            .await
            .expect("insert orders");
    }
}

/// The API's answer for one sale, every page of `page_size`: the order
/// ids in order, and the totals the pages gave.
async fn listed(
    app: &TestApp,
    token: &str,
    sale: &str,
    page_size: usize,
) -> (Vec<String>, Vec<u64>) {
    let (mut ids, mut totals) = (Vec::new(), Vec::new());
    for page in 1.. {
        let reply = app
            .get_as(
                &format!("/orders/admin/list?flashSaleId={sale}&page={page}&pageSize={page_size}"),
                token,
            )
            .await;
        let body = reply.assert_ok();
        totals.push(body["total"].as_u64().expect("total"));
        let items = body["items"].as_array().expect("items");
        ids.extend(
            items
                .iter()
                .map(|o| o["orderId"].as_str().expect("orderId").to_string()),
        );
        if items.len() < page_size {
            break;
        }
    }
    (ids, totals)
}

/// The list reads through `by_sale_newest_first` (the API creates it) and
/// answers as before: a sale's orders only, newest first with `_id`
/// breaking ties (a worker batch shares one `createdAt`, and "alpha-10"
/// sorts before "alpha-9"), and the total is that sale's count in MongoDB.
#[tokio::test]
async fn a_sales_orders_newest_first_through_its_index() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let orders = app.db.collection::<Document>(records::ORDERS);
    // The API creates the index in the background at startup.
    let mut names = Vec::new();
    for _ in 0..100 {
        names = orders.list_index_names().await.unwrap_or_default();
        if names
            .iter()
            .any(|n| n == records::order::BY_SALE_NEWEST_FIRST)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        names
            .iter()
            .any(|n| n == records::order::BY_SALE_NEWEST_FIRST),
        "the API creates the list's index: {names:?}"
    );

    let start = 1_800_000_000_000;
    let alpha = worker_orders("alpha", 60, 7, start);
    // Another sale's batches interleave in time with alpha's.
    let beta = worker_orders("beta", 25, 4, start + 3);
    insert_all(&orders, alpha.clone()).await;
    insert_all(&orders, beta.clone()).await;
    // An order of an older shape (no buyerId), written at test time.
    app.record_order("alpha-old", "alpha", "old@example.com", 100)
        .await;
    let old = orders
        .find_one(doc! { "_id": "alpha-old" })
        .await
        .expect("find")
        .expect("the order just written");

    for (sale, docs) in [("alpha", [alpha, vec![old]].concat()), ("beta", beta)] {
        let mut expected: Vec<(i64, String)> = docs
            .iter()
            .map(|d| {
                let at = d.get_datetime("createdAt").expect("createdAt");
                let id = d.get_str("_id").expect("_id");
                (at.timestamp_millis(), id.to_string())
            })
            .collect();
        expected.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        // MongoDB's own answer without the index agrees.
        let unhinted: Vec<String> = orders
            .find(doc! { "flashSaleId": sale })
            .sort(doc! { "createdAt": -1, "_id": 1 })
            .await
            .expect("find")
            .try_collect::<Vec<Document>>()
            .await
            .expect("find")
            .iter()
            .map(|d| d.get_str("_id").expect("_id").to_string())
            .collect();
        assert_eq!(unhinted, expected, "{sale}: MongoDB's order");
        let (ids, totals) = listed(&app, &token, sale, 10).await;
        assert_eq!(ids, expected, "{sale}: the list's order");
        let count = app.count("orders", doc! { "flashSaleId": sale }).await;
        assert_eq!(count, expected.len() as u64);
        assert!(
            totals.iter().all(|&t| t == count),
            "{sale}: totals {totals:?}"
        );
    }

    let (ids, totals) = listed(&app, &token, "gamma", 10).await;
    assert!(ids.is_empty());
    assert_eq!(totals, vec![0]);
    let all = app.get_as("/orders/admin/list?pageSize=5", &token).await;
    assert_eq!(all.assert_ok()["total"], 86);
    assert_eq!(all.json["items"][0]["orderId"], "beta-25");
}

/// Times the list at scale (not a test: `cargo test -p api --test api
/// order_list::at_scale -- --ignored --nocapture`; ORDERS and OTHER_SALES
/// set the sizes, default 100,000 orders of one sale and no other sale).
#[tokio::test]
#[ignore = "a benchmark: run by hand"]
async fn at_scale() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (count, other_sales) = (env("ORDERS", 100_000), env("OTHER_SALES", 0));
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let orders = app.db.collection::<Document>(records::ORDERS);
    let started = Instant::now();
    insert_all(&orders, worker_orders("big", count, 200, 1_800_000_000_000)).await;
    for s in 0..other_sales {
        let sale = format!("other{s}");
        insert_all(&orders, worker_orders(&sale, count, 200, 1_800_000_100_000)).await;
    }
    eprintln!(
        "inserted {} orders in {:.1} s",
        count * (1 + other_sales),
        started.elapsed().as_secs_f64()
    );

    // WRITERS=n: n tasks writing another sale's orders 200 a call meanwhile,
    // as workers copying a running sale do.
    let writers: Vec<_> = (0..env("WRITERS", 0))
        .map(|w| {
            let orders = orders.clone();
            // Built here: the test's runtime has one thread.
            let docs = worker_orders(&format!("live{w}"), 200_000, 200, 1_900_000_000_000);
            tokio::spawn(async move {
                for (n, chunk) in docs.chunks(200).enumerate() {
                    if orders.insert_many(chunk.to_vec()).await.is_err() {
                        eprintln!("writer {w} stopped after {n} batches");
                        return;
                    }
                }
            })
        })
        .collect();
    let filter = doc! { "flashSaleId": "big" };
    // UNHINTED=1: the queries as they were before they named the index.
    let hint = match std::env::var("UNHINTED").as_deref() {
        Ok("1") => None,
        _ => Some(Hint::Name(records::order::BY_SALE_NEWEST_FIRST.into())),
    };
    for round in 0..2 {
        let t = Instant::now();
        let n = orders
            .count_documents(filter.clone())
            .optional(hint.clone(), |c, h| c.hint(h))
            .await
            .expect("count");
        let count_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let first: Vec<Document> = orders
            .find(filter.clone())
            .sort(doc! { "createdAt": -1, "_id": 1 })
            .limit(1)
            .optional(hint.clone(), |f, h| f.hint(h))
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("find");
        let find_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let route = app
            .get_as("/orders/admin/list?flashSaleId=big&pageSize=1", &token)
            .await;
        let route_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let deep = app
            .get_as(
                "/orders/admin/list?flashSaleId=big&pageSize=100&page=500",
                &token,
            )
            .await;
        let deep_ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "round {round}: count {n} in {count_ms:.0} ms; find first {:?} in {find_ms:.0} ms; \
             route pageSize=1: {} total {} in {route_ms:.0} ms; page 500 x 100: {} in {deep_ms:.0} ms",
            first.first().and_then(|d| d.get_str("_id").ok()),
            route.status,
            route.json["total"],
            deep.status,
        );
    }
    for writer in writers {
        writer.abort();
    }
}

/// What the list's indexes cost the worker's writes (not a test: `cargo
/// test -p api --test api order_list::inserts_at_scale -- --ignored
/// --nocapture`): ORDERS orders written 200 a call, as the worker writes
/// them, with only the worker's unique index (INDEXES=unique) or with
/// every index of `orders` (the default).
#[tokio::test]
#[ignore = "a benchmark: run by hand"]
async fn inserts_at_scale() {
    let count = std::env::var("ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let unique_only = std::env::var("INDEXES").as_deref() == Ok("unique");
    let mongo = tests::MongoServer::start().await;
    let orders = mongo
        .database()
        .await
        .collection::<Document>(records::ORDERS);
    let indexes = if unique_only {
        vec![records::order::one_order_per_user()]
    } else {
        records::order::indexes()
    };
    orders.create_indexes(indexes).await.expect("indexes");
    let docs = worker_orders("big", count, 200, 1_800_000_000_000);
    let started = Instant::now();
    for chunk in docs.chunks(200) {
        orders
            .insert_many(chunk.to_vec())
            .await
            .expect("insert orders");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{count} orders, {} indexes: {secs:.1} s, {:.0} us an order",
        if unique_only { "unique only" } else { "all" },
        secs * 1e6 / count as f64
    );
}
