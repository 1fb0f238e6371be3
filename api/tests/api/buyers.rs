//! Buyer tokens and identities (issue 13, items 1 and 2): every attack of a
//! stranger who knows a buyer's address fails and changes nothing, honest
//! buyers are unaffected, and one person is one place however they spell
//! their address.

use mongodb::bson::doc;
use reqwest::Method;
use serde_json::{json, Value};
use tests::Backend;

use crate::support::{self, sale_id, unix_in, TestApp};

const VICTIM: &str = "victim@x.io";
const MALLORY: &str = "mallory@x.io";

fn holding(app_status: &flashsale::StatusReply) -> bool {
    matches!(app_status.user, Some(flashsale::UserStatus::Holding { .. }))
}

#[tokio::test]
async fn a_stranger_cannot_watch_confirm_or_read_for_a_buyer() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&admin, json!({ "initialQuantity": 5 }))
            .await,
    );
    let other_sale = sale_id(&app.create_sale(&admin, json!({})).await);
    let victim = app.buy_token(&id, VICTIM).await;
    let mallory = app.buy_token(&id, MALLORY).await;
    // The victim's own token for another sale.
    let elsewhere = app.buy_token(&other_sale, VICTIM).await;
    assert_ne!(victim, elsewhere);
    assert_eq!(app.admit(&id, 1).await, vec![VICTIM.to_string()]);

    let parts: Vec<&str> = victim.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    let expired = app.mint_token(&id, VICTIM, unix_in(-1));
    let unknown_key = victim.replacen(parts[0], "nokey", 1);
    let refusals: Vec<(Option<&str>, u16, &str)> = vec![
        (None, 401, "buyer_token_required"),
        (Some(""), 401, "buyer_token_required"),
        (Some("garbage"), 401, "invalid_buyer_token"),
        (Some(&tampered), 401, "invalid_buyer_token"),
        (Some(&expired), 401, "invalid_buyer_token"),
        (Some(&unknown_key), 401, "invalid_buyer_token"),
        (Some(&mallory), 403, "buyer_token_mismatch"),
        (Some(&elsewhere), 403, "buyer_token_mismatch"),
    ];
    for (token, status, code) in &refusals {
        let what = format!("{token:?}");
        app.position_with(&id, VICTIM, *token)
            .await
            .assert_error(*status, code);
        app.confirm_with(&id, VICTIM, *token)
            .await
            .assert_error(*status, code);
        app.by_email_with(&id, VICTIM, *token)
            .await
            .assert_error(*status, code);
        // The same address in another spelling is the same buyer.
        app.confirm_with(&id, " VICTIM+x@X.io", *token)
            .await
            .assert_error(*status, code);
        // Nothing changed: the victim still holds, nothing was sold.
        let now = app.status(&id, Some(VICTIM)).await;
        assert!(holding(&now), "{what}: {now:?}");
        assert_eq!(now.sale.sold, 0, "{what}");
    }
    // The victim's token presented on a buy for another address is refused
    // too (and queues nobody).
    app.buy_with(&id, "someone-new@x.io", Some(&victim))
        .await
        .assert_error(403, "buyer_token_mismatch");
    assert_eq!(app.status(&id, None).await.sale.queued, 1);

    // The honest buyer is unaffected.
    let shown = app.position(&id, VICTIM).await;
    assert_eq!(shown.assert_ok()["status"], "ready");
    let confirmed = app.confirm(&id, VICTIM).await;
    let order = confirmed.assert_ok()["orderId"].clone();
    assert_eq!(
        app.by_email(&id, VICTIM).await.assert_ok()["orderId"],
        order
    );
    assert_eq!(app.status(&id, None).await.sale.sold, 1);
    // Still no way in for mallory, now that there is an order to read.
    app.by_email_with(&id, VICTIM, Some(&mallory))
        .await
        .assert_error(403, "buyer_token_mismatch");
}

#[tokio::test]
async fn a_second_buy_answers_the_state_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(&app.create_sale(&admin, json!({})).await);
    app.buy_token(&id, "first@x.io").await;
    let token = app.buy_token(&id, VICTIM).await;

    // A stranger "buys" for the victim: told they are in, nothing more.
    let again = app.buy_with(&id, VICTIM, None).await;
    let body = again.assert_ok();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["buyerToken"], Value::Null);
    assert_eq!(body["position"], Value::Null);
    assert_eq!(body["estimatedWaitSec"], Value::Null);
    // The victim, with the token, gets the full answer (and no new token).
    let mine = app.buy_with(&id, VICTIM, Some(&token)).await;
    assert_eq!(mine.assert_ok()["position"], 2);
    assert_eq!(mine.json["buyerToken"], Value::Null);

    // Holding, then bought: still the state only.
    app.admit(&id, 2).await;
    let held = app.buy_with(&id, VICTIM, None).await;
    assert_eq!(held.assert_ok()["status"], "ready");
    assert_eq!(held.json["holdTtlSec"], Value::Null);
    assert_eq!(held.json["buyerToken"], Value::Null);
    app.confirm(&id, VICTIM).await.assert_ok();
    let bought = app.buy_with(&id, VICTIM, None).await;
    assert_eq!(bought.assert_ok()["status"], "purchased");
    assert_eq!(bought.json["orderId"], Value::Null);
    assert_eq!(bought.json["buyerToken"], Value::Null);

    // The client key: a buy whose answer was lost, repeated with the same
    // key, gets the token again; another key, or none, gets nothing.
    let key = "0123456789abcdef0123456789abcdef";
    let buy_keyed = |email: &'static str, key: &'static str| {
        let body = json!({ "email": email, "flashSaleId": id, "clientKey": key });
        let app = &app;
        async move {
            app.buyer_request(Method::POST, "/orders/buy", Some(&body), None)
                .await
        }
    };
    let first = buy_keyed("keyed@x.io", key).await;
    let token = first.assert_ok()["buyerToken"].clone();
    assert!(token.is_string(), "{first:#?}");
    let retried = buy_keyed("Keyed@X.io", key).await;
    assert_eq!(retried.assert_ok()["buyerToken"], token);
    assert_eq!(retried.json["position"], first.json["position"]);
    let guessed = buy_keyed("keyed@x.io", "fedcba9876543210fedcba9876543210").await;
    assert_eq!(guessed.assert_ok()["buyerToken"], Value::Null);
    assert_eq!(
        app.buy_with(&id, "keyed@x.io", None).await.json["buyerToken"],
        Value::Null
    );
    buy_keyed("keyed@x.io", "short")
        .await
        .assert_error(400, "invalid_client_key");

    // Many buys racing for one new address: one token between them.
    let racers = (0..8).map(|_| app.buy_with(&id, "racer@x.io", None));
    let replies = futures::future::join_all(racers).await;
    let tokens = replies
        .iter()
        .filter(|r| r.assert_ok()["buyerToken"].is_string())
        .count();
    assert_eq!(tokens, 1, "{replies:#?}");
}

/// After a Redis loss (the place and the record of who got a token gone),
/// the buyer rejoins with their token; a stranger's buy after that gets no
/// token for them.
#[tokio::test]
async fn a_buyer_rejoining_with_their_token_keeps_strangers_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(&app.create_sale(&admin, json!({})).await);
    let token = app.buy_token(&id, VICTIM).await;

    let mut lost = app.sale_keys(&id).await;
    lost.push(format!("flashsale-api:{{{id}}}:buyer-tokens"));
    let mut conn = app.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(&lost)
        .query_async(&mut conn)
        .await
        .expect("DEL");

    let rejoined = app.buy_with(&id, VICTIM, Some(&token)).await;
    assert_eq!(rejoined.assert_ok()["status"], "queued");
    assert_eq!(rejoined.json["position"], 1);
    let stranger = app.buy_with(&id, VICTIM, None).await;
    assert_eq!(stranger.assert_ok()["status"], "queued");
    assert_eq!(stranger.json["buyerToken"], Value::Null, "{stranger:#?}");
    assert_eq!(stranger.json["position"], Value::Null);
    // The token still works for its owner.
    app.position_with(&id, VICTIM, Some(&token))
        .await
        .assert_ok();
}

#[tokio::test]
async fn tags_case_and_spaces_are_one_person_with_one_place() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&admin, json!({ "initialQuantity": 5 }))
            .await,
    );
    let bob = app.buy_token(&id, "bob@x.com").await;
    for alias in ["bob+1@x.com", "Bob@X.com ", "  BOB+sale@x.COM"] {
        let reply = app.buy_with(&id, alias, None).await;
        assert_eq!(reply.assert_ok()["status"], "queued", "{alias}");
        assert_eq!(reply.json["buyerToken"], Value::Null, "{alias}");
        assert_eq!(reply.json["size"], 1, "{alias}");
        // bob's token is good for every spelling of bob.
        let shown = app.position_with(&id, alias, Some(&bob)).await;
        assert_eq!(shown.assert_ok()["position"], 1, "{alias}");
    }
    let status = app.status(&id, Some("bob@x.com")).await;
    assert_eq!(status.sale.queued, 1);
    assert_eq!(
        status.user,
        Some(flashsale::UserStatus::Queued { position: 1 })
    );
    app.admit(&id, 1).await;
    let confirmed = app.confirm_with(&id, " Bob+2@X.com", Some(&bob)).await;
    // The order keeps the address as typed (trimmed).
    assert_eq!(confirmed.assert_ok()["email"], "Bob+2@X.com");
    // One unit for the person, whatever the spelling.
    app.buy_with(&id, "bob+3@x.com", Some(&bob))
        .await
        .assert_ok();
    assert_eq!(app.status(&id, None).await.sale.sold, 1);
    let again = app.confirm_with(&id, "bob+3@x.com", Some(&bob)).await;
    assert_eq!(again.assert_ok()["created"], false);
    assert_eq!(again.json["email"], "Bob+2@X.com");
    assert_eq!(app.status(&id, None).await.sale.sold, 1);
    // Before the worker copied it (the engine's outbox), and after (as the
    // worker writes it: the typed address and the identity).
    let order = app.by_email_with(&id, "bob@x.com", Some(&bob)).await;
    assert_eq!(order.assert_ok()["userEmail"], "Bob+2@X.com");
    assert_eq!(order.json["persisted"], false);
    let order_id = order.json["orderId"].as_str().expect("an order id");
    let now = mongodb::bson::DateTime::now();
    app.db
        .collection::<mongodb::bson::Document>("orders")
        .insert_one(doc! {
            "_id": order_id, "userEmail": "Bob+2@X.com", "buyerId": "bob@x.com",
            "flashSaleId": &id, "paymentStatus": "paid", "totalAmount": 4999_i64,
            "createdAt": now, "updatedAt": now,
        })
        .await
        .expect("insert order");
    let order = app.by_email_with(&id, "BOB+4@x.com", Some(&bob)).await;
    assert_eq!(order.assert_ok()["userEmail"], "Bob+2@X.com");
    assert_eq!(order.json["persisted"], true);
}

#[tokio::test]
async fn with_tag_stripping_off_tagged_addresses_are_separate_buyers() {
    let app = TestApp::spawn_with(Backend::Module, |s| s.identity_strip_plus_tags = false).await;
    let admin = app.admin_token().await;
    let id = sale_id(&app.create_sale(&admin, json!({})).await);
    app.buy_token(&id, "bob@x.com").await;
    app.buy_token(&id, "bob+1@x.com").await;
    assert_eq!(app.status(&id, None).await.sale.queued, 2);
    // Case and spaces still do not make another person.
    let same = app.buy_with(&id, " BOB@x.com", None).await;
    assert_eq!(same.assert_ok()["buyerToken"], Value::Null);
}

const OLD: &str = "old:an-old-secret-of-at-least-thirty-two-bytes";
const NEW: &str = "new:the-new-secret-of-at-least-thirty-two-bytes!";

#[tokio::test]
async fn a_token_of_an_older_key_verifies_while_that_key_is_configured() {
    let rotated = |s: &mut api::Settings| {
        s.buyer_token_secrets = [NEW, OLD]
            .iter()
            .map(|k| k.parse().expect("spec"))
            .collect();
    };
    let app = TestApp::spawn_with(Backend::Module, rotated).await;
    let admin = app.admin_token().await;
    let id = sale_id(&app.create_sale(&admin, json!({})).await);
    let fresh = app.buy_token(&id, VICTIM).await;
    assert!(fresh.starts_with("new."), "{fresh}");

    // A token issued before the rotation, when only the old key signed.
    let keys_with = |specs: &[&str]| {
        let mut settings = app.settings.clone();
        settings.buyer_token_secrets = specs.iter().map(|k| k.parse().expect("spec")).collect();
        settings.buyer_tokens().expect("keys")
    };
    let sale = api::domain::SaleId::parse(&id).expect("sale id");
    let who = api::domain::Email::parse(VICTIM).expect("email");
    let before = keys_with(&[OLD]).sign(&sale, &who, unix_in(3600));
    assert!(before.starts_with("old."));
    let shown = app.position_with(&id, VICTIM, Some(&before)).await;
    assert_eq!(shown.assert_ok()["status"], "queued");
    // A key that is not configured (any more) verifies nothing.
    let retired = keys_with(&["gone:a-retired-secret-of-at-least-32-bytes"]);
    let stale = retired.sign(&sale, &who, unix_in(3600));
    app.position_with(&id, VICTIM, Some(&stale))
        .await
        .assert_error(401, "invalid_buyer_token");
    // Same key id, another secret: a forgery.
    let forged =
        keys_with(&["old:somebody-elses-guess-at-the-old-secret"]).sign(&sale, &who, unix_in(3600));
    app.buyer_request(
        Method::POST,
        "/orders/confirm",
        Some(&json!({ "email": VICTIM, "flashSaleId": id })),
        Some(&forged),
    )
    .await
    .assert_error(401, "invalid_buyer_token");
}

/// A shop on another origin (CORS_ORIGINS) may send the token header.
#[tokio::test]
async fn cross_origin_clients_may_send_the_token_header() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.cors_origins = vec!["https://shop.example".into()];
    })
    .await;
    let preflight = app
        .http
        .request(Method::OPTIONS, format!("{}/orders/position", app.url))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", api::buyer_token::HEADER)
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{preflight:?}");
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains(api::buyer_token::HEADER), "{allowed}");
}

/// The OpenAPI document declares the header on every buyer route (and no
/// token parameter in any URL), with the 401 and 403 answers.
#[tokio::test]
async fn the_openapi_document_declares_the_buyer_token() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json").await.assert_ok().clone();
    for (path, method) in [
        ("/orders/position", "get"),
        ("/orders/confirm", "post"),
        ("/orders/by-email", "get"),
        ("/orders/events", "get"),
        ("/orders/buy", "post"),
    ] {
        let operation = &doc["paths"][path][method];
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let header = parameters
            .iter()
            .find(|p| p["in"] == "header" && p["name"] == "X-Buyer-Token")
            .unwrap_or_else(|| panic!("{path}: no X-Buyer-Token header in {parameters:?}"));
        // Required where the route needs it (a first buy has none yet).
        let required = path != "/orders/buy";
        assert_eq!(header["required"] == true, required, "{path}: {header}");
        for status in ["401", "403"] {
            assert!(
                operation["responses"][status].is_object(),
                "{path} {status}"
            );
        }
    }
    let stream = doc["paths"]["/orders/events"]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !stream.iter().any(|p| p["name"] == "buyerToken"),
        "{stream:?}"
    );
}

/// Everything the API logs while it runs on this thread (a current-thread
/// test runtime: the server's tasks run here too).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut all) = self.0.lock() {
            all.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Tokens never reach the logs, even at the most verbose level: not from
/// the header, not from a URL that carries one anyway, not from a refusal.
#[tokio::test]
async fn tokens_are_never_logged() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "api=trace,tower_http=trace,flashsale=trace",
        ))
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // With a single dispatcher registered, tracing asks only the *calling
    // thread's* subscriber whether a call site is of interest, and caches
    // the answer process-wide: another test's thread hitting a call site
    // first (with no subscriber) would silence it here. A second live
    // dispatcher makes tracing ask every registered one.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _logging = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(&app.create_sale(&admin, json!({})).await);
    let token = app.buy_token(&id, VICTIM).await;
    app.position(&id, VICTIM).await.assert_ok();
    app.position_with(&id, VICTIM, Some(&format!("{token}x")))
        .await
        .assert_error(401, "invalid_buyer_token");
    let query = format!(
        "/orders/events?flashSaleId={id}&email=victim%40x.io&buyerToken={}&x=1",
        crate::support::encode(&format!("{token}y"))
    );
    app.get(&query)
        .await
        .assert_error(401, "buyer_token_required");
    app.admit(&id, 1).await;
    app.confirm(&id, VICTIM).await.assert_ok();

    let logged = captured
        .0
        .lock()
        .map(|all| String::from_utf8_lossy(&all).into_owned())
        .unwrap_or_default();
    // The requests were logged (so the check below means something)...
    assert!(logged.contains("/orders/events"), "{logged}");
    assert!(logged.contains("/orders/position"), "{logged}");
    // ...and no token, nor its signature alone.
    let signature = token.rsplit('.').next().unwrap_or_default();
    assert!(
        !logged.contains(signature),
        "a token in the logs:\n{logged}"
    );
    assert!(!logged.contains("buyerToken="), "{logged}");
}

/// Whether the record of who got `email`'s token in `sale` exists.
async fn claimed(app: &TestApp, sale: &str, email: &str) -> bool {
    redis::cmd("HEXISTS")
        .arg(format!("flashsale-api:{{{sale}}}:buyer-tokens"))
        .arg(email)
        .query_async(&mut app.redis().await)
        .await
        .expect("HEXISTS")
}

/// A buy sends ENQUEUE and the token's claim in one round trip, so the
/// claim runs whatever ENQUEUE answers: a buy that took no place (before
/// the start, sold out) must leave no claim behind — else whoever sent an
/// address before the start would keep its owner from ever getting a token.
#[tokio::test]
async fn a_buy_that_takes_no_place_claims_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(
            &admin,
            json!({ "initialQuantity": 1, "startsAt": support::rfc3339(4) }),
        )
        .await,
    );
    // A buy with a client key makes the API learn the sale's end, so the
    // buys after it take the one-round-trip way.
    let keyed = json!({ "email": VICTIM, "flashSaleId": id, "clientKey": "0123456789abcdef0123456789abcdef" });
    app.buyer_request(Method::POST, "/orders/buy", Some(&keyed), None)
        .await
        .assert_error(409, "sale_not_started");
    for _ in 0..3 {
        // After a refusal a sale's buys skip the claim for half a second.
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        app.buy_with(&id, VICTIM, None)
            .await
            .assert_error(409, "sale_not_started");
        assert!(!claimed(&app, &id, VICTIM).await);
    }

    // At the start the owner's buy takes the place and gets the token.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let token = loop {
        let reply = app.buy_with(&id, VICTIM, None).await;
        if reply.status.is_success() {
            break reply.json["buyerToken"].clone();
        }
        reply.assert_error(409, "sale_not_started");
        assert!(
            std::time::Instant::now() < deadline,
            "the sale never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(token.is_string(), "{token}");
    assert!(claimed(&app, &id, VICTIM).await);

    // Sold out: a late buy is refused and claims nothing.
    app.admit(&id, 1).await;
    app.confirm_with(&id, VICTIM, token.as_str())
        .await
        .assert_ok();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    app.buy_with(&id, MALLORY, None)
        .await
        .assert_error(409, "sold_out");
    assert!(!claimed(&app, &id, MALLORY).await);
    // Right after a refusal, refused buys write nothing at all: no claim
    // to take back (most buys at the end of a busy sale are refused).
    app.reset_command_stats().await;
    for n in 0..5 {
        app.buy_with(&id, &format!("late{n}@x.io"), None)
            .await
            .assert_error(409, "sold_out");
    }
    let calls = app.command_calls().await;
    assert_eq!(calls.get("hsetnx"), None, "{calls:?}");
    assert_eq!(calls.get("hdel"), None, "{calls:?}");
}
