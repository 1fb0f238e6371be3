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

/// Read instead of the server clock only when the module was loaded with
/// `TEST_CLOCK` (or the Lua library was loaded in its test variant).
pub const TEST_CLOCK: &str = "flashsale:test-clock";

/// The order id of the `n`-th unit sold in `sale`; `n` is also the outbox
/// entry's stream id (`0-n`), so a replica or an AOF reload rebuilds the same
/// ids.
pub fn order_id(sale: &str, n: u64) -> String {
    format!("{sale}-{n}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        assert_eq!(super::queue("s1"), "fs:{s1}:queue");
        assert_eq!(super::hold("s1", "a@b.c"), "fs:{s1}:hold:a@b.c");
        assert_eq!(super::order_id("s1", 7), "s1-7");
    }
}
