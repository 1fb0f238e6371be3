//! One test = one application: its own redis-server (engine as module or
//! Functions library), its own MongoDB-compatible server, the API built with
//! `Application::build` on port 0, and a reqwest client for it. Dropping the
//! `TestApp` stops the API and kills both servers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use api::buyer_token::{self, BuyerTokens};
use api::domain::{Email, SaleId};
use api::store::users::UserDoc;
use api::{Application, Settings};
use chrono::{SecondsFormat, Utc};
use mongodb::bson::{doc, oid::ObjectId, DateTime as BsonDateTime, Document};
use redis::aio::MultiplexedConnection;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{Backend, EngineServer, MongoServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const JWT_SECRET: &str = "integration-test-secret-0123456789-abcdefghijklmnop";
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub engine: EngineServer,
    pub mongo: MongoServer,
    pub db: mongodb::Database,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// The buyer token each (sale, identity) got from its first buy, sent
    /// by the buyer helpers (`position`, `confirm`, `by_email`, ...) like an
    /// honest client would.
    buyer_tokens: Mutex<HashMap<(String, String), String>>,
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the API's error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {self:#?}");
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error content type of {self:#?}"
        );
        let error = &self.json["error"];
        assert_eq!(error["code"], code, "error code of {self:#?}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error message of {self:#?}"
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert!(self.status.is_success(), "expected success, got {self:#?}");
        &self.json
    }
}

/// Settings for tests: no dev mode, a strong secret, limits high enough not
/// to get in the way (the rate-limit tests lower them).
pub fn test_settings() -> Settings {
    let mut settings = match Settings::defaults() {
        Ok(s) => s,
        Err(e) => panic!("default settings: {e}"),
    };
    settings.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    settings.port = 0;
    settings.dev_mode = false;
    settings.jwt_secret = Some(JWT_SECRET.into());
    settings.jwt_issuer = "flashsale-api".into();
    settings.jwt_audience = "flashsale-admin".into();
    settings.rate_limit_enabled = true;
    settings.rate_limit_auth_per_minute = 1_000_000;
    settings.rate_limit_auth_burst = 1_000_000;
    settings.rate_limit_buy_per_second = 1_000_000;
    settings.rate_limit_buy_burst = 1_000_000;
    settings.trusted_proxies = vec![];
    settings.cors_origins = vec![];
    settings.password_hash_concurrency = Some(2);
    // Tests read their own writes on the public views; the cache has its
    // own tests (limits.rs).
    settings.public_cache_ms = 0;
    settings
}

/// The Argon2id hash of [`ADMIN_PASSWORD`], computed once per test binary.
fn admin_password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(19_456, 2, 1, None).expect("argon2 params");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"fixed-test-salt!").expect("salt");
        argon
            .hash_password(ADMIN_PASSWORD.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    })
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Backend::Module, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let engine = EngineServer::start(backend, false).await;
        let mongo = MongoServer::start().await;
        let mut settings = test_settings();
        settings.redis_url = engine.server.url();
        settings.mongo_url = mongo.url();
        settings.mongo_db = mongo.database_name();
        settings.engine = backend.into();
        configure(&mut settings);
        let app = match Application::build(settings.clone()).await {
            Ok(app) => app,
            Err(e) => panic!("the application does not build: {e:#}"),
        };
        let url = format!("http://127.0.0.1:{}", app.port());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let db = mongo.database().await;
        TestApp {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            settings,
            engine,
            mongo,
            db,
            shutdown: Some(shutdown),
            server: Some(server),
            buyer_tokens: Mutex::default(),
        }
    }

    /// Stops the API gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    pub async fn redis(&self) -> MultiplexedConnection {
        self.engine.server.connection().await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        send(request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, None, Some(token)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(body), None).await
    }

    pub async fn post_as(&self, path: &str, body: &Value, token: &str) -> Reply {
        self.request(Method::POST, path, Some(body), Some(token))
            .await
    }

    /// Raw body and content type (for malformed-input tests).
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.url)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        send(request).await
    }

    /// An admin account stored directly (the sign-up route needs an admin
    /// already; `seed-admin` has its own tests).
    pub async fn insert_admin(&self, email: &str) {
        let user = UserDoc {
            id: ObjectId::new(),
            email: email.into(),
            password_hash: admin_password_hash().into(),
            is_admin: true,
            created_at: BsonDateTime::now(),
        };
        self.db
            .collection::<UserDoc>("users")
            .insert_one(&user)
            .await
            .expect("insert admin");
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/auth/signin",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// A fresh admin and a token for it.
    pub async fn admin_token(&self) -> String {
        self.insert_admin(ADMIN_EMAIL).await;
        let reply = self.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        reply.assert_ok()["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_string()
    }

    /// Creates a sale (defaults: active for an hour, 10 units at 49.99,
    /// 30 s holds) with `overrides` merged in; returns its JSON.
    pub async fn create_sale(&self, token: &str, overrides: Value) -> Value {
        let mut body = json!({
            "name": "Running shoes",
            "description": "Limited edition",
            "initialQuantity": 10,
            "pricePerUnit": "49.99",
            "startsAt": rfc3339(-60),
            "endsAt": rfc3339(3600),
            "holdTtlSeconds": 30,
        });
        if let (Some(body), Some(overrides)) = (body.as_object_mut(), overrides.as_object()) {
            for (k, v) in overrides {
                body.insert(k.clone(), v.clone());
            }
        }
        let reply = self.post_as("/flash-sales", &body, token).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:#?}");
        reply.json
    }

    /// The identity the API counts for `email` (as the server normalises).
    pub fn identity(&self, email: &str) -> String {
        Email::parse(email)
            .map(|e| {
                e.buyer_identity(self.settings.identity_strip_plus_tags)
                    .to_string()
            })
            .unwrap_or_else(|_| email.to_string())
    }

    /// The token the buyer got from their first buy, if any.
    pub fn token_of(&self, sale: &str, email: &str) -> Option<String> {
        let key = (sale.to_string(), self.identity(email));
        self.buyer_tokens.lock().ok()?.get(&key).cloned()
    }

    /// The server's token keys (from the same settings), to make tokens the
    /// API would never hand out: expired ones, for unknown sales.
    pub fn token_keys(&self) -> BuyerTokens {
        self.settings.buyer_tokens().expect("buyer-token keys")
    }

    /// A token signed with the server's keys, for any sale and buyer.
    pub fn mint_token(&self, sale: &str, email: &str, expires_at: u64) -> String {
        let sale = SaleId::parse(sale).expect("a sale id");
        let who = Email::parse(&self.identity(email)).expect("an email");
        self.token_keys().sign(&sale, &who, expires_at)
    }

    /// Buy as the buyer: with their token once they have one; a token in
    /// the answer is kept for their later requests.
    pub async fn buy(&self, sale: &str, email: &str) -> Reply {
        let token = self.token_of(sale, email);
        let reply = self.buy_with(sale, email, token.as_deref()).await;
        if let Some(issued) = reply.json["buyerToken"].as_str() {
            if let Ok(mut tokens) = self.buyer_tokens.lock() {
                tokens.insert((sale.to_string(), self.identity(email)), issued.into());
            }
        }
        reply
    }

    /// Buys (a first buy) and returns the buyer token it handed out.
    pub async fn buy_token(&self, sale: &str, email: &str) -> String {
        let reply = self.buy(sale, email).await;
        reply.assert_ok()["buyerToken"]
            .as_str()
            .unwrap_or_else(|| panic!("a buyer token for {email}: {reply:#?}"))
            .to_string()
    }

    /// A buy with exactly this token (or none), remembering nothing.
    pub async fn buy_with(&self, sale: &str, email: &str, token: Option<&str>) -> Reply {
        let body = json!({ "email": email, "flashSaleId": sale });
        self.buyer_request(Method::POST, "/orders/buy", Some(&body), token)
            .await
    }

    /// A request with an `X-Buyer-Token` header (when `token` is given).
    pub async fn buyer_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = token {
            request = request.header(buyer_token::HEADER, token);
        }
        send(request).await
    }

    pub async fn position(&self, sale: &str, email: &str) -> Reply {
        let token = self.token_of(sale, email);
        self.position_with(sale, email, token.as_deref()).await
    }

    pub async fn position_with(&self, sale: &str, email: &str, token: Option<&str>) -> Reply {
        let path = format!(
            "/orders/position?flashSaleId={sale}&email={}",
            encode(email)
        );
        self.buyer_request(Method::GET, &path, None, token).await
    }

    pub async fn confirm(&self, sale: &str, email: &str) -> Reply {
        let token = self.token_of(sale, email);
        self.confirm_with(sale, email, token.as_deref()).await
    }

    pub async fn confirm_with(&self, sale: &str, email: &str, token: Option<&str>) -> Reply {
        let body = json!({ "email": email, "flashSaleId": sale });
        self.buyer_request(Method::POST, "/orders/confirm", Some(&body), token)
            .await
    }

    /// `POST /orders/confirm` with this body, as the buyer it names.
    pub async fn confirm_body(&self, body: &Value) -> Reply {
        let sale = body["flashSaleId"].as_str().unwrap_or_default();
        let email = body["email"].as_str().unwrap_or_default();
        let token = self.token_of(sale, email);
        self.buyer_request(
            Method::POST,
            "/orders/confirm",
            Some(body),
            token.as_deref(),
        )
        .await
    }

    pub async fn by_email(&self, sale: &str, email: &str) -> Reply {
        let token = self.token_of(sale, email);
        self.by_email_with(sale, email, token.as_deref()).await
    }

    pub async fn by_email_with(&self, sale: &str, email: &str, token: Option<&str>) -> Reply {
        let path = format!(
            "/orders/by-email?email={}&flashSaleId={sale}",
            encode(email)
        );
        self.buyer_request(Method::GET, &path, None, token).await
    }

    /// Admission, as the worker would do it: FLASHSALE.GRANT.
    pub async fn grant(&self, sale: &str, max: u64) -> Vec<String> {
        let mut client = self.engine.client().await;
        match client.grant(sale, max).await.expect("GRANT") {
            flashsale::GrantReply::Granted { users, .. } => users,
            other => panic!("GRANT answered {other:?}"),
        }
    }

    /// GRANTs until `count` users have been admitted in all (a sale with a
    /// RATE admits as its bucket fills); returns them in order.
    pub async fn admit(&self, sale: &str, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut admitted = Vec::new();
        while admitted.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out admitting {count} in {sale}; got {admitted:?}"
            );
            admitted.extend(self.grant(sale, (count - admitted.len()) as u64).await);
            if admitted.len() < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        admitted
    }

    pub async fn status(&self, sale: &str, user: Option<&str>) -> flashsale::StatusReply {
        let mut client = self.engine.client().await;
        client.status(sale, user).await.expect("STATUS")
    }

    /// Calls of each Redis command since the last [`Self::reset_command_stats`]
    /// (`INFO commandstats`: `flashsale.setup`, `fcall`, ...).
    pub async fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let mut conn = self.redis().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
                Some((name.to_string(), calls.parse().ok()?))
            })
            .collect()
    }

    /// The engine's STATUS calls since the last reset: the module command,
    /// or a Functions call (on the module backend, FCALL is only STATUS's
    /// Lua twin, never sent).
    pub async fn engine_reads(&self) -> u64 {
        let calls = self.command_calls().await;
        ["flashsale.status", "fcall", "fcall_ro"]
            .iter()
            .filter_map(|name| calls.get(*name))
            .sum()
    }

    pub async fn reset_command_stats(&self) {
        let mut conn = self.redis().await;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut conn)
            .await
            .expect("CONFIG RESETSTAT");
    }

    /// Every Redis key of the server, sorted.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }

    pub async fn sale_keys(&self, sale: &str) -> Vec<String> {
        let prefix = format!("fs:{{{sale}}}:");
        self.redis_keys()
            .await
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect()
    }

    pub async fn count(&self, collection: &str, filter: Document) -> u64 {
        self.db
            .collection::<Document>(collection)
            .count_documents(filter)
            .await
            .expect("count")
    }

    /// An order as the worker writes it (the worker is a separate program).
    pub async fn record_order(&self, order_id: &str, sale: &str, email: &str, cents: i64) {
        let now = BsonDateTime::now();
        self.db
            .collection::<Document>("orders")
            .insert_one(doc! {
                "_id": order_id, "userEmail": email, "flashSaleId": sale,
                "paymentStatus": "paid", "totalAmount": cents,
                "createdAt": now, "updatedAt": now,
            })
            .await
            .expect("insert order");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// `now + offset_secs` as RFC 3339.
pub fn rfc3339(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// base64url without padding (JWT segments).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn sale_id(sale: &Value) -> String {
    sale["id"].as_str().expect("sale id").to_string()
}

/// Unix seconds, `offset_secs` from now.
pub fn unix_in(offset_secs: i64) -> u64 {
    (Utc::now().timestamp() + offset_secs).max(0) as u64
}

pub async fn wait_for_status(app: &TestApp, sale: &str, email: &str, want: &str) -> Value {
    tests::wait_for(
        &format!("{email} to be {want}"),
        Duration::from_secs(10),
        || async {
            let reply = app.position(sale, email).await;
            (reply.json["status"] == want).then_some(reply.json)
        },
    )
    .await
}

/// An open `text/event-stream` answer, read one `event` at a time (the
/// buyer's `status` stream, the admin's `overview` stream).
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
    event: &'static str,
}

impl EventStream {
    /// The stream of a 200 `text/event-stream` answer.
    pub fn new(response: reqwest::Response, event: &'static str) -> EventStream {
        assert_eq!(response.status(), 200);
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        EventStream {
            response,
            buffer: String::new(),
            event,
        }
    }

    /// The next such event's data; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = Some(k.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                // Keep-alive comments have neither.
                if kind.as_deref() == Some(self.event) {
                    return Some(serde_json::from_str(&data).expect("JSON data"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.response.chunk())
                .await
                .expect("an event within 15 s")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}
