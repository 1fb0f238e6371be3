//! The pre-queue lottery's arithmetic, shared by the rules and by anyone
//! checking a published draw.
//!
//! SHA-1 because it is the one hash Redis scripting offers
//! (`redis.sha1hex`), and the Lua library must draw exactly as the module
//! does. Nothing here needs collision resistance: the seed is committed to
//! by its hash before the window opens (a second preimage of a given SHA-1
//! is still out of reach), and the order only needs to be unpredictable
//! without the seed.
//!
//! A registrant is published as `SHA1(user)` (an e-mail is not published),
//! and ordered by `SHA1(seed ":" SHA1(user))`, so the published list and
//! the revealed seed are all it takes to recompute the order; a buyer finds
//! their own place from `SHA1(their id)`.

use sha1::{Digest, Sha1};

/// Lowercase hex of the SHA-1 of `data`, as `redis.sha1hex` gives it.
pub fn sha1_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(data);
    let mut out = String::with_capacity(40);
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// What is published before the window opens: `SHA1(seed)`.
pub fn commitment(seed: &str) -> String {
    sha1_hex(seed.as_bytes())
}

/// A registrant as published: `SHA1(user)`.
pub fn entry(user: &str) -> String {
    sha1_hex(user.as_bytes())
}

/// The key the draw sorts a registrant by: `SHA1(seed ":" entry)`.
pub fn sort_key(seed: &str, entry: &str) -> String {
    sha1_hex(format!("{seed}:{entry}").as_bytes())
}

/// Published entries in draw order: ascending by [`sort_key`], ties (never
/// seen in practice) by the entry itself.
pub fn order_entries(seed: &str, entries: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut keyed: Vec<(String, String)> = entries
        .into_iter()
        .map(|e| (sort_key(seed, &e), e))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, e)| e).collect()
}

/// Users in draw order, each with its published entry.
pub fn draw(seed: &str, users: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    let mut keyed: Vec<(String, String, String)> = users
        .into_iter()
        .map(|user| {
            let e = entry(&user);
            (sort_key(seed, &e), e, user)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, e, user)| (user, e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_as_redis_gives_it() {
        // `redis-cli EVAL "return redis.sha1hex(ARGV[1])" 0 abc`
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn the_order_is_recomputed_from_the_published_entries() {
        let seed = "ab".repeat(32);
        let users: Vec<String> = (0..50).map(|i| format!("u{i}@x.io")).collect();
        let drawn = draw(&seed, users.clone());
        let published: Vec<String> = drawn.iter().map(|(_, e)| e.clone()).collect();
        // Anyone: the published entries, shuffled, sort back to the order.
        let mut shuffled = published.clone();
        shuffled.reverse();
        assert_eq!(order_entries(&seed, shuffled), published);
        // Another seed, another order.
        let other = draw(&"cd".repeat(32), users);
        assert_ne!(
            other.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            drawn.iter().map(|(u, _)| u).collect::<Vec<_>>()
        );
    }
}
