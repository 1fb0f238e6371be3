//! Sale ids. A sale's id is its MongoDB `_id` (a string) and its engine
//! name, so it must fit the engine's charset `[A-Za-z0-9_.-]{1,64}`. New
//! sales get an ObjectId's 24 hex digits.

use std::fmt;

use crate::error::ApiError;

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
}
