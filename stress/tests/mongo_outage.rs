//! Nothing on a buyer's path waits for MongoDB: with MongoDB stopped in the
//! middle of a sale, buyers still join the queue, watch their place, are
//! admitted by the worker and confirm — every answer 2xx, at the price they
//! were admitted at — and every order reaches MongoDB once it is back.

#![allow(clippy::unwrap_used)] // test assertions: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Platform, Redis};
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use tests::mongo_server::MongoServer;
use tests::{Backend, EngineServer};

const BUYERS: usize = 12;

struct Buyers {
    http: reqwest::Client,
    api: String,
    sale: String,
}

impl Buyers {
    /// POST or GET on the buyer's path; the status must be 2xx.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.json(&body);
        }
        // Far below MongoDB's own server-selection wait (30 s): an answer
        // that had waited for MongoDB would not come back in time.
        let response = request
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn buy(&self, email: &str) -> Value {
        let body = json!({ "email": email, "flashSaleId": self.sale });
        self.call(reqwest::Method::POST, "/orders/buy", Some(body))
            .await
    }

    async fn position(&self, email: &str) -> Value {
        let path = format!(
            "/orders/position?flashSaleId={}&email={}",
            self.sale,
            email.replace('@', "%40")
        );
        self.call(reqwest::Method::GET, &path, None).await
    }

    async fn confirm(&self, email: &str) -> Value {
        let body = json!({ "email": email, "flashSaleId": self.sale });
        self.call(reqwest::Method::POST, "/orders/confirm", Some(body))
            .await
    }

    /// Polls the position until the worker admits `email`.
    async fn until_ready(&self, email: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let place = self.position(email).await;
            if place["status"] == "ready" {
                return;
            }
            assert!(Instant::now() < deadline, "{email} never admitted: {place}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_buy_while_mongodb_is_down_and_the_orders_arrive_later() {
    let engine = EngineServer::start(Backend::Module, false).await;
    let mut mongo = MongoServer::start().await;
    if !mongo.is_local() {
        eprintln!("MONGO_URL is set: this test stops its own MongoDB-compatible server");
        return;
    }
    let platform = Platform::start(Redis::Server(engine.server.url()), &mongo).await;
    let http = reqwest::Client::new();
    let signed_in: Value = http
        .post(format!("{}/auth/signin", platform.api_url))
        .json(&json!({
            "email": api::seed_admin::DEV_ADMIN_EMAIL,
            "password": api::seed_admin::DEV_ADMIN_PASSWORD,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["accessToken"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let created: Value = http
        .post(format!("{}/flash-sales", platform.api_url))
        .bearer_auth(&token)
        .json(&json!({
            "name": "outage",
            "description": "sold while MongoDB is down",
            "initialQuantity": BUYERS + 1,
            "pricePerUnit": "10.00",
            "startsAt": now - chrono::Duration::seconds(1),
            "endsAt": now + chrono::Duration::seconds(600),
            "holdTtlSeconds": 60,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let buyers = Buyers {
        http,
        api: platform.api_url.clone(),
        sale: created["id"].as_str().unwrap().to_string(),
    };

    // One purchase with MongoDB up: the worker knows the sale and copies.
    buyers.buy("first@x.io").await;
    buyers.until_ready("first@x.io").await;
    assert_eq!(buyers.confirm("first@x.io").await["totalAmount"], "10.00");

    mongo.stop();
    let emails: Vec<String> = (0..BUYERS).map(|i| format!("b{i}@x.io")).collect();
    for email in &emails {
        let joined = buyers.buy(email).await;
        assert!(
            ["queued", "ready"].contains(&joined["status"].as_str().unwrap()),
            "{joined}"
        );
    }
    let mut orders = Vec::new();
    for email in &emails {
        buyers.until_ready(email).await;
        let confirmed = buyers.confirm(email).await;
        assert_eq!(confirmed["totalAmount"], "10.00", "{confirmed}");
        assert_eq!(confirmed["created"], true);
        let place = buyers.position(email).await;
        assert_eq!(place["status"], "purchased");
        assert_eq!(place["orderId"], confirmed["orderId"]);
        orders.push(confirmed["orderId"].as_str().unwrap().to_string());
    }

    // MongoDB back: every order arrives, as confirmed.
    mongo.restart().await;
    let db = mongo.database().await;
    let collection = db.collection::<Document>(records::ORDERS);
    let filter = doc! { records::order::field::SALE_ID: &buyers.sale };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = collection
            .count_documents(filter.clone())
            .await
            .unwrap_or(0);
        if count == BUYERS as u64 + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of {} orders in MongoDB",
            BUYERS + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for order in &orders {
        let stored = collection
            .find_one(doc! { records::order::field::ID: order })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("order {order} not in MongoDB"));
        assert_eq!(
            stored.get_i64(records::order::field::TOTAL_AMOUNT).ok(),
            Some(1000),
            "{stored}"
        );
    }
    platform.stop().await;
}
