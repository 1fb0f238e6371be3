//! Which sales exist: read from MongoDB's `flash_sales`, the system of record
//! the API writes. Everything about a sale's state comes from the engine.

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::Error as MongoError;
use mongodb::Database;

pub const COLLECTION: &str = "flash_sales";

#[derive(Debug, Clone, PartialEq)]
pub struct KnownSale {
    /// The engine's sale id.
    pub id: String,
    /// The document's `_id` as stored (string or ObjectId), to update it.
    pub mongo_id: Bson,
}

/// The engine id of a `_id`: a string as is, an ObjectId as hex.
pub fn engine_id(id: &Bson) -> Option<String> {
    match id {
        Bson::String(s) => Some(s.clone()),
        Bson::ObjectId(oid) => Some(oid.to_hex()),
        _ => None,
    }
}

pub async fn list(db: &Database) -> Result<Vec<KnownSale>, MongoError> {
    let mut cursor = db
        .collection::<Document>(COLLECTION)
        .find(doc! {})
        .projection(doc! { "_id": 1 })
        .await?;
    let mut sales = Vec::new();
    while let Some(document) = cursor.try_next().await? {
        if let Some(mongo_id) = document.get("_id") {
            if let Some(id) = engine_id(mongo_id) {
                sales.push(KnownSale {
                    id,
                    mongo_id: mongo_id.clone(),
                });
            }
        }
    }
    Ok(sales)
}

/// Keeps `flash_sales.currentQuantity` following the engine's stock.
pub async fn set_current_quantity(
    db: &Database,
    sale: &KnownSale,
    left: u64,
) -> Result<(), MongoError> {
    let left = i64::try_from(left).unwrap_or(i64::MAX);
    db.collection::<Document>(COLLECTION)
        .update_one(
            doc! { "_id": sale.mongo_id.clone() },
            doc! { "$set": { "currentQuantity": left, "updatedAt": mongodb::bson::DateTime::now() } },
        )
        .await?;
    Ok(())
}
