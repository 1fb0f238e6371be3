//! Whole numbers in request bodies. JSON has one number type: `7.0` is the
//! same number as `7`, and JSON Schema's `integer` accepts both, so a body
//! field the schema calls an integer takes either (serde's `u64` alone
//! refuses `7.0`). Fractions, negatives and numbers past 2^53 (where a
//! double stops being exact) are refused.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// The largest whole number a JSON double holds exactly.
const MAX_EXACT: u64 = 1 << 53;

struct Whole(u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeVisitor)
    }
}

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = Whole;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a whole number from 0")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
        Ok(Whole(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
        u64::try_from(v)
            .map(Whole)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Whole, E> {
        if v.fract() == 0.0 && (0.0..=MAX_EXACT as f64).contains(&v) {
            // Exact: a whole double up to 2^53.
            Ok(Whole(v as u64))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

/// `#[serde(deserialize_with = "whole::required")]` on a `u64`.
pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Whole::deserialize(deserializer).map(|w| w.0)
}

/// `#[serde(default, deserialize_with = "whole::optional")]` on an
/// `Option<u64>` (absent or null: `None`).
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<Whole>::deserialize(deserializer).map(|w| w.map(|w| w.0))
}

/// `#[serde(default, deserialize_with = "whole::nullable")]` on an
/// `Option<Option<u64>>`: absent `None`, null `Some(None)`.
pub fn nullable<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<u64>>, D::Error> {
    optional(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::required")]
        n: u64,
        #[serde(default, deserialize_with = "super::nullable")]
        m: Option<Option<u64>>,
    }

    fn n(json: &str) -> Option<u64> {
        serde_json::from_str::<Body>(json).ok().map(|b| b.n)
    }

    #[test]
    fn whole_numbers_in_either_spelling() {
        assert_eq!(n(r#"{"n": 7}"#), Some(7));
        assert_eq!(n(r#"{"n": 7.0}"#), Some(7));
        assert_eq!(n(r#"{"n": 9007199254740992}"#), Some(1 << 53));
        assert_eq!(n(r#"{"n": 18446744073709551615}"#), Some(u64::MAX));
        for bad in [
            r#"{"n": 7.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "7"}"#,
            r#"{"n": null}"#,
            r#"{}"#,
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
        let m = |json: &str| serde_json::from_str::<Body>(json).ok().map(|b| b.m);
        assert_eq!(m(r#"{"n": 1}"#), Some(None));
        assert_eq!(m(r#"{"n": 1, "m": null}"#), Some(Some(None)));
        assert_eq!(m(r#"{"n": 1, "m": 3.0}"#), Some(Some(Some(3))));
    }
}
