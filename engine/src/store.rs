//! What the rules need from storage, one method per Redis operation on one
//! sale's keys. The module implements it on Redis keys; [`crate::model`] in
//! memory. Reads may fail (a key of the wrong type); the rules do every read
//! before the first write, so a failed command changes nothing.

use crate::EngineError;

/// The fields of the sale hash `fs:{sale}:sale`.
pub mod field {
    pub const STOCK: &str = "stock";
    pub const SOLD: &str = "sold";
    pub const STARTS_AT: &str = "starts_at";
    pub const ENDS_AT: &str = "ends_at";
    pub const HOLD_TTL_MS: &str = "hold_ttl_ms";
    pub const RATE: &str = "rate";
    pub const MAX_QUEUE: &str = "max_queue";
    /// Last queue ticket handed out; queue scores are tickets, so FIFO.
    pub const SEQ: &str = "seq";
    /// Admission credit in thousandths of a hold (token bucket for RATE).
    pub const RATE_CREDIT: &str = "rate_credit";
    /// When the credit was last topped up (ms).
    pub const RATE_AT: &str = "rate_at";

    pub const ALL: [&str; 10] = [
        STOCK,
        SOLD,
        STARTS_AT,
        ENDS_AT,
        HOLD_TTL_MS,
        RATE,
        MAX_QUEUE,
        SEQ,
        RATE_CREDIT,
        RATE_AT,
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleRecord {
    pub stock: u64,
    pub sold: u64,
    pub starts_at: u64,
    pub ends_at: u64,
    pub hold_ttl_ms: u64,
    pub rate: u64,
    pub max_queue: u64,
    pub seq: u64,
    pub rate_credit: u64,
    pub rate_at: u64,
}

impl SaleRecord {
    /// Builds the record from the hash values in [`field::ALL`] order. A
    /// missing field counts as 0; a field that is not an integer is refused.
    pub fn from_fields<V: AsRef<[u8]>>(values: &[Option<V>]) -> Result<Self, EngineError> {
        let mut numbers = [0u64; 10];
        for (slot, value) in numbers.iter_mut().zip(values) {
            if let Some(raw) = value {
                let raw = raw.as_ref();
                if raw.is_empty() || raw.len() > 15 || !raw.iter().all(u8::is_ascii_digit) {
                    return Err(EngineError::corrupt_sale());
                }
                *slot = raw.iter().fold(0, |acc, &d| acc * 10 + u64::from(d - b'0'));
            }
        }
        let [stock, sold, starts_at, ends_at, hold_ttl_ms, rate, max_queue, seq, rate_credit, rate_at] =
            numbers;
        Ok(SaleRecord {
            stock,
            sold,
            starts_at,
            ends_at,
            hold_ttl_ms,
            rate,
            max_queue,
            seq,
            rate_credit,
            rate_at,
        })
    }
}

/// One entry of the outbox stream `fs:{sale}:outbox`, id `0-<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub order_id: String,
    pub sale_id: String,
    pub user_id: String,
    pub amount: u64,
    pub confirmed_at: u64,
}

impl OutboxEntry {
    pub fn fields(&self) -> [(&'static str, String); 5] {
        [
            ("order_id", self.order_id.clone()),
            ("sale_id", self.sale_id.clone()),
            ("user_id", self.user_id.clone()),
            ("amount", self.amount.to_string()),
            ("confirmed_at", self.confirmed_at.to_string()),
        ]
    }
}

pub trait Store {
    /// `HMGET fs:{s}:sale <field::ALL>`; `None` when the hash does not exist.
    fn sale(&mut self) -> Result<Option<SaleRecord>, EngineError>;
    /// `HSET fs:{s}:sale f v ...`
    fn set_sale_fields(&mut self, fields: &[(&str, u64)]) -> Result<(), EngineError>;

    /// `HGET fs:{s}:orders user`
    fn order_of(&mut self, user: &str) -> Result<Option<String>, EngineError>;
    /// `HSET fs:{s}:orders user order_id`
    fn record_order(&mut self, user: &str, order_id: &str) -> Result<(), EngineError>;

    /// `ZSCORE fs:{s}:holds user`: when the user's hold expires (ms).
    fn hold_expiry(&mut self, user: &str) -> Result<Option<u64>, EngineError>;
    /// `ZCOUNT fs:{s}:holds (now +inf`: holds still live at `now`.
    fn live_holds(&mut self, now: u64) -> Result<u64, EngineError>;
    /// `ZRANGEBYSCORE fs:{s}:holds -inf now`: holds that lapsed by `now`.
    fn expired_holds(&mut self, now: u64) -> Result<Vec<String>, EngineError>;
    /// `ZADD fs:{s}:holds expires_at user` and
    /// `SET fs:{s}:hold:user expires_at PXAT expires_at`.
    fn add_hold(&mut self, user: &str, expires_at: u64) -> Result<(), EngineError>;
    /// `ZREM fs:{s}:holds user` and `DEL fs:{s}:hold:user`.
    fn remove_hold(&mut self, user: &str) -> Result<(), EngineError>;

    /// `ZRANK fs:{s}:queue user` (0-based).
    fn queue_rank(&mut self, user: &str) -> Result<Option<u64>, EngineError>;
    /// `ZCARD fs:{s}:queue`
    fn queue_len(&mut self) -> Result<u64, EngineError>;
    /// `ZADD fs:{s}:queue ticket user`
    fn queue_push(&mut self, user: &str, ticket: u64) -> Result<(), EngineError>;
    /// `ZREM fs:{s}:queue user`
    fn queue_remove(&mut self, user: &str) -> Result<(), EngineError>;
    /// `ZPOPMIN fs:{s}:queue n`: the `n` oldest users, oldest first.
    fn queue_pop(&mut self, n: u64) -> Result<Vec<String>, EngineError>;
    /// `DEL fs:{s}:queue`
    fn queue_clear(&mut self) -> Result<(), EngineError>;

    /// `ZSCORE fs:{s}:lapsed user`: the user's hold expired and was
    /// reclaimed, and the user has not queued again since. (A zset rather
    /// than a set: the module's key API can read and write zsets directly.)
    fn is_lapsed(&mut self, user: &str) -> Result<bool, EngineError>;
    /// `ZADD fs:{s}:lapsed reclaimed_at user`
    fn add_lapsed(&mut self, user: &str, reclaimed_at: u64) -> Result<(), EngineError>;
    /// `ZREM fs:{s}:lapsed user`
    fn remove_lapsed(&mut self, user: &str) -> Result<(), EngineError>;

    /// `XLEN fs:{s}:outbox`, only to find a wrong type before writing.
    fn check_outbox(&mut self) -> Result<(), EngineError>;
    /// `XADD fs:{s}:outbox 0-n order_id .. sale_id .. user_id .. amount .. confirmed_at ..`
    fn append_outbox(&mut self, n: u64, entry: &OutboxEntry) -> Result<(), EngineError>;
}
