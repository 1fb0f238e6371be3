//! Orders in MongoDB: the durable record the outbox is copied into (the
//! documents and the index are declared in `records::order`).
//!
//! Writes are idempotent — `_id` is the engine's order id and (flashSaleId,
//! userEmail) is unique — so copying an entry twice (a worker died between
//! the write and its XACK) is a success, never a second order.

use std::collections::HashMap;

use flashsale::OutboxEntry;
use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{Acknowledgment, InsertManyOptions, WriteConcern};
use mongodb::{Collection, Database};
use records::order::{self, field};

pub fn collection(db: &Database) -> Collection<Document> {
    db.collection(records::ORDERS)
}

/// One order per user per sale, enforced by MongoDB itself, and the
/// indexes the API's order list reads through.
pub async fn ensure_indexes(db: &Database) -> Result<(), MongoError> {
    // One at a time: FerretDB v1.24 panics on a createIndexes listing two
    // or more indexes that exist already (validateIndexesForCreation
    // deletes from its copy by the original position).
    for index in order::indexes() {
        collection(db).create_index(index).await?;
    }
    Ok(())
}

/// Writes the orders with majority, journaled acknowledgement. An order that
/// is already there (same id, same buyer) counts as written. Returns the ids
/// of orders that collide with a *different* document — another order under
/// the same id, or another id for the same buyer — which must not be
/// acknowledged as copied.
pub async fn write(db: &Database, orders: &[OutboxEntry]) -> Result<Vec<String>, MongoError> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let now = DateTime::now();
    let documents: Vec<Document> = orders.iter().map(|o| order::document(o, now)).collect();
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
async fn conflicts(db: &Database, orders: &[OutboxEntry]) -> Result<Vec<String>, MongoError> {
    let ids: Vec<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
    let mut stored = collection(db)
        .find(doc! { field::ID: { "$in": ids } })
        .await?;
    let mut found: HashMap<String, (String, String)> = HashMap::new();
    while let Some(document) = stored.try_next().await? {
        if let (Ok(id), Ok(user), Ok(sale)) = (
            document.get_str(field::ID),
            document.get_str(field::USER_EMAIL),
            document.get_str(field::SALE_ID),
        ) {
            found.insert(id.to_string(), (user.to_string(), sale.to_string()));
        }
    }
    Ok(orders
        .iter()
        .filter(|o| found.get(&o.order_id) != Some(&(o.contact().to_string(), o.sale_id.clone())))
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
                    .is_some_and(|errors| errors.iter().all(|e| e.code == records::DUPLICATE_KEY))
        }
        _ => false,
    }
}
