//! Orders in MongoDB: the durable record the outbox is copied into.
//!
//! Writes are idempotent — `_id` is the engine's order id and (flashSaleId,
//! userEmail) is unique — so copying an entry twice (a worker died between
//! the write and its XACK) is a success, never a second order.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{Acknowledgment, IndexOptions, InsertManyOptions, WriteConcern};
use mongodb::{Collection, Database, IndexModel};

pub const COLLECTION: &str = "orders";
const DUPLICATE_KEY: i32 = 11000;

/// One confirmed order, as the engine wrote it to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub sale_id: String,
    pub user_email: String,
    /// Minor units (cents), exactly as confirmed.
    pub total_amount: i64,
    /// When the engine confirmed it (server clock, ms).
    pub confirmed_at: i64,
}

impl Order {
    /// From the fields of an outbox entry (`order_id`, `sale_id`, `user_id`,
    /// `amount`, `confirmed_at`).
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Order, String> {
        let text = |name: &str| {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| format!("outbox entry lacks {name}"))
        };
        let number = |name: &str| -> Result<i64, String> {
            text(name)?
                .parse()
                .map_err(|_| format!("outbox entry's {name} is not an integer"))
        };
        Ok(Order {
            order_id: text("order_id")?,
            sale_id: text("sale_id")?,
            user_email: text("user_id")?,
            total_amount: number("amount")?,
            confirmed_at: number("confirmed_at")?,
        })
    }

    pub fn to_document(&self, now: DateTime) -> Document {
        doc! {
            "_id": &self.order_id,
            "userEmail": &self.user_email,
            "flashSaleId": &self.sale_id,
            "quantity": 1,
            "paymentStatus": "paid",
            "totalAmount": self.total_amount,
            "confirmedAt": DateTime::from_millis(self.confirmed_at),
            "createdAt": now,
            "updatedAt": now,
        }
    }
}

pub fn collection(db: &Database) -> Collection<Document> {
    db.collection(COLLECTION)
}

/// One order per user per sale, enforced by MongoDB itself.
pub async fn ensure_indexes(db: &Database) -> Result<(), MongoError> {
    let unique = IndexOptions::builder()
        .unique(true)
        .name("one_order_per_user".to_string())
        .build();
    let index = IndexModel::builder()
        .keys(doc! { "flashSaleId": 1, "userEmail": 1 })
        .options(unique)
        .build();
    collection(db).create_index(index).await?;
    Ok(())
}

/// Writes the orders with majority, journaled acknowledgement. An order that
/// is already there (same id, same buyer) counts as written. Returns the ids
/// of orders that collide with a *different* document — another order under
/// the same id, or another id for the same buyer — which must not be
/// acknowledged as copied.
pub async fn write(db: &Database, orders: &[Order]) -> Result<Vec<String>, MongoError> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let now = DateTime::now();
    let documents: Vec<Document> = orders.iter().map(|o| o.to_document(now)).collect();
    let concern = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build();
    let options = InsertManyOptions::builder()
        .ordered(false)
        .write_concern(concern)
        .build();
    match collection(db)
        .insert_many(documents)
        .with_options(options)
        .await
    {
        Ok(_) => Ok(Vec::new()),
        Err(error) if only_duplicates(&error) => conflicts(db, orders).await,
        Err(error) => Err(error),
    }
}

/// After duplicate-key errors: the orders whose stored document is not this
/// same order.
async fn conflicts(db: &Database, orders: &[Order]) -> Result<Vec<String>, MongoError> {
    let ids: Vec<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
    let mut stored = collection(db).find(doc! { "_id": { "$in": ids } }).await?;
    let mut found: HashMap<String, (String, String)> = HashMap::new();
    while let Some(document) = stored.try_next().await? {
        if let (Ok(id), Ok(user), Ok(sale)) = (
            document.get_str("_id"),
            document.get_str("userEmail"),
            document.get_str("flashSaleId"),
        ) {
            found.insert(id.to_string(), (user.to_string(), sale.to_string()));
        }
    }
    Ok(orders
        .iter()
        .filter(|o| found.get(&o.order_id) != Some(&(o.user_email.clone(), o.sale_id.clone())))
        .map(|o| o.order_id.clone())
        .collect())
}

fn only_duplicates(error: &MongoError) -> bool {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_an_outbox_entry() {
        let order = Order::from_fields(&fields(&[
            ("order_id", "s-1"),
            ("sale_id", "s"),
            ("user_id", "a@b.c"),
            ("amount", "1999"),
            ("confirmed_at", "1800000000000"),
        ]));
        assert_eq!(
            order,
            Ok(Order {
                order_id: "s-1".into(),
                sale_id: "s".into(),
                user_email: "a@b.c".into(),
                total_amount: 1999,
                confirmed_at: 1_800_000_000_000
            })
        );
    }

    #[test]
    fn refuses_a_malformed_entry() {
        assert!(Order::from_fields(&fields(&[("order_id", "s-1")])).is_err());
        let bad_amount = fields(&[
            ("order_id", "s-1"),
            ("sale_id", "s"),
            ("user_id", "a"),
            ("amount", "12.5"),
            ("confirmed_at", "1"),
        ]);
        assert!(Order::from_fields(&bad_amount).is_err());
    }
}
