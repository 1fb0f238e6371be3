//! A sale's live figures pushed to admins (`GET /flash-sales/{saleId}/live`,
//! Server-Sent Events): the figures at once and on every change, admins
//! only, a cap per admin whose slots come back when a client goes away, and
//! the same per-sale feed as the buyers' streams, so more viewers do not
//! mean more engine reads (counted with Redis's `INFO commandstats`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{sale_id, EventStream, TestApp};

/// An open live stream and what has been read of it.
struct Live(EventStream);

async fn live_request(app: &TestApp, sale: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}/flash-sales/{sale}/live", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("GET /flash-sales/{saleId}/live")
}

impl Live {
    async fn open(app: &TestApp, sale: &str, token: &str) -> Live {
        let response = live_request(app, sale, Some(token)).await;
        Live(EventStream::new(response, "overview"))
    }

    async fn next(&mut self) -> Option<Value> {
        self.0.next().await
    }
}

/// The figures the dashboard shows, from one event.
fn figures(event: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        event[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {event}"))
    };
    (n("totalInQueue"), n("holds"), n("sold"), n("available"))
}

#[tokio::test]
async fn an_admin_sees_the_figures_at_once_and_each_change_pushed() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 5 }))
            .await,
    );
    let mut live = Live::open(&app, &id, &token).await;
    let first = live.next().await.expect("the first figures");
    assert_eq!(first["flashSaleId"], id.as_str());
    assert_eq!(first["status"], "active");
    assert_eq!(first["stock"], 5);
    assert_eq!(figures(&first), (0, 0, 0, 5));

    // A buyer queues, is admitted, buys: each step arrives by itself.
    app.buy(&id, "ann@x.io").await.assert_ok();
    let queued = live.next().await.expect("the queue");
    assert_eq!(figures(&queued), (1, 0, 0, 5), "{queued}");
    app.admit(&id, 1).await;
    let held = live.next().await.expect("the hold");
    assert_eq!(figures(&held), (0, 1, 0, 4), "{held}");
    app.confirm(&id, "ann@x.io").await.assert_ok();
    let sold = live.next().await.expect("the sale");
    assert_eq!(figures(&sold), (0, 0, 1, 4), "{sold}");

    // A pause is a change of state.
    app.post_as(&format!("/flash-sales/{id}/pause"), &json!({}), &token)
        .await
        .assert_ok();
    let paused = live.next().await.expect("paused");
    assert_eq!(paused["status"], "paused", "{paused}");
}

#[tokio::test]
async fn the_live_stream_is_for_admins_of_known_sales() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    let path = format!("/flash-sales/{id}/live");
    app.get(&path).await.assert_error(401, "unauthorized");
    app.get_as(&path, "not-a-token")
        .await
        .assert_error(401, "unauthorized");
    // A signed-out token no longer opens it.
    let other = app
        .sign_in(crate::support::ADMIN_EMAIL, crate::support::ADMIN_PASSWORD)
        .await;
    let other = other.assert_ok()["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_string();
    let out = app
        .request(reqwest::Method::POST, "/auth/signout", None, Some(&other))
        .await;
    assert_eq!(out.status.as_u16(), 204, "{out:#?}");
    app.get_as(&path, &other)
        .await
        .assert_error(401, "unauthorized");
    app.get_as("/flash-sales/000000000000000000000000/live", &token)
        .await
        .assert_error(404, "sale_not_found");
    app.get_as("/flash-sales/not%20a%20sale/live", &token)
        .await
        .assert_error(400, "invalid_sale_id");
}

#[tokio::test]
async fn an_admin_holds_a_few_streams_and_gets_them_back_when_clients_go() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    let cap = api::routes::admin_live::MAX_STREAMS_PER_ADMIN as usize;
    let mut open = Vec::new();
    for _ in 0..cap {
        open.push(Live::open(&app, &id, &token).await);
    }
    let refused = app.get_as(&format!("/flash-sales/{id}/live"), &token).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some(), "{refused:#?}");
    // Clients gone (connections closed): their slots come back.
    drop(open);
    let again = tests::wait_for_every(
        "a stream after the others closed",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let response = live_request(&app, &id, Some(&token)).await;
            (response.status() == 200).then_some(response)
        },
    )
    .await;
    drop(again);
}

/// STATUS calls during `window`, counted from a reset.
async fn status_calls_over(app: &TestApp, window: Duration) -> u64 {
    app.reset_command_stats().await;
    tokio::time::sleep(window).await;
    app.engine_reads().await
}

#[tokio::test]
async fn more_viewers_of_a_sale_cost_the_engine_no_more_reads() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    // A queue, so the buyer below has a place the feed's tickets tell.
    for buyer in ["a@x.io", "b@x.io", "c@x.io"] {
        app.buy(&id, buyer).await.assert_ok();
    }
    let window = Duration::from_secs(2);

    let mut one = Live::open(&app, &id, &token).await;
    one.next().await.expect("the first figures");
    let alone = status_calls_over(&app, window).await;
    // The feed reads the sale a few times a second, whoever follows it.
    assert!(
        alone >= 2,
        "{alone} STATUS calls in {window:?} with one stream"
    );

    let mut two = Live::open(&app, &id, &token).await;
    two.next().await.expect("the first figures");
    let buyer_token = app.token_of(&id, "c@x.io").expect("c's token");
    let mut buyer = reqwest::Client::new()
        .get(format!(
            "{}/orders/events?flashSaleId={id}&email=c%40x.io",
            app.url
        ))
        .header(api::buyer_token::HEADER, buyer_token)
        .send()
        .await
        .expect("GET /orders/events");
    assert_eq!(buyer.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(15), buyer.chunk())
        .await
        .expect("the buyer's first state")
        .expect("the stream reads");
    assert!(first.is_some());
    let three = status_calls_over(&app, window).await;
    // A timer per connection would make this about three times `alone`;
    // generous bounds, as the machine may be slow.
    assert!(
        three <= alone + alone / 2 + 3,
        "{three} STATUS calls with three streams vs {alone} with one"
    );

    // The figures still move for both admins.
    app.admit(&id, 1).await;
    for live in [&mut one, &mut two] {
        let held = live.next().await.expect("the hold");
        assert_eq!(held["holds"], 1, "{held}");
    }
    drop(buyer);
}
