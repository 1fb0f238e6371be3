//! The customer's journey end to end, on both engine backends, and the
//! sold-out, expired-hold, ended, not-started and queue-full paths.

use mongodb::bson::doc;
use serde_json::json;
use tests::Backend;

use crate::support::{rfc3339, sale_id, wait_for_status, TestApp};

async fn journey(backend: Backend) {
    let app = TestApp::spawn_with(backend, |_| {}).await;
    let token = app.admin_token().await;
    let sale = app
        .create_sale(
            &token,
            json!({ "initialQuantity": 2, "rate": 10, "pricePerUnit": 49.99 }),
        )
        .await;
    let id = sale_id(&sale);
    assert_eq!(sale["pricePerUnit"], "49.99");
    assert_eq!(sale["live"]["status"], "active");

    let public = app.get(&format!("/flash-sales/{id}/public")).await;
    let page = public.assert_ok();
    assert_eq!(page["status"], "active");
    assert_eq!(page["name"], "Running shoes");
    assert_eq!(page["pricePerUnit"], "49.99");
    assert_eq!(page["stock"], 2);
    assert_eq!(page["stockLeft"], 2);
    assert_eq!(page["available"], 2);
    assert_eq!(page["queueLength"], 0);
    assert_eq!(page["holdTtlSeconds"], 30);
    assert_eq!(page["rate"], 10);
    assert!(page["serverTime"].as_str().is_some());
    let server_ms = page["serverTimeMs"].as_u64().expect("serverTimeMs");
    let local_ms = chrono::Utc::now().timestamp_millis() as u64;
    assert!(server_ms.abs_diff(local_ms) < 60_000);

    // Buy: queued at 1, with a buyer token; repeating it (with the token)
    // keeps the same place and hands out no second token.
    for round in 0..2 {
        let reply = app.buy(&id, "  Ann@Example.com ").await;
        let body = reply.assert_ok();
        assert_eq!(body["buyerToken"].is_string(), round == 0, "{body}");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["queued"], true);
        assert_eq!(body["position"], 1);
        assert_eq!(body["size"], 1);
        assert_eq!(body["hasActiveHold"], false);
        assert_eq!(body["holdTtlSec"], serde_json::Value::Null);
        assert_eq!(body["holdDurationSec"], 30);
        assert_eq!(body["estimatedWaitSec"], 1);
    }
    let bob = app.buy(&id, "bob@example.com").await;
    assert_eq!(bob.assert_ok()["position"], 2);
    assert_eq!(bob.json["size"], 2);

    let pos = app.position(&id, "ann@example.com").await;
    let body = pos.assert_ok();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["position"], 1);
    assert_eq!(body["size"], 2);
    assert_eq!(body["saleStatus"], "active");
    assert_eq!(body["estimatedWaitSec"], 1);

    // Not admitted yet: no hold.
    app.confirm(&id, "ann@example.com")
        .await
        .assert_error(403, "no_hold");

    // Admission (the worker's job): ann gets the hold.
    assert_eq!(app.admit(&id, 1).await, vec!["ann@example.com".to_string()]);
    let pos = app.position(&id, "ANN@example.com").await;
    let body = pos.assert_ok();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["position"], serde_json::Value::Null);
    let left = body["holdTtlSec"].as_u64().expect("holdTtlSec");
    assert!((1..=30).contains(&left), "{left}");
    let again = app.buy(&id, "ann@example.com").await;
    let body = again.assert_ok();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["hasActiveHold"], true);
    assert!(body["holdTtlSec"].as_u64().is_some_and(|s| s <= 30));
    assert_eq!(body["size"], 1);

    // The client cannot pick its price; refusing it changes nothing.
    let cheap = app
        .confirm_body(
            &json!({ "email": "ann@example.com", "flashSaleId": id, "totalAmount": "0.01" }),
        )
        .await;
    cheap.assert_error(400, "amount_mismatch");
    assert_eq!(
        app.position(&id, "ann@example.com").await.json["status"],
        "ready"
    );

    // Confirm (with the right amount given explicitly), then again.
    let clock_before = tests::server_time_ms(&mut app.redis().await).await;
    let confirmed = app
        .confirm_body(
            &json!({ "email": "ann@example.com", "flashSaleId": id, "totalAmount": 49.99 }),
        )
        .await;
    let body = confirmed.assert_ok();
    // An order id of this sale, numbered from the server clock at the
    // confirm; the sale's one order.
    let order_id = body["orderId"].as_str().expect("an order id").to_string();
    let number = flashsale::keys::order_number(&id, &order_id).expect("an order id of the sale");
    assert!(
        number >= clock_before * engine::rules::ORDERS_PER_MS,
        "{order_id} numbered from the clock ({clock_before} ms)"
    );
    assert_eq!(app.status(&id, None).await.sale.sold, 1);
    assert_eq!(body["created"], true);
    assert_eq!(body["totalAmount"], "49.99");
    let repeat = app.confirm(&id, "ann@example.com").await;
    assert_eq!(repeat.assert_ok()["orderId"], order_id);
    assert_eq!(repeat.json["created"], false);

    // Visible at once, before any worker copied it to MongoDB.
    assert_eq!(app.count("orders", doc! {}).await, 0);
    let mine = app.by_email(&id, "ann@example.com").await;
    let body = mine.assert_ok();
    assert_eq!(body["orderId"], order_id);
    assert_eq!(body["userEmail"], "ann@example.com");
    assert_eq!(body["flashSaleId"], id);
    assert_eq!(body["paymentStatus"], "paid");
    assert_eq!(body["totalAmount"], "49.99");
    assert_eq!(body["persisted"], false);
    assert!(body["createdAt"].as_str().is_some());

    // Once the worker has recorded it, MongoDB answers.
    app.record_order(&order_id, &id, "ann@example.com", 4999)
        .await;
    let mine = app.by_email(&id, "ann@example.com").await;
    assert_eq!(mine.assert_ok()["persisted"], true);
    assert_eq!(mine.json["totalAmount"], "49.99");

    let pos = app.position(&id, "ann@example.com").await;
    assert_eq!(pos.assert_ok()["status"], "purchased");
    assert_eq!(pos.json["orderId"], order_id);
    let bought = app.buy(&id, "ann@example.com").await;
    assert_eq!(bought.assert_ok()["status"], "purchased");
    assert_eq!(bought.json["orderId"], order_id);

    let page = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(page.assert_ok()["stockLeft"], 1);
    assert_eq!(page.json["queueLength"], 1);

    // Someone without an order.
    // (With a token of theirs: a buyer whose place lapsed with the sale.)
    let zed = app.mint_token(&id, "zed@example.com", crate::support::unix_in(3600));
    app.by_email_with(&id, "zed@example.com", Some(&zed))
        .await
        .assert_error(404, "order_not_found");
    let none = app.position_with(&id, "zed@example.com", Some(&zed)).await;
    assert_eq!(none.assert_ok()["status"], "none");
}

#[tokio::test]
async fn journey_with_the_module() {
    journey(Backend::Module).await;
}

#[tokio::test]
async fn journey_with_the_functions_library() {
    journey(Backend::Lua).await;
}

#[tokio::test]
async fn sold_out() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 1 }))
            .await,
    );
    app.buy(&id, "ann@example.com").await.assert_ok();
    app.buy(&id, "bob@example.com").await.assert_ok();
    assert_eq!(app.grant(&id, 5).await, vec!["ann@example.com".to_string()]);
    // The only unit is held: bob waits.
    assert!(app.grant(&id, 5).await.is_empty());
    app.confirm(&id, "ann@example.com").await.assert_ok();

    app.buy(&id, "carol@example.com")
        .await
        .assert_error(409, "sold_out");
    let public = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(public.assert_ok()["status"], "sold_out");
    assert_eq!(public.json["stockLeft"], 0);
    let bob = app.position(&id, "bob@example.com").await;
    assert_eq!(bob.assert_ok()["saleStatus"], "sold_out");
    app.confirm(&id, "bob@example.com")
        .await
        .assert_error(403, "no_hold");
}

#[tokio::test]
async fn expired_hold() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "holdTtlSeconds": 1 }))
            .await,
    );
    app.buy(&id, "ann@example.com").await.assert_ok();
    app.grant(&id, 1).await;
    assert_eq!(
        app.position(&id, "ann@example.com").await.json["status"],
        "ready"
    );

    wait_for_status(&app, &id, "ann@example.com", "expired").await;
    app.confirm(&id, "ann@example.com")
        .await
        .assert_error(410, "hold_expired");
    // She may queue again, at the back.
    app.buy(&id, "bob@example.com").await.assert_ok();
    let again = app.buy(&id, "ann@example.com").await;
    assert_eq!(again.assert_ok()["status"], "queued");
    assert_eq!(again.json["position"], 2);
}

#[tokio::test]
async fn ended() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    app.buy(&id, "ann@example.com").await.assert_ok();
    app.grant(&id, 1).await;
    app.buy(&id, "bob@example.com").await.assert_ok();

    // The admin ends the sale early.
    let ended = app
        .request(
            reqwest::Method::PUT,
            &format!("/flash-sales/{id}"),
            Some(&json!({ "endsAt": rfc3339(-1) })),
            Some(&token),
        )
        .await;
    assert_eq!(ended.assert_ok()["live"]["status"], "ended");

    app.buy(&id, "carol@example.com")
        .await
        .assert_error(409, "sale_ended");
    app.confirm(&id, "ann@example.com")
        .await
        .assert_error(409, "sale_ended");
    let public = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(public.assert_ok()["status"], "ended");
    let bob = app.position(&id, "bob@example.com").await;
    assert_eq!(bob.assert_ok()["saleStatus"], "ended");
}

#[tokio::test]
async fn not_started_and_queue_full() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let later = sale_id(
        &app.create_sale(
            &token,
            json!({ "startsAt": rfc3339(3600), "endsAt": rfc3339(7200) }),
        )
        .await,
    );
    let reply = app.buy(&later, "ann@example.com").await;
    reply.assert_error(409, "sale_not_started");
    assert!(reply.json["error"]["details"]["msUntilStart"]
        .as_u64()
        .is_some());
    assert!(reply.header("retry-after").is_some());
    let public = app.get(&format!("/flash-sales/{later}/public")).await;
    assert_eq!(public.assert_ok()["status"], "upcoming");

    let small = sale_id(&app.create_sale(&token, json!({ "maxQueue": 1 })).await);
    app.buy(&small, "ann@example.com").await.assert_ok();
    app.buy(&small, "bob@example.com")
        .await
        .assert_error(409, "queue_full");
    // Ann's place is still hers.
    assert_eq!(app.buy(&small, "ann@example.com").await.json["position"], 1);
}

/// A sale without a RATE: no estimate until the queue has moved; then every
/// queued buyer gets one from how fast it moved.
#[tokio::test]
async fn the_wait_is_estimated_from_how_fast_the_queue_moves() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 50 }))
            .await,
    );
    let buyers: Vec<String> = (0..20).map(|i| format!("q{i}@x.io")).collect();
    for buyer in &buyers {
        app.buy(&id, buyer).await.assert_ok();
    }
    let last = &buyers[19];
    let before = app.position(&id, last).await;
    assert_eq!(before.assert_ok()["position"], 20);
    assert_eq!(before.json["estimatedWaitSec"], serde_json::Value::Null);

    app.admit(&id, 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let after = app.position(&id, last).await;
    assert_eq!(after.assert_ok()["position"], 15);
    // 5 places in at least 0.6 s: at most 8.4 per second, so 15 places
    // take at least 2 s.
    let wait = after.json["estimatedWaitSec"]
        .as_u64()
        .unwrap_or_else(|| panic!("an estimate: {}", after.json));
    assert!(wait >= 2, "{wait}");
    // A buyer who never asked before gets the sale's measured speed too.
    let other = app.position(&id, &buyers[9]).await;
    assert_eq!(other.assert_ok()["position"], 5);
    assert!(
        other.json["estimatedWaitSec"].as_u64().is_some(),
        "{}",
        other.json
    );
}
