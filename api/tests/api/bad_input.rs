//! Bad input on every route: always a 4xx with the JSON error shape, never a
//! 500, and nothing changed in Redis or MongoDB.

use mongodb::bson::doc;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{rfc3339, sale_id, unix_in, TestApp};

/// What must be untouched after the bad requests: every Redis key with its
/// value dump, and the MongoDB counts.
async fn snapshot(app: &TestApp) -> (Vec<(String, Vec<u8>)>, u64, u64, u64) {
    let mut conn = app.redis().await;
    let mut dump = Vec::new();
    for key in app.redis_keys().await {
        let value: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("DUMP");
        dump.push((key, value));
    }
    (
        dump,
        app.count("flash_sales", doc! {}).await,
        app.count("users", doc! {}).await,
        app.count("orders", doc! {}).await,
    )
}

#[tokio::test]
async fn customer_routes_refuse_bad_input_and_change_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    app.buy(&id, "held@example.com").await.assert_ok();
    app.grant(&id, 1).await;
    app.buy(&id, "queued@example.com").await.assert_ok();
    let before = snapshot(&app).await;

    let long_email = format!("{}@example.com", "a".repeat(130));
    let long_id = "a".repeat(65);
    let bad_bodies: Vec<(Value, &str)> = vec![
        (json!({}), "invalid_body"),
        (json!({ "email": "ann@example.com" }), "invalid_body"),
        (json!({ "flashSaleId": id }), "invalid_body"),
        (json!({ "email": 5, "flashSaleId": id }), "invalid_body"),
        (json!({ "email": null, "flashSaleId": id }), "invalid_body"),
        (
            json!({ "email": ["a@b.co"], "flashSaleId": id }),
            "invalid_body",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": 7 }),
            "invalid_body",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": id, "extra": 1 }),
            "invalid_body",
        ),
        (json!([1, 2]), "invalid_body"),
        (json!("text"), "invalid_body"),
        (
            json!({ "email": "not-an-email", "flashSaleId": id }),
            "invalid_email",
        ),
        (json!({ "email": "", "flashSaleId": id }), "invalid_email"),
        (
            json!({ "email": "a b@example.com", "flashSaleId": id }),
            "invalid_email",
        ),
        (
            json!({ "email": "josé@example.com", "flashSaleId": id }),
            "invalid_email",
        ),
        (
            json!({ "email": "a{x}@example.com", "flashSaleId": id }),
            "invalid_email",
        ),
        (
            json!({ "email": long_email, "flashSaleId": id }),
            "invalid_email",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": "" }),
            "invalid_sale_id",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": "a{b}" }),
            "invalid_sale_id",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": "a b" }),
            "invalid_sale_id",
        ),
        (
            json!({ "email": "ann@example.com", "flashSaleId": long_id }),
            "invalid_sale_id",
        ),
    ];
    for path in ["/orders/buy", "/orders/confirm"] {
        for (body, code) in &bad_bodies {
            let reply = app.post(path, body).await;
            assert_eq!(reply.status.as_u16(), 400, "{path} {body}: {reply:#?}");
            reply.assert_error(400, code);
        }
        // Not JSON, wrong content type, no body, oversized.
        app.post_raw(path, Some("application/json"), b"{\"email\": ".to_vec())
            .await
            .assert_error(400, "invalid_json");
        app.post_raw(path, Some("application/json"), b"{'email': 1}".to_vec())
            .await
            .assert_error(400, "invalid_json");
        app.post_raw(path, Some("application/json"), Vec::new())
            .await
            .assert_error(400, "invalid_json");
        app.post_raw(path, Some("text/plain"), b"{}".to_vec())
            .await
            .assert_error(415, "unsupported_media_type");
        app.post_raw(path, None, b"{}".to_vec())
            .await
            .assert_error(415, "unsupported_media_type");
        let huge = json!({ "email": "a@b.co", "flashSaleId": id, "pad": "x".repeat(64 * 1024) });
        app.post(path, &huge)
            .await
            .assert_error(413, "payload_too_large");
        let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
        let reply = app
            .post_raw(path, Some("application/json"), deep.into_bytes())
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{reply:#?}");
    }
    // Amounts: not money, negative, three places, too large.
    for amount in [
        json!("abc"),
        json!(-1),
        json!("1.234"),
        json!(1.234),
        json!(1e20),
        json!(true),
    ] {
        let body = json!({ "email": "held@example.com", "flashSaleId": id, "totalAmount": amount });
        app.post("/orders/confirm", &body)
            .await
            .assert_error(400, "invalid_body");
    }

    // Query routes.
    let encoded_long = "a".repeat(130);
    for path in ["/orders/position", "/orders/by-email"] {
        for (query, code) in [
            (String::new(), "invalid_query"),
            (format!("?flashSaleId={id}"), "invalid_query"),
            ("?email=ann%40example.com".into(), "invalid_query"),
            (format!("?flashSaleId={id}&email=nope"), "invalid_email"),
            (
                format!("?flashSaleId={id}&email=%F0%9F%98%80%40x.io"),
                "invalid_email",
            ),
            (
                format!("?flashSaleId={id}&email={encoded_long}%40x.io"),
                "invalid_email",
            ),
            (
                "?flashSaleId=a%7Bb&email=ann%40example.com".into(),
                "invalid_sale_id",
            ),
            (
                "?flashSaleId=&email=ann%40example.com".into(),
                "invalid_sale_id",
            ),
        ] {
            app.get(&format!("{path}{query}"))
                .await
                .assert_error(400, code);
        }
        // An unknown sale: no token can be had for it (asking without one
        // is refused first, so nothing is learnt); with one the server
        // signed, it is simply not found.
        let nowhere = "000000000000000000000000";
        let unknown = format!("{path}?flashSaleId={nowhere}&email=ann%40example.com");
        app.get(&unknown)
            .await
            .assert_error(401, "buyer_token_required");
        let token = app.mint_token(nowhere, "ann@example.com", unix_in(3600));
        app.buyer_request(Method::GET, &unknown, None, Some(&token))
            .await
            .assert_error(404, "sale_not_found");
    }
    for bad in ["a%7Bb", "a%20b", &"x".repeat(65), "%FF"] {
        let reply = app.get(&format!("/flash-sales/{bad}/public")).await;
        assert!(reply.status.is_client_error(), "{bad}: {reply:#?}");
        assert!(reply.json["error"]["code"].is_string(), "{bad}: {reply:#?}");
    }

    // Unknown routes and methods.
    app.get("/nope").await.assert_error(404, "not_found");
    app.get("/orders").await.assert_error(404, "not_found");
    app.get("/orders/buy")
        .await
        .assert_error(405, "method_not_allowed");
    app.request(Method::DELETE, "/orders/confirm", None, None)
        .await
        .assert_error(405, "method_not_allowed");
    app.request(
        Method::PATCH,
        &format!("/flash-sales/{id}"),
        None,
        Some(&token),
    )
    .await
    .assert_error(405, "method_not_allowed");

    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn admin_routes_refuse_bad_input_and_change_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 4 }))
            .await,
    );
    let before = snapshot(&app).await;

    let valid = json!({
        "name": "Shoes", "initialQuantity": 10, "pricePerUnit": "49.99",
        "startsAt": rfc3339(-60), "endsAt": rfc3339(3600),
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().map(|o| o.remove(key));
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("name"), "invalid_body"),
        (without("initialQuantity"), "invalid_body"),
        (without("pricePerUnit"), "invalid_body"),
        (without("startsAt"), "invalid_body"),
        (with("name", json!("   ")), "invalid_field"),
        (with("name", json!("x".repeat(201))), "invalid_field"),
        (
            with("description", json!("x".repeat(5001))),
            "invalid_field",
        ),
        (with("initialQuantity", json!(0)), "invalid_field"),
        (
            with("initialQuantity", json!(1_000_000_001u64)),
            "invalid_field",
        ),
        (with("initialQuantity", json!(-1)), "invalid_body"),
        (with("initialQuantity", json!(2.5)), "invalid_body"),
        (with("initialQuantity", json!("10")), "invalid_body"),
        (with("pricePerUnit", json!("49.999")), "invalid_body"),
        (with("pricePerUnit", json!(-5)), "invalid_body"),
        (with("pricePerUnit", json!("1e3")), "invalid_body"),
        (
            with("pricePerUnit", json!("99999999999999")),
            "invalid_body",
        ),
        (with("startsAt", json!("yesterday")), "invalid_body"),
        (with("startsAt", json!(12345)), "invalid_body"),
        (with("holdTtlSeconds", json!(0)), "invalid_field"),
        (with("holdTtlSeconds", json!(86_401)), "invalid_field"),
        (with("rate", json!(0)), "invalid_field"),
        (with("rate", json!(1_000_001)), "invalid_field"),
        (with("maxQueue", json!(0)), "invalid_field"),
        (with("currentQuantity", json!(3)), "invalid_body"),
    ];
    for (body, code) in &cases {
        let reply = app.post_as("/flash-sales", body, &token).await;
        reply.assert_error(400, code);
    }
    // Well-formed, but not a sale the engine can hold: 422 (no schema can
    // say "after startsAt").
    for body in [
        with("endsAt", json!(rfc3339(-3600))),
        with("endsAt", json!(valid["startsAt"].clone())),
        with("startsAt", json!("1960-01-01T00:00:00Z")),
    ] {
        let reply = app.post_as("/flash-sales", &body, &token).await;
        reply.assert_error(422, "invalid_field");
    }
    for (body, code) in [
        (json!({ "initialQuantity": 0 }), "invalid_field"),
        (json!({ "name": "" }), "invalid_field"),
        (json!({ "pricePerUnit": "0.001" }), "invalid_body"),
        (json!({ "rate": "fast" }), "invalid_body"),
        (json!({ "unknown": 1 }), "invalid_body"),
        (json!([]), "invalid_body"),
    ] {
        app.request(
            Method::PUT,
            &format!("/flash-sales/{id}"),
            Some(&body),
            Some(&token),
        )
        .await
        .assert_error(400, code);
    }
    app.request(
        Method::PUT,
        &format!("/flash-sales/{id}"),
        Some(&json!({ "endsAt": rfc3339(-86_400) })),
        Some(&token),
    )
    .await
    .assert_error(422, "invalid_field");
    app.request(
        Method::PUT,
        "/flash-sales/a%7Bb",
        Some(&json!({})),
        Some(&token),
    )
    .await
    .assert_error(400, "invalid_sale_id");
    app.request(
        Method::DELETE,
        &format!("/flash-sales/{id}?force=maybe"),
        None,
        Some(&token),
    )
    .await
    .assert_error(400, "invalid_query");
    app.request(Method::DELETE, "/flash-sales/a%7Bb", None, Some(&token))
        .await
        .assert_error(400, "invalid_sale_id");
    for query in [
        "?page=0",
        "?pageSize=0",
        "?pageSize=101",
        "?page=abc",
        "?page=-1",
        "?page=99999999999",
    ] {
        app.get_as(&format!("/flash-sales{query}"), &token)
            .await
            .assert_error(400, "invalid_query");
        app.get_as(&format!("/orders/admin/list{query}"), &token)
            .await
            .assert_error(400, "invalid_query");
        app.get_as(&format!("/orders/admin/queue/{id}/members{query}"), &token)
            .await
            .assert_error(400, "invalid_query");
    }
    app.get_as("/orders/admin/list?flashSaleId=a%7Bb", &token)
        .await
        .assert_error(400, "invalid_sale_id");
    app.get_as("/orders/admin/queue/a%7Bb/overview", &token)
        .await
        .assert_error(400, "invalid_sale_id");

    // Auth bodies.
    for body in [
        json!({}),
        json!({ "email": "a@b.co" }),
        json!({ "password": "x" }),
        json!({ "email": 1, "password": 2 }),
    ] {
        app.post("/auth/signin", &body)
            .await
            .assert_error(400, "invalid_body");
        app.post_as("/auth/signup", &body, &token)
            .await
            .assert_error(400, "invalid_body");
    }
    let huge = json!({ "email": "a@b.co", "password": "x".repeat(100_000) });
    app.post("/auth/signin", &huge)
        .await
        .assert_error(413, "payload_too_large");
    let long_password = json!({ "email": "new@example.com", "password": "x".repeat(300) });
    app.post_as("/auth/signup", &long_password, &token)
        .await
        .assert_error(400, "invalid_password");

    assert_eq!(snapshot(&app).await, before);
}

/// A spray of junk at every route: whatever comes back is a 4xx in the
/// error shape (or a success), never a 5xx.
#[tokio::test]
async fn no_input_produces_a_server_error() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    let junk: Vec<Vec<u8>> = vec![
        b"null".to_vec(),
        b"0".to_vec(),
        b"-0.0e-999".to_vec(),
        b"\"\\u0000\"".to_vec(),
        b"{\"email\":\"\\u0000@x.io\",\"flashSaleId\":\"\\u0000\"}".to_vec(),
        b"{\"email\":\"a@x.io\",\"flashSaleId\":\"x\",\"totalAmount\":1e309}".to_vec(),
        b"{\"email\":\"a@x.io\",\"flashSaleId\":\"x\",\"totalAmount\":99999999999999999999999}".to_vec(),
        b"{\"name\":\"x\",\"initialQuantity\":18446744073709551616}".to_vec(),
        b"{\"startsAt\":\"+275760-09-13T00:00:00Z\",\"endsAt\":\"+275760-09-14T00:00:00Z\",\"name\":\"x\",\"initialQuantity\":1,\"pricePerUnit\":1}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        "{\"email\":\"é@x.io\",\"password\":\"ünïcødé\"}".as_bytes().to_vec(),
    ];
    let routes: Vec<(Method, String)> = vec![
        (Method::POST, "/orders/buy".into()),
        (Method::POST, "/orders/confirm".into()),
        (Method::POST, "/auth/signin".into()),
        (Method::POST, "/auth/signup".into()),
        (Method::POST, "/flash-sales".into()),
        (Method::PUT, format!("/flash-sales/{id}")),
    ];
    for (method, path) in &routes {
        for body in &junk {
            let reply = app
                .http
                .request(method.clone(), format!("{}{path}", app.url))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("request");
            let status = reply.status();
            let text = reply.text().await.unwrap_or_default();
            assert!(
                status.as_u16() < 500,
                "{method} {path} {body:?}: {status} {text}"
            );
            if !status.is_success() {
                let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(json["error"]["code"].is_string(), "{method} {path}: {text}");
            }
        }
    }
    for query in [
        "?flashSaleId=%00&email=%00",
        "?flashSaleId=x&email=a%40x.io&flashSaleId=y",
        "?flashSaleId[]=x&email=a@x.io",
        "?%ZZ",
    ] {
        for path in ["/orders/position", "/orders/by-email", "/orders/admin/list"] {
            let reply = app.get_as(&format!("{path}{query}"), &token).await;
            assert!(reply.status.as_u16() < 500, "{path}{query}: {reply:#?}");
        }
    }
}
