//! The Redis key layout of one sale. Every key carries the sale id as its hash
//! tag, so a sale lives in one Redis Cluster slot; and the slot of the bare
//! sale id (the key every command declares) is that same slot.

pub fn sale(sale: &str) -> String {
    format!("fs:{{{sale}}}:sale")
}
pub fn queue(sale: &str) -> String {
    format!("fs:{{{sale}}}:queue")
}
pub fn holds(sale: &str) -> String {
    format!("fs:{{{sale}}}:holds")
}
pub fn hold(sale: &str, user: &str) -> String {
    format!("fs:{{{sale}}}:hold:{user}")
}
pub fn orders(sale: &str) -> String {
    format!("fs:{{{sale}}}:orders")
}
pub fn lapsed(sale: &str) -> String {
    format!("fs:{{{sale}}}:lapsed")
}
pub fn outbox(sale: &str) -> String {
    format!("fs:{{{sale}}}:outbox")
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
