//! Sales as they live in the engine (Redis): the typed `flashsale` client on
//! the shared Redis connection, plus the API's recovery rules.
//!
//! - **NOSALE for a sale MongoDB has** (Redis lost the keys: a flush, a
//!   failover to a replica that missed them, an old snapshot): the sale's
//!   recorded orders are given back to the engine ([`LiveSales::restore_orders`]),
//!   the sale is set up again from its MongoDB document, and the command
//!   retried once — unless the sale has ended: then it is answered from
//!   MongoDB ([`ArchivedSale`]; the worker's retention removes an ended
//!   sale's keys once MongoDB has every order).
//! - **The Functions library vanished** (Redis restarted without
//!   persistence, backend `lua`): it is loaded again and the command retried.
//!
//! - **Redis not there yet** (still loading, not reachable, a cluster slot
//!   between primaries): the command answers 503 with Retry-After; which
//!   backend to use is settled on the first call that reaches Redis (every
//!   node checked) and kept.
//!
//! Every other engine error is a bug here (arguments are validated before
//! they reach the engine) and surfaces as a 500.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::error::ErrorCode;
use flashsale::{
    Backend, BackendChoice, ClientError, ConfirmReply, DrawReply, EngineClient, EnqueueReply,
    LotteryParams, PauseReply, RedisConn, ResumeReply, SetupParams, SetupReply, StatusReply,
};
use tokio::sync::OnceCell;

use crate::archived_sale::ArchivedSale;
use crate::buyer_claims::RefusingSales;
use crate::domain::{Email, Money, SaleId};
use crate::error::ApiError;
use crate::queue_drain::QueueDrain;
use crate::sale_feed::SaleFeeds;
use crate::store::{sales, sales::SaleDoc, Db};

pub type Client = EngineClient<RedisConn>;

/// How long the figures used for estimates (rate, hold length) are reused
/// without asking the engine again.
const PARAMS_TTL: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct LiveSales {
    conn: RedisConn,
    durability: Durability,
    choice: BackendChoice,
    /// Settled once, by the first call that reaches Redis.
    backend: Arc<OnceCell<Backend>>,
    db: Db,
    default_hold_secs: u64,
    params: ParamsCache,
    /// How fast each sale's queue moves, for estimated waits.
    pub drain: QueueDrain,
    /// The sales followed over Server-Sent Events.
    pub feeds: SaleFeeds,
    /// The sales that refused a buy a moment ago.
    pub refusing: RefusingSales,
}

/// How many replicas must have an order before its buyer is told, and how
/// long to wait for them.
#[derive(Clone, Default)]
pub struct Durability {
    /// `None`: 1 when the sale's primary has replicas, else 0.
    pub min_replicas: Option<u64>,
    pub wait_ms: u64,
    /// Replicas per sale's primary as last seen (for `None`).
    seen: Arc<Mutex<HashMap<String, (Instant, u64)>>>,
}

impl Durability {
    pub fn new(min_replicas: Option<u64>, wait_ms: u64) -> Self {
        Durability {
            min_replicas,
            wait_ms,
            seen: Arc::default(),
        }
    }
}

/// How long a primary's replica count is trusted.
const REPLICAS_TTL: Duration = Duration::from_secs(5);

/// What a command on a sale came to: the engine's reply, or the sale is
/// archived and answered from MongoDB.
enum Outcome<T> {
    Live(T),
    Archived(ArchivedSale),
}

/// A sale's admission rate and hold length, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleParams {
    pub rate: u64,
    pub hold_ttl_ms: u64,
}

/// Rate and hold length per sale, so that a buy answers its estimate from
/// one engine round trip (ENQUEUE) instead of two. Only sales the engine
/// knows are cached, so the map is bounded by the number of real sales.
#[derive(Clone, Default)]
struct ParamsCache(Arc<Mutex<HashMap<String, (Instant, SaleParams)>>>);

impl ParamsCache {
    fn get(&self, sale: &SaleId) -> Option<SaleParams> {
        let map = self.0.lock().ok()?;
        map.get(sale.as_str())
            .filter(|(at, _)| at.elapsed() < PARAMS_TTL)
            .map(|(_, params)| *params)
    }

    fn put(&self, sale: &SaleId, params: SaleParams) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (at, _)| at.elapsed() < PARAMS_TTL);
            }
            map.insert(sale.as_str().to_string(), (Instant::now(), params));
        }
    }

    fn forget(&self, sale: &SaleId) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(sale.as_str());
        }
    }
}

/// What the engine is told about a sale stored in MongoDB; a document
/// without `holdTtlSeconds` gets `default_hold_secs` (HOLD_TTL_SECONDS).
pub fn setup_params(sale: &SaleDoc, default_hold_secs: u64) -> SetupParams {
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    let hold_secs = sale
        .hold_ttl_seconds
        .map(non_negative)
        .unwrap_or(default_hold_secs)
        .clamp(1, engine::command::MAX_HOLD_TTL_MS / 1000);
    SetupParams {
        stock: non_negative(sale.initial_quantity),
        starts_at: non_negative(sale.starts_at.timestamp_millis()),
        ends_at: non_negative(sale.ends_at.timestamp_millis()),
        hold_ttl_ms: hold_secs * 1000,
        rate: sale.rate.map(non_negative).unwrap_or(0),
        max_queue: sale
            .max_queue
            .map(non_negative)
            .unwrap_or(match sale.pre_queue_seconds {
                Some(_) => LOTTERY_MAX_QUEUE,
                None => 0,
            }),
        price: Some(non_negative(sale.price_per_unit)),
    }
}

/// The longest queue of a sale with a pre-queue window when the admin set
/// none. MAXQUEUE also bounds the registrations, and the draw sorts them
/// all in one command that holds Redis: ~3.4 µs each in the module, ~13 µs
/// in Lua (docs/commands.md), so 100,000 is at most ~1.3 s once, at the
/// start. An admin may set a larger `maxQueue` knowingly.
pub const LOTTERY_MAX_QUEUE: u64 = 100_000;

/// The pre-queue lottery the engine is told about a stored sale: its
/// window (0: none, which removes one) and its seed. Both always given, so
/// a SETUP from the document makes the engine match it exactly.
pub fn lottery_params(sale: &SaleDoc) -> LotteryParams {
    let window_ms = sale
        .pre_queue_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(0, |s| s.saturating_mul(1000));
    LotteryParams {
        prequeue_ms: Some(window_ms.min(engine::command::MAX_PREQUEUE_MS)),
        seed: sale.lottery_seed.clone(),
    }
}

fn is_no_sale(error: &ClientError) -> bool {
    error
        .engine_error()
        .is_some_and(|e| e.code == ErrorCode::NoSale)
}

/// The engine has the sale but not its price: set up before the engine
/// kept prices. Set up again from MongoDB, like a lost sale.
fn is_no_price(error: &ClientError) -> bool {
    error
        .engine_error()
        .is_some_and(|e| e.code == ErrorCode::NoPrice)
}

/// An engine refusal with `code` as `Ok(Err(its message))`, so that it
/// passes [`LiveSales::run`]'s recovery untouched; other errors stay errors.
fn refusal<T>(
    result: Result<T, ClientError>,
    code: ErrorCode,
) -> Result<Result<T, String>, ClientError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => match e.engine_error() {
            Some(engine) if engine.code == code => Ok(Err(engine.message)),
            _ => Err(e),
        },
    }
}

/// Why SETUP was refused.
#[derive(Debug)]
pub enum SetupError {
    /// CONFLICT: the stock would fall below sold + held (the engine's text).
    Conflict(String),
    /// LOCKED: a new price while units are held (the engine's text).
    PriceLocked(String),
    Other(ApiError),
}

impl From<SetupError> for ApiError {
    fn from(error: SetupError) -> Self {
        match error {
            SetupError::Conflict(message) => ApiError::conflict("stock_below_committed", message),
            SetupError::PriceLocked(message) => ApiError::conflict("price_locked", message)
                .with_details(serde_json::json!({
                    "hint": "a buyer pays the price they were admitted at; change the price \
                             when no unit is held (confirmed or expired)"
                })),
            SetupError::Other(e) => e,
        }
    }
}

impl LiveSales {
    /// Does not talk to Redis: see [`LiveSales::prepare`].
    pub fn new(
        conn: RedisConn,
        choice: BackendChoice,
        durability: Durability,
        db: Db,
        default_hold_secs: u64,
    ) -> LiveSales {
        LiveSales {
            conn,
            durability,
            choice,
            backend: Arc::default(),
            db,
            default_hold_secs,
            params: ParamsCache::default(),
            drain: QueueDrain::default(),
            feeds: SaleFeeds::default(),
            refusing: RefusingSales::default(),
        }
    }

    /// Checks that every node runs the engine (loading the Functions library
    /// where needed) and settles the backend; once that succeeded, it is
    /// not asked again. [`ClientError::EngineMissing`] is a deployment
    /// mistake; [`ClientError::is_unavailable`] errors pass.
    pub async fn prepare(&self) -> Result<Backend, ClientError> {
        self.backend
            .get_or_try_init(|| async {
                let backend =
                    flashsale::nodes::prepare(&mut self.conn.clone(), self.choice).await?;
                tracing::info!(backend = backend.as_str(), "engine ready");
                Ok(backend)
            })
            .await
            .copied()
    }

    /// A client for commands the API sends as they are (GRANT in tests,
    /// STATUS for readiness); no recovery.
    pub async fn client(&self) -> Result<Client, ClientError> {
        // Settled (every call but the first ones): no need for the
        // preparation's future, which is large — every engine call's
        // future would carry its size, copied each time one is made.
        let backend = match self.backend.get() {
            Some(backend) => *backend,
            None => Box::pin(self.prepare()).await?,
        };
        Ok(EngineClient::attach(self.conn.clone(), backend))
    }

    /// Runs `op`; on NOSALE (or NOPRICE) sets the sale up again from
    /// MongoDB — or, for an ended sale, hands back the [`ArchivedSale`] to
    /// answer from —, on a missing Functions library reloads it, and runs
    /// `op` again (each recovery at most once: a Redis that lost everything
    /// needs both). Only these recoveries read MongoDB.
    async fn run<T, F, Fut>(&self, sale: &SaleId, op: F) -> Result<Outcome<T>, ApiError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let (mut restored, mut reloaded) = (false, false);
        loop {
            match op(self.client().await?).await {
                Ok(value) => return Ok(Outcome::Live(value)),
                Err(e) if is_no_sale(&e) && !restored => {
                    if let Some(archived) = self.restore(sale).await? {
                        return Ok(Outcome::Archived(archived));
                    }
                    restored = true;
                }
                // A sale set up before the engine kept prices.
                Err(e) if is_no_price(&e) && !restored => {
                    self.set_up_again(sale).await?;
                    restored = true;
                }
                // Deleted between the restore and the retry.
                Err(e) if is_no_sale(&e) => return Err(ApiError::sale_not_found()),
                Err(e) if e.is_missing_library() && !reloaded => {
                    self.reload_library(e).await?;
                    reloaded = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// After "function not found": a Redis restarted without its data, or a
    /// primary added to the cluster since the start. Loads the library on
    /// every primary that lacks it.
    async fn reload_library(&self, error: ClientError) -> Result<(), ApiError> {
        if self.backend.get() != Some(&Backend::Lua) {
            return Err(error.into());
        }
        tracing::warn!("the flashsale Functions library is missing; loading it again");
        flashsale::nodes::prepare(&mut self.conn.clone(), BackendChoice::Lua).await?;
        Ok(())
    }

    /// Gives the engine back the orders MongoDB records for `sale` (RESTORE,
    /// before a SETUP of a sale the engine lost): the SETUP then takes them
    /// over, so their buyers count as purchased, sold continues from them
    /// and no recorded order id is issued again. Orders the engine has are
    /// left as they are. A recorded order that contradicts the engine (its
    /// buyer holds another order there, or its id names another buyer)
    /// leaves everything unchanged and the sale answers 503 until an
    /// operator looks (logged as an error).
    pub async fn restore_orders(&self, sale: &SaleId) -> Result<(), ApiError> {
        let recorded = records::order::buyers_of_sale(&self.db.orders, sale.as_str()).await?;
        if recorded.is_empty() {
            return Ok(());
        }
        let restored = self
            .client()
            .await?
            .restore_recorded(sale.as_str(), recorded)
            .await;
        match restored {
            Ok(restored) => {
                if !restored.skipped.is_empty() {
                    tracing::warn!(
                        sale = sale.as_str(),
                        skipped = ?restored.skipped,
                        "recorded orders whose ids the engine never issues were not restored"
                    );
                }
                tracing::warn!(
                    sale = sale.as_str(),
                    added = restored.added,
                    orders = restored.orders,
                    "recorded orders given back to the engine"
                );
                Ok(())
            }
            Err(e)
                if e.engine_error()
                    .is_some_and(|e| e.code == ErrorCode::Conflict) =>
            {
                tracing::error!(
                    sale = sale.as_str(),
                    error = %e,
                    "MongoDB's orders contradict the engine's; the sale stays unavailable"
                );
                Err(ApiError::client(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "sale_unavailable",
                    "this sale is temporarily unavailable",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The users at 0-based queue positions `start..start + count`.
    pub async fn queue_page(
        &self,
        sale: &SaleId,
        start: u64,
        count: u64,
    ) -> Result<Vec<String>, ClientError> {
        self.client()
            .await?
            .queue_page(sale.as_str(), start, count)
            .await
    }

    /// Removes every Redis key of the sale (a deleted sale, an undone
    /// create).
    pub async fn purge(&self, sale: &SaleId) -> Result<(), ClientError> {
        self.client().await?.purge(sale.as_str()).await
    }

    /// After NOSALE: an ended sale is archived (answered from MongoDB);
    /// any other is set up again from MongoDB, its recorded orders first.
    async fn restore(&self, sale: &SaleId) -> Result<Option<ArchivedSale>, ApiError> {
        let Some(doc) = sales::find(&self.db.sales, sale).await? else {
            return Err(ApiError::sale_not_found());
        };
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let archived =
            ArchivedSale::of(&self.db, sale, &doc, self.default_hold_secs, now_ms).await?;
        if archived.is_some() {
            return Ok(archived);
        }
        self.restore_orders(sale).await?;
        tracing::warn!(
            sale = sale.as_str(),
            "the engine lost this sale; restoring it from MongoDB"
        );
        // An admin's pause outlives the loss: the SETUP itself sets the
        // mark (PAUSED 1), so the sale is never running in between. Not
        // paused: the mark is left as it is (a new sale has none).
        let paused = records::sale::is_paused(&self.db.sales, sale.as_str()).await?;
        self.setup_from(sale, &doc, paused.then_some(true)).await?;
        if paused {
            tracing::warn!(sale = sale.as_str(), "restored paused, as an admin left it");
        }
        Ok(None)
    }

    /// A sale the engine lost, before an admin changes it: set up again as
    /// [`Self::restore`] does; an ended one (archived, not set up) gets its
    /// recorded orders back, since the change sets it up.
    pub async fn restore_lost(&self, sale: &SaleId) -> Result<(), ApiError> {
        if self.restore(sale).await?.is_some() {
            self.restore_orders(sale).await?;
        }
        Ok(())
    }

    /// SETUP from the MongoDB document as it is now.
    async fn set_up_again(&self, sale: &SaleId) -> Result<(), ApiError> {
        let Some(doc) = sales::find(&self.db.sales, sale).await? else {
            return Err(ApiError::sale_not_found());
        };
        tracing::warn!(
            sale = sale.as_str(),
            "the engine has no price for this sale; setting it up again from MongoDB"
        );
        self.setup_from(sale, &doc, None).await
    }

    /// SETUP from `doc`; `paused` is SETUP's `PAUSED` (`None`: the sale's
    /// mark is kept).
    async fn setup_from(
        &self,
        sale: &SaleId,
        doc: &SaleDoc,
        paused: Option<bool>,
    ) -> Result<(), ApiError> {
        let params = self.setup_params(doc);
        // With the lottery's window and seed: a sale set up again after a
        // loss draws with the seed whose commitment was published (its
        // registrations went with the loss).
        match self
            .client()
            .await?
            .setup_with_pause(sale.as_str(), params, lottery_params(doc), paused)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else restored it meanwhile with different figures.
            Err(e)
                if e.engine_error()
                    .is_some_and(|e| e.code == ErrorCode::Conflict) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`setup_params`] with this API's HOLD_TTL_SECONDS.
    pub fn setup_params(&self, sale: &SaleDoc) -> SetupParams {
        setup_params(sale, self.default_hold_secs)
    }

    pub async fn setup(
        &self,
        sale: &SaleId,
        params: SetupParams,
    ) -> Result<SetupReply, SetupError> {
        self.params.forget(sale);
        let mut client = self
            .client()
            .await
            .map_err(|e| SetupError::Other(e.into()))?;
        match client.setup(sale.as_str(), params).await {
            Ok(reply) => Ok(reply),
            Err(e) => match e.engine_error() {
                Some(engine) if engine.code == ErrorCode::Conflict => {
                    Err(SetupError::Conflict(engine.message))
                }
                Some(engine) if engine.code == ErrorCode::Locked => {
                    Err(SetupError::PriceLocked(engine.message))
                }
                _ => Err(SetupError::Other(e.into())),
            },
        }
    }

    /// SETUP of `doc`'s figures with its lottery (window and seed): the
    /// engine refuses a change of either once the window has opened (409
    /// `lottery_locked`, nothing changed). A sale the engine lost is set up
    /// again first, as for every command.
    pub async fn set_lottery(&self, sale: &SaleId, doc: &SaleDoc) -> Result<(), ApiError> {
        self.params.forget(sale);
        let params = self.setup_params(doc);
        let lottery = lottery_params(doc);
        let outcome = self
            .run(sale, |mut c| {
                let (params, lottery) = (params.clone(), lottery.clone());
                async move {
                    refusal(
                        c.setup_with_lottery(sale.as_str(), params, lottery).await,
                        ErrorCode::Locked,
                    )
                }
            })
            .await?;
        match outcome {
            Outcome::Live(Ok(_)) => Ok(()),
            Outcome::Live(Err(reason)) => Err(ApiError::conflict("lottery_locked", reason)),
            Outcome::Archived(_) => Err(ApiError::conflict(
                "lottery_locked",
                "the sale has ended; its pre-queue window is fixed",
            )),
        }
    }

    /// DRAW: what the sale's lottery publishes, a page of `count` entries
    /// from `offset` once drawn. An ended sale archived from MongoDB has
    /// nothing to publish any more (`none`).
    pub async fn draw(
        &self,
        sale: &SaleId,
        offset: u64,
        count: u64,
    ) -> Result<DrawReply, ApiError> {
        let outcome = self
            .run(sale, |mut c| async move {
                c.draw(sale.as_str(), offset, count).await
            })
            .await?;
        Ok(match outcome {
            Outcome::Live(reply) => reply,
            Outcome::Archived(_) => DrawReply::None,
        })
    }

    pub async fn enqueue(&self, sale: &SaleId, user: &Email) -> Result<EnqueueReply, ApiError> {
        let outcome = self
            .run(sale, |mut c| async move {
                c.enqueue(sale.as_str(), user.as_str()).await
            })
            .await?;
        match outcome {
            Outcome::Live(reply) => Ok(reply),
            Outcome::Archived(archived) => archived.enqueue(&self.db, user).await,
        }
    }

    /// ENQUEUE and `then` in one round trip (see
    /// [`EngineClient::enqueue_then`]), without [`LiveSales::run`]'s
    /// recoveries: ENQUEUE's answer is `None` when it was an error, and the
    /// caller goes the careful way ([`LiveSales::enqueue`]) after undoing
    /// what `then` should not have done.
    pub async fn enqueue_then(
        &self,
        sale: &SaleId,
        user: &Email,
        then: &[redis::Cmd],
    ) -> Result<(Option<EnqueueReply>, Vec<redis::Value>), ApiError> {
        let (reply, replies) = self
            .client()
            .await?
            .enqueue_then(sale.as_str(), user.as_str(), then)
            .await?;
        Ok((reply.ok(), replies))
    }

    /// CONFIRM at the sale's price as the engine has it (`amount`, when
    /// given, must equal it), the order keeping `contact` (the address as
    /// the buyer typed it; `user` is their identity); when the sale's
    /// primary has replicas (or CONFIRM_MIN_REPLICAS says so), the order
    /// must reach them within CONFIRM_WAIT_MS, or the buyer gets 503
    /// `not_durable` and retries.
    pub async fn confirm(
        &self,
        sale: &SaleId,
        user: &Email,
        contact: Option<&str>,
        amount: Option<Money>,
    ) -> Result<ConfirmReply, ApiError> {
        let amount = amount.map(Money::minor_units);
        let replicas = self.replicas_required(sale).await?;
        if replicas == 0 {
            let outcome = self
                .run(sale, |mut c| async move {
                    c.confirm_with_contact(sale.as_str(), user.as_str(), amount, contact)
                        .await
                })
                .await?;
            return match outcome {
                Outcome::Live(reply) => Ok(reply),
                Outcome::Archived(archived) => archived.confirm(&self.db, user).await,
            };
        }
        let wait_ms = self.durability.wait_ms;
        let outcome = self
            .run(sale, |mut c| async move {
                c.confirm_replicated_with_contact(
                    sale.as_str(),
                    user.as_str(),
                    amount,
                    contact,
                    replicas,
                    wait_ms,
                )
                .await
            })
            .await?;
        let (reply, durable) = match outcome {
            Outcome::Live(replied) => replied,
            Outcome::Archived(archived) => return archived.confirm(&self.db, user).await,
        };
        if !durable {
            tracing::warn!(sale = %sale, replicas, wait_ms, "confirm not acknowledged by the replicas in time");
            return Err(ApiError::client(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not_durable",
                "your order could not be stored safely yet; confirm again — \
                 it will never buy a second unit",
            )
            .with_retry_after(1));
        }
        Ok(reply)
    }

    /// CONFIRM_MIN_REPLICAS, or the replicas the sale's primary has (at
    /// most 1), asked again every few seconds.
    async fn replicas_required(&self, sale: &SaleId) -> Result<u64, ApiError> {
        if let Some(n) = self.durability.min_replicas {
            return Ok(n);
        }
        let seen = |map: &HashMap<String, (Instant, u64)>| {
            map.get(sale.as_str())
                .filter(|(at, _)| at.elapsed() < REPLICAS_TTL)
                .map(|(_, n)| *n)
        };
        if let Some(n) = self.durability.seen.lock().ok().and_then(|m| seen(&m)) {
            return Ok(n);
        }
        let n = self.conn.clone().replicas_of(sale.as_str()).await?.min(1);
        if let Ok(mut map) = self.durability.seen.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (at, _)| at.elapsed() < REPLICAS_TTL);
            }
            map.insert(sale.as_str().to_string(), (Instant::now(), n));
        }
        Ok(n)
    }

    pub async fn status(
        &self,
        sale: &SaleId,
        user: Option<&Email>,
    ) -> Result<StatusReply, ApiError> {
        let outcome = self
            .run(sale, |mut c| async move {
                c.status(sale.as_str(), user.map(Email::as_str)).await
            })
            .await?;
        let reply = match outcome {
            Outcome::Live(reply) => reply,
            Outcome::Archived(archived) => return archived.status(&self.db, user).await,
        };
        self.params.put(
            sale,
            SaleParams {
                rate: reply.sale.rate,
                hold_ttl_ms: reply.sale.hold_ttl_ms,
            },
        );
        Ok(reply)
    }

    /// PAUSE (admin): nobody new queues, nobody is admitted; those queued
    /// keep their place and holders can still buy. A sale the engine lost
    /// is set up again first, as for every command. A sale that is not
    /// live (not started, ended, sold out, archived) is 409 `sale_not_live`
    /// with the engine's reason, and nothing changes. The pause is also
    /// noted in MongoDB, after the engine (the truth during the sale), so
    /// that a sale Redis loses comes back paused; if that note fails the
    /// admin gets the error and pauses again (it is idempotent).
    pub async fn pause(&self, sale: &SaleId) -> Result<PauseReply, ApiError> {
        let outcome = self
            .run(sale, |mut c| async move {
                refusal(c.pause(sale.as_str()).await, ErrorCode::Conflict)
            })
            .await?;
        match outcome {
            Outcome::Live(Ok(reply)) => {
                records::sale::set_paused(&self.db.sales, sale.as_str(), true).await?;
                Ok(reply)
            }
            Outcome::Live(Err(reason)) => Err(ApiError::conflict("sale_not_live", reason)),
            Outcome::Archived(_) => Err(ApiError::conflict(
                "sale_not_live",
                "only a live sale can be paused; it is ended",
            )),
        }
    }

    /// RESUME (admin): a paused sale runs again from the same queue; one
    /// that is not paused (or archived) is left as it is. MongoDB's note
    /// is cleared after the engine, so a failure between the two errs on
    /// the side of a sale restored paused.
    pub async fn resume(&self, sale: &SaleId) -> Result<ResumeReply, ApiError> {
        let outcome = self
            .run(sale, |mut c| async move { c.resume(sale.as_str()).await })
            .await?;
        records::sale::set_paused(&self.db.sales, sale.as_str(), false).await?;
        Ok(match outcome {
            Outcome::Live(reply) => reply,
            Outcome::Archived(_) => ResumeReply::NotPaused,
        })
    }

    /// Status without recovery: `None` when the engine has no such sale.
    pub async fn status_if_known(&self, sale: &SaleId) -> Result<Option<StatusReply>, ApiError> {
        match self.client().await?.status(sale.as_str(), None).await {
            Ok(reply) => Ok(Some(reply)),
            Err(e) if is_no_sale(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The sale's rate and hold length, from the cache or a STATUS.
    pub async fn params(&self, sale: &SaleId) -> Result<SaleParams, ApiError> {
        if let Some(params) = self.params.get(sale) {
            return Ok(params);
        }
        // Boxed: the cached answer's future stays small (see `client`).
        let reply = Box::pin(self.status(sale, None)).await?;
        Ok(SaleParams {
            rate: reply.sale.rate,
            hold_ttl_ms: reply.sale.hold_ttl_ms,
        })
    }

    /// Whether the engine answers (a STATUS of a sale that does not exist
    /// must come back NOSALE, which proves the commands are there).
    pub async fn check(&self) -> Result<(), String> {
        let mut client = self.client().await.map_err(|e| e.to_string())?;
        match client.status("readyz-probe", None).await {
            Ok(_) => Ok(()),
            Err(e) if is_no_sale(&e) => Ok(()),
            Err(e) if e.is_missing_library() => match self.reload_library(e).await {
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    /// The backend in use; `None` until Redis was reached.
    pub fn backend_name(&self) -> Option<&'static str> {
        self.backend.get().map(|b| b.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::DateTime;

    fn sale(pre_queue_seconds: Option<i64>, max_queue: Option<i64>) -> SaleDoc {
        SaleDoc {
            id: "s".into(),
            name: "s".into(),
            description: String::new(),
            initial_quantity: 10,
            current_quantity: 10,
            price_per_unit: 100,
            starts_at: DateTime::from_millis(1_000),
            ends_at: DateTime::from_millis(2_000),
            hold_ttl_seconds: None,
            rate: None,
            max_queue,
            pre_queue_seconds,
            lottery_seed: pre_queue_seconds.map(|_| "ab".repeat(32)),
            created_at: DateTime::from_millis(0),
            updated_at: DateTime::from_millis(0),
        }
    }

    /// The draw sorts every registrant in one command: a lottery sale's
    /// registrations are bounded even when the admin set no queue limit.
    #[test]
    fn a_lottery_sale_has_a_bounded_queue() {
        assert_eq!(setup_params(&sale(None, None), 60).max_queue, 0);
        assert_eq!(
            setup_params(&sale(Some(30), None), 60).max_queue,
            LOTTERY_MAX_QUEUE
        );
        assert_eq!(
            setup_params(&sale(Some(30), Some(500_000)), 60).max_queue,
            500_000
        );
        assert_eq!(setup_params(&sale(None, Some(7)), 60).max_queue, 7);
    }
}
