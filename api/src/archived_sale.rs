//! A sale that has ended and that the engine no longer has — the worker's
//! retention removed its keys once MongoDB had every order, or Redis lost
//! them after the end — answered from MongoDB as the engine would answer:
//! ended (or sold out), its buyers purchased, nobody can buy. Only reached
//! after the engine said NOSALE, never on a live sale's path.

use flashsale::{ConfirmReply, EnqueueReply, SaleState, SaleStatus, StatusReply, UserStatus};

use crate::domain::{Email, SaleId};
use crate::error::ApiError;
use crate::live_sales::setup_params;
use crate::store::{orders, sales::SaleDoc, Db};

pub struct ArchivedSale {
    id: SaleId,
    status: SaleStatus,
}

impl ArchivedSale {
    /// `Some` when `doc` has ended by `now_ms` (an archived sale); `None`
    /// for a sale still open or upcoming, which is set up again instead.
    pub async fn of(
        db: &Db,
        id: &SaleId,
        doc: &SaleDoc,
        default_hold_secs: u64,
        now_ms: u64,
    ) -> Result<Option<ArchivedSale>, ApiError> {
        let params = setup_params(doc, default_hold_secs);
        if now_ms < params.ends_at {
            return Ok(None);
        }
        let sold = orders::count_for_sale(&db.orders, id).await?;
        let state = if sold >= params.stock {
            SaleState::SoldOut
        } else {
            SaleState::Ended
        };
        Ok(Some(ArchivedSale {
            id: id.clone(),
            status: SaleStatus {
                state,
                stock: params.stock,
                sold,
                held: 0,
                queued: 0,
                starts_at: params.starts_at,
                ends_at: params.ends_at,
                hold_ttl_ms: params.hold_ttl_ms,
                rate: params.rate,
                max_queue: params.max_queue,
                now: now_ms,
            },
        }))
    }

    async fn order_of(&self, db: &Db, user: &Email) -> Result<Option<String>, ApiError> {
        Ok(orders::find_for_user(&db.orders, &self.id, user)
            .await?
            .map(|order| order.order_id))
    }

    pub async fn status(&self, db: &Db, user: Option<&Email>) -> Result<StatusReply, ApiError> {
        let user = match user {
            None => None,
            Some(user) => Some(match self.order_of(db, user).await? {
                Some(order_id) => UserStatus::Purchased { order_id },
                None => UserStatus::None,
            }),
        };
        Ok(StatusReply {
            sale: self.status.clone(),
            user,
        })
    }

    pub async fn enqueue(&self, db: &Db, user: &Email) -> Result<EnqueueReply, ApiError> {
        Ok(match self.order_of(db, user).await? {
            Some(order_id) => EnqueueReply::Purchased { order_id },
            None => EnqueueReply::Ended,
        })
    }

    pub async fn confirm(&self, db: &Db, user: &Email) -> Result<ConfirmReply, ApiError> {
        Ok(match self.order_of(db, user).await? {
            Some(order_id) => ConfirmReply::Purchased { order_id },
            None => ConfirmReply::Ended,
        })
    }
}
