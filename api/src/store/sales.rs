//! `flash_sales`: one document per sale, `_id` = the engine's sale id. The
//! seed's fields (name, description, initialQuantity, currentQuantity,
//! pricePerUnit, startsAt, endsAt, createdAt, updatedAt) plus what the
//! engine needs (holdTtlSeconds, rate, maxQueue). Money is Int64 cents.
//!
//! The API writes `_id` as a string (24 hex digits). Documents from before
//! it (the seed's, with ObjectId `_id`s and without the engine's fields)
//! are read too: an ObjectId `_id` is its hex string — as the worker reads
//! it — and missing optional fields take their defaults.

use futures::TryStreamExt;
use mongodb::bson::{self, doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::options::FindOptions;
use mongodb::Collection;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::SaleId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaleDoc {
    #[serde(rename = "_id", deserialize_with = "string_or_object_id")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Units on sale in total (the engine's `stock`).
    pub initial_quantity: i64,
    /// Units not yet sold, as last written by the API or the worker
    /// (informational: the engine's figures are the live truth).
    #[serde(default)]
    pub current_quantity: i64,
    /// Minor units (cents).
    pub price_per_unit: i64,
    pub starts_at: DateTime,
    pub ends_at: DateTime,
    /// Absent on seed-era documents: then `HOLD_TTL_SECONDS`.
    #[serde(default)]
    pub hold_ttl_seconds: Option<i64>,
    /// Holds granted per second; absent = unlimited.
    #[serde(default)]
    pub rate: Option<i64>,
    /// Longest queue; absent = unlimited.
    #[serde(default)]
    pub max_queue: Option<i64>,
    #[serde(default = "epoch")]
    pub created_at: DateTime,
    #[serde(default = "epoch")]
    pub updated_at: DateTime,
}

fn epoch() -> DateTime {
    DateTime::from_millis(0)
}

fn string_or_object_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Bson::deserialize(deserializer)? {
        Bson::String(s) => Ok(s),
        Bson::ObjectId(id) => Ok(id.to_hex()),
        other => Err(serde::de::Error::custom(format!(
            "_id must be a string or an ObjectId, not {other}"
        ))),
    }
}

/// Matches the sale whether its `_id` is stored as the string or, for a
/// 24-hex-digit id, as an ObjectId.
fn id_filter(id: &str) -> Document {
    match ObjectId::parse_str(id) {
        Ok(oid) => doc! { "_id": { "$in": [id, oid] } },
        Err(_) => doc! { "_id": id },
    }
}

pub async fn insert(sales: &Collection<SaleDoc>, sale: &SaleDoc) -> mongodb::error::Result<()> {
    sales.insert_one(sale).await.map(|_| ())
}

pub async fn find(
    sales: &Collection<SaleDoc>,
    id: &SaleId,
) -> mongodb::error::Result<Option<SaleDoc>> {
    sales.find_one(id_filter(id.as_str())).await
}

/// Writes every field but `_id` (whatever its type) and `currentQuantity`
/// (the worker's to keep), and leaves fields the API does not know alone;
/// false if the sale no longer exists.
pub async fn update(sales: &Collection<SaleDoc>, sale: &SaleDoc) -> mongodb::error::Result<bool> {
    let mut fields = bson::to_document(sale)?;
    fields.remove("_id");
    fields.remove("currentQuantity");
    let result = sales
        .update_one(id_filter(&sale.id), doc! { "$set": fields })
        .await?;
    Ok(result.matched_count == 1)
}

pub async fn delete(sales: &Collection<SaleDoc>, id: &SaleId) -> mongodb::error::Result<bool> {
    let result = sales.delete_one(id_filter(id.as_str())).await?;
    Ok(result.deleted_count == 1)
}

/// One page of sales, newest start first, and the total count.
pub async fn list(
    sales: &Collection<SaleDoc>,
    skip: u64,
    limit: i64,
) -> mongodb::error::Result<(Vec<SaleDoc>, u64)> {
    let total = sales.count_documents(doc! {}).await?;
    let options = FindOptions::builder()
        .sort(doc! { "startsAt": -1, "_id": 1 })
        .skip(skip)
        .limit(limit)
        .build();
    let page = sales
        .find(doc! {})
        .with_options(options)
        .await?
        .try_collect()
        .await?;
    Ok((page, total))
}

/// Sales that have not ended before `since` (for the metrics gauges).
pub async fn list_recent(
    sales: &Collection<SaleDoc>,
    since: DateTime,
    limit: i64,
) -> mongodb::error::Result<Vec<SaleDoc>> {
    let options = FindOptions::builder()
        .sort(doc! { "endsAt": -1 })
        .limit(limit)
        .build();
    sales
        .find(doc! { "endsAt": { "$gte": since } })
        .with_options(options)
        .await?
        .try_collect()
        .await
}

/// Sales that have not ended at `now`, soonest start first (the public list
/// on the customer page).
pub async fn list_open(
    sales: &Collection<SaleDoc>,
    now: DateTime,
    limit: i64,
) -> mongodb::error::Result<Vec<SaleDoc>> {
    let options = FindOptions::builder()
        .sort(doc! { "startsAt": 1, "_id": 1 })
        .limit(limit)
        .build();
    sales
        .find(doc! { "endsAt": { "$gt": now } })
        .with_options(options)
        .await?
        .try_collect()
        .await
}
