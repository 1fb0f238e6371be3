//! `flash_sales`: one document per sale, `_id` = the engine's sale id. The
//! seed's fields (name, description, initialQuantity, currentQuantity,
//! pricePerUnit, startsAt, endsAt, createdAt, updatedAt) plus what the
//! engine needs (holdTtlSeconds, rate, maxQueue). Money is Int64 cents.
//!
//! The API writes `_id` as a string (24 hex digits). Documents from before
//! it (the seed's, with ObjectId `_id`s and without the engine's fields)
//! are read too: an ObjectId `_id` is its hex string, and missing optional
//! fields take their defaults.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::Collection;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// Units not yet sold, as last written by the worker (informational:
    /// the engine's figures are the live truth).
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
    /// The pre-queue window in seconds before the start (the engine's
    /// PREQUEUE): buys in it register for the lottery drawn at the start;
    /// absent = no window.
    #[serde(default)]
    pub pre_queue_seconds: Option<i64>,
    /// The lottery's seed (the engine's SEED, 64 hex), made once when the
    /// sale first gets a window and kept, so a sale Redis lost is set up
    /// again drawing with the seed whose commitment was published. Secret
    /// until the draw: no view shows it from here.
    #[serde(default)]
    pub lottery_seed: Option<String>,
    #[serde(default = "epoch")]
    pub created_at: DateTime,
    #[serde(default = "epoch")]
    pub updated_at: DateTime,
}

/// The names queries use (the document itself is [`SaleDoc`]'s serde form).
pub mod field {
    pub const ID: &str = "_id";
    pub const CURRENT_QUANTITY: &str = "currentQuantity";
    pub const STARTS_AT: &str = "startsAt";
    pub const ENDS_AT: &str = "endsAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// `true` while an admin has the sale paused (the engine's PAUSE), so
    /// that a sale Redis lost is set up paused again. Not a [`super::SaleDoc`]
    /// field: an edit of the sale writes SaleDoc's fields, and must never
    /// undo a pause it read before. Absent: running.
    pub const PAUSED: &str = "paused";
}

/// Records whether the sale is paused ([`field::PAUSED`]); false if there
/// is no such sale.
pub async fn set_paused<T: Send + Sync>(
    sales: &Collection<T>,
    id: &str,
    paused: bool,
) -> mongodb::error::Result<bool> {
    let change = if paused {
        doc! { "$set": { field::PAUSED: true } }
    } else {
        doc! { "$unset": { field::PAUSED: "" } }
    };
    let result = sales.update_one(id_filter(id), change).await?;
    Ok(result.matched_count == 1)
}

/// Whether the sale was left paused ([`set_paused`]).
pub async fn is_paused<T: Send + Sync>(
    sales: &Collection<T>,
    id: &str,
) -> mongodb::error::Result<bool> {
    let found = sales
        .clone_with_type::<Document>()
        .find_one(id_filter(id))
        .projection(doc! { field::PAUSED: 1 })
        .await?;
    Ok(found.is_some_and(|d| d.get_bool(field::PAUSED).unwrap_or(false)))
}

pub(crate) fn epoch() -> DateTime {
    DateTime::from_millis(0)
}

/// The engine's sale id of a stored `_id`: a string as is, an ObjectId as
/// its hex string.
pub fn engine_id(id: &Bson) -> Option<String> {
    match id {
        Bson::String(s) => Some(s.clone()),
        Bson::ObjectId(oid) => Some(oid.to_hex()),
        _ => None,
    }
}

fn string_or_object_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = Bson::deserialize(deserializer)?;
    engine_id(&id).ok_or_else(|| {
        serde::de::Error::custom(format!("_id must be a string or an ObjectId, not {id}"))
    })
}

/// Matches the sale whether its `_id` is stored as the string or, for a
/// 24-hex-digit id, as an ObjectId.
pub fn id_filter(id: &str) -> Document {
    match ObjectId::parse_str(id) {
        Ok(oid) => doc! { field::ID: { "$in": [id, oid] } },
        Err(_) => doc! { field::ID: id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_era_documents_read_with_defaults() {
        let oid = ObjectId::new();
        let doc = doc! {
            "_id": oid, "name": "Old", "initialQuantity": 3_i64, "pricePerUnit": 100_i64,
            "startsAt": DateTime::from_millis(1), "endsAt": DateTime::from_millis(2),
        };
        let sale: SaleDoc = mongodb::bson::from_document(doc).expect("reads");
        assert_eq!(sale.id, oid.to_hex());
        assert_eq!((sale.current_quantity, sale.hold_ttl_seconds), (0, None));
        assert_eq!(sale.created_at, epoch());
        assert!(engine_id(&Bson::Int32(1)).is_none());
        assert_eq!(
            id_filter("plain"),
            doc! { "_id": "plain" },
            "a non-hex id matches only as a string"
        );
    }
}
