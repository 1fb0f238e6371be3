//! The admin catalogue: create, read, list, update (engine first, refusals
//! change nothing), delete (orders kept), and restoring a sale the engine
//! lost.

use mongodb::bson::{doc, Document};
use reqwest::Method;
use serde_json::{json, Value};
use tests::Backend;

use crate::support::{rfc3339, sale_id, TestApp};

async fn put(app: &TestApp, id: &str, body: Value, token: &str) -> crate::support::Reply {
    app.request(
        Method::PUT,
        &format!("/flash-sales/{id}"),
        Some(&body),
        Some(token),
    )
    .await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> crate::support::Reply {
    app.request(Method::DELETE, path, None, Some(token)).await
}

async fn stored(app: &TestApp, id: &str) -> Option<Document> {
    app.db
        .collection::<Document>("flash_sales")
        .find_one(doc! { "_id": id })
        .await
        .expect("find sale")
}

#[tokio::test]
async fn create_read_list() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let reply = app
        .post_as(
            "/flash-sales",
            &json!({
                "name": "  Watch ", "initialQuantity": 5, "pricePerUnit": "120",
                "startsAt": rfc3339(-10), "endsAt": rfc3339(600), "rate": 3, "maxQueue": 100,
            }),
            &token,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{reply:#?}");
    let id = sale_id(&reply.json);
    assert_eq!(id.len(), 24);
    assert_eq!(
        reply.header("location"),
        Some(format!("/flash-sales/{id}").as_str())
    );
    assert_eq!(reply.json["name"], "Watch");
    assert_eq!(reply.json["pricePerUnit"], "120.00");
    // The default hold length comes from HOLD_TTL_SECONDS.
    assert_eq!(reply.json["holdTtlSeconds"], app.settings.hold_ttl_seconds);
    assert_eq!(reply.json["currentQuantity"], 5);

    // MongoDB has the seed's fields, money in cents.
    let doc = stored(&app, &id).await.expect("stored");
    assert_eq!(doc.get_str("name").ok(), Some("Watch"));
    assert_eq!(doc.get_i64("initialQuantity").ok(), Some(5));
    assert_eq!(doc.get_i64("currentQuantity").ok(), Some(5));
    assert_eq!(doc.get_i64("pricePerUnit").ok(), Some(12_000));
    assert_eq!(doc.get_i64("rate").ok(), Some(3));
    assert_eq!(doc.get_i64("maxQueue").ok(), Some(100));
    assert!(doc.get_datetime("startsAt").is_ok() && doc.get_datetime("createdAt").is_ok());

    // The engine has the same sale.
    let status = app.status(&id, None).await.sale;
    assert_eq!(status.stock, 5);
    assert_eq!(status.rate, 3);
    assert_eq!(status.max_queue, 100);
    assert_eq!(status.hold_ttl_ms, app.settings.hold_ttl_seconds * 1000);
    assert_eq!(
        status.starts_at as i64,
        doc.get_datetime("startsAt")
            .expect("startsAt")
            .timestamp_millis()
    );

    let one = app.get_as(&format!("/flash-sales/{id}"), &token).await;
    assert_eq!(one.assert_ok()["id"], id);
    assert_eq!(one.json["live"]["queued"], 0);

    let second = sale_id(
        &app.create_sale(&token, json!({ "startsAt": rfc3339(100) }))
            .await,
    );
    let list = app.get_as("/flash-sales?page=1&pageSize=1", &token).await;
    let body = list.assert_ok();
    assert_eq!(body["total"], 2);
    assert_eq!(body["pageSize"], 1);
    // Newest start first.
    assert_eq!(body["items"][0]["id"], second);
    let page2 = app.get_as("/flash-sales?page=2&pageSize=1", &token).await;
    assert_eq!(page2.assert_ok()["items"][0]["id"], id);
    assert_eq!(page2.json["items"][0]["live"]["status"], "active");

    app.get_as("/flash-sales/000000000000000000000000", &token)
        .await
        .assert_error(404, "sale_not_found");
    app.get("/flash-sales/000000000000000000000000/public")
        .await
        .assert_error(404, "sale_not_found");
}

#[tokio::test]
async fn update_goes_to_the_engine_first() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 3, "rate": 5 }))
            .await,
    );
    for user in ["a@x.io", "b@x.io", "c@x.io"] {
        app.buy(&id, user).await.assert_ok();
    }
    app.admit(&id, 1).await;
    app.confirm(&id, "a@x.io").await.assert_ok();
    app.admit(&id, 1).await; // b holds: sold 1 + held 1

    // Below sold + held: refused, and neither side changed.
    let before = stored(&app, &id).await;
    let refused = put(
        &app,
        &id,
        json!({ "initialQuantity": 1, "name": "Cheaper" }),
        &token,
    )
    .await;
    refused.assert_error(409, "stock_below_committed");
    assert_eq!(stored(&app, &id).await, before);
    assert_eq!(app.status(&id, None).await.sale.stock, 3);

    // A new price while b holds a unit: refused (b pays what b was
    // admitted at), and neither side changed.
    let locked = put(
        &app,
        &id,
        json!({ "pricePerUnit": "10.5", "name": "Cheaper" }),
        &token,
    )
    .await;
    locked.assert_error(409, "price_locked");
    assert_eq!(stored(&app, &id).await, before);

    // Down to exactly sold + held, rate removed, new name.
    let updated = put(
        &app,
        &id,
        json!({ "initialQuantity": 3, "rate": null, "name": "Renamed", "pricePerUnit": "49.99", "holdTtlSeconds": 45 }),
        &token,
    )
    .await;
    let body = updated.assert_ok();
    assert_eq!(body["name"], "Renamed");
    assert_eq!(body["initialQuantity"], 3);
    assert_eq!(body["currentQuantity"], 2);
    // Read back at once (no worker runs here): the engine's figure, not the
    // document's last synced one.
    let read = app.get_as(&format!("/flash-sales/{id}"), &token).await;
    assert_eq!(read.assert_ok()["currentQuantity"], 2);
    assert_eq!(body["rate"], Value::Null);
    assert_eq!(body["maxQueue"], Value::Null);
    assert_eq!(body["pricePerUnit"], "49.99");
    assert_eq!(body["live"]["sold"], 1);
    assert_eq!(body["live"]["held"], 1);
    let status = app.status(&id, None).await.sale;
    assert_eq!(
        (status.stock, status.rate, status.hold_ttl_ms),
        (3, 0, 45_000)
    );
    let doc = stored(&app, &id).await.expect("stored");
    assert_eq!(doc.get_str("name").ok(), Some("Renamed"));
    assert_eq!(doc.get("rate"), Some(&mongodb::bson::Bson::Null));

    // b pays the price b was admitted at; nobody holds a unit now, so the
    // price may change, and c, admitted after, pays the new one.
    let confirmed = app.confirm(&id, "b@x.io").await;
    assert_eq!(confirmed.assert_ok()["totalAmount"], "49.99");
    let repriced = put(&app, &id, json!({ "pricePerUnit": "10.5" }), &token).await;
    assert_eq!(repriced.assert_ok()["pricePerUnit"], "10.50");
    let doc = stored(&app, &id).await.expect("stored");
    assert_eq!(doc.get_i64("pricePerUnit").ok(), Some(1050));
    app.admit(&id, 1).await;
    let stale = app
        .confirm_body(&json!({ "email": "c@x.io", "flashSaleId": id, "totalAmount": "49.99" }))
        .await;
    stale.assert_error(400, "amount_mismatch");
    assert_eq!(stale.json["error"]["details"]["expected"], "10.50");
    let confirmed = app.confirm(&id, "c@x.io").await;
    let body = confirmed.assert_ok();
    assert_eq!(body["totalAmount"], "10.50");
    assert_eq!(body["created"], true);
    // A repeat tells the same amount (from the engine's outbox).
    let again = app.confirm(&id, "c@x.io").await;
    assert_eq!(
        again.assert_ok()["totalAmount"],
        "10.50",
        "{:?}",
        again.json
    );
    assert_eq!(again.json["created"], false);

    // Absent fields keep their values.
    let same = put(&app, &id, json!({}), &token).await;
    assert_eq!(same.assert_ok()["name"], "Renamed");

    put(
        &app,
        "000000000000000000000000",
        json!({ "name": "x" }),
        &token,
    )
    .await
    .assert_error(404, "sale_not_found");
    // A window the wrong way round is refused before anything is touched.
    put(&app, &id, json!({ "endsAt": rfc3339(-86_400) }), &token)
        .await
        .assert_error(422, "invalid_field");
    assert_eq!(
        stored(&app, &id)
            .await
            .expect("stored")
            .get_str("name")
            .ok(),
        Some("Renamed")
    );
}

#[tokio::test]
async fn delete_refuses_sales_with_orders_unless_forced() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;

    // Without orders: the document and every Redis key go.
    let empty = sale_id(&app.create_sale(&token, json!({})).await);
    app.buy(&empty, "q@x.io").await.assert_ok();
    app.buy(&empty, "h@x.io").await.assert_ok();
    app.grant(&empty, 1).await;
    assert!(!app.sale_keys(&empty).await.is_empty());
    let reply = delete(&app, &format!("/flash-sales/{empty}"), &token).await;
    assert_eq!(reply.status.as_u16(), 204, "{reply:#?}");
    assert!(stored(&app, &empty).await.is_none());
    assert_eq!(app.sale_keys(&empty).await, Vec::<String>::new());
    app.get(&format!("/flash-sales/{empty}/public"))
        .await
        .assert_error(404, "sale_not_found");
    app.buy(&empty, "q@x.io")
        .await
        .assert_error(404, "sale_not_found");
    delete(&app, &format!("/flash-sales/{empty}"), &token)
        .await
        .assert_error(404, "sale_not_found");

    // With an order: refused, and the sale carries on untouched.
    let sold = sale_id(&app.create_sale(&token, json!({})).await);
    app.buy(&sold, "a@x.io").await.assert_ok();
    app.grant(&sold, 1).await;
    let confirmed = app.confirm(&sold, "a@x.io").await;
    let order_id = confirmed.assert_ok()["orderId"]
        .as_str()
        .expect("an order id")
        .to_string();
    assert!(flashsale::keys::order_number(&sold, &order_id).is_some());
    let refused = delete(&app, &format!("/flash-sales/{sold}"), &token).await;
    refused.assert_error(409, "sale_has_orders");
    assert_eq!(refused.json["error"]["details"]["sold"], 1);
    assert!(stored(&app, &sold).await.is_some());
    assert_eq!(
        app.buy(&sold, "b@x.io").await.assert_ok()["status"],
        "queued"
    );
    assert_eq!(
        app.status(&sold, None).await.sale.state,
        flashsale::SaleState::Active
    );

    // Forced while the order is only in the outbox: the sale is ended, but
    // it stays until the worker has recorded the order.
    let pending = delete(&app, &format!("/flash-sales/{sold}?force=true"), &token).await;
    pending.assert_error(409, "orders_pending");
    assert_eq!(
        pending.json["error"]["details"],
        json!({ "sold": 1, "recorded": 0 })
    );
    assert!(pending.header("retry-after").is_some());
    assert!(stored(&app, &sold).await.is_some());
    app.buy(&sold, "c@x.io")
        .await
        .assert_error(409, "sale_ended");

    // Recorded: the sale goes, every Redis key with it; the order stays.
    app.record_order(&order_id, &sold, "a@x.io", 4999).await;
    let forced = delete(&app, &format!("/flash-sales/{sold}?force=true"), &token).await;
    assert_eq!(forced.status.as_u16(), 204, "{forced:#?}");
    assert!(stored(&app, &sold).await.is_none());
    assert_eq!(app.count("orders", doc! { "flashSaleId": &sold }).await, 1);
    assert_eq!(app.sale_keys(&sold).await, Vec::<String>::new());
    let order = app.by_email(&sold, "a@x.io").await;
    assert_eq!(order.assert_ok()["orderId"], order_id);
    assert_eq!(order.json["persisted"], true);
}

async fn restores_a_lost_sale(backend: Backend) {
    let app = TestApp::spawn_with(backend, |_| {}).await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 7, "rate": 4 }))
            .await,
    );
    let mut conn = app.redis().await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .expect("FLUSHALL");
    if backend == Backend::Lua {
        // Redis restarted without persistence: the library is gone too.
        redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async::<()>(&mut conn)
            .await
            .expect("FLUSH");
    }

    let reply = app.buy(&id, "ann@example.com").await;
    assert_eq!(reply.assert_ok()["position"], 1);
    let status = app.status(&id, None).await.sale;
    assert_eq!((status.stock, status.rate, status.queued), (7, 4, 1));

    // With orders on record (a failover to a replica that missed them, an
    // old snapshot), the engine gets them back before the sale is set up
    // again: the buyer stays purchased, sold counts the order, and the
    // numbering goes on above it.
    let now = tests::server_time_ms(&mut conn).await;
    let earlier = flashsale::keys::order_id(&id, (now + 60_000) * engine::rules::ORDERS_PER_MS);
    app.record_order(&earlier, &id, "zed@example.com", 4999)
        .await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .expect("FLUSHALL");
    let reply = app.buy(&id, "bob@example.com").await;
    assert_eq!(reply.assert_ok()["position"], 1);
    let zed = app.status(&id, Some("zed@example.com")).await;
    assert_eq!(
        zed.user,
        Some(flashsale::UserStatus::Purchased {
            order_id: earlier.clone()
        })
    );
    assert_eq!((zed.sale.sold, zed.sale.queued), (1, 1));
    app.admit(&id, 1).await;
    let bob = app.confirm(&id, "bob@example.com").await;
    let bob_order = bob.assert_ok()["orderId"]
        .as_str()
        .expect("order id")
        .to_string();
    let number = |order: &str| flashsale::keys::order_number(&id, order).expect("engine id");
    assert!(
        number(&bob_order) > number(&earlier),
        "{bob_order} must come after the recorded {earlier}"
    );
}

#[tokio::test]
async fn restores_a_lost_sale_with_the_module() {
    restores_a_lost_sale(Backend::Module).await;
}

#[tokio::test]
async fn restores_a_lost_sale_and_library_with_lua() {
    restores_a_lost_sale(Backend::Lua).await;
}

/// A sale written before this API (the seed's shape: ObjectId `_id`, no
/// engine fields) is read, set up in the engine on first use, and updated
/// in place.
#[tokio::test]
async fn seed_era_sales_are_usable() {
    use mongodb::bson::{oid::ObjectId, DateTime};
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let oid = ObjectId::new();
    let now = DateTime::now().timestamp_millis();
    app.db
        .collection::<Document>("flash_sales")
        .insert_one(doc! {
            "_id": oid, "name": "Old sale", "initialQuantity": 3_i32,
            "currentQuantity": 3_i32, "pricePerUnit": 1500_i64,
            "startsAt": DateTime::from_millis(now - 60_000),
            "endsAt": DateTime::from_millis(now + 3_600_000), "__v": 0_i32,
        })
        .await
        .expect("insert");
    let id = oid.to_hex();

    let public = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(public.assert_ok()["pricePerUnit"], "15.00");
    assert_eq!(public.json["holdTtlSeconds"], app.settings.hold_ttl_seconds);
    app.buy(&id, "ann@example.com").await.assert_ok();
    let list = app.get_as("/flash-sales", &token).await;
    assert_eq!(list.assert_ok()["items"][0]["id"], id);

    let updated = put(&app, &id, json!({ "name": "Renamed old sale" }), &token).await;
    assert_eq!(updated.assert_ok()["name"], "Renamed old sale");
    let doc = app
        .db
        .collection::<Document>("flash_sales")
        .find_one(doc! { "_id": oid })
        .await
        .expect("find")
        .expect("still there, same _id");
    assert_eq!(doc.get_str("name").ok(), Some("Renamed old sale"));
    assert_eq!(doc.get_i32("__v").ok(), Some(0));
    assert_eq!(app.count("flash_sales", doc! {}).await, 1);
}
