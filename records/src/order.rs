//! `orders`: one document per confirmed order, copied by the worker from
//! the engine's outbox. `_id` is the engine's order id and (flashSaleId,
//! userEmail) is unique, so copying an entry twice is never a second order.

use engine::OutboxEntry;
use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

pub mod field {
    /// The engine's order id (`<sale>-<n>`).
    pub const ID: &str = "_id";
    /// The buyer's address as they typed it (the engine's CONFIRM
    /// `CONTACT`; the user id when none was given): what the buyer is
    /// written to at.
    pub const USER_EMAIL: &str = "userEmail";
    /// The engine's user id, the identity the one-per-person rule uses
    /// (e.g. `bob@x.com` for `Bob+shoes@x.com`): what RESTORE gives back.
    /// Orders written before it existed have only `userEmail`, which was
    /// the user id then.
    pub const BUYER_ID: &str = "buyerId";
    pub const SALE_ID: &str = "flashSaleId";
    pub const QUANTITY: &str = "quantity";
    pub const PAYMENT_STATUS: &str = "paymentStatus";
    /// Int64 minor units (cents), exactly as confirmed.
    pub const TOTAL_AMOUNT: &str = "totalAmount";
    /// When the engine confirmed it (its clock).
    pub const CONFIRMED_AT: &str = "confirmedAt";
    /// When the worker first wrote it.
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
}

/// Every order the engine confirms is paid (the payment is a mock).
pub const PAID: &str = "paid";

/// The document of a confirmed order; `now` is when it is written.
pub fn document(entry: &OutboxEntry, now: DateTime) -> Document {
    let millis = |ms: u64| DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
    doc! {
        field::ID: &entry.order_id,
        field::USER_EMAIL: entry.contact(),
        field::BUYER_ID: &entry.user_id,
        field::SALE_ID: &entry.sale_id,
        field::QUANTITY: 1,
        field::PAYMENT_STATUS: PAID,
        field::TOTAL_AMOUNT: i64::try_from(entry.amount).unwrap_or(i64::MAX),
        field::CONFIRMED_AT: millis(entry.confirmed_at),
        field::CREATED_AT: now,
        field::UPDATED_AT: now,
    }
}

/// Every recorded order of `sale` as (order id, buyer): what the engine
/// needs to rebuild the sale's orders after Redis lost them. The buyer is
/// the engine's user id (`buyerId`; `userEmail` for orders from before
/// it). Documents without a string id or buyer (not written by the worker)
/// are left out.
pub async fn buyers_of_sale(
    orders: &Collection<Document>,
    sale: &str,
) -> mongodb::error::Result<Vec<(String, String)>> {
    let mut cursor = orders
        .find(doc! { field::SALE_ID: sale })
        .projection(doc! { field::ID: 1, field::USER_EMAIL: 1, field::BUYER_ID: 1 })
        .await?;
    let mut found = Vec::new();
    while let Some(document) = cursor.try_next().await? {
        let buyer = document
            .get_str(field::BUYER_ID)
            .or_else(|_| document.get_str(field::USER_EMAIL));
        if let (Ok(id), Ok(buyer)) = (document.get_str(field::ID), buyer) {
            found.push((id.to_string(), buyer.to_string()));
        }
    }
    Ok(found)
}

/// One order per user per sale, enforced by MongoDB itself.
pub fn one_order_per_user() -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field::SALE_ID: 1, field::USER_EMAIL: 1 })
        .options(
            IndexOptions::builder()
                .unique(true)
                .name("one_order_per_user".to_string())
                .build(),
        )
        .build()
}

/// The index the admin order list reads through: one sale's orders newest
/// first (`createdAt` descending, then `_id`, the list's sort), and the
/// count of a sale's orders. Readers name it in `hint`: MongoDB then never
/// picks `one_order_per_user` for the sale filter and sorts in memory, and
/// the test server (tools/mongo-sqlite) answers hinted queries from SQLite
/// instead of decoding every order.
pub const BY_SALE_NEWEST_FIRST: &str = "by_sale_newest_first";

pub fn by_sale_newest_first() -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field::SALE_ID: 1, field::CREATED_AT: -1, field::ID: 1 })
        .options(
            IndexOptions::builder()
                .name(BY_SALE_NEWEST_FIRST.to_string())
                .build(),
        )
        .build()
}

/// Every index of `orders`: the worker creates them before its first
/// write, the API at startup (it may run first).
pub fn indexes() -> Vec<IndexModel> {
    vec![one_order_per_user(), by_sale_newest_first()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_document_has_the_seed_fields() {
        let entry = OutboxEntry {
            order_id: "s-1".into(),
            sale_id: "s".into(),
            user_id: "ann@example.com".into(),
            amount: 4999,
            confirmed_at: 1_800_000_000_000,
            contact: None,
        };
        let now = DateTime::from_millis(5);
        let doc = document(&entry, now);
        assert_eq!(doc.get_str("_id"), Ok("s-1"));
        assert_eq!(doc.get_str("userEmail"), Ok("ann@example.com"));
        assert_eq!(doc.get_str("buyerId"), Ok("ann@example.com"));
        assert_eq!(doc.get_str("flashSaleId"), Ok("s"));
        assert_eq!(doc.get_str("paymentStatus"), Ok("paid"));
        assert_eq!(doc.get_i64("totalAmount"), Ok(4999));
        assert_eq!(
            doc.get_datetime("confirmedAt")
                .map(|t| t.timestamp_millis()),
            Ok(1_800_000_000_000)
        );
        assert_eq!(doc.get_datetime("createdAt"), Ok(&now));
    }

    /// The order keeps the address as typed; the identity goes to buyerId.
    #[test]
    fn an_order_keeps_the_address_as_typed() {
        let entry = OutboxEntry {
            order_id: "s-1".into(),
            sale_id: "s".into(),
            user_id: "bob@x.com".into(),
            amount: 1,
            confirmed_at: 1,
            contact: Some("Bob+shoes@x.com".into()),
        };
        let doc = document(&entry, DateTime::from_millis(5));
        assert_eq!(doc.get_str("userEmail"), Ok("Bob+shoes@x.com"));
        assert_eq!(doc.get_str("buyerId"), Ok("bob@x.com"));
    }
}
