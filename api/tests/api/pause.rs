//! Pausing a live sale (issue 13): an admin stops it, new buys answer 409
//! `sale_paused` and change nothing, admission admits nobody, queued
//! buyers keep their place, a holder can still buy; resuming goes on from
//! the same queue.

use reqwest::Method;
use serde_json::{json, Value};
use tests::Backend;

use crate::support::{sale_id, Reply, TestApp};

async fn admin_post(app: &TestApp, path: &str, token: &str) -> Reply {
    app.request(Method::POST, path, None, Some(token)).await
}

/// The sale's queue, head first, straight from Redis.
async fn queue(app: &TestApp, sale: &str) -> Vec<String> {
    let mut conn = app.redis().await;
    redis::cmd("ZRANGE")
        .arg(flashsale::keys::queue(sale))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("ZRANGE")
}

/// GRANT as the worker sends it, answered as the engine answers it.
async fn grant(app: &TestApp, sale: &str, max: u64) -> flashsale::GrantReply {
    let mut client = app.engine.client().await;
    client.grant(sale, max).await.expect("GRANT")
}

async fn pause_and_resume(backend: Backend) {
    let app = TestApp::spawn_with(backend, |_| {}).await;
    let token = app.admin_token().await;
    let sale = app
        .create_sale(&token, json!({ "initialQuantity": 3 }))
        .await;
    let id = sale_id(&sale);
    let (ann, bob, cat, dan) = (
        "ann@example.com",
        "bob@example.com",
        "cat@example.com",
        "dan@example.com",
    );
    for email in [ann, bob, cat] {
        app.buy(&id, email).await.assert_ok();
    }
    // Ann is admitted before the pause and holds a unit. (Plain lower-case
    // addresses: the engine's user id is the address itself.)
    assert_eq!(app.grant(&id, 1).await, vec![ann.to_string()]);

    let paused = admin_post(&app, &format!("/flash-sales/{id}/pause"), &token).await;
    assert_eq!(
        paused.assert_ok()["live"]["status"],
        "paused",
        "{paused:#?}"
    );
    // Idempotent.
    let again = admin_post(&app, &format!("/flash-sales/{id}/pause"), &token).await;
    assert_eq!(again.assert_ok()["live"]["status"], "paused");
    // Everyone sees it.
    let public = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(public.assert_ok()["status"], "paused");

    // A new buyer is refused, and the queue is exactly as it was.
    let before = queue(&app, &id).await;
    assert_eq!(before, vec![bob.to_string(), cat.to_string()]);
    app.buy(&id, dan).await.assert_error(409, "sale_paused");
    assert_eq!(queue(&app, &id).await, before);
    assert_eq!(
        app.status(&id, Some(dan)).await.user,
        Some(flashsale::UserStatus::None)
    );
    // Those queued keep their place.
    let bob_place = app.position(&id, bob).await;
    assert_eq!(
        (&bob_place.json["status"], &bob_place.json["position"]),
        (&Value::from("queued"), &Value::from(1)),
        "{bob_place:#?}"
    );
    assert_eq!(app.position(&id, cat).await.json["position"], 2);
    // The worker's GRANT admits nobody, however often it asks.
    for _ in 0..3 {
        assert_eq!(
            grant(&app, &id, 10).await,
            flashsale::GrantReply::Paused { released: 0 }
        );
    }
    assert_eq!(queue(&app, &id).await, before);
    // The holder keeps the unit and can buy it.
    let bought = app.confirm(&id, ann).await;
    assert_eq!(bought.assert_ok()["created"], true, "{bought:#?}");
    assert_eq!(app.position(&id, ann).await.json["status"], "purchased");

    // Resume: admission goes on from the head of the same queue, and new
    // buyers queue behind it.
    let resumed = admin_post(&app, &format!("/flash-sales/{id}/resume"), &token).await;
    assert_eq!(resumed.assert_ok()["live"]["status"], "active");
    let again = admin_post(&app, &format!("/flash-sales/{id}/resume"), &token).await;
    assert_eq!(again.assert_ok()["live"]["status"], "active");
    assert_eq!(app.grant(&id, 1).await, vec![bob.to_string()]);
    wait_ready(&app, &id, bob).await;
    let dan_buys = app.buy(&id, dan).await;
    assert_eq!(dan_buys.assert_ok()["position"], 2, "{dan_buys:#?}");
}

async fn wait_ready(app: &TestApp, sale: &str, email: &str) {
    crate::support::wait_for_status(app, sale, email, "ready").await;
}

#[tokio::test]
async fn pause_and_resume_module() {
    pause_and_resume(Backend::Module).await;
}

#[tokio::test]
async fn pause_and_resume_lua() {
    pause_and_resume(Backend::Lua).await;
}

/// Only admins pause and resume; a sale that is not live cannot be paused
/// (409, nothing changed); an unknown sale is 404.
#[tokio::test]
async fn pause_is_for_admins_and_live_sales() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let live = sale_id(&app.create_sale(&token, json!({})).await);
    let unauthenticated = app
        .request(
            Method::POST,
            &format!("/flash-sales/{live}/pause"),
            None,
            None,
        )
        .await;
    unauthenticated.assert_error(401, "unauthorized");
    assert_eq!(
        app.status(&live, None).await.sale.state,
        flashsale::SaleState::Active
    );

    let upcoming = sale_id(
        &app.create_sale(
            &token,
            json!({ "startsAt": crate::support::rfc3339(600), "endsAt": crate::support::rfc3339(1200) }),
        )
        .await,
    );
    let before = app.sale_keys(&upcoming).await;
    admin_post(&app, &format!("/flash-sales/{upcoming}/pause"), &token)
        .await
        .assert_error(409, "sale_not_live");
    assert_eq!(app.sale_keys(&upcoming).await, before);
    assert_eq!(
        app.status(&upcoming, None).await.sale.state,
        flashsale::SaleState::Upcoming
    );

    let unknown = "0123456789abcdef01234567";
    admin_post(&app, &format!("/flash-sales/{unknown}/pause"), &token)
        .await
        .assert_error(404, "sale_not_found");
    admin_post(&app, &format!("/flash-sales/{unknown}/resume"), &token)
        .await
        .assert_error(404, "sale_not_found");
}

/// Redis loses a paused sale (a flush, an old snapshot): the API sets it up
/// again from MongoDB on the next buy, and it comes back paused. Once
/// resumed, a loss brings it back running.
#[tokio::test]
async fn a_paused_sale_that_redis_lost_comes_back_paused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    admin_post(&app, &format!("/flash-sales/{id}/pause"), &token)
        .await
        .assert_ok();
    lose(&app, &id).await;
    app.buy(&id, "ann@example.com")
        .await
        .assert_error(409, "sale_paused");
    assert_eq!(
        app.status(&id, None).await.sale.state,
        flashsale::SaleState::Paused
    );

    admin_post(&app, &format!("/flash-sales/{id}/resume"), &token)
        .await
        .assert_ok();
    lose(&app, &id).await;
    let bought = app.buy(&id, "ann@example.com").await;
    assert_eq!(bought.assert_ok()["status"], "queued", "{bought:#?}");
    assert_eq!(
        app.status(&id, None).await.sale.state,
        flashsale::SaleState::Active
    );
}

/// Deletes every Redis key of the sale.
async fn lose(app: &TestApp, sale: &str) {
    let keys = app.sale_keys(sale).await;
    assert!(!keys.is_empty(), "the sale has keys");
    let mut conn = app.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// The restore path sets a lost paused sale up paused in its one SETUP
/// (`PAUSED 1`), so there is no moment in which it runs: buyers arriving
/// together while the worker's GRANT keeps asking are all told
/// `sale_paused`, nobody joins the new queue and nobody is admitted — and
/// no PAUSE is sent after the SETUP.
#[tokio::test]
async fn a_lost_paused_sale_is_set_up_paused_in_one_command() {
    // The module backend: its commands are counted by name.
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 3 }))
            .await,
    );
    for email in ["ann@example.com", "bob@example.com"] {
        app.buy(&id, email).await.assert_ok();
    }
    admin_post(&app, &format!("/flash-sales/{id}/pause"), &token)
        .await
        .assert_ok();
    lose(&app, &id).await;
    app.reset_command_stats().await;

    // The worker asks all along: NOSALE until the sale is back, then
    // `paused`, never an admission.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut worker = app.engine.client().await;
    let (sale, stop) = (id.clone(), done.clone());
    let worker = tokio::spawn(async move {
        let mut answers = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match worker.grant(&sale, 10).await {
                Ok(reply) => answers.push(reply),
                Err(e) => assert!(
                    e.engine_error()
                        .is_some_and(|e| e.code == flashsale::ErrorCode::NoSale),
                    "GRANT failed: {e}"
                ),
            }
        }
        answers
    });
    let buyers: Vec<String> = (0..8).map(|i| format!("buyer{i}@example.com")).collect();
    let replies = futures::future::join_all(buyers.iter().map(|email| app.buy(&id, email))).await;
    for reply in &replies {
        reply.assert_error(409, "sale_paused");
    }
    // Admission keeps asking a little after the sale is back.
    for _ in 0..5 {
        assert_eq!(
            grant(&app, &id, 10).await,
            flashsale::GrantReply::Paused { released: 0 }
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = worker.await.expect("the worker task");
    assert!(
        answers
            .iter()
            .all(|a| *a == flashsale::GrantReply::Paused { released: 0 }),
        "{answers:?}"
    );
    assert!(queue(&app, &id).await.is_empty());
    assert_eq!(
        app.status(&id, None).await.sale.state,
        flashsale::SaleState::Paused
    );
    // One command set it up paused: SETUP (once per restore that ran),
    // and no PAUSE after it.
    let calls = app.command_calls().await;
    assert!(
        calls.get("flashsale.setup").is_some_and(|&n| n >= 1),
        "{calls:?}"
    );
    assert_eq!(calls.get("flashsale.pause"), None, "{calls:?}");
}

/// An admin's change to a paused sale the engine lost sets it up again as
/// MongoDB has it first: still paused, its recorded orders kept.
#[tokio::test]
async fn an_edit_of_a_lost_paused_sale_keeps_it_paused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    admin_post(&app, &format!("/flash-sales/{id}/pause"), &token)
        .await
        .assert_ok();
    lose(&app, &id).await;
    app.request(
        Method::PUT,
        &format!("/flash-sales/{id}"),
        Some(&json!({ "name": "Renamed while lost" })),
        Some(&token),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.status(&id, None).await.sale.state,
        flashsale::SaleState::Paused
    );
    app.buy(&id, "ann@example.com")
        .await
        .assert_error(409, "sale_paused");
    assert!(queue(&app, &id).await.is_empty());
}
