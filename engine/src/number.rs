//! Integer arguments: plain ASCII digits only (no sign, no spaces, no
//! exponent), at most 15 of them so every value is exact in a Lua double.

use crate::error::message;
use crate::EngineError;

pub const MAX_DIGITS: usize = 15;

pub fn parse_int(raw: &[u8], name: &str, min: u64, max: u64) -> Result<u64, EngineError> {
    let out_of_range = || EngineError::err(message::out_of_range(name, min, max));
    if raw.is_empty() || raw.len() > MAX_DIGITS || !raw.iter().all(u8::is_ascii_digit) {
        return Err(out_of_range());
    }
    let value = raw
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    if value < min || value > max {
        return Err(out_of_range());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_digits_in_range() {
        assert_eq!(parse_int(b"0", "n", 0, 10), Ok(0));
        assert_eq!(parse_int(b"010", "n", 0, 10), Ok(10));
        assert_eq!(
            parse_int(b"999999999999999", "n", 0, u64::MAX),
            Ok(999_999_999_999_999)
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"1e3",
            b"0x10",
            b"11",
            b"1000000000000000",
            b"99999999999999999999999",
        ] {
            let err = parse_int(bad, "n", 0, 10).expect_err("must be rejected");
            assert_eq!(err.to_string(), "ERR n must be an integer from 0 to 10");
        }
        assert!(parse_int(b"0", "n", 1, 10).is_err());
    }
}
