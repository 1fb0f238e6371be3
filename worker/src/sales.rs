//! Which sales exist: read from MongoDB's `flash_sales`, the system of record
//! the API writes. Everything about a sale's state comes from the engine.

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::Database;
use records::sale::{engine_id, field};

#[derive(Debug, Clone, PartialEq)]
pub struct KnownSale {
    /// The engine's sale id.
    pub id: String,
    /// The document's `_id` as stored (string or ObjectId), to update it.
    pub mongo_id: Bson,
}

pub async fn list(db: &Database) -> Result<Vec<KnownSale>, MongoError> {
    let mut cursor = db
        .collection::<Document>(records::SALES)
        .find(doc! {})
        .projection(doc! { field::ID: 1 })
        .await?;
    let mut sales = Vec::new();
    while let Some(document) = cursor.try_next().await? {
        if let Some(mongo_id) = document.get(field::ID) {
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
    db.collection::<Document>(records::SALES)
        .update_one(
            doc! { field::ID: sale.mongo_id.clone() },
            doc! { "$set": { field::CURRENT_QUANTITY: left, field::UPDATED_AT: DateTime::now() } },
        )
        .await?;
    Ok(())
}
