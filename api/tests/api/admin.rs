//! Admin views: recorded orders, a queue's overview and its members in
//! order; all of them admin-only.

use serde_json::json;

use crate::support::{sale_id, TestApp};

#[tokio::test]
async fn queue_overview_members_and_orders() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 5, "rate": 7 }))
            .await,
    );
    let users: Vec<String> = (0..7).map(|i| format!("user{i}@example.com")).collect();
    for user in &users {
        app.buy(&id, user).await.assert_ok();
    }
    app.admit(&id, 2).await;
    let confirmed = app.confirm(&id, &users[0]).await;
    let order_id = confirmed.assert_ok()["orderId"]
        .as_str()
        .expect("an order id")
        .to_string();
    assert!(flashsale::keys::order_number(&id, &order_id).is_some());

    let overview = app
        .get_as(&format!("/orders/admin/queue/{id}/overview"), &token)
        .await;
    let body = overview.assert_ok();
    assert_eq!(body["flashSaleId"], id);
    assert_eq!(body["status"], "active");
    assert_eq!(body["totalInQueue"], 5);
    assert_eq!(body["holds"], 1);
    assert_eq!(body["sold"], 1);
    assert_eq!(body["stock"], 5);
    assert_eq!(body["available"], 3);
    assert_eq!(body["rate"], 7);

    // Members in queue order, a page at a time.
    let first = app
        .get_as(
            &format!("/orders/admin/queue/{id}/members?pageSize=2"),
            &token,
        )
        .await;
    let body = first.assert_ok();
    assert_eq!(body["total"], 5);
    assert_eq!(
        body["items"],
        json!([
            { "position": 1, "email": users[2] },
            { "position": 2, "email": users[3] },
        ])
    );
    let last = app
        .get_as(
            &format!("/orders/admin/queue/{id}/members?page=3&pageSize=2"),
            &token,
        )
        .await;
    assert_eq!(
        last.assert_ok()["items"],
        json!([{ "position": 5, "email": users[6] }])
    );
    let beyond = app
        .get_as(
            &format!("/orders/admin/queue/{id}/members?page=9&pageSize=2"),
            &token,
        )
        .await;
    assert_eq!(beyond.assert_ok()["items"], json!([]));

    // Recorded orders (the worker's copies), filtered by sale.
    app.record_order(&order_id, &id, &users[0], 4999).await;
    app.record_order("other-1", "other", "someone@example.com", 100)
        .await;
    let list = app
        .get_as(&format!("/orders/admin/list?flashSaleId={id}"), &token)
        .await;
    let body = list.assert_ok();
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["orderId"], order_id);
    assert_eq!(body["items"][0]["userEmail"], users[0]);
    assert_eq!(body["items"][0]["totalAmount"], "49.99");
    assert_eq!(body["items"][0]["persisted"], true);
    let all = app.get_as("/orders/admin/list?pageSize=100", &token).await;
    assert_eq!(all.assert_ok()["total"], 2);

    // Unknown sale.
    app.get_as("/orders/admin/queue/nope/overview", &token)
        .await
        .assert_error(404, "sale_not_found");
    app.get_as("/orders/admin/queue/nope/members", &token)
        .await
        .assert_error(404, "sale_not_found");

    // Admin only.
    for path in [
        "/flash-sales".to_string(),
        format!("/flash-sales/{id}"),
        "/orders/admin/list".to_string(),
        format!("/orders/admin/queue/{id}/overview"),
        format!("/orders/admin/queue/{id}/members"),
    ] {
        app.get(&path).await.assert_error(401, "unauthorized");
    }
    app.post("/flash-sales", &json!({}))
        .await
        .assert_error(401, "unauthorized");
    app.request(
        reqwest::Method::PUT,
        &format!("/flash-sales/{id}"),
        Some(&json!({})),
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    app.request(
        reqwest::Method::DELETE,
        &format!("/flash-sales/{id}"),
        None,
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    app.request(reqwest::Method::POST, "/auth/signout", None, None)
        .await
        .assert_error(401, "unauthorized");
}
