//! What an admin sends to create or change a sale, and its validation
//! against the API's and the engine's limits. Everything here is pure: the
//! result is the MongoDB document to store, or a 400 naming the field.

use chrono::{DateTime, Utc};
use engine::command::{MAX_HOLD_TTL_MS, MAX_QUEUE, MAX_RATE, MAX_STOCK, MAX_TIME_MS};
use mongodb::bson;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::{Money, SaleId};
use crate::error::ApiError;
use crate::store::sales::SaleDoc;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// A new sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSale {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Units on sale, 1 to 1000000000.
    pub initial_quantity: u64,
    /// Decimal with at most two places, as a string ("49.99") or a number.
    #[schema(value_type = String, example = "49.99")]
    pub price_per_unit: Money,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Seconds an admitted customer has to confirm (default HOLD_TTL_SECONDS).
    pub hold_ttl_seconds: Option<u64>,
    /// Customers admitted per second (default: unlimited).
    pub rate: Option<u64>,
    /// Longest queue (default: unlimited).
    pub max_queue: Option<u64>,
}

impl CreateSale {
    /// The new sale's document, validated; a fresh id, every figure from
    /// the request or its default (`default_hold_secs`: HOLD_TTL_SECONDS).
    pub fn into_document(self, default_hold_secs: u64) -> Result<SaleDoc, ApiError> {
        let now = bson::DateTime::now();
        let quantity = quantity_field(self.initial_quantity)?;
        let sale = SaleDoc {
            id: SaleId::generate().to_string(),
            name: self.name.trim().to_string(),
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
            created_at: now,
            updated_at: now,
        };
        validate(&sale)?;
        Ok(sale)
    }
}

/// Changes to a sale: absent fields keep their value; `rate` and `maxQueue`
/// may be null to remove the limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSale {
    pub name: Option<String>,
    pub description: Option<String>,
    pub initial_quantity: Option<u64>,
    #[schema(value_type = Option<String>, example = "49.99")]
    pub price_per_unit: Option<Money>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub hold_ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub rate: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_queue: Option<Option<u64>>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
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

fn time_ms(field: &'static str, time: DateTime<Utc>) -> Result<bson::DateTime, ApiError> {
    let ms = time.timestamp_millis();
    let max = MAX_TIME_MS;
    if ms < 0 || u64::try_from(ms).is_ok_and(|ms| ms > max) {
        return Err(invalid(
            field,
            format!("{field} must be between 1970 and year 33658"),
        ));
    }
    Ok(bson::DateTime::from_millis(ms))
}

/// Checks a sale's fields against the API's and the engine's limits.
fn validate(sale: &SaleDoc) -> Result<(), ApiError> {
    let name = sale.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if sale.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if sale.ends_at <= sale.starts_at {
        return Err(invalid("endsAt", "endsAt must be after startsAt".into()));
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

fn price_field(price: Money) -> Result<i64, ApiError> {
    i64::try_from(price.minor_units())
        .map_err(|_| invalid("pricePerUnit", "pricePerUnit is too large".into()))
}

impl UpdateSale {
    /// `current` with these changes, validated.
    pub fn apply(self, current: &SaleDoc) -> Result<SaleDoc, ApiError> {
        let body = self;
        let mut sale = current.clone();
        if let Some(name) = body.name {
            sale.name = name.trim().to_string();
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
        validate(&sale)?;
        Ok(sale)
    }
}
