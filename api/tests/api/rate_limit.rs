//! Per-IP rate limits: 429 with Retry-After and the JSON shape; a spoofed
//! X-Forwarded-For from an untrusted peer changes nothing; behind a trusted
//! proxy, each forwarded client has its own bucket.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::Backend;

use crate::support::{Reply, TestApp};

async fn buy_from(app: &TestApp, forwarded_for: Option<&str>) -> Reply {
    let mut request = app
        .http
        .post(format!("{}/orders/buy", app.url))
        .json(&json!({ "email": "a@x.io", "flashSaleId": "no-such-sale" }));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        json: serde_json::from_str(&text).unwrap_or_default(),
        headers,
        text,
    }
}

fn strict(settings: &mut api::Settings) {
    settings.rate_limit_buy_per_second = 1;
    settings.rate_limit_buy_burst = 2;
    settings.rate_limit_auth_per_minute = 1;
    settings.rate_limit_auth_burst = 1;
}

#[tokio::test]
async fn buy_and_auth_are_limited_per_ip_and_spoofing_does_not_help() {
    let app = TestApp::spawn_with(Backend::Module, strict).await;
    // The burst: answered normally (the sale does not exist).
    for _ in 0..2 {
        buy_from(&app, None)
            .await
            .assert_error(404, "sale_not_found");
    }
    let limited = buy_from(&app, None).await;
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!(retry >= 1);
    // A made-up X-Forwarded-For from an untrusted peer is ignored.
    for fake in ["1.2.3.4", "5.6.7.8, 9.9.9.9", "::1"] {
        buy_from(&app, Some(fake))
            .await
            .assert_error(429, "rate_limited");
    }
    // Confirm shares the buy bucket.
    app.post("/orders/confirm", &json!({}))
        .await
        .assert_error(429, "rate_limited");
    // Other routes are not limited.
    app.get("/healthz").await.assert_ok();

    // Auth has its own, stricter bucket.
    app.post(
        "/auth/signin",
        &json!({ "email": "x@x.io", "password": "wrong-password" }),
    )
    .await
    .assert_error(401, "invalid_credentials");
    app.post(
        "/auth/signin",
        &json!({ "email": "x@x.io", "password": "wrong-password" }),
    )
    .await
    .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        strict(s);
        s.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
    })
    .await;
    // The bucket refills one request a second, so the story only holds if
    // it is told within that second; on a machine too busy for that, it is
    // told again by clients not seen before.
    for attempt in 1..=3u8 {
        let client = format!("203.0.113.{}", attempt * 2);
        let neighbour = format!("203.0.113.{}", attempt * 2 + 1);
        let started = Instant::now();
        let mut replies = Vec::new();
        for forwarded_for in [
            client.clone(),
            client.clone(),
            client.clone(),
            // Another client behind the same proxy is not affected...
            neighbour,
            // ...and a client cannot escape by prepending addresses: the
            // proxy's appended entry (the last) is the one believed.
            format!("198.51.100.7, {client}"),
        ] {
            replies.push(buy_from(&app, Some(&forwarded_for)).await);
        }
        let took = started.elapsed();
        let expected = [
            (404, "sale_not_found"),
            (404, "sale_not_found"),
            (429, "rate_limited"),
            (404, "sale_not_found"),
            (429, "rate_limited"),
        ];
        let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        if took < Duration::from_millis(900)
            || attempt == 3
            || statuses == [404, 404, 429, 404, 429]
        {
            for (reply, (status, code)) in replies.iter().zip(expected) {
                reply.assert_error(status, code);
            }
            return;
        }
    }
}
