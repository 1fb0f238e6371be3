//! Sale ids. A sale's id is its MongoDB `_id` (a string) and its engine
//! name, so it must fit the engine's charset `[A-Za-z0-9_.-]{1,64}`. New
//! sales get an ObjectId's 24 hex digits.

use std::fmt;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::error::ApiError;

/// The engine's sale-id charset as a JSON Schema pattern; with
/// `1..=MAX_SALE_ID_LEN` characters it accepts exactly what
/// [`engine::ids::is_valid_sale_id`] does (a test below checks it).
pub const PATTERN: &str = "^[A-Za-z0-9_.-]+$";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaleId(String);

impl SaleId {
    pub fn parse(raw: &str) -> Result<SaleId, ApiError> {
        if engine::ids::is_valid_sale_id(raw.as_bytes()) {
            Ok(SaleId(raw.to_string()))
        } else {
            Err(ApiError::bad_request(
                "invalid_sale_id",
                "flashSaleId must be 1 to 64 characters from A-Z a-z 0-9 _ . -",
            ))
        }
    }

    pub fn generate() -> SaleId {
        SaleId(mongodb::bson::oid::ObjectId::new().to_hex())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the OpenAPI document describes a sale id (in paths, queries and
/// bodies), so a client generated from it sends only ids the API takes.
impl utoipa::PartialSchema for SaleId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(engine::ids::MAX_SALE_ID_LEN))
            .pattern(Some(PATTERN))
            .description(Some("A sale's id: 1 to 64 of A-Z a-z 0-9 _ . -"))
            .examples(["6564f0c2a1b2c3d4e5f60718"])
            .into()
    }
}

impl utoipa::ToSchema for SaleId {}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(SaleId::parse("6564f0c2a1b2c3d4e5f60718").is_ok());
        assert!(SaleId::parse("black-friday_2026.1").is_ok());
        for bad in ["", "a b", "a{b", "a/b", "a:b", "ü", &"a".repeat(65)] {
            assert!(SaleId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(SaleId::generate().as_str().len(), 24);
    }

    proptest::proptest! {
        /// The published pattern and length bounds accept exactly the ids
        /// the engine does.
        #[test]
        fn published_schema_is_the_engine_rule(id in "[A-Za-z0-9_.@{}: é\\-]{0,70}") {
            let pattern = regex::Regex::new(PATTERN).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            let chars = id.chars().count();
            let by_schema = pattern.is_match(&id)
                && (1..=engine::ids::MAX_SALE_ID_LEN).contains(&chars);
            proptest::prop_assert_eq!(by_schema, SaleId::parse(&id).is_ok(), "{:?}", id);
        }
    }
}
