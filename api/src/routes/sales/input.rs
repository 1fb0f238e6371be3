//! What an admin sends to create or change a sale, and its validation
//! against the API's and the engine's limits. Everything here is pure: the
//! result is the MongoDB document to store, or a 400 naming the field.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use engine::command::{
    MAX_HOLD_TTL_MS, MAX_PREQUEUE_MS, MAX_QUEUE, MAX_RATE, MAX_STOCK, MAX_TIME_MS,
};
use mongodb::bson;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::{whole, Money, SaleId};
use crate::error::ApiError;
use crate::store::sales::SaleDoc;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// A new sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSale {
    /// 1 to 200 characters, not all blank.
    // Literals only in attributes: MAX_NAME_CHARS etc. (tested below).
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\x0C\r]")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    /// Units on sale, 1 to 1000000000.
    #[schema(minimum = 1, maximum = 1000000000)]
    #[serde(deserialize_with = "whole::required")]
    pub initial_quantity: u64,
    /// Decimal with at most two places, as a string ("49.99") or a number.
    pub price_per_unit: Money,
    /// From 1970 on; a time the engine cannot hold, or `endsAt` not after
    /// `startsAt`, is 422 (the schema cannot say it).
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Seconds an admitted customer has to confirm (default HOLD_TTL_SECONDS).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub hold_ttl_seconds: Option<u64>,
    /// Customers admitted per second (default: unlimited).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub rate: Option<u64>,
    /// Longest queue (default: unlimited).
    #[schema(minimum = 1, maximum = 1000000000)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub max_queue: Option<u64>,
    /// A pre-queue window: buys in the last this many seconds before the
    /// start are registered, and at the start enter the queue in an order
    /// drawn from a seed committed to in advance (default: none).
    // Literals only in attributes: MAX_PREQUEUE_MS / 1000 (tested).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub pre_queue_seconds: Option<u64>,
}

/// A new lottery seed: 32 bytes from the OS's CSPRNG (two v4 UUIDs, 244
/// random bits, whitened by SHA-256), as 64 lowercase hex digits, the form
/// the engine's SEED takes.
pub fn new_lottery_seed() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(uuid::Uuid::new_v4().as_bytes());
    hasher.update(uuid::Uuid::new_v4().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl CreateSale {
    /// The new sale's document, validated; a fresh id, every figure from
    /// the request or its default (`default_hold_secs`: HOLD_TTL_SECONDS).
    pub fn into_document(self, default_hold_secs: u64) -> Result<SaleDoc, ApiError> {
        let now = bson::DateTime::now();
        let quantity = quantity_field(self.initial_quantity)?;
        let sale = SaleDoc {
            id: SaleId::generate().to_string(),
            name: name_field(&self.name)?,
            description: self.description,
            initial_quantity: quantity,
            current_quantity: quantity,
            price_per_unit: price_field(self.price_per_unit)?,
            starts_at: time_ms("startsAt", self.starts_at)?,
            ends_at: time_ms("endsAt", self.ends_at)?,
            hold_ttl_seconds: Some(hold_field(
                self.hold_ttl_seconds.unwrap_or(default_hold_secs),
            )?),
            rate: rate_field(self.rate)?,
            max_queue: max_queue_field(self.max_queue)?,
            pre_queue_seconds: pre_queue_field(self.pre_queue_seconds)?,
            // Made with the window, never changed afterwards.
            lottery_seed: self.pre_queue_seconds.map(|_| new_lottery_seed()),
            created_at: now,
            updated_at: now,
        };
        validate(&sale)?;
        Ok(sale)
    }
}

/// Changes to a sale: absent fields keep their value; `rate`, `maxQueue`
/// and `preQueueSeconds` may be null to remove the limit or the window.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSale {
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\x0C\r]")]
    pub name: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(minimum = 1, maximum = 1000000000)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub initial_quantity: Option<u64>,
    pub price_per_unit: Option<Money>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub hold_ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole::nullable")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub rate: Option<Option<u64>>,
    #[serde(default, deserialize_with = "whole::nullable")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1000000000)]
    pub max_queue: Option<Option<u64>>,
    /// The pre-queue window in seconds (1 to 86400); null removes it. It
    /// cannot change once the window has opened (409 `lottery_locked`).
    #[serde(default, deserialize_with = "whole::nullable")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 86400)]
    pub pre_queue_seconds: Option<Option<u64>>,
}

fn invalid(field: &'static str, message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message).with_details(json!({ "field": field }))
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<i64, ApiError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("{field} must be from {min} to {max}"),
        ));
    }
    i64::try_from(value).map_err(|_| invalid(field, format!("{field} is too large")))
}

/// A well-formed value the schema cannot rule out (a time the engine
/// cannot hold, an end before the start): 422, not 400.
fn unprocessable(field: &'static str, message: String) -> ApiError {
    ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        .with_details(json!({ "field": field }))
}

/// Trimmed of ASCII spaces (what the schema's pattern calls blank); the
/// limit counts what was sent, as the schema's `maxLength` does.
fn name_field(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if name.is_empty() || raw.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters, not all blank"),
        ));
    }
    Ok(name.to_string())
}

fn time_ms(field: &'static str, time: DateTime<Utc>) -> Result<bson::DateTime, ApiError> {
    let ms = time.timestamp_millis();
    let max = MAX_TIME_MS;
    if ms < 0 || u64::try_from(ms).is_ok_and(|ms| ms > max) {
        return Err(unprocessable(
            field,
            format!("{field} must be between 1970 and year 33658"),
        ));
    }
    Ok(bson::DateTime::from_millis(ms))
}

/// Checks a sale's fields against the API's and the engine's limits.
fn validate(sale: &SaleDoc) -> Result<(), ApiError> {
    if sale.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if sale.ends_at <= sale.starts_at {
        return Err(unprocessable(
            "endsAt",
            "endsAt must be after startsAt".into(),
        ));
    }
    Ok(())
}

fn quantity_field(value: u64) -> Result<i64, ApiError> {
    in_range("initialQuantity", value, 1, MAX_STOCK)
}

fn hold_field(value: u64) -> Result<i64, ApiError> {
    in_range("holdTtlSeconds", value, 1, MAX_HOLD_TTL_MS / 1000)
}

fn rate_field(value: Option<u64>) -> Result<Option<i64>, ApiError> {
    value.map(|v| in_range("rate", v, 1, MAX_RATE)).transpose()
}

fn max_queue_field(value: Option<u64>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| in_range("maxQueue", v, 1, MAX_QUEUE))
        .transpose()
}

fn pre_queue_field(value: Option<u64>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| in_range("preQueueSeconds", v, 1, MAX_PREQUEUE_MS / 1000))
        .transpose()
}

fn price_field(price: Money) -> Result<i64, ApiError> {
    i64::try_from(price.minor_units())
        .map_err(|_| invalid("pricePerUnit", "pricePerUnit is too large".into()))
}

impl UpdateSale {
    /// Whether the request sets or removes the pre-queue window.
    pub fn changes_lottery(&self) -> bool {
        self.pre_queue_seconds.is_some()
    }

    /// `current` with these changes, validated. A sale that gets its first
    /// window gets `fresh_seed` as its lottery seed (the caller makes one
    /// per request, so applying twice gives the same document); a seed once
    /// made is kept, with or without a window.
    pub fn apply(self, current: &SaleDoc, fresh_seed: &str) -> Result<SaleDoc, ApiError> {
        let body = self;
        let mut sale = current.clone();
        if let Some(name) = body.name {
            sale.name = name_field(&name)?;
        }
        if let Some(description) = body.description {
            sale.description = description;
        }
        if let Some(quantity) = body.initial_quantity {
            sale.initial_quantity = quantity_field(quantity)?;
        }
        if let Some(price) = body.price_per_unit {
            sale.price_per_unit = price_field(price)?;
        }
        if let Some(starts_at) = body.starts_at {
            sale.starts_at = time_ms("startsAt", starts_at)?;
        }
        if let Some(ends_at) = body.ends_at {
            sale.ends_at = time_ms("endsAt", ends_at)?;
        }
        if let Some(hold) = body.hold_ttl_seconds {
            sale.hold_ttl_seconds = Some(hold_field(hold)?);
        }
        if let Some(rate) = body.rate {
            sale.rate = rate_field(rate)?;
        }
        if let Some(max_queue) = body.max_queue {
            sale.max_queue = max_queue_field(max_queue)?;
        }
        if let Some(pre_queue) = body.pre_queue_seconds {
            sale.pre_queue_seconds = pre_queue_field(pre_queue)?;
            if sale.pre_queue_seconds.is_some() && sale.lottery_seed.is_none() {
                sale.lottery_seed = Some(fresh_seed.to_string());
            }
        }
        validate(&sale)?;
        Ok(sale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_bounds_are_the_engine_limits() {
        // The literals in the schema attributes above.
        assert_eq!(MAX_PREQUEUE_MS / 1000, 86_400);
        assert!(pre_queue_field(Some(0)).is_err());
        assert!(pre_queue_field(Some(86_401)).is_err());
        assert_eq!(pre_queue_field(Some(86_400)).ok(), Some(Some(86_400)));
    }

    /// Every bound the schema publishes is the one the server applies.
    #[test]
    fn published_bounds_are_the_enforced_ones() {
        let bounds: [(&str, Option<u64>, u64); 7] = [
            ("initialQuantity", Some(1), MAX_STOCK),
            ("holdTtlSeconds", Some(1), MAX_HOLD_TTL_MS / 1000),
            ("rate", Some(1), MAX_RATE),
            ("maxQueue", Some(1), MAX_QUEUE),
            ("preQueueSeconds", Some(1), MAX_PREQUEUE_MS / 1000),
            ("name", None, MAX_NAME_CHARS as u64),
            ("description", None, MAX_DESCRIPTION_CHARS as u64),
        ];
        for schema in [
            serde_json::to_value(<CreateSale as utoipa::PartialSchema>::schema()),
            serde_json::to_value(<UpdateSale as utoipa::PartialSchema>::schema()),
        ] {
            let schema = schema.unwrap_or_default();
            for (field, min, max) in bounds {
                let property = &schema["properties"][field];
                let (low, high) = match min {
                    Some(_) => ("minimum", "maximum"),
                    None => ("minLength", "maxLength"),
                };
                if let Some(min) = min {
                    assert_eq!(
                        property[low].as_f64(),
                        Some(min as f64),
                        "{field}: {property}"
                    );
                }
                assert_eq!(
                    property[high].as_f64(),
                    Some(max as f64),
                    "{field}: {property}"
                );
            }
        }
        assert!(name_field(" \t ").is_err());
        assert!(name_field(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        // The limit counts what was sent.
        assert!(name_field(&format!(" {}", "x".repeat(MAX_NAME_CHARS))).is_err());
        assert_eq!(name_field(" Shoes ").ok().as_deref(), Some("Shoes"));
    }

    #[test]
    fn a_seed_is_64_lowercase_hex_and_fresh() {
        let (a, b) = (new_lottery_seed(), new_lottery_seed());
        assert_eq!(a.len(), engine::command::SEED_HEX_LEN);
        assert!(a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(a, b);
    }
}
