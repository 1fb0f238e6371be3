//! The Redis key layout of one sale. Every key carries the sale id as its hash
//! tag, so a sale lives in one Redis Cluster slot; and the slot of the bare
//! sale id (the key every command declares) is that same slot.
//!
//! A key is `fs:{<sale>}:<suffix>`; the module assembles the same bytes from
//! these parts without allocating.

pub const OPEN: &str = "fs:{";
pub const CLOSE: &str = "}:";
pub const SALE: &str = "sale";
pub const QUEUE: &str = "queue";
pub const HOLDS: &str = "holds";
/// Followed by the user id.
pub const HOLD: &str = "hold:";
pub const ORDERS: &str = "orders";
pub const LAPSED: &str = "lapsed";
pub const OUTBOX: &str = "outbox";
/// Pre-queue lottery: the users registered in the window before the start
/// (zset user → when they registered), until the draw moves them into the
/// queue.
pub const REGISTERED: &str = "registered";
/// Pre-queue lottery: the seed SETUP was given (a string, hex), read only by
/// the draw and, once it has run, by DRAW.
pub const SEED: &str = "seed";
/// Pre-queue lottery: the published draw, SHA1(user) hex of each registrant
/// in the order the draw gave them queue tickets (a list).
pub const DRAW: &str = "draw";

fn key(sale: &str, suffix: &str) -> String {
    format!("{OPEN}{sale}{CLOSE}{suffix}")
}

pub fn sale(sale: &str) -> String {
    key(sale, SALE)
}
pub fn queue(sale: &str) -> String {
    key(sale, QUEUE)
}
pub fn holds(sale: &str) -> String {
    key(sale, HOLDS)
}
pub fn hold(sale: &str, user: &str) -> String {
    key(sale, &format!("{HOLD}{user}"))
}
pub fn orders(sale: &str) -> String {
    key(sale, ORDERS)
}
pub fn lapsed(sale: &str) -> String {
    key(sale, LAPSED)
}
pub fn outbox(sale: &str) -> String {
    key(sale, OUTBOX)
}
pub fn registered(sale: &str) -> String {
    key(sale, REGISTERED)
}
pub fn seed(sale: &str) -> String {
    key(sale, SEED)
}
pub fn draw(sale: &str) -> String {
    key(sale, DRAW)
}

/// The Redis type of a sale's key, as `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    String,
    ZSet,
    Hash,
    Stream,
    List,
}

impl KeyKind {
    /// What `TYPE` answers for a key of this kind.
    pub fn type_name(self) -> &'static str {
        match self {
            KeyKind::String => "string",
            KeyKind::ZSet => "zset",
            KeyKind::Hash => "hash",
            KeyKind::Stream => "stream",
            KeyKind::List => "list",
        }
    }
}

/// Every key of a sale but the per-user hold keys, by suffix, with its type
/// (`Store::check_key_types` checks a command's written keys in this order).
pub const TYPES: [(&str, KeyKind); 9] = [
    (SALE, KeyKind::String),
    (QUEUE, KeyKind::ZSet),
    (HOLDS, KeyKind::ZSet),
    (ORDERS, KeyKind::Hash),
    (LAPSED, KeyKind::ZSet),
    (OUTBOX, KeyKind::Stream),
    (REGISTERED, KeyKind::ZSet),
    (SEED, KeyKind::String),
    (DRAW, KeyKind::List),
];

/// Every key of `sale` but the per-user hold keys, in [`TYPES`] order.
pub fn all_but_holds(sale: &str) -> Vec<String> {
    TYPES.iter().map(|(suffix, _)| key(sale, suffix)).collect()
}

/// Read instead of the server clock only when the module was loaded with
/// `TEST_CLOCK` (or the Lua library was loaded in its test variant).
pub const TEST_CLOCK: &str = "flashsale:test-clock";

/// Between the sale id and the number in an order id.
pub const ORDER_ID_SEPARATOR: &str = "-";
/// Before the number in an outbox entry's stream id.
pub const OUTBOX_ENTRY_ID_PREFIX: &str = "0-";

/// The order id of the `n`-th unit sold in `sale`; `n` is also the outbox
/// entry's stream id ([`outbox_entry_id`]), so a replica or an AOF reload
/// rebuilds the same ids.
pub fn order_id(sale: &str, n: u64) -> String {
    format!("{sale}{ORDER_ID_SEPARATOR}{n}")
}

/// The inverse of [`order_id`]: `Some(n)` exactly when `order_id` is
/// `order_id(sale, n)` (no sign, no leading zeros, nothing after).
pub fn order_number(sale: &str, order_id: &str) -> Option<u64> {
    let digits = order_id
        .strip_prefix(sale)?
        .strip_prefix(ORDER_ID_SEPARATOR)?;
    let n: u64 = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

/// The stream id of the outbox entry of the `n`-th unit sold: `0-n`.
pub fn outbox_entry_id(n: u64) -> String {
    format!("{OUTBOX_ENTRY_ID_PREFIX}{n}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        assert_eq!(super::queue("s1"), "fs:{s1}:queue");
        assert_eq!(super::hold("s1", "a@b.c"), "fs:{s1}:hold:a@b.c");
        assert_eq!(super::order_id("s1", 7), "s1-7");
        assert_eq!(super::outbox_entry_id(7), "0-7");
        assert_eq!(
            super::all_but_holds("s1"),
            [
                "sale",
                "queue",
                "holds",
                "orders",
                "lapsed",
                "outbox",
                "registered",
                "seed",
                "draw"
            ]
            .map(|k| format!("fs:{{s1}}:{k}"))
        );
    }

    #[test]
    fn order_numbers_invert_order_ids() {
        use super::{order_id, order_number};
        for n in [0, 1, 7, 10, 999_999_999_999_999, u64::MAX] {
            assert_eq!(order_number("s1", &order_id("s1", n)), Some(n));
            assert_eq!(order_number("a-b", &order_id("a-b", n)), Some(n));
        }
        for bad in [
            "s1",
            "s1-",
            "s1-x",
            "s1--1",
            "s1-+1",
            "s1-01",
            "s1-1 ",
            "s1-1.0",
            "s2-1",
            "s-1",
            "s1-18446744073709551616",
            "xs1-1",
            "-1",
        ] {
            assert_eq!(order_number("s1", bad), None, "{bad}");
        }
    }
}
