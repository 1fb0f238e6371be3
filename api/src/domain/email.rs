//! Customer and admin e-mail addresses. The normalised address (trimmed,
//! lower-case) is the user id the engine sees, so it must also fit the
//! engine's user-id charset `[A-Za-z0-9_.@+-]{1,128}`; addresses with other
//! characters (quotes, unicode, ...) are refused rather than mangled.

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
