//! The flashsale stress test, modelled on a k6 flash-sale plan: an admin
//! creates a sale through the API; virtual users each buy, follow their
//! place until admitted — polling `GET /orders/position` with backoff, or
//! over Server-Sent Events (`GET /orders/events`, [`Watch::Sse`]) — and
//! confirm; some abandon their hold on purpose. Then everything is verified
//! through the API, in Redis and in MongoDB, and the run's throughput and
//! latencies are reported.

pub mod buyers_http;
pub mod cpu;
pub mod engine_load;
pub mod fifo;
mod report;
pub mod sse;
pub mod stats;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Parser;
use flashsale::{keys, RedisConn, RedisTarget, Timeouts};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

pub use report::{Report, Watching};
use sse::{EventParser, SseEvent};
use stats::Stats;

/// How a virtual buyer follows its place while queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Watch {
    /// `GET /orders/position`, with backoff from 100 ms to 2 s.
    #[default]
    Poll,
    /// `GET /orders/events` (Server-Sent Events); opened again when it
    /// breaks.
    Sse,
}

/// The stress program's command line: the run's settings and how buyers
/// follow their place. (`watch` is not a [`StressConfig`] field: the test
/// harness builds that struct field by field.)
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashsale-stress",
    about = "Virtual buyers against a running flashsale, then a verdict"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: StressConfig,
    /// How each buyer follows its place until admitted: `poll` asks
    /// GET /orders/position with backoff, `sse` follows GET /orders/events.
    #[arg(long, env = "STRESS_WATCH", value_enum, default_value_t = Watch::Poll)]
    pub watch: Watch,
    /// HTTP requests in flight at once (like `wrk -c`): a buyer holds one
    /// of these places only while a request of its is out — a buy, a
    /// confirm, a position poll, or an event stream until its first event
    /// (a stream held open while waiting holds none). Default: as many as
    /// --concurrency, so that the journeys are the only limit.
    #[arg(long, env = "STRESS_REQUESTS_IN_FLIGHT")]
    pub requests_in_flight: Option<usize>,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashsale-stress",
    about = "Virtual buyers against a running flashsale, then a verdict"
)]
pub struct StressConfig {
    #[arg(long, env = "STRESS_API_URL", default_value = "http://127.0.0.1:3000")]
    pub api_url: String,
    /// The platform's Redis (for the verdict); not used when
    /// REDIS_CLUSTER_NODES is set.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Redis Cluster seed nodes, `host:port,host:port,…`.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    #[arg(long, env = "MONGO_URL", default_value = "mongodb://127.0.0.1:27018/")]
    pub mongo_url: String,
    #[arg(long, env = "MONGO_DB", default_value = "flashsale")]
    pub mongo_db: String,
    #[arg(long, env = "ADMIN_EMAIL", default_value = "admin@example.com")]
    pub admin_email: String,
    #[arg(long, env = "ADMIN_PASSWORD", default_value = "admin123")]
    pub admin_password: String,
    /// Virtual users.
    #[arg(long, default_value_t = 5000)]
    pub users: usize,
    /// Units on sale (in each sale).
    #[arg(long, default_value_t = 500)]
    pub stock: u64,
    /// Sales run at once; users are dealt out over them in turn. On a Redis
    /// Cluster the sales are spread evenly over the primaries (a sale whose
    /// id lands on a primary that has its share already is deleted and
    /// created again), so the run loads every node.
    #[arg(long, default_value_t = 1)]
    pub sales: usize,
    /// Percent of admitted users who let their hold run out on purpose.
    #[arg(long, default_value_t = 10)]
    pub abandon_percent: u32,
    /// Seconds an admitted user has to confirm.
    #[arg(long, default_value_t = 5)]
    pub hold_ttl_seconds: u64,
    /// Admission rate (holds per second); unlimited when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Buyers in their journey at once (buy, wait in the queue, confirm);
    /// the next starts when one ends. HTTP requests in flight are limited
    /// on their own (`--requests-in-flight`, by default this many).
    #[arg(long, default_value_t = 500)]
    pub concurrency: usize,
    /// Seconds from creation to the sale's start (the countdown).
    #[arg(long, default_value_t = 2)]
    pub start_in_seconds: u64,
    /// Longest the buying may take before users give up.
    #[arg(long, default_value_t = 120)]
    pub deadline_seconds: u64,
}

/// What one virtual user ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Purchased(String),
    /// Admitted and let the hold lapse on purpose.
    Abandoned,
    /// Admitted, confirmed, but the hold had already lapsed (too slow).
    Lapsed,
    SoldOut,
    Ended,
    /// Gave up at the deadline or after repeated errors.
    GaveUp(String),
}

impl Outcome {
    fn wanted_to_buy(&self) -> bool {
        !matches!(self, Outcome::Abandoned)
    }
}

pub struct Run {
    pub config: StressConfig,
    /// Setting up and verifying.
    pub http: reqwest::Client,
    /// The buyers' requests (and the cap on those in flight).
    buyers_http: buyers_http::Client,
    pub stats: Stats,
    /// The sales of the run; user `i` buys in `sales[i % sales.len()]`.
    pub sales: Vec<CreatedSale>,
    /// On a cluster: how many of the sales each primary serves.
    pub placement: BTreeMap<String, usize>,
    pub started: Instant,
    pub deadline: Instant,
    pub watch: Watch,
    /// The platform's Redis: reads each admitted buyer's hold (PTTL) to
    /// time admission → the buyer seeing `ready`.
    redis: RedisConn,
    /// Admission → `ready` seen, per admitted buyer (µs).
    admitted_to_ready_us: Mutex<Vec<u64>>,
    /// Server-Sent Events: `status` events received, streams opened again
    /// after a break.
    sse_events: AtomicU64,
    sse_reopened: AtomicU64,
    /// Buyers told `expired` while waiting: admitted, and the hold ran out
    /// before they saw `ready`.
    expired_unseen: AtomicU64,
    /// Each buyer's token from its first buy (sale, e-mail): sent on every
    /// later request about the buyer, as the API requires. Each buyer keeps
    /// its own while buying; gathered here for the verdict.
    buyer_tokens: Mutex<HashMap<(String, String), String>>,
}

/// The routes, as the report names them.
const BUY: &str = "POST /orders/buy";
const CONFIRM: &str = "POST /orders/confirm";
const POSITION: &str = "GET /orders/position";
const EVENTS: &str = "GET /orders/events";

/// One virtual buyer's particulars, and its token once it has one.
struct Buyer<'a> {
    sale: &'a str,
    email: &'a str,
    /// Sent with every buy: a buy repeated after a lost answer (a timeout,
    /// a retried 503) gets the buyer token again.
    client_key: String,
    token: Option<String>,
    /// `?flashSaleId=…&email=…`
    query: String,
}

impl<'a> Buyer<'a> {
    fn new(sale: &'a str, email: &'a str) -> Buyer<'a> {
        let mut query = String::with_capacity(64);
        query.push_str("?flashSaleId=");
        buyers_http::push_query_value(&mut query, sale);
        query.push_str("&email=");
        buyers_http::push_query_value(&mut query, email);
        Buyer {
            sale,
            email,
            client_key: format!("{:032x}", rand::random::<u128>()),
            token: None,
            query,
        }
    }

    /// A request about this buyer, with its token in `X-Buyer-Token` (when
    /// it has one).
    fn request(
        &self,
        http: &buyers_http::Client,
        method: &str,
        path: &str,
        accept: Option<&str>,
        json: Option<&[u8]>,
    ) -> std::io::Result<buyers_http::Request> {
        let mut headers: [(&str, &str); 2] = [("", ""); 2];
        let mut n = 0;
        if let Some(token) = &self.token {
            headers[n] = (BUYER_TOKEN_HEADER, token);
            n += 1;
        }
        if let Some(accept) = accept {
            headers[n] = ("accept", accept);
            n += 1;
        }
        http.request(method, path, &headers[..n], json)
    }

    /// `{"email":…,"flashSaleId":…[,"clientKey":…]}`
    fn body(&self, with_client_key: bool) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(b"{\"email\":");
        push_json_string(&mut body, self.email);
        body.extend_from_slice(b",\"flashSaleId\":");
        push_json_string(&mut body, self.sale);
        if with_client_key {
            body.extend_from_slice(b",\"clientKey\":");
            push_json_string(&mut body, &self.client_key);
        }
        body.push(b'}');
        body
    }
}

fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The fields of a reply (or of a `status` event) the buyers act on; what
/// `reply["status"].as_str()` and so on would give.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    status: Option<String>,
    order_id: Option<String>,
    buyer_token: Option<String>,
    sale_status: Option<String>,
    /// `error.code`
    error_code: Option<String>,
}

impl Fields {
    /// `None` when `json` is not JSON.
    fn parse(json: &[u8]) -> Option<Fields> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Typed {
            status: Option<String>,
            order_id: Option<String>,
            buyer_token: Option<String>,
            sale_status: Option<String>,
            error: Option<TypedError>,
        }
        #[derive(Deserialize)]
        struct TypedError {
            code: Option<String>,
        }
        if let Ok(typed) = serde_json::from_slice::<Typed>(json) {
            return Some(Fields {
                status: typed.status,
                order_id: typed.order_id,
                buyer_token: typed.buyer_token,
                sale_status: typed.sale_status,
                error_code: typed.error.and_then(|e| e.code),
            });
        }
        // Valid JSON of another shape (a field not a string, say): as the
        // generic reading sees it.
        let value: Value = serde_json::from_slice(json).ok()?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        Some(Fields {
            status: text(&value["status"]),
            order_id: text(&value["orderId"]),
            buyer_token: text(&value["buyerToken"]),
            sale_status: text(&value["saleStatus"]),
            error_code: text(&value["error"]["code"]),
        })
    }
}

impl Run {
    /// A buyer's request (bytes from [`Buyer::request`]), timed and counted
    /// under `route`, holding a place among the requests in flight while it
    /// is out; retries a 429 after its Retry-After (counted too), so a rate
    /// limit slows a user, never drops it.
    async fn send(
        &self,
        route: &'static str,
        request: &buyers_http::Request,
    ) -> anyhow::Result<buyers_http::Reply> {
        let mut attempt = 0;
        loop {
            let slot = self.buyers_http.slot().await;
            let started = Instant::now();
            let response = self.buyers_http.exchange(request).await;
            drop(slot);
            match response {
                Ok(reply) => {
                    let status = reply.status;
                    self.stats.record(route, Some(status), reply.took);
                    // Too many requests, or Redis between primaries during a
                    // failover (503 + Retry-After): a real client waits and
                    // asks again; every buyer request is safe to repeat.
                    if (status == 429 || status == 503)
                        && attempt < 50
                        && Instant::now() < self.deadline
                    {
                        attempt += 1;
                        tokio::time::sleep(retry_wait(reply.retry_after)).await;
                        continue;
                    }
                    return Ok(reply);
                }
                Err(error) => {
                    self.stats.record(route, None, started.elapsed());
                    attempt += 1;
                    if attempt >= 20 || Instant::now() >= self.deadline {
                        return Err(anyhow::Error::new(error).context(route));
                    }
                    tokio::time::sleep(Duration::from_millis((100 * attempt).min(1000))).await;
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    /// The buyer's token, if its buy handed one out.
    pub fn buyer_token(&self, sale: &str, email: &str) -> Option<String> {
        let tokens = self.buyer_tokens.lock().ok()?;
        tokens.get(&(sale.to_string(), email.to_string())).cloned()
    }

    fn keep_buyer_token(&self, sale: &str, email: &str, token: String) {
        if let Ok(mut tokens) = self.buyer_tokens.lock() {
            tokens.insert((sale.to_string(), email.to_string()), token);
        }
    }

    /// HTTP requests allowed in flight at once.
    pub fn requests_in_flight(&self) -> usize {
        self.buyers_http.in_flight()
    }
}

/// How long to wait before asking again after a 429 or 503.
fn retry_wait(retry_after: Option<u64>) -> Duration {
    match retry_after {
        Some(secs) => Duration::from_secs(secs.clamp(1, 2)),
        None => Duration::from_millis(500),
    }
}

/// The header the API wants a buyer's token in.
pub const BUYER_TOKEN_HEADER: &str = "x-buyer-token";

async fn sign_in(http: &reqwest::Client, config: &StressConfig) -> anyhow::Result<String> {
    let response = http
        .post(format!(
            "{}/auth/signin",
            config.api_url.trim_end_matches('/')
        ))
        .json(&json!({ "email": config.admin_email, "password": config.admin_password }))
        .send()
        .await
        .context("POST /auth/signin")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let Some(token) = body["accessToken"].as_str() else {
        bail!("sign-in failed ({status}): {body}")
    };
    Ok(token.to_string())
}

/// A sale the run created, and when it starts.
#[derive(Debug, Clone)]
pub struct CreatedSale {
    pub id: String,
    pub starts_at: DateTime<Utc>,
}

/// `config.sales` sales; on a cluster spread evenly over the primaries
/// (dealt as `flashsale-engine-load --placement spread` deals its ids).
async fn create_sales(
    http: &reqwest::Client,
    config: &StressConfig,
    token: &str,
) -> anyhow::Result<(Vec<CreatedSale>, BTreeMap<String, usize>)> {
    let wanted = config.sales.max(1);
    let mut conn = config.redis()?;
    let primaries = if conn.is_cluster() {
        engine_load::cluster_nodes(&mut conn)
            .await?
            .iter()
            .filter(|node| node.primary)
            .count()
    } else {
        1
    };
    let mut dealer = engine_load::Dealer::new(engine_load::Placement::Spread, wanted, primaries);
    let mut sales = Vec::with_capacity(wanted);
    let mut attempts = 0;
    while sales.len() < wanted {
        attempts += 1;
        if attempts > 20 * wanted + 20 {
            bail!(
                "could not spread {wanted} sales over {primaries} primaries: {:?}",
                dealer.per_node()
            );
        }
        let (id, starts_at) = create_sale(http, config, token).await?;
        // Each primary has its own replication id.
        let node = conn.history_of(&keys::queue(&id)).await?;
        if !dealer.offer(&id, &node) {
            delete_sale(http, config, token, &id).await?;
            continue;
        }
        sales.push(CreatedSale { id, starts_at });
    }
    let placement = if conn.is_cluster() {
        dealer.per_node().clone()
    } else {
        BTreeMap::new()
    };
    Ok((sales, placement))
}

async fn delete_sale(
    http: &reqwest::Client,
    config: &StressConfig,
    token: &str,
    id: &str,
) -> anyhow::Result<()> {
    let response = http
        .delete(format!(
            "{}/flash-sales/{id}",
            config.api_url.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .send()
        .await
        .context("DELETE /flash-sales")?;
    if !response.status().is_success() {
        bail!("deleting sale {id} failed ({})", response.status());
    }
    Ok(())
}

async fn create_sale(
    http: &reqwest::Client,
    config: &StressConfig,
    token: &str,
) -> anyhow::Result<(String, DateTime<Utc>)> {
    let starts_at = Utc::now() + chrono::Duration::seconds(config.start_in_seconds as i64);
    let ends_at = starts_at + chrono::Duration::seconds(config.deadline_seconds as i64 + 600);
    let mut body = json!({
        "name": format!("stress {}", Utc::now().format("%H:%M:%S")),
        "description": "flashsale stress test",
        "initialQuantity": config.stock,
        "pricePerUnit": "9.99",
        "startsAt": starts_at,
        "endsAt": ends_at,
        "holdTtlSeconds": config.hold_ttl_seconds,
    });
    if let Some(rate) = config.rate {
        body["rate"] = json!(rate);
    }
    let response = http
        .post(format!(
            "{}/flash-sales",
            config.api_url.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .context("POST /flash-sales")?;
    let status = response.status();
    let created: Value = response.json().await.unwrap_or(Value::Null);
    let Some(id) = created["id"].as_str() else {
        bail!("creating the sale failed ({status}): {created}")
    };
    Ok((id.to_string(), starts_at))
}

/// One virtual user: buy, follow its place until admitted (polling or
/// over Server-Sent Events), confirm (or abandon on purpose).
/// What a virtual user ended with: its sale, e-mail, outcome, and the
/// buyer token its buy handed out.
type Ended = (usize, String, Outcome, Option<String>);

async fn virtual_user(run: Arc<Run>, index: usize, abandons: bool) -> Ended {
    let email = format!("vu{index:06}@stress.test");
    let sale = index % run.sales.len();
    let mut buyer = Buyer::new(&run.sales[sale].id, &email);
    let outcome = journey(&run, &mut buyer, abandons)
        .await
        .unwrap_or_else(|e| Outcome::GaveUp(format!("{e:#}")));
    let token = buyer.token.take();
    (sale, email, outcome, token)
}

/// How often a buyer joins again after losing its place (a failover that
/// took back its arrival or its hold) before giving up.
const MAX_REJOINS: usize = 5;

async fn journey(run: &Run, buyer: &mut Buyer<'_>, abandons: bool) -> anyhow::Result<Outcome> {
    for _ in 0..=MAX_REJOINS {
        if let Some(outcome) = attempt(run, buyer, abandons).await? {
            return Ok(outcome);
        }
    }
    Ok(Outcome::GaveUp(format!(
        "lost its place {} times",
        MAX_REJOINS + 1
    )))
}

/// Buy, wait for the turn, confirm. `None`: the buyer's place is gone (the
/// engine knows nothing of it, or its hold vanished), so it joins again.
async fn attempt(
    run: &Run,
    buyer: &mut Buyer<'_>,
    abandons: bool,
) -> anyhow::Result<Option<Outcome>> {
    let http = &run.buyers_http;
    let buy = buyer.request(http, "POST", "/orders/buy", None, Some(&buyer.body(true)))?;
    let reply = run.send(BUY, &buy).await?;
    let fields = Fields::parse(&reply.body).unwrap_or_default();
    // The first buy hands out the token; a rejoin sends it back instead.
    if let Some(token) = &fields.buyer_token {
        buyer.token = Some(token.clone());
    }
    if let Some(outcome) = settled(reply.status, &fields, &reply.text()) {
        return Ok(Some(outcome));
    }
    if buyer.token.is_none() {
        return Ok(Some(Outcome::GaveUp(format!(
            "the buy handed out no buyer token: {}",
            reply.text()
        ))));
    }
    let waited = match run.watch {
        Watch::Poll => poll_until_admitted(run, buyer).await?,
        Watch::Sse => follow_until_admitted(run, buyer).await?,
    };
    if let Waited::Over(outcome) = waited {
        if outcome == Some(Outcome::Lapsed) {
            run.expired_unseen.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(outcome);
    }
    // Before the confirm: it deletes the hold.
    note_admission(run, buyer.sale, buyer.email).await;
    if abandons {
        return Ok(Some(Outcome::Abandoned));
    }
    let confirm = buyer.request(
        http,
        "POST",
        "/orders/confirm",
        None,
        Some(&buyer.body(false)),
    )?;
    let reply = run.send(CONFIRM, &confirm).await?;
    Ok(match reply.status {
        200 => Some(Outcome::Purchased(
            Fields::parse(&reply.body)
                .and_then(|f| f.order_id)
                .unwrap_or_default(),
        )),
        410 => Some(Outcome::Lapsed),
        409 => Some(Outcome::SoldOut),
        403 => None,
        other => Some(Outcome::GaveUp(format!(
            "confirm answered {other}: {}",
            reply.text()
        ))),
    })
}

/// How a buyer's wait in the queue ended.
#[derive(Debug)]
enum Waited {
    /// Holding a unit: confirm (or abandon).
    Admitted,
    /// The story ended without a hold; `None`: the place is gone, join again.
    Over(Option<Outcome>),
}

/// What a buyer makes of its state (a `GET /orders/position` reply, or
/// the data of a `status` event — the same JSON): `None` while it has to
/// wait on.
fn judge(position: &Fields) -> Option<Waited> {
    match position.status.as_deref() {
        Some("ready") => return Some(Waited::Admitted),
        Some("purchased") => {
            return Some(Waited::Over(Some(Outcome::Purchased(
                position.order_id.clone().unwrap_or_default(),
            ))))
        }
        Some("expired") => return Some(Waited::Over(Some(Outcome::Lapsed))),
        Some("none") => return Some(Waited::Over(None)),
        _ => {}
    }
    match position.sale_status.as_deref() {
        Some("sold_out") => Some(Waited::Over(Some(Outcome::SoldOut))),
        Some("ended") => Some(Waited::Over(Some(Outcome::Ended))),
        _ => None,
    }
}

/// Polls `GET /orders/position` with backoff until the wait is over.
async fn poll_until_admitted(run: &Run, buyer: &Buyer<'_>) -> anyhow::Result<Waited> {
    let mut backoff = Duration::from_millis(100);
    let path = format!("/orders/position{}", buyer.query);
    let request = buyer.request(&run.buyers_http, "GET", &path, None, None)?;
    loop {
        if Instant::now() >= run.deadline {
            return Ok(Waited::Over(Some(Outcome::GaveUp("deadline".into()))));
        }
        let reply = run.send(POSITION, &request).await?;
        if reply.status != 200 {
            bail!("position: {} {}", reply.status, reply.text());
        }
        if let Some(waited) = judge(&Fields::parse(&reply.body).unwrap_or_default()) {
            return Ok(waited);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 3 / 2).min(Duration::from_secs(2));
    }
}

/// Longest silence on an event stream (the API sends a keep-alive every
/// 15 s) before it counts as broken.
const STREAM_SILENCE: Duration = Duration::from_secs(40);
/// Breaks of a buyer's event stream in a row before it gives up.
const MAX_STREAM_BREAKS: u32 = 20;

/// Follows `GET /orders/events` until the wait is over; a stream that
/// breaks (or ends with nothing settled) is opened again after a pause,
/// and its first event tells the state at once.
async fn follow_until_admitted(run: &Run, buyer: &Buyer<'_>) -> anyhow::Result<Waited> {
    let path = format!("/orders/events{}", buyer.query);
    let request = buyer.request(
        &run.buyers_http,
        "GET",
        &path,
        Some("text/event-stream"),
        None,
    )?;
    let mut breaks = 0u32;
    loop {
        if Instant::now() >= run.deadline {
            return Ok(Waited::Over(Some(Outcome::GaveUp("deadline".into()))));
        }
        let deadline = tokio::time::Instant::from_std(run.deadline);
        let broke = match tokio::time::timeout_at(deadline, stream_once(run, &request)).await {
            Err(_) => return Ok(Waited::Over(Some(Outcome::GaveUp("deadline".into())))),
            Ok(Ok(Some(waited))) => return Ok(waited),
            Ok(Ok(None)) => anyhow::anyhow!("the stream ended with nothing settled"),
            Ok(Err(error)) => error,
        };
        breaks += 1;
        if breaks >= MAX_STREAM_BREAKS {
            return Err(broke.context(format!("events: the stream broke {breaks} times")));
        }
        run.sse_reopened.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(u64::from(100 * breaks).min(1000))).await;
    }
}

/// One `GET /orders/events`: `Some` when an event ended the wait, `None`
/// when the stream ended or went silent first. Counted under its route
/// when the first event arrives (the latency is the time to it), or when
/// it fails before that. Holds a place among the requests in flight until
/// that first event (or the failure), not while it then waits.
async fn stream_once(run: &Run, request: &buyers_http::Request) -> anyhow::Result<Option<Waited>> {
    let http = &run.buyers_http;
    let mut attempt = 0;
    let (mut stream, mut slot, started) = loop {
        let slot = http.slot().await;
        let started = Instant::now();
        let left = run.deadline.saturating_duration_since(started);
        // Instead of the client's 30 s for a whole request.
        let opened = match http.open(request, left + Duration::from_secs(5)).await {
            Ok(opened) => opened,
            Err(error) => {
                run.stats.record(EVENTS, None, started.elapsed());
                return Err(anyhow::Error::new(error).context(EVENTS));
            }
        };
        let reply = match opened {
            buyers_http::Opened::Stream(stream, _) => break (stream, slot, started),
            buyers_http::Opened::Reply(reply) => reply,
        };
        drop(slot);
        run.stats.record(EVENTS, Some(reply.status), reply.took);
        // As `Run::send` does: wait and ask again.
        if (reply.status == 429 || reply.status == 503)
            && attempt < 50
            && Instant::now() < run.deadline
        {
            attempt += 1;
            tokio::time::sleep(retry_wait(reply.retry_after)).await;
            continue;
        }
        bail!("events: {} {}", reply.status, reply.text());
    };
    let mut parser = EventParser::default();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut bytes = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        bytes.clear();
        match tokio::time::timeout(STREAM_SILENCE, stream.next(&mut bytes)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Err(_) => return Ok(None),
            Ok(Err(error)) => {
                if first {
                    run.stats.record(EVENTS, None, started.elapsed());
                }
                return Err(anyhow::Error::new(error).context(EVENTS));
            }
        }
        parser.feed(&bytes, &mut events);
        for event in events.drain(..) {
            if event.event != "status" {
                continue;
            }
            if first {
                // The request is answered: its place is free again.
                first = false;
                drop(slot.take());
                run.stats.record(EVENTS, Some(200), started.elapsed());
            }
            run.sse_events.fetch_add(1, Ordering::Relaxed);
            let Some(view) = Fields::parse(event.data.as_bytes()) else {
                bail!("events: a status event that is not JSON: {}", event.data);
            };
            if let Some(waited) = judge(&view) {
                return Ok(Some(waited));
            }
        }
    }
}

/// Notes how long ago the buyer was admitted, from the hold's time left
/// (`PTTL`; a hold lasts the sale's hold length from its GRANT), on the
/// server's clock. Best effort: a hold already gone is not counted.
async fn note_admission(run: &Run, sale: &str, email: &str) {
    let mut redis = run.redis.clone();
    let mut pttl = redis::cmd("PTTL");
    pttl.arg(keys::hold(sale, email));
    let read = pttl.query_async::<i64>(&mut redis);
    // At most this long on the buyer's way to its confirm.
    let Ok(Ok(left_ms)) = tokio::time::timeout(Duration::from_millis(250), read).await else {
        return;
    };
    let hold_ms = run.config.hold_ttl_seconds.saturating_mul(1000);
    let Ok(left_ms) = u64::try_from(left_ms) else {
        return;
    };
    if left_ms <= hold_ms {
        if let Ok(mut taken) = run.admitted_to_ready_us.lock() {
            taken.push((hold_ms - left_ms) * 1000);
        }
    }
}

/// A buy reply that already ends the story (`text`: the reply, for the
/// message).
fn settled(status: u16, reply: &Fields, text: &str) -> Option<Outcome> {
    let code = reply.error_code.as_deref().unwrap_or("");
    match (status, reply.status.as_deref()) {
        (200, Some("purchased")) => Some(Outcome::Purchased(
            reply.order_id.clone().unwrap_or_default(),
        )),
        (200, _) => None,
        (409, _) if code.contains("sold_out") => Some(Outcome::SoldOut),
        (409, _) if code.contains("ended") => Some(Outcome::Ended),
        _ => Some(Outcome::GaveUp(format!("buy answered {status}: {text}"))),
    }
}

impl StressConfig {
    /// The platform's Redis: the server, or the cluster.
    pub fn redis(&self) -> anyhow::Result<RedisConn> {
        let target =
            RedisTarget::from_settings(&self.redis_url, self.redis_cluster_nodes.as_deref())
                .map_err(anyhow::Error::msg)?;
        Ok(RedisConn::open(&target, Timeouts::default())?)
    }
}

/// The run, buyers polling their place (the default).
pub async fn run(config: &StressConfig) -> anyhow::Result<Report> {
    run_watching(config, Watch::Poll).await
}

/// The run, buyers following their place as `watch` says.
pub async fn run_watching(config: &StressConfig, watch: Watch) -> anyhow::Result<Report> {
    run_loaded(config, watch, None).await
}

/// The run, buyers following their place as `watch` says, with at most
/// `requests_in_flight` HTTP requests out at once (`None`: as many as
/// `config.concurrency`, the buyers in their journey).
pub async fn run_loaded(
    config: &StressConfig,
    watch: Watch,
    requests_in_flight: Option<usize>,
) -> anyhow::Result<Report> {
    let journeys = config.concurrency.max(1);
    let buyers_http = buyers_http::Client::new(
        &config.api_url,
        requests_in_flight.unwrap_or(journeys),
        Duration::from_secs(30),
    )
    .await
    .with_context(|| format!("the API at {}", config.api_url))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let token = sign_in(&http, config).await?;
    let (sales, placement) = create_sales(&http, config, &token).await?;
    let (stop_observers, observers_stop) = watch::channel(false);
    let mut observers = Vec::with_capacity(sales.len());
    for sale in &sales {
        observers.push(tokio::spawn(fifo::observe(
            config.redis()?,
            sale.id.clone(),
            observers_stop.clone(),
        )));
    }

    // The countdown: wait for the start the server announced.
    let last_start = sales
        .iter()
        .map(|s| s.starts_at)
        .max()
        .unwrap_or_else(Utc::now);
    let wait = (last_start - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let cpu_before = cpu::sample();
    let started = Instant::now();
    let run = Arc::new(Run {
        config: config.clone(),
        http,
        buyers_http,
        stats: Stats::default(),
        sales,
        placement,
        started,
        deadline: started + Duration::from_secs(config.deadline_seconds),
        watch,
        redis: config.redis()?,
        admitted_to_ready_us: Mutex::new(Vec::new()),
        sse_events: AtomicU64::new(0),
        sse_reopened: AtomicU64::new(0),
        expired_unseen: AtomicU64::new(0),
        buyer_tokens: Mutex::default(),
    });
    // Each user starts when one of the `journeys` places is free, in turn
    // (a task only then: a million waiting tasks would cost more than the
    // buyers do).
    let gate = Arc::new(Semaphore::new(journeys));
    let (ended, mut endings) = mpsc::unbounded_channel::<Ended>();
    let starter = {
        let run = run.clone();
        let users = config.users;
        let abandon_percent = u64::from(config.abandon_percent);
        tokio::spawn(async move {
            for index in 0..users {
                let Ok(permit) = gate.clone().acquire_owned().await else {
                    return;
                };
                let (run, ended) = (run.clone(), ended.clone());
                let abandons = (index as u64 * 7919 % 100) < abandon_percent;
                tokio::spawn(async move {
                    let end = virtual_user(run, index, abandons).await;
                    drop(permit);
                    let _ = ended.send(end);
                });
            }
        })
    };
    let mut outcomes: Vec<BTreeMap<String, Outcome>> = vec![BTreeMap::new(); run.sales.len()];
    let mut tokens = Vec::new();
    let mut heard = 0;
    while let Some((sale, email, outcome, token)) = endings.recv().await {
        heard += 1;
        if let Some(token) = token {
            tokens.push((sale, email.clone(), token));
        }
        outcomes[sale].insert(email, outcome);
    }
    starter.await?;
    if heard != config.users {
        bail!(
            "{} of {} users never ended",
            config.users - heard,
            config.users
        );
    }
    let buying_took = started.elapsed();
    let cpu_use = cpu_before
        .zip(cpu::sample())
        .and_then(|(before, after)| cpu::between(before, after, buying_took));
    let _ = stop_observers.send(true);
    for (sale, email, token) in tokens {
        run.keep_buyer_token(&run.sales[sale].id, &email, token);
    }
    let mut fifo = fifo::FifoReport::default();
    for (sale, observer) in run.sales.iter().zip(observers) {
        fifo.merge(&sale.id, observer.await?, run.sales.len() > 1);
    }
    let mut verification = verify::Verification::default();
    for (sale, outcomes) in run.sales.iter().zip(&outcomes) {
        let one = verify::verify(&run, sale, &token, outcomes).await?;
        verification.merge(&sale.id, one, run.sales.len() > 1);
    }
    let outcomes = outcomes.into_iter().flatten().collect();
    Ok(Report::new(
        &run,
        outcomes,
        fifo,
        verification,
        buying_took,
        cpu_use,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_the_generic_json_reading_would() {
        let refused = Fields::parse(br#"{"error":{"code":"sold_out","message":"x"}}"#);
        assert_eq!(
            refused.as_ref().and_then(|f| f.error_code.as_deref()),
            Some("sold_out")
        );
        assert_eq!(
            settled(409, &refused.unwrap_or_default(), ""),
            Some(Outcome::SoldOut)
        );
        let queued = Fields::parse(
            br#"{"status":"queued","position":3,"orderId":null,"buyerToken":"t\"1","queued":true}"#,
        )
        .unwrap_or_default();
        assert_eq!(queued.status.as_deref(), Some("queued"));
        assert_eq!(queued.buyer_token.as_deref(), Some("t\"1"));
        assert_eq!(queued.order_id, None);
        assert!(settled(200, &queued, "").is_none());
        // Another shape: what `value["status"].as_str()` gives.
        let odd = Fields::parse(br#"{"status":7,"saleStatus":"sold_out","error":"x"}"#)
            .unwrap_or_default();
        assert_eq!((odd.status, odd.error_code), (None, None));
        assert!(matches!(
            judge(&Fields::parse(br#"{"status":7,"saleStatus":"sold_out"}"#).unwrap_or_default()),
            Some(Waited::Over(Some(Outcome::SoldOut)))
        ));
        assert_eq!(Fields::parse(b"not json"), None);
    }

    #[test]
    fn buyer_requests_carry_the_token_and_escaped_fields() {
        let mut buyer = Buyer::new("s1", "vu000001@stress.test");
        assert_eq!(buyer.query, "?flashSaleId=s1&email=vu000001%40stress.test");
        assert_eq!(
            String::from_utf8_lossy(&buyer.body(false)),
            r#"{"email":"vu000001@stress.test","flashSaleId":"s1"}"#
        );
        buyer.token = Some("tok".into());
        let body = buyer.body(true);
        assert!(String::from_utf8_lossy(&body).contains(r#""clientKey":""#));
        let http = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| {
                rt.block_on(buyers_http::Client::new(
                    "http://127.0.0.1:9/",
                    1,
                    Duration::from_secs(1),
                ))
            })
            .expect("a client");
        let request = buyer
            .request(&http, "POST", "/orders/buy", None, Some(&body))
            .expect("a request");
        assert_eq!(
            (request.method().as_str(), request.target()),
            ("POST", "/orders/buy")
        );
        assert_eq!(request.header("x-buyer-token"), Some("tok"));
        assert_eq!(request.body(), &body[..]);
    }
}
