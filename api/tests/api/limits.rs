//! Limits on every public route: the buyer reads (position, by-email,
//! events) and the public reads (the sale list and a sale's public view)
//! per client, open event streams per client, buys per IPv6 /64 and /48,
//! and the short cache that makes N public reads cost far fewer than N
//! engine calls (counted with Redis's `INFO commandstats`).

use std::time::Duration;

use serde_json::{json, Value};
use tests::Backend;

use crate::ops::send;
use crate::support::{sale_id, Reply, TestApp};

#[track_caller]
fn assert_limited(reply: &Reply) {
    reply.assert_error(429, "rate_limited");
    let retry: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After seconds in {reply:#?}"));
    assert!(retry >= 1, "{reply:#?}");
}

async fn sale(app: &TestApp) -> String {
    let token = app.admin_token().await;
    sale_id(&app.create_sale(&token, json!({})).await)
}

#[tokio::test]
async fn buyer_reads_are_limited_per_client_with_one_bucket() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.rate_limit_read_per_second = Some(1);
        s.rate_limit_read_burst = Some(3);
    })
    .await;
    let id = sale(&app).await;
    app.buy(&id, "ann@x.io").await.assert_ok();
    // The burst, whatever each answers...
    for _ in 0..3 {
        let reply = app.position(&id, "ann@x.io").await;
        assert_ne!(reply.status, 429, "{reply:#?}");
    }
    // ...then 429 on every buyer read: they share the client's bucket.
    assert_limited(&app.position(&id, "ann@x.io").await);
    assert_limited(&app.by_email(&id, "ann@x.io").await);
    assert_limited(
        &app.get(&format!("/orders/events?flashSaleId={id}&email=ann%40x.io"))
            .await,
    );
    // Buying and the public reads have buckets of their own.
    app.buy(&id, "bob@x.io").await.assert_ok();
    app.get(&format!("/flash-sales/{id}/public"))
        .await
        .assert_ok();
}

#[tokio::test]
async fn public_reads_are_limited_per_client_but_not_the_admin_catalogue() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.rate_limit_public_per_second = 1;
        s.rate_limit_public_burst = 2;
    })
    .await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    app.get("/public/flash-sales").await.assert_ok();
    app.get(&format!("/flash-sales/{id}/public"))
        .await
        .assert_ok();
    assert_limited(&app.get("/public/flash-sales").await);
    assert_limited(&app.get(&format!("/flash-sales/{id}/public")).await);
    // The lottery's published draw and readiness are public reads too;
    // liveness costs nothing and is not limited.
    assert_limited(&app.get(&format!("/flash-sales/{id}/public/draw")).await);
    assert_limited(&app.get("/readyz").await);
    for _ in 0..5 {
        app.get("/healthz").await.assert_ok();
    }
    // A malformed id is limited too (the limit comes before any work).
    assert_limited(&app.get("/flash-sales/%20/public").await);
    // The admin catalogue shares the router, not the limit.
    for _ in 0..5 {
        app.get_as("/flash-sales", &token).await.assert_ok();
        app.get_as(&format!("/flash-sales/{id}"), &token)
            .await
            .assert_ok();
    }
    // The defaults let one honest customer page poll comfortably.
    let defaults = api::Settings::defaults().expect("defaults");
    assert!(defaults.rate_limit_public_per_second >= 5);
    assert!(defaults.rate_limit_public_burst >= 20);
    let (per_second, burst) = defaults.rate_limit_read();
    assert!(per_second >= 5 && burst >= 20, "{per_second}/s, {burst}");
}

/// An open `GET /orders/events` for `email`, or the refusal.
async fn open_stream(app: &TestApp, sale: &str, email: &str) -> Result<reqwest::Response, Reply> {
    let mut request = app
        .http
        .get(format!(
            "{}/orders/events?flashSaleId={sale}&email={}",
            app.url,
            email.replace('@', "%40")
        ))
        .header("accept", "text/event-stream");
    if let Some(token) = app.token_of(sale, email) {
        request = request.header("x-buyer-token", token);
    }
    let response = request.send().await.expect("request");
    if response.status() == 200 {
        return Ok(response);
    }
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Err(Reply {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    })
}

#[tokio::test]
async fn open_event_streams_are_capped_per_client() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.rate_limit_event_streams = Some(2);
    })
    .await;
    let id = sale(&app).await;
    for email in ["a@x.io", "b@x.io", "c@x.io"] {
        app.buy(&id, email).await.assert_ok();
    }
    let first = open_stream(&app, &id, "a@x.io").await.expect("stream 1");
    let second = open_stream(&app, &id, "b@x.io").await.expect("stream 2");
    let refused = open_stream(&app, &id, "c@x.io")
        .await
        .expect_err("a third stream is refused");
    assert_limited(&refused);
    assert!(refused.text.contains("event streams"), "{refused:#?}");
    // Other routes are not affected by open streams.
    app.position(&id, "c@x.io").await.assert_ok();

    // A closed stream gives its slot back.
    drop(first);
    tests::wait_for("a slot freed", Duration::from_secs(10), || async {
        open_stream(&app, &id, "c@x.io").await.ok()
    })
    .await;
    drop(second);
}

async fn buy_as(app: &TestApp, client: &str) -> Reply {
    send(
        app.http
            .post(format!("{}/orders/buy", app.url))
            .header("x-forwarded-for", client)
            .json(&json!({ "email": "a@x.io", "flashSaleId": "no-such-sale" })),
    )
    .await
}

#[tokio::test]
async fn buys_are_limited_per_ipv6_64_and_per_48() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
        s.rate_limit_buy_per_second = 1;
        s.rate_limit_buy_burst = 2;
        // The /48 gets twice a client's quota: a burst of 4.
        s.rate_limit_ipv6_network_factor = 2;
    })
    .await;
    let not_limited = |reply: Reply| reply.assert_error(404, "sale_not_found");
    // One /64: its burst, then 429, whichever address of the /64 asks.
    not_limited(buy_as(&app, "2001:db8:1:1::1").await);
    not_limited(buy_as(&app, "2001:db8:1:1::2").await);
    assert_limited(&buy_as(&app, "2001:db8:1:1:ffff::3").await);
    // Another /64 of the same /48: its own client bucket...
    not_limited(buy_as(&app, "2001:db8:1:2::1").await);
    not_limited(buy_as(&app, "2001:db8:1:2::2").await);
    // ...but the /48 has had its 4 now: a fresh /64 in it is refused.
    assert_limited(&buy_as(&app, "2001:db8:1:3::1").await);
    assert_limited(&buy_as(&app, "2001:db8:1:ffff::1").await);
    // Another /48 is not affected; nor is IPv4.
    not_limited(buy_as(&app, "2001:db8:2:1::1").await);
    not_limited(buy_as(&app, "203.0.113.5").await);
}

#[tokio::test]
async fn public_reads_are_cached_so_fifty_cost_a_few_engine_calls() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        // Long enough that a slow machine's 50 reads fall in a few periods.
        s.public_cache_ms = 1000;
        s.rate_limit_public_per_second = 1_000;
        s.rate_limit_public_burst = 1_000;
    })
    .await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    // A few more sales, so the list is several STATUS calls per answer.
    for _ in 0..3 {
        app.create_sale(&token, json!({})).await;
    }

    // Uncached (the admin view): one engine read per request, which shows
    // what the count measures.
    app.reset_command_stats().await;
    for _ in 0..10 {
        app.get_as(&format!("/flash-sales/{id}"), &token)
            .await
            .assert_ok();
    }
    let uncached = app.engine_reads().await;
    assert!(uncached >= 10, "{uncached} engine reads for 10 admin reads");

    app.reset_command_stats().await;
    let first = app.get(&format!("/flash-sales/{id}/public")).await;
    let view = first.assert_ok().clone();
    let mut list = None;
    for _ in 0..50 {
        let reply = app.get(&format!("/flash-sales/{id}/public")).await;
        assert_eq!(reply.assert_ok()["id"], view["id"]);
        assert!(reply.header("age").is_some(), "{reply:#?}");
        let reply = app.get("/public/flash-sales").await;
        assert_eq!(reply.assert_ok()["items"].as_array().map(Vec::len), Some(4));
        list = Some(reply.json);
    }
    let cached = app.engine_reads().await;
    // 101 reads; uncached they would be 1 + 50 + 50 × 4 = 251 STATUS calls.
    assert!(
        cached <= 30,
        "{cached} engine reads for 101 public reads: {list:?}"
    );

    // Other spellings of the same path are the same sale, and the same
    // entry: `%36` for a `6`, and so on (else each would be a fresh read).
    app.reset_command_stats().await;
    for i in 0..id.len() {
        let spelled: String = id
            .char_indices()
            .map(|(j, c)| {
                if j == i {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect();
        let reply = app.get(&format!("/flash-sales/{spelled}/public")).await;
        assert_eq!(reply.assert_ok()["id"], view["id"]);
    }
    let respelled = app.engine_reads().await;
    assert!(
        respelled <= 6,
        "{respelled} engine reads for {} spellings of one sale's path",
        id.len()
    );

    // The cache is short: a change shows within the period.
    let mut client = app.engine.client().await;
    client.enqueue(&id, "late@x.io").await.expect("ENQUEUE");
    tests::wait_for("the new queue length", Duration::from_secs(5), || async {
        let reply = app.get(&format!("/flash-sales/{id}/public")).await;
        (reply.json["queueLength"] == 1).then_some(())
    })
    .await;
}
