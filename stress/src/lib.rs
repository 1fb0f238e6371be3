//! The flashsale stress test, modelled on a k6 flash-sale plan: an admin
//! creates a sale through the API; virtual users each buy, follow their
//! place until admitted — polling `GET /orders/position` with backoff, or
//! over Server-Sent Events (`GET /orders/events`, [`Watch::Sse`]) — and
//! confirm; some abandon their hold on purpose. Then everything is verified
//! through the API, in Redis and in MongoDB, and the run's throughput and
//! latencies are reported.

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
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

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
    /// Users with a request in flight at once.
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
    pub http: reqwest::Client,
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
    /// later request about the buyer, as the API requires.
    buyer_tokens: Mutex<HashMap<(String, String), String>>,
}

impl Run {
    /// A request, timed and counted under `route`; retries a 429 after its
    /// Retry-After (counted too), so a rate limit slows a user, never drops it.
    async fn send(
        &self,
        route: &'static str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(u16, Value)> {
        let mut attempt = 0;
        loop {
            let Some(builder) = request.try_clone() else {
                bail!("request cannot be retried")
            };
            let started = Instant::now();
            let response = builder.send().await;
            let elapsed = started.elapsed();
            match response {
                Ok(response) => {
                    let status = response.status().as_u16();
                    self.stats.record(route, Some(status), elapsed);
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    // Too many requests, or Redis between primaries during a
                    // failover (503 + Retry-After): a real client waits and
                    // asks again; every buyer request is safe to repeat.
                    if (status == 429 || status == 503)
                        && attempt < 50
                        && Instant::now() < self.deadline
                    {
                        attempt += 1;
                        let wait = match retry_after {
                            Some(secs) => Duration::from_secs(secs.clamp(1, 2)),
                            None => Duration::from_millis(500),
                        };
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Ok((status, body));
                }
                Err(error) => {
                    self.stats.record(route, None, elapsed);
                    attempt += 1;
                    if attempt >= 20 || Instant::now() >= self.deadline {
                        return Err(error.into());
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

    fn keep_buyer_token(&self, sale: &str, email: &str, token: &str) {
        if let Ok(mut tokens) = self.buyer_tokens.lock() {
            tokens.insert((sale.to_string(), email.to_string()), token.to_string());
        }
    }

    /// `request` with the buyer's token in `X-Buyer-Token` (when it has one).
    fn as_buyer(
        &self,
        request: reqwest::RequestBuilder,
        sale: &str,
        email: &str,
    ) -> reqwest::RequestBuilder {
        match self.buyer_token(sale, email) {
            Some(token) => request.header(BUYER_TOKEN_HEADER, token),
            None => request,
        }
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
async fn virtual_user(run: Arc<Run>, index: usize, abandons: bool) -> (usize, String, Outcome) {
    let email = format!("vu{index:06}@stress.test");
    let sale = index % run.sales.len();
    let outcome = buyer(&run, &run.sales[sale].id, &email, abandons)
        .await
        .unwrap_or_else(|e| Outcome::GaveUp(e.to_string()));
    (sale, email, outcome)
}

/// How often a buyer joins again after losing its place (a failover that
/// took back its arrival or its hold) before giving up.
const MAX_REJOINS: usize = 5;

async fn buyer(run: &Run, sale: &str, email: &str, abandons: bool) -> anyhow::Result<Outcome> {
    // Sent with every buy: a buy repeated after a lost answer (a timeout,
    // a retried 503) gets the buyer token again.
    let client_key = format!("{:032x}", rand::random::<u128>());
    for _ in 0..=MAX_REJOINS {
        if let Some(outcome) = attempt(run, sale, email, &client_key, abandons).await? {
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
    sale: &str,
    email: &str,
    client_key: &str,
    abandons: bool,
) -> anyhow::Result<Option<Outcome>> {
    let body = json!({ "email": email, "flashSaleId": sale, "clientKey": client_key });
    let buy = run.as_buyer(run.http.post(run.url("/orders/buy")), sale, email);
    let (status, reply) = run.send("POST /orders/buy", buy.json(&body)).await?;
    // The first buy hands out the token; a rejoin sends it back instead.
    if let Some(token) = reply["buyerToken"].as_str() {
        run.keep_buyer_token(sale, email, token);
    }
    if let Some(outcome) = settled(status, &reply) {
        return Ok(Some(outcome));
    }
    if run.buyer_token(sale, email).is_none() {
        return Ok(Some(Outcome::GaveUp(format!(
            "the buy handed out no buyer token: {reply}"
        ))));
    }
    let waited = match run.watch {
        Watch::Poll => poll_until_admitted(run, sale, email).await?,
        Watch::Sse => follow_until_admitted(run, sale, email).await?,
    };
    if let Waited::Over(outcome) = waited {
        if outcome == Some(Outcome::Lapsed) {
            run.expired_unseen.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(outcome);
    }
    // Before the confirm: it deletes the hold.
    note_admission(run, sale, email).await;
    if abandons {
        return Ok(Some(Outcome::Abandoned));
    }
    let body = json!({ "email": email, "flashSaleId": sale });
    let confirm = run.as_buyer(run.http.post(run.url("/orders/confirm")), sale, email);
    let (status, reply) = run
        .send("POST /orders/confirm", confirm.json(&body))
        .await?;
    Ok(match status {
        200 => Some(Outcome::Purchased(
            reply["orderId"].as_str().unwrap_or("").to_string(),
        )),
        410 => Some(Outcome::Lapsed),
        409 => Some(Outcome::SoldOut),
        403 => None,
        other => Some(Outcome::GaveUp(format!(
            "confirm answered {other}: {reply}"
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
fn judge(position: &Value) -> Option<Waited> {
    match position["status"].as_str() {
        Some("ready") => return Some(Waited::Admitted),
        Some("purchased") => {
            return Some(Waited::Over(Some(Outcome::Purchased(
                position["orderId"].as_str().unwrap_or("").to_string(),
            ))))
        }
        Some("expired") => return Some(Waited::Over(Some(Outcome::Lapsed))),
        Some("none") => return Some(Waited::Over(None)),
        _ => {}
    }
    match position["saleStatus"].as_str() {
        Some("sold_out") => Some(Waited::Over(Some(Outcome::SoldOut))),
        Some("ended") => Some(Waited::Over(Some(Outcome::Ended))),
        _ => None,
    }
}

/// Polls `GET /orders/position` with backoff until the wait is over.
async fn poll_until_admitted(run: &Run, sale: &str, email: &str) -> anyhow::Result<Waited> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if Instant::now() >= run.deadline {
            return Ok(Waited::Over(Some(Outcome::GaveUp("deadline".into()))));
        }
        let request = run
            .as_buyer(run.http.get(run.url("/orders/position")), sale, email)
            .query(&[("flashSaleId", sale), ("email", email)]);
        let (status, position) = run.send("GET /orders/position", request).await?;
        if status != 200 {
            bail!("position: {status} {position}");
        }
        if let Some(waited) = judge(&position) {
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
async fn follow_until_admitted(run: &Run, sale: &str, email: &str) -> anyhow::Result<Waited> {
    let mut breaks = 0u32;
    loop {
        if Instant::now() >= run.deadline {
            return Ok(Waited::Over(Some(Outcome::GaveUp("deadline".into()))));
        }
        let deadline = tokio::time::Instant::from_std(run.deadline);
        let broke = match tokio::time::timeout_at(deadline, stream_once(run, sale, email)).await {
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
/// it fails before that.
async fn stream_once(run: &Run, sale: &str, email: &str) -> anyhow::Result<Option<Waited>> {
    const ROUTE: &str = "GET /orders/events";
    let mut attempt = 0;
    let started = Instant::now();
    let mut response = loop {
        let left = run.deadline.saturating_duration_since(Instant::now());
        let request = run
            .as_buyer(run.http.get(run.url("/orders/events")), sale, email)
            .query(&[("flashSaleId", sale), ("email", email)])
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // Instead of the client's 30 s for a whole request.
            .timeout(left + Duration::from_secs(5));
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                run.stats.record(ROUTE, None, started.elapsed());
                return Err(error.into());
            }
        };
        let status = response.status().as_u16();
        if status == 200 {
            break response;
        }
        run.stats.record(ROUTE, Some(status), started.elapsed());
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // As `Run::send` does: wait and ask again.
        if (status == 429 || status == 503) && attempt < 50 && Instant::now() < run.deadline {
            attempt += 1;
            let wait = match retry_after {
                Some(secs) => Duration::from_secs(secs.clamp(1, 2)),
                None => Duration::from_millis(500),
            };
            tokio::time::sleep(wait).await;
            continue;
        }
        bail!("events: {status} {body}");
    };
    let mut parser = EventParser::default();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut first = true;
    loop {
        let chunk = match tokio::time::timeout(STREAM_SILENCE, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) | Err(_) => return Ok(None),
            Ok(Err(error)) => {
                if first {
                    run.stats.record(ROUTE, None, started.elapsed());
                }
                return Err(error.into());
            }
        };
        parser.feed(&chunk, &mut events);
        for event in events.drain(..) {
            if event.event != "status" {
                continue;
            }
            if first {
                first = false;
                run.stats.record(ROUTE, Some(200), started.elapsed());
            }
            run.sse_events.fetch_add(1, Ordering::Relaxed);
            let view: Value = serde_json::from_str(&event.data).with_context(|| {
                format!("events: a status event that is not JSON: {}", event.data)
            })?;
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

/// A buy reply that already ends the story.
fn settled(status: u16, reply: &Value) -> Option<Outcome> {
    let code = reply["error"]["code"].as_str().unwrap_or("");
    match (status, reply["status"].as_str()) {
        (200, Some("purchased")) => Some(Outcome::Purchased(
            reply["orderId"].as_str().unwrap_or("").to_string(),
        )),
        (200, _) => None,
        (409, _) if code.contains("sold_out") => Some(Outcome::SoldOut),
        (409, _) if code.contains("ended") => Some(Outcome::Ended),
        _ => Some(Outcome::GaveUp(format!("buy answered {status}: {reply}"))),
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
    let gate = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut users = Vec::with_capacity(config.users);
    for index in 0..config.users {
        let (run, gate) = (run.clone(), gate.clone());
        let abandons = (index as u64 * 7919 % 100) < u64::from(config.abandon_percent);
        users.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            virtual_user(run, index, abandons).await
        }));
    }
    let mut outcomes: Vec<BTreeMap<String, Outcome>> = vec![BTreeMap::new(); run.sales.len()];
    for user in users {
        let (sale, email, outcome) = user.await?;
        outcomes[sale].insert(email, outcome);
    }
    let buying_took = started.elapsed();
    let cpu_use = cpu_before
        .zip(cpu::sample())
        .and_then(|(before, after)| cpu::between(before, after, buying_took));
    let _ = stop_observers.send(true);
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
