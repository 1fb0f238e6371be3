//! The pre-queue lottery (issue 13 item 5), checked as an outsider would:
//! buyers register in the window, the public view publishes the seed's
//! commitment, and after the start the published draw is recomputed from
//! the revealed seed and SHA-1 of each buyer's identity — and it is the
//! order the buyers really hold in the queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::lottery::sha1_hex;
use serde_json::{json, Value};
use tests::Backend;

use crate::support::{rfc3339, sale_id, TestApp};

/// Every page of the published draw, and the last page's envelope.
async fn published_draw(app: &TestApp, sale: &str, page_size: u64) -> (Vec<String>, Value) {
    let mut entries = Vec::new();
    let mut page = 1;
    loop {
        let reply = app
            .get(&format!(
                "/flash-sales/{sale}/public/draw?page={page}&pageSize={page_size}"
            ))
            .await;
        let body = reply.assert_ok().clone();
        let items: Vec<String> = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e.as_str().expect("hex").to_string())
            .collect();
        let done = (items.len() as u64) < page_size;
        entries.extend(items);
        if done {
            return (entries, body);
        }
        page += 1;
    }
}

async fn registered_buyers_enter_in_the_published_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, |_| {}).await;
    let token = app.admin_token().await;
    // Starts in 3 s, with a window of a minute: open already.
    let sale = app
        .create_sale(
            &token,
            json!({ "startsAt": rfc3339(3), "preQueueSeconds": 60, "initialQuantity": 5 }),
        )
        .await;
    assert_eq!(sale["preQueueSeconds"], 60, "{sale:#?}");
    let id = sale_id(&sale);
    let starts_at: DateTime<Utc> = sale["startsAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("startsAt");

    // The commitment is public before anyone registers; the seed is not.
    let before = app.get(&format!("/flash-sales/{id}/public")).await;
    let before = before.assert_ok().clone();
    let commitment = before["seedCommitment"]
        .as_str()
        .expect("a commitment")
        .to_string();
    assert_eq!(before["seed"], Value::Null, "{before:#?}");
    assert_eq!(before["preQueueSeconds"], 60);
    assert_eq!(before["registered"], 0);

    let buyers: Vec<String> = (0..9).map(|i| format!("buyer{i}@example.com")).collect();
    for (i, email) in buyers.iter().enumerate() {
        let reply = app.buy(&id, email).await;
        let body = reply.assert_ok();
        assert_eq!(body["status"], "registered", "{reply:#?}");
        assert_eq!(body["size"], i as u64 + 1);
        assert!(body["buyerToken"].is_string(), "{reply:#?}");
    }
    // Registering again answers the same.
    let again = app.buy(&id, &buyers[0]).await;
    assert_eq!(again.assert_ok()["status"], "registered");
    assert_eq!(
        app.position(&id, &buyers[4]).await.json["status"],
        "registered"
    );
    let view = app.get(&format!("/flash-sales/{id}/public")).await;
    let view = view.assert_ok();
    assert_eq!(view["registered"], 9);
    assert_eq!(view["seed"], Value::Null);
    let (none, pending) = published_draw(&app, &id, 100).await;
    assert!(none.is_empty());
    assert_eq!(pending["status"], "pending");

    // After the start, the first buy draws, and the latecomer queues behind.
    let wait = (starts_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(150)).await;
    let late = app.buy(&id, "late@example.com").await;
    assert_eq!(late.assert_ok()["position"], 10, "{late:#?}");

    let (entries, envelope) = published_draw(&app, &id, 4).await;
    assert_eq!(envelope["status"], "drawn", "{envelope:#?}");
    assert_eq!(envelope["total"], 9);
    let seed = envelope["seed"].as_str().expect("the seed").to_string();
    // The seed revealed is the one committed to before the window.
    assert_eq!(sha1_hex(seed.as_bytes()), commitment);
    let view = app.get(&format!("/flash-sales/{id}/public")).await;
    assert_eq!(view.assert_ok()["seed"], seed.as_str());

    // Recomputed from the seed and the buyers' SHA-1(identity) alone: sort
    // by SHA-1(seed ":" SHA-1(identity)).
    let mut recomputed: Vec<(String, String)> = buyers
        .iter()
        .map(|email| {
            let entry = sha1_hex(app.identity(email).as_bytes());
            (sha1_hex(format!("{seed}:{entry}").as_bytes()), entry)
        })
        .collect();
    recomputed.sort();
    let recomputed: Vec<String> = recomputed.into_iter().map(|(_, e)| e).collect();
    assert_eq!(entries, recomputed);

    // And it is the real queue: each buyer's position is their place.
    for email in &buyers {
        let place = entries
            .iter()
            .position(|e| *e == sha1_hex(app.identity(email).as_bytes()))
            .expect("in the draw");
        let position = app.position(&id, email).await;
        assert_eq!(
            (&position.json["status"], &position.json["position"]),
            (&Value::from("queued"), &Value::from(place as u64 + 1)),
            "{email}: {position:#?}"
        );
    }
    let head = app.grant(&id, 3).await;
    let head: Vec<String> = head.iter().map(|u| sha1_hex(u.as_bytes())).collect();
    assert_eq!(head, entries[..3].to_vec());
}

#[tokio::test]
async fn registered_buyers_enter_in_the_published_order_module() {
    registered_buyers_enter_in_the_published_order(Backend::Module).await;
}

#[tokio::test]
async fn registered_buyers_enter_in_the_published_order_lua() {
    registered_buyers_enter_in_the_published_order(Backend::Lua).await;
}

async fn public(app: &TestApp, sale: &str) -> Value {
    let reply = app.get(&format!("/flash-sales/{sale}/public")).await;
    reply.assert_ok().clone()
}

/// The seed lives in MongoDB too: a sale Redis lost comes back with the
/// same commitment. The window is validated, and cannot change once open.
#[tokio::test]
async fn the_seed_outlives_a_redis_loss_and_the_window_locks() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let sale = app
        .create_sale(
            &token,
            json!({ "startsAt": rfc3339(600), "preQueueSeconds": 60 }),
        )
        .await;
    let id = sale_id(&sale);
    let commitment = public(&app, &id).await["seedCommitment"].clone();
    assert!(commitment.is_string());
    let keys = app.sale_keys(&id).await;
    let mut conn = app.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(public(&app, &id).await["seedCommitment"], commitment);

    // Out of range: 400, nothing changed.
    let path = format!("/flash-sales/{id}");
    let reply = app
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&json!({ "preQueueSeconds": 86_401 })),
            Some(&token),
        )
        .await;
    reply.assert_error(400, "invalid_field");
    // Before the window (it opens 540 s ahead) it may change; 900 s opens
    // it at once, and then it is locked (409), nothing changed.
    let reply = app
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&json!({ "preQueueSeconds": 900 })),
            Some(&token),
        )
        .await;
    assert_eq!(reply.assert_ok()["preQueueSeconds"], 900, "{reply:#?}");
    let reply = app
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&json!({ "preQueueSeconds": null })),
            Some(&token),
        )
        .await;
    reply.assert_error(409, "lottery_locked");
    let admin = app.get_as(&path, &token).await;
    assert_eq!(admin.assert_ok()["preQueueSeconds"], 900);
    assert_eq!(public(&app, &id).await["seedCommitment"], commitment);
}
