//! Customer and admin e-mail addresses. The normalised address (trimmed,
//! lower-case) is the user id the engine sees, so it must also fit the
//! engine's user-id charset `[A-Za-z0-9_.@+-]{1,128}`; addresses with other
//! characters (quotes, unicode, ...) are refused rather than mangled.
//!
//! A buyer is one person per sale: [`Email::buyer_identity`] also drops a
//! `+tag` from the local part (`bob+1@x.com` is `bob@x.com`), so that one
//! mailbox cannot queue many times under tagged addresses.

use std::fmt;

use crate::error::ApiError;

pub const MAX_EMAIL_LEN: usize = engine::ids::MAX_USER_ID_LEN;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, ApiError> {
        let email = raw.trim().to_ascii_lowercase();
        if is_valid(&email) {
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
        if !strip_plus_tags {
            return self.clone();
        }
        let Some((local, domain)) = self.0.split_once('@') else {
            return self.clone();
        };
        match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() && !base.ends_with('.') => {
                Email(format!("{base}@{domain}"))
            }
            _ => self.clone(),
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid(email: &str) -> bool {
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    // A domain of two or more labels; each label letters, digits and inner
    // hyphens; the top-level label not all digits.
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    // The engine's own rule has the last word.
    local_ok && domain_ok && engine::ids::is_valid_user_id(email.as_bytes())
}

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
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
