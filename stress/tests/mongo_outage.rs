//! Nothing on a buyer's path waits for MongoDB: with MongoDB stopped in the
//! middle of a sale, buyers still join the queue, watch their place, are
//! admitted by the worker and confirm — every answer 2xx, at the price they
//! were admitted at — and every order reaches MongoDB once it is back.

#![allow(clippy::unwrap_used)] // test assertions: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Buyers, Platform, Redis};
use mongodb::bson::{doc, Document};
use serde_json::json;
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};

const BUYERS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_buy_while_mongodb_is_down_and_the_orders_arrive_later() {
    let engine = EngineServer::start(Backend::Module, false).await;
    let mut mongo = MongoServer::start().await;
    if !mongo.is_local() {
        eprintln!("MONGO_URL is set: this test stops its own MongoDB-compatible server");
        return;
    }
    let platform = Platform::start(Redis::Server(engine.server.url()), &mongo).await;
    let buyers = Buyers::with_new_sale(
        &platform,
        json!({
            "name": "outage",
            "initialQuantity": BUYERS + 1,
            "pricePerUnit": "10.00",
            "startsAt": chrono::Utc::now() - chrono::Duration::seconds(1),
            "endsAt": chrono::Utc::now() + chrono::Duration::seconds(600),
            "holdTtlSeconds": 60,
        }),
    )
    .await;

    // One purchase with MongoDB up: the worker knows the sale and copies.
    buyers.buy("first@x.io").await;
    buyers.until_ready("first@x.io").await;
    assert_eq!(buyers.confirm("first@x.io").await["totalAmount"], "10.00");

    mongo.stop();
    let emails: Vec<String> = (0..BUYERS).map(|i| format!("b{i}@x.io")).collect();
    for email in &emails {
        let joined = buyers.buy(email).await;
        assert!(
            ["queued", "ready"].contains(&joined["status"].as_str().unwrap()),
            "{joined}"
        );
    }
    let mut orders = Vec::new();
    for email in &emails {
        buyers.until_ready(email).await;
        let confirmed = buyers.confirm(email).await;
        assert_eq!(confirmed["totalAmount"], "10.00", "{confirmed}");
        assert_eq!(confirmed["created"], true);
        let place = buyers.position(email).await;
        assert_eq!(place["status"], "purchased");
        assert_eq!(place["orderId"], confirmed["orderId"]);
        orders.push(confirmed["orderId"].as_str().unwrap().to_string());
    }

    // MongoDB back: every order arrives, as confirmed.
    mongo.restart().await;
    let db = mongo.database().await;
    let collection = db.collection::<Document>(records::ORDERS);
    let filter = doc! { records::order::field::SALE_ID: &buyers.sale };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = collection
            .count_documents(filter.clone())
            .await
            .unwrap_or(0);
        if count == BUYERS as u64 + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of {} orders in MongoDB",
            BUYERS + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for order in &orders {
        let stored = collection
            .find_one(doc! { records::order::field::ID: order })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("order {order} not in MongoDB"));
        assert_eq!(
            stored.get_i64(records::order::field::TOTAL_AMOUNT).ok(),
            Some(1000),
            "{stored}"
        );
    }
    platform.stop().await;
}
