//! Redis does not grow with the platform's history: once a sale has ended
//! (here with no retention time) and MongoDB has every order, the worker
//! removes its engine keys; the API then answers for it from MongoDB — its
//! buyers purchased, nobody else can buy — without putting the keys back.

#![allow(clippy::unwrap_used)] // test assertions: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Buyers, Platform, Redis};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};

async fn sale_keys(conn: &mut redis::aio::MultiplexedConnection, sale: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("fs:{{{sale}}}:*"))
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_sale_leaves_redis_and_is_answered_from_mongodb() {
    let engine = EngineServer::start(Backend::Module, false).await;
    let mongo = MongoServer::start().await;
    let platform = Platform::start_with(Redis::Server(engine.server.url()), &mongo, |config| {
        config.sale_retention_s = 0;
    })
    .await;
    let now = chrono::Utc::now();
    let buyers = Buyers::with_new_sale(
        &platform,
        json!({
            "name": "retention",
            "initialQuantity": 5,
            "pricePerUnit": "5.00",
            "startsAt": now - chrono::Duration::seconds(1),
            "endsAt": now + chrono::Duration::seconds(4),
            "holdTtlSeconds": 60,
        }),
    )
    .await;
    let emails = ["a@x.io", "b@x.io", "c@x.io"];
    let mut orders = Vec::new();
    for email in emails {
        buyers.buy(email).await;
        buyers.until_ready(email).await;
        orders.push(buyers.confirm(email).await["orderId"].clone());
    }
    buyers.buy("late@x.io").await;

    // The sale ends; the worker copies and then removes every key.
    let mut conn = engine.server.connection().await;
    assert!(!sale_keys(&mut conn, &buyers.sale).await.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = sale_keys(&mut conn, &buyers.sale).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "keys left: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Answered from MongoDB.
    for (email, order) in emails.iter().zip(&orders) {
        let place = buyers.position(email).await;
        assert_eq!(place["status"], "purchased", "{place}");
        assert_eq!(&place["orderId"], order);
        assert_eq!(place["saleStatus"], "ended");
        let again = buyers.confirm(email).await;
        assert_eq!(
            (&again["orderId"], &again["created"]),
            (order, &json!(false))
        );
    }
    let late = buyers.position("late@x.io").await;
    assert_eq!(late["status"], "none", "{late}");
    let body = json!({ "email": "new@x.io", "flashSaleId": buyers.sale });
    let (status, refused) = buyers.send(Method::POST, "/orders/buy", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "sale_ended");
    let public = buyers
        .call(
            Method::GET,
            &format!("/flash-sales/{}/public", buyers.sale),
            None,
        )
        .await;
    assert_eq!(public["status"], "ended", "{public}");

    // Nothing put the keys back (the worker's loops included).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sale_keys(&mut conn, &buyers.sale).await,
        Vec::<String>::new()
    );
    platform.stop().await;
}
