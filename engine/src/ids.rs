//! Sale and user ids end up inside Redis key names, so they are restricted to
//! a charset that can never break the `fs:{<sale>}:…` layout (no braces, no
//! spaces, no control bytes).

pub const MAX_SALE_ID_LEN: usize = 64;
pub const MAX_USER_ID_LEN: usize = 128;

/// `[A-Za-z0-9_.-]{1,64}`
pub fn is_valid_sale_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SALE_ID_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[A-Za-z0-9_.@+-]{1,128}`: enough for normalised e-mail addresses.
pub fn is_valid_user_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_USER_ID_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids() {
        assert!(is_valid_sale_id(b"black-friday_2026.1"));
        assert!(is_valid_sale_id(&[b'a'; 64]));
        assert!(!is_valid_sale_id(&[b'a'; 65]));
        assert!(!is_valid_sale_id(b""));
        for bad in [
            &b"a{b"[..],
            b"a}b",
            b"a b",
            b"a:b",
            b"a@b",
            b"\xff",
            b"a\nb",
        ] {
            assert!(!is_valid_sale_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn user_ids() {
        assert!(is_valid_user_id(b"jane.doe+sale@example.com"));
        assert!(is_valid_user_id(&[b'u'; 128]));
        assert!(!is_valid_user_id(&[b'u'; 129]));
        for bad in [&b""[..], b"a{b", b"a b", b"a:b", b"caf\xc3\xa9", b"a\0b"] {
            assert!(!is_valid_user_id(bad), "{bad:?}");
        }
    }
}
