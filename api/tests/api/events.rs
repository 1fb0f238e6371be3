//! A buyer's state pushed over Server-Sent Events: the first state at once,
//! each new place as the queue moves, the hold when admitted, and the end
//! (expired, purchased) after which the stream closes.

use serde_json::{json, Value};

use crate::support::{encode, sale_id, unix_in, EventStream, TestApp};

async fn events_request(
    app: &TestApp,
    sale: &str,
    email: &str,
    token: Option<&str>,
) -> reqwest::Result<reqwest::Response> {
    let url = format!(
        "{}/orders/events?flashSaleId={sale}&email={}",
        app.url,
        encode(email)
    );
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = token {
        request = request.header(api::buyer_token::HEADER, token);
    }
    request.send().await
}

/// The `status` events of one buyer's stream.
struct Events(EventStream);

impl Events {
    /// The buyer's stream, with their token in the header.
    async fn open(app: &TestApp, sale: &str, email: &str) -> Events {
        let token = app.token_of(sale, email).expect("the buyer's token");
        Events::open_with(app, sale, email, Some(&token)).await
    }

    /// With `token` in the header.
    async fn open_with(app: &TestApp, sale: &str, email: &str, token: Option<&str>) -> Events {
        let response = events_request(app, sale, email, token)
            .await
            .expect("GET /orders/events");
        Events(EventStream::new(response, "status"))
    }

    async fn next(&mut self) -> Option<Value> {
        self.0.next().await
    }
}

#[tokio::test]
async fn a_buyer_follows_their_place_then_their_hold_until_it_expires() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 5, "holdTtlSeconds": 1 }))
            .await,
    );
    for buyer in ["a@x.io", "b@x.io", "c@x.io"] {
        app.buy(&id, buyer).await.assert_ok();
    }
    let mut events = Events::open(&app, &id, "c@x.io").await;
    let first = events.next().await.expect("the first state");
    assert_eq!(
        (first["status"].as_str(), first["position"].as_u64()),
        (Some("queued"), Some(3))
    );

    app.admit(&id, 1).await;
    let moved = events.next().await.expect("a new place");
    assert_eq!(
        (moved["status"].as_str(), moved["position"].as_u64()),
        (Some("queued"), Some(2))
    );
    // Someone joining behind is no news for c.
    app.buy(&id, "d@x.io").await.assert_ok();
    app.admit(&id, 2).await;
    let admitted = events.next().await.expect("admitted");
    assert_eq!(admitted["status"], "ready", "{admitted}");
    assert_eq!(admitted["holdTtlSec"], 1);

    // The hold runs out unconfirmed: expired, and the stream ends.
    let expired = events.next().await.expect("expired");
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(events.next().await, None);
}

#[tokio::test]
async fn the_stream_ends_with_the_purchase_and_an_outsider_gets_one_event() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 5 }))
            .await,
    );
    app.buy(&id, "a@x.io").await.assert_ok();
    let mut events = Events::open(&app, &id, "a@x.io").await;
    assert_eq!(events.next().await.expect("first")["status"], "queued");
    app.admit(&id, 1).await;
    assert_eq!(events.next().await.expect("ready")["status"], "ready");
    app.confirm(&id, "a@x.io").await.assert_ok();
    // The purchase itself is the buyer's own request; the stream learns it
    // by the hold's end at the latest, or when the buyer reconnects.
    let mut again = Events::open(&app, &id, "a@x.io").await;
    let bought = again.next().await.expect("purchased");
    assert_eq!(bought["status"], "purchased");
    assert!(bought["orderId"].is_string());
    assert_eq!(again.next().await, None);

    // Someone not in the sale (with a token the server signed, as a buyer
    // whose place is gone would have): one event.
    let z = app.mint_token(&id, "z@x.io", unix_in(3600));
    let mut outsider = Events::open_with(&app, &id, "z@x.io", Some(&z)).await;
    assert_eq!(outsider.next().await.expect("one event")["status"], "none");
    assert_eq!(outsider.next().await, None);
    // An unknown sale is refused before any stream starts.
    let nowhere = "000000000000000000000000";
    let token = app.mint_token(nowhere, "a@x.io", unix_in(3600));
    app.buyer_request(
        reqwest::Method::GET,
        &format!("/orders/events?flashSaleId={nowhere}&email=a%40x.io"),
        None,
        Some(&token),
    )
    .await
    .assert_error(404, "sale_not_found");
}

#[tokio::test]
async fn a_stream_needs_the_buyers_token() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    let victim = app.buy_token(&id, "victim@x.io").await;
    app.buy_token(&id, "mallory@x.io").await;
    let mallory = app.token_of(&id, "mallory@x.io");
    let path = format!("/orders/events?flashSaleId={id}&email=victim%40x.io");
    let get = |token: Option<String>| {
        let path = path.clone();
        let app = &app;
        async move {
            app.buyer_request(reqwest::Method::GET, &path, None, token.as_deref())
                .await
        }
    };
    get(None).await.assert_error(401, "buyer_token_required");
    get(mallory.clone())
        .await
        .assert_error(403, "buyer_token_mismatch");
    get(Some(format!("{victim}x")))
        .await
        .assert_error(401, "invalid_buyer_token");
    // Never from the URL, where proxies log it: even the victim's own
    // token there is no token at all.
    app.get(&format!("{path}&buyerToken={}", encode(&victim)))
        .await
        .assert_error(401, "buyer_token_required");
    let mut mine = Events::open_with(&app, &id, "victim@x.io", Some(&victim)).await;
    assert_eq!(mine.next().await.expect("first")["status"], "queued");
}
