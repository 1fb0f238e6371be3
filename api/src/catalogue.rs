//! The sale catalogue: every admin change to a sale, in the two places a
//! sale lives — its document in MongoDB (`flash_sales`, the catalogue and
//! the durable record) and its state in the engine (stock, queue, holds,
//! orders) — kept in step:
//!
//! - create: engine SETUP, then the MongoDB insert (the id is brand new, so
//!   nobody can use the sale in between; a failed insert purges the engine's
//!   keys again);
//! - update: engine SETUP first — the engine refuses stock below sold + held
//!   (409) and then nothing has changed — then MongoDB; a failed MongoDB
//!   write puts the engine back;
//! - delete: see [`SaleCatalogue::delete`].
//!
//! Updates and deletes hold the sale's [`SaleLock`], so two admins never
//! interleave. `currentQuantity` is not written here after the insert: the
//! worker keeps it following the engine.

use flashsale::{RedisConn, SaleStatus, SetupParams, StatusReply};
use mongodb::bson;
use serde_json::json;

use crate::domain::SaleId;
use crate::error::ApiError;
use crate::live_sales::LiveSales;
use crate::sale_lock::SaleLock;
use crate::state::AppState;
use crate::store::{orders, sales, sales::SaleDoc, Db};

pub struct SaleCatalogue<'a> {
    live: &'a LiveSales,
    db: &'a Db,
    redis: &'a RedisConn,
}

impl<'a> SaleCatalogue<'a> {
    pub fn of(state: &'a AppState) -> Self {
        SaleCatalogue {
            live: &state.live,
            db: &state.db,
            redis: &state.redis,
        }
    }

    /// Sets up a new sale in the engine and stores its document; the
    /// engine's figures afterwards.
    pub async fn create(&self, sale: &SaleDoc) -> Result<Option<StatusReply>, ApiError> {
        let sale_id = SaleId::parse(&sale.id)?;
        self.live
            .setup(&sale_id, self.live.setup_params(sale))
            .await?;
        if let Err(e) = sales::insert(&self.db.sales, sale).await {
            // Nobody knows the new id yet: purging its keys undoes the SETUP.
            if let Err(undo) = self.live.purge(&sale_id).await {
                tracing::error!(sale = %sale_id, error = ?undo, "could not undo the engine setup");
            }
            return Err(e.into());
        }
        tracing::info!(sale = %sale_id, "sale created");
        self.live.status_if_known(&sale_id).await
    }

    /// Applies `change` to the stored sale, in the engine and then in
    /// MongoDB. Returns the new document (its `currentQuantity` as the
    /// engine has it now) and the engine's figures.
    pub async fn update(
        &self,
        sale_id: &SaleId,
        change: impl FnOnce(&SaleDoc) -> Result<SaleDoc, ApiError>,
    ) -> Result<(SaleDoc, SaleStatus), ApiError> {
        let lock = SaleLock::acquire(self.redis, sale_id).await?;
        let result = self.update_locked(sale_id, change).await;
        lock.release().await;
        result
    }

    async fn update_locked(
        &self,
        sale_id: &SaleId,
        change: impl FnOnce(&SaleDoc) -> Result<SaleDoc, ApiError>,
    ) -> Result<(SaleDoc, SaleStatus), ApiError> {
        let current = sales::find(&self.db.sales, sale_id)
            .await?
            .ok_or_else(ApiError::sale_not_found)?;
        let mut updated = change(&current)?;
        let before = self.live.status_if_known(sale_id).await?;
        if before.is_none() {
            // The engine lost it: set it up again as MongoDB has it (its
            // recorded orders, an admin's pause, the lottery's seed) before
            // the change, which keeps the pause and the lottery.
            self.live.restore_lost(sale_id).await?;
        }

        // The engine first: it refuses a stock below sold + held, and then
        // nothing has changed anywhere.
        self.live
            .setup(sale_id, self.live.setup_params(&updated))
            .await?;
        let live = self.live.status(sale_id, None).await?.sale;
        updated.updated_at = bson::DateTime::now();

        let stored = sales::update(&self.db.sales, &updated).await;
        if !matches!(stored, Ok(true)) {
            // Put the engine back as it was, so the two agree again.
            let previous = match &before {
                Some(status) => SetupParams {
                    price: self.live.setup_params(&current).price,
                    ..params_of(&status.sale)
                },
                None => self.live.setup_params(&current),
            };
            if let Err(e) = self.live.setup(sale_id, previous).await {
                tracing::error!(sale = %sale_id, error = ?e, "could not put the engine back after a failed update");
            }
            return Err(match stored {
                Ok(_) => ApiError::sale_not_found(),
                Err(e) => e.into(),
            });
        }
        tracing::info!(sale = %sale_id, "sale updated");
        updated.current_quantity =
            i64::try_from(live.stock.saturating_sub(live.sold)).unwrap_or(i64::MAX);
        Ok((updated, live))
    }

    /// Deletes a sale.
    ///
    /// A sale with orders is refused (409 `sale_has_orders`) unless `force`;
    /// orders in MongoDB are never deleted. The engine ends the sale first
    /// (SETUP with `ends_at` = now), so no buy, grant or confirm can slip in
    /// while it goes. With `force`, the delete then waits for the worker:
    /// while MongoDB has fewer orders than the engine sold (some are still
    /// only in the outbox), it answers 409 `orders_pending` — the sale stays
    /// ended — and the admin retries. Then the MongoDB document goes, and
    /// every Redis key of the sale (outbox included: every entry is in
    /// MongoDB by then, and the worker, which lists sales from MongoDB, no
    /// longer reads it).
    pub async fn delete(&self, sale_id: &SaleId, force: bool) -> Result<(), ApiError> {
        let lock = SaleLock::acquire(self.redis, sale_id).await?;
        let result = self.delete_locked(sale_id, force).await;
        lock.release().await;
        result
    }

    async fn delete_locked(&self, sale_id: &SaleId, force: bool) -> Result<(), ApiError> {
        if sales::find(&self.db.sales, sale_id).await?.is_none() {
            return Err(ApiError::sale_not_found());
        }
        let has_orders = |sold: u64, recorded: u64| {
            ApiError::conflict(
                "sale_has_orders",
                "this sale has orders; delete with ?force=true to remove the sale and keep its orders",
            )
            .with_details(json!({ "sold": sold, "recorded": recorded }))
        };
        let recorded = orders::count_for_sale(&self.db.orders, sale_id).await?;
        let status = self.live.status_if_known(sale_id).await?;
        let sold = status.as_ref().map_or(0, |s| s.sale.sold);
        if !force && (sold > 0 || recorded > 0) {
            return Err(has_orders(sold, recorded));
        }

        let mut sold_final = sold;
        if let Some(StatusReply { sale: before, .. }) = &status {
            if before.now < before.ends_at {
                let ending = SetupParams {
                    starts_at: before.starts_at.min(before.now.saturating_sub(1)),
                    ends_at: before.now.max(1),
                    ..params_of(before)
                };
                self.live.setup(sale_id, ending).await?;
                // A confirm may have landed between the check and the end.
                let after = self.live.status_if_known(sale_id).await?;
                sold_final = after.as_ref().map_or(sold, |s| s.sale.sold);
                if !force && sold_final > 0 {
                    self.live.setup(sale_id, params_of(before)).await?;
                    return Err(has_orders(sold_final, recorded));
                }
            }
        }
        if force {
            let recorded = orders::count_for_sale(&self.db.orders, sale_id).await?;
            if recorded < sold_final {
                return Err(ApiError::conflict(
                    "orders_pending",
                    "the sale has ended, but some of its orders are not in MongoDB yet; \
                     retry the delete once the worker has recorded them",
                )
                .with_details(json!({ "sold": sold_final, "recorded": recorded }))
                .with_retry_after(1));
            }
        }

        sales::delete(&self.db.sales, sale_id).await?;
        if let Err(e) = self.live.purge(sale_id).await {
            // The sale is out of the catalogue and ended in the engine; the
            // leftover keys do no harm.
            tracing::warn!(sale = %sale_id, error = ?e, "sale deleted but some Redis keys remain");
        }
        tracing::info!(sale = %sale_id, force, "sale deleted");
        Ok(())
    }
}

/// The engine's current figures as SETUP arguments (to put them back; the
/// price stays as the engine has it).
fn params_of(status: &SaleStatus) -> SetupParams {
    SetupParams {
        stock: status.stock,
        starts_at: status.starts_at,
        ends_at: status.ends_at,
        hold_ttl_ms: status.hold_ttl_ms,
        rate: status.rate,
        max_queue: status.max_queue,
        price: None,
    }
}
