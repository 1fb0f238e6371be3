//! Customer and admin e-mail addresses. The normalised address (trimmed,
//! lower-case) is the user id the engine sees, so it must also fit the
//! engine's user-id charset `[A-Za-z0-9_.@+-]{1,128}`; addresses with other
//! characters (quotes, unicode, ...) are refused rather than mangled.
//!
//! A buyer is one person per sale: [`Email::buyer_identity`] also drops a
//! `+tag` from the local part (`bob+1@x.com` is `bob@x.com`), so that one
//! mailbox cannot queue many times under tagged addresses.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::error::ApiError;

pub const MAX_EMAIL_LEN: usize = engine::ids::MAX_USER_ID_LEN;

/// What the API takes as an e-mail address, as typed: optional spaces or
/// tabs around `local@domain`; the local part dot-separated runs of
/// `A-Z a-z 0-9 _ + -`; the domain two or more labels of letters, digits
/// and inner hyphens (at most 63 each), the last one starting with a
/// letter. With at most [`MAX_EMAIL_LEN`] characters in all. The same text
/// is the OpenAPI pattern and the validator, so the published schema is
/// exactly the rule.
pub const PATTERN: &str = concat!(
    r"^[ \t]*",
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*",
    "@",
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+",
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    r"[ \t]*$",
);

static VALID: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(PATTERN).ok());

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, ApiError> {
        let matches = VALID.as_ref().is_some_and(|valid| valid.is_match(raw));
        // Trimmed and lower-cased, it fits the engine's user-id charset
        // (checked again: the engine's rule has the last word).
        let email = raw.trim_matches([' ', '\t']).to_ascii_lowercase();
        if raw.len() <= MAX_EMAIL_LEN && matches && engine::ids::is_valid_user_id(email.as_bytes())
        {
            Ok(Email(email))
        } else {
            Err(ApiError::bad_request(
                "invalid_email",
                "email must be a plain address like name@example.com (letters, digits and . _ + - only, at most 128 characters)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The person behind the address, as the one-per-person rule counts
    /// them: the normalised address, and with `strip_plus_tags` without a
    /// `+tag` suffix of the local part. A local part that is all tag
    /// (`+x@y.com`) is kept as it is rather than emptied.
    pub fn buyer_identity(&self, strip_plus_tags: bool) -> Email {
        self.clone().into_buyer_identity(strip_plus_tags)
    }

    /// [`Email::buyer_identity`], keeping this address's string when it is
    /// the identity already (no copy).
    pub fn into_buyer_identity(self, strip_plus_tags: bool) -> Email {
        if !strip_plus_tags {
            return self;
        }
        let Some((local, domain)) = self.0.split_once('@') else {
            return self;
        };
        match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() && !base.ends_with('.') => {
                Email(format!("{base}@{domain}"))
            }
            _ => self,
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the OpenAPI document describes an e-mail field.
impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_EMAIL_LEN))
            .pattern(Some(PATTERN))
            .description(Some(
                "An e-mail address: letters, digits and . _ + - (at most 128 characters); \
                 compared trimmed and lower-cased",
            ))
            .examples(["jane.doe@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let email = Email::parse("  Ann.Lee+Sale@Example.COM ").map(|e| e.0);
        assert_eq!(email.ok().as_deref(), Some("ann.lee+sale@example.com"));
    }

    #[test]
    fn one_identity_per_person() {
        let identity = |raw: &str, strip: bool| {
            Email::parse(raw)
                .map(|e| e.buyer_identity(strip).0)
                .unwrap_or_else(|e| panic!("{raw}: {e}"))
        };
        for raw in [
            "bob@x.com",
            "Bob@X.com ",
            " bob+1@x.com",
            "BOB+sale+2@x.com",
        ] {
            assert_eq!(identity(raw, true), "bob@x.com", "{raw}");
        }
        assert_eq!(identity("bob+1@x.com", false), "bob+1@x.com");
        // All tag, or a dot before the tag: kept as typed (never invalid).
        assert_eq!(identity("+1@x.com", true), "+1@x.com");
        assert_eq!(identity("bob.+1@x.com", true), "bob.+1@x.com");
    }

    #[test]
    fn refuses() {
        let long = format!("{}@example.com", "a".repeat(120));
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@1.2",
            "\"q\"@b.com",
            "josé@b.com",
            "a{b}@c.com",
            "a:b@c.com",
            long.as_str(),
            "a@b.1a",
            "a@b.co\n",
            "\ta@b.co\r",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        // The length limit counts what was typed, spaces included.
        let padded = format!(" {}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        assert!(Email::parse(padded.trim()).is_ok());
        assert!(Email::parse(&padded).is_err());
    }

    #[test]
    fn accepts() {
        for good in [
            "a@b.co",
            "x_y-z+tag@sub.example.io",
            "\t Ann.Lee@Example.COM ",
            "1@2.xn--p1ai",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
    }

    /// The OpenAPI document carries the rule itself.
    #[test]
    fn published_schema_is_the_rule() {
        let schema =
            serde_json::to_value(<Email as utoipa::PartialSchema>::schema()).unwrap_or_default();
        assert_eq!(schema["pattern"], PATTERN);
        assert_eq!(schema["maxLength"], MAX_EMAIL_LEN);
        assert!(VALID.is_some(), "the pattern compiles");
    }
}
