//! Money. The engine and MongoDB hold integer minor units (cents): the
//! engine's CONFIRM amount, `flash_sales.pricePerUnit` and
//! `orders.totalAmount` are all Int64 cents. Over HTTP, money is a decimal
//! with at most two places: written as a string ("49.99") in responses so no
//! client parses it into a float; accepted as a string or a JSON number in
//! requests. A JSON number is turned into its shortest exact decimal text and
//! parsed as text — never through float arithmetic — which is exact for every
//! amount up to the engine's 15-digit limit.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// The engine's largest amount (minor units).
pub const MAX_MINOR_UNITS: u64 = engine::command::MAX_AMOUNT;

/// What may surround an amount written as a string (the schema's
/// pattern says the same).
const SPACES: [char; 4] = [' ', '\t', '\n', '\r'];

/// An amount as a string, as the OpenAPI schema publishes it: up to 13
/// whole digits after any leading zeros, at most two decimals
/// (`parse_decimal`'s rule; a test checks they agree).
pub const PATTERN: &str = r"^[ \t\n\r]*0*[0-9]{1,13}(?:\.[0-9]{1,2})?[ \t\n\r]*$";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(u64);

/// How a request's amount is published: a string matching [`PATTERN`], or
/// a number with at most two decimals. (Responses always write a string.)
impl utoipa::PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(PATTERN))
            .examples(["49.99"]);
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0.0))
            .maximum(Some(MAX_MINOR_UNITS as f64 / 100.0))
            .multiple_of(Some(0.01));
        OneOfBuilder::new()
            .item(text)
            .item(number)
            .description(Some(
                "A decimal amount with at most two places: a string (\"49.99\") or a number",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an amount must be a decimal from 0 to 9999999999999.99 with at most two decimal places")]
pub struct MoneyError;

impl Money {
    pub fn from_minor_units(units: u64) -> Result<Money, MoneyError> {
        if units > MAX_MINOR_UNITS {
            return Err(MoneyError);
        }
        Ok(Money(units))
    }

    pub fn minor_units(self) -> u64 {
        self.0
    }

    /// `"49.99"`, `"5"`, `"0.5"`, `"12.30"`: digits, at most two decimals.
    pub fn parse_decimal(text: &str) -> Result<Money, MoneyError> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > 2
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError);
        }
        // Leading zeros are fine; more than 13 significant whole digits is
        // out of range anyway.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(MoneyError);
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError)?
        };
        let cents: u64 = match fraction.len() {
            0 => 0,
            1 => fraction.parse::<u64>().map_err(|_| MoneyError)? * 10,
            _ => fraction.parse::<u64>().map_err(|_| MoneyError)?,
        };
        Money::from_minor_units(whole * 100 + cents)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal amount with at most two places, as a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
        Money::parse_decimal(v.trim_matches(SPACES)).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        v.checked_mul(100)
            .ok_or(MoneyError)
            .and_then(Money::from_minor_units)
            .map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(MoneyError))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        // Rust prints a float as the shortest decimal that reads back as the
        // same float, without an exponent: 49.99 -> "49.99", 0.1 -> "0.1".
        // A JSON number written with at most 15 significant digits therefore
        // comes back as exactly the digits the client sent.
        if !v.is_finite() {
            return Err(E::custom(MoneyError));
        }
        Money::parse_decimal(&format!("{v}")).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The published pattern accepts exactly the strings the server
        /// takes as an amount.
        #[test]
        fn published_pattern_is_the_rule(
            text in "[ \t\n\r\u{a0}0-9.a+-]{0,20}|[ \t\u{a0}]{0,2}0{0,3}[0-9]{0,15}(\\.[0-9]{0,3})?[ \r\u{b}]{0,2}"
        ) {
            let pattern = regex::Regex::new(PATTERN).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            let parsed = serde_json::from_value::<Money>(serde_json::Value::String(text.clone()));
            proptest::prop_assert_eq!(pattern.is_match(&text), parsed.is_ok(), "{:?}", text);
        }
    }

    fn from_json(json: &str) -> Result<Money, String> {
        serde_json::from_str::<Money>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn decimals_map_exactly_to_cents() {
        assert_eq!(from_json("\"49.99\""), Ok(Money(4999)));
        assert_eq!(from_json("49.99"), Ok(Money(4999)));
        assert_eq!(from_json("0.1"), Ok(Money(10)));
        assert_eq!(from_json("0.07"), Ok(Money(7)));
        assert_eq!(from_json("1.005e2"), Ok(Money(10050)));
        assert_eq!(from_json("5"), Ok(Money(500)));
        assert_eq!(from_json("\"5\""), Ok(Money(500)));
        assert_eq!(from_json("\"012.3\""), Ok(Money(1230)));
        assert_eq!(from_json("9999999999999.99"), Ok(Money(MAX_MINOR_UNITS)));
        assert_eq!(
            from_json("\"9999999999999.99\""),
            Ok(Money(MAX_MINOR_UNITS))
        );
        assert_eq!(from_json("1234567890123.45"), Ok(Money(123456789012345)));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "-1",
            "\"-1\"",
            "49.999",
            "\"49.999\"",
            "\"1e3\"",
            "\"\"",
            "\".5\"",
            "\"5.\"",
            "\" 5 5\"",
            "\"0x10\"",
            "10000000000000",
            "\"10000000000000.00\"",
            "true",
            "null",
            "[]",
            "{}",
            "1e300",
            "\"NaN\"",
        ] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_two_places() {
        assert_eq!(Money(4999).to_string(), "49.99");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(Money(500).to_string(), "5.00");
        assert_eq!(
            serde_json::to_string(&Money(1230)).ok().as_deref(),
            Some("\"12.30\"")
        );
    }
}
