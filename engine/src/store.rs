//! What the rules need from storage, one method per Redis operation on one
//! sale's keys. The module implements it on Redis keys; [`crate::model`] in
//! memory. Reads may fail (a key of the wrong type); the rules do every read
//! before the first write, so a failed command changes nothing.

use std::fmt;

use crate::command::{MAX_AMOUNT, MAX_TIME_MS};
use crate::{ids, keys, number, EngineError};

/// The names of the sale record's fields, in their stored order.
pub mod field {
    pub const ALL: [&str; 14] = [
        "stock",
        "sold",
        "starts_at",
        "ends_at",
        "hold_ttl_ms",
        "rate",
        "max_queue",
        "rate_credit",
        "rate_at",
        "order_seq",
        "price",
        "paused_at",
        "prequeue_ms",
        "drawn_at",
    ];
    /// A record written before `order_seq` existed has only the fields
    /// before it; it reads as `order_seq = sold` (order numbers were then
    /// 1, 2, … `sold`) and is written back whole by the next command that
    /// writes the record.
    pub const LEGACY_COUNT: usize = 9;
    /// Fields from here on are left out when the sale has none, each on its
    /// own: a record without `price` is a sale without a price, one without
    /// `paused_at` a sale that is not paused, one without `prequeue_ms` a
    /// sale without a pre-queue window, one without `drawn_at` a sale whose
    /// lottery has not been drawn.
    pub const OPTIONAL_FROM: usize = 10;
}

/// The sale's figures, stored as one string under `fs:{sale}:sale`:
/// `stock=10 sold=2 starts_at=… ends_at=… hold_ttl_ms=… rate=0 max_queue=0
/// rate_credit=0 rate_at=… order_seq=… price=…`. One string rather than a
/// hash because the hot path reads all of it on every command, and a string
/// is one lookup with no per-field allocations; it still reads plainly with
/// `GET` from redis-cli.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleRecord {
    pub stock: u64,
    /// Units sold: the number of orders.
    pub sold: u64,
    pub starts_at: u64,
    pub ends_at: u64,
    pub hold_ttl_ms: u64,
    pub rate: u64,
    pub max_queue: u64,
    /// Admission credit in thousandths of a hold (token bucket for RATE).
    pub rate_credit: u64,
    /// When the credit was last topped up (ms).
    pub rate_at: u64,
    /// The highest order number the sale has issued or restored; the next
    /// CONFIRM takes a higher one (`rules::next_order_number`).
    pub order_seq: u64,
    /// What CONFIRM charges, in minor units; `None` for a sale set up
    /// without a PRICE (CONFIRM then records the amount it is given).
    pub price: Option<u64>,
    /// When PAUSE (or SETUP's `PAUSED 1`) stopped the sale (ms); `None`
    /// while it runs. A paused sale queues and admits nobody new; holds
    /// run on and can be confirmed.
    pub paused_at: Option<u64>,
    /// The pre-queue window (ms before `starts_at`) in which ENQUEUE
    /// registers users for the draw; `None` (or 0, never stored): no window.
    pub prequeue_ms: Option<u64>,
    /// When the draw moved the registered users into the queue (ms); `None`
    /// until then. Set once, so the draw runs at most once.
    pub drawn_at: Option<u64>,
}

impl SaleRecord {
    /// When the pre-queue window opens: `starts_at - prequeue_ms`; `None`
    /// for a sale without one.
    pub fn window_opens_at(&self) -> Option<u64> {
        self.prequeue_ms
            .filter(|&ms| ms > 0)
            .map(|ms| self.starts_at.saturating_sub(ms))
    }

    /// The sale has a pre-queue window and its lottery has not been drawn
    /// yet.
    pub fn draw_pending(&self) -> bool {
        self.window_opens_at().is_some() && self.drawn_at.is_none()
    }

    fn values(&self) -> [Option<u64>; 14] {
        [
            Some(self.stock),
            Some(self.sold),
            Some(self.starts_at),
            Some(self.ends_at),
            Some(self.hold_ttl_ms),
            Some(self.rate),
            Some(self.max_queue),
            Some(self.rate_credit),
            Some(self.rate_at),
            Some(self.order_seq),
            self.price,
            self.paused_at,
            self.prequeue_ms,
            self.drawn_at,
        ]
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(200);
        for (i, (name, value)) in field::ALL.iter().zip(self.values()).enumerate() {
            let Some(value) = value else { continue };
            if i > 0 {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&value.to_string());
        }
        out
    }

    /// The exact inverse of [`SaleRecord::encode`]: the fields in order,
    /// `name=` then 1 to 15 digits, single spaces between; each optional
    /// field ([`field::OPTIONAL_FROM`] on) may be left out, and a legacy
    /// record ends after the first [`field::LEGACY_COUNT`] fields. Anything
    /// else (a hand edit gone wrong) is refused rather than guessed at.
    pub fn decode(raw: &[u8]) -> Result<Self, EngineError> {
        // A plain byte scanner: this runs on every command, in the hot path.
        let corrupt = EngineError::corrupt_sale;
        let mut numbers: [Option<u64>; 14] = [None; 14];
        let mut pos = 0;
        for (i, name) in field::ALL.iter().enumerate() {
            if (i == field::LEGACY_COUNT || i >= field::OPTIONAL_FROM) && pos == raw.len() {
                break;
            }
            // An optional field that is not next is left out; whatever is
            // next must then be a later field, or the record is corrupt.
            if i >= field::OPTIONAL_FROM
                && (raw.get(pos) != Some(&b' ')
                    || !raw[pos + 1..].starts_with(name.as_bytes())
                    || raw.get(pos + 1 + name.len()) != Some(&b'='))
            {
                continue;
            }
            if i > 0 {
                if raw.get(pos) != Some(&b' ') {
                    return Err(corrupt());
                }
                pos += 1;
            }
            let name = name.as_bytes();
            let end = pos + name.len();
            if raw.get(pos..end) != Some(name) || raw.get(end) != Some(&b'=') {
                return Err(corrupt());
            }
            pos = end + 1;
            let start = pos;
            let mut value = 0u64;
            while let Some(&digit) = raw.get(pos).filter(|d| d.is_ascii_digit()) {
                if pos - start == 15 {
                    return Err(corrupt());
                }
                value = value * 10 + u64::from(digit - b'0');
                pos += 1;
            }
            if pos == start {
                return Err(corrupt());
            }
            numbers[i] = Some(value);
        }
        if pos != raw.len() {
            return Err(corrupt());
        }
        let [stock, sold, starts_at, ends_at, hold_ttl_ms, rate, max_queue, rate_credit, rate_at, order_seq, price, paused_at, prequeue_ms, drawn_at] =
            numbers;
        let required = |n: Option<u64>| n.ok_or_else(corrupt);
        let sold = required(sold)?;
        Ok(SaleRecord {
            stock: required(stock)?,
            sold,
            starts_at: required(starts_at)?,
            ends_at: required(ends_at)?,
            hold_ttl_ms: required(hold_ttl_ms)?,
            rate: required(rate)?,
            max_queue: required(max_queue)?,
            rate_credit: required(rate_credit)?,
            rate_at: required(rate_at)?,
            order_seq: order_seq.unwrap_or(sold),
            price,
            paused_at,
            prequeue_ms,
            drawn_at,
        })
    }
}

/// The names of an outbox entry's fields, in their order in the stream.
pub mod outbox_field {
    pub const ORDER_ID: &str = "order_id";
    pub const SALE_ID: &str = "sale_id";
    pub const USER_ID: &str = "user_id";
    pub const AMOUNT: &str = "amount";
    pub const CONFIRMED_AT: &str = "confirmed_at";
    /// The buyer's address as typed (CONFIRM's `CONTACT`); only in entries
    /// of a CONFIRM that gave one.
    pub const CONTACT: &str = "contact";
    /// Every entry has these.
    pub const REQUIRED: [&str; 5] = [ORDER_ID, SALE_ID, USER_ID, AMOUNT, CONFIRMED_AT];
    pub const ALL: [&str; 6] = [ORDER_ID, SALE_ID, USER_ID, AMOUNT, CONFIRMED_AT, CONTACT];
}

/// One entry of the outbox stream `fs:{sale}:outbox`, id
/// [`keys::outbox_entry_id`]`(n)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub order_id: String,
    pub sale_id: String,
    pub user_id: String,
    pub amount: u64,
    pub confirmed_at: u64,
    /// The buyer's address as typed, when CONFIRM was given one
    /// (`user_id` may be a normalised identity); see [`Self::contact`].
    pub contact: Option<String>,
}

impl OutboxEntry {
    /// The address to write to the buyer at: as typed if CONFIRM had it,
    /// else the user id.
    pub fn contact(&self) -> &str {
        self.contact.as_deref().unwrap_or(&self.user_id)
    }

    /// The entry's field/value pairs, in [`outbox_field::ALL`] order; the
    /// contact only when there is one.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let [order_id, sale_id, user_id, amount, confirmed_at, contact] = outbox_field::ALL;
        let mut fields = vec![
            (order_id, self.order_id.clone()),
            (sale_id, self.sale_id.clone()),
            (user_id, self.user_id.clone()),
            (amount, self.amount.to_string()),
            (confirmed_at, self.confirmed_at.to_string()),
        ];
        if let Some(value) = &self.contact {
            fields.push((contact, value.clone()));
        }
        fields
    }

    /// The inverse of [`OutboxEntry::fields`], from a stream entry's
    /// field/value pairs in any order. Refused: a missing, repeated or
    /// unknown field; an invalid sale or user id or contact; an order id that is not
    /// one of the sale's ([`keys::order_number`]); an amount or time that
    /// is not 1 to 15 plain digits within the engine's limits.
    pub fn from_fields<K, V>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<OutboxEntry, MalformedEntry>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut values: [Option<String>; 6] = Default::default();
        for (name, value) in fields {
            let name = name.as_ref();
            let slot = outbox_field::ALL
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| MalformedEntry(format!("unknown field {name:?}")))?;
            if values[slot].replace(value.as_ref().to_string()).is_some() {
                return Err(MalformedEntry(format!("{name} twice")));
            }
        }
        let required = outbox_field::REQUIRED.len();
        if let Some(missing) = values[..required].iter().position(Option::is_none) {
            let name = outbox_field::ALL[missing];
            return Err(MalformedEntry(format!("no {name}")));
        }
        let [order_id, sale_id, user_id, amount, confirmed_at, contact] = values;
        let [order_id, sale_id, user_id, amount, confirmed_at] =
            [order_id, sale_id, user_id, amount, confirmed_at].map(Option::unwrap_or_default);
        if !ids::is_valid_sale_id(sale_id.as_bytes()) {
            return Err(MalformedEntry(format!("invalid sale_id {sale_id:?}")));
        }
        if !ids::is_valid_user_id(user_id.as_bytes()) {
            return Err(MalformedEntry(format!("invalid user_id {user_id:?}")));
        }
        if let Some(contact) = contact
            .as_ref()
            .filter(|c| !ids::is_valid_user_id(c.as_bytes()))
        {
            return Err(MalformedEntry(format!("invalid contact {contact:?}")));
        }
        if keys::order_number(&sale_id, &order_id).is_none() {
            return Err(MalformedEntry(format!(
                "order_id {order_id:?} is not an order of sale {sale_id:?}"
            )));
        }
        let number = |raw: &str, name: &str, max: u64| {
            number::parse_int(raw.as_bytes(), name, 0, max).map_err(|e| MalformedEntry(e.message))
        };
        Ok(OutboxEntry {
            amount: number(&amount, outbox_field::AMOUNT, MAX_AMOUNT)?,
            confirmed_at: number(&confirmed_at, outbox_field::CONFIRMED_AT, MAX_TIME_MS)?,
            order_id,
            sale_id,
            user_id,
            contact,
        })
    }
}

/// Why a stream entry is not an [`OutboxEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedEntry(pub String);

impl fmt::Display for MalformedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed outbox entry: {}", self.0)
    }
}

impl std::error::Error for MalformedEntry {}

pub trait Store {
    /// `GET fs:{s}:sale`, decoded; `None` when the sale does not exist.
    fn sale(&mut self) -> Result<Option<SaleRecord>, EngineError>;
    /// `SET fs:{s}:sale <record.encode()>`
    fn write_sale(&mut self, record: &SaleRecord) -> Result<(), EngineError>;

    /// `HGET fs:{s}:orders user`
    fn order_of(&mut self, user: &str) -> Result<Option<String>, EngineError>;
    /// `HSET fs:{s}:orders user order_id`
    fn record_order(&mut self, user: &str, order_id: &str) -> Result<(), EngineError>;
    /// `HLEN fs:{s}:orders`
    fn orders_count(&mut self) -> Result<u64, EngineError>;
    /// `HVALS fs:{s}:orders`: every order id, in no particular order.
    fn order_ids(&mut self) -> Result<Vec<String>, EngineError>;

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
    /// `ZRANGE fs:{s}:queue -1 -1 WITHSCORES`: the newest arrival's ticket.
    fn queue_last_ticket(&mut self) -> Result<Option<u64>, EngineError>;
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

    /// `TYPE` of each key the running command may write unread
    /// ([`CommandName::written_keys`](crate::CommandName::written_keys)):
    /// WRONGTYPE unless each is absent or of its own type. Such commands
    /// call it before their first write; a key they never touch cannot make
    /// them fail.
    fn check_key_types(&mut self) -> Result<(), EngineError>;
    /// `XADD fs:{s}:outbox 0-n order_id .. sale_id .. user_id .. amount .. confirmed_at ..
    /// [contact ..]`
    fn append_outbox(&mut self, n: u64, entry: &OutboxEntry) -> Result<(), EngineError>;

    /// `ZSCORE fs:{s}:registered user`: registered for the pre-queue draw.
    fn is_registered(&mut self, user: &str) -> Result<bool, EngineError>;
    /// `ZADD fs:{s}:registered at user`
    fn register(&mut self, user: &str, at: u64) -> Result<(), EngineError>;
    /// `ZREM fs:{s}:registered user`
    fn unregister(&mut self, user: &str) -> Result<(), EngineError>;
    /// `ZCARD fs:{s}:registered`
    fn registered_count(&mut self) -> Result<u64, EngineError>;
    /// `ZRANGE fs:{s}:registered 0 -1`: every registered user (the draw
    /// orders them itself).
    fn registered_users(&mut self) -> Result<Vec<String>, EngineError>;
    /// `DEL fs:{s}:registered`
    fn clear_registered(&mut self) -> Result<(), EngineError>;
    /// `GET fs:{s}:seed`
    fn seed(&mut self) -> Result<Option<String>, EngineError>;
    /// `SET fs:{s}:seed seed`
    fn write_seed(&mut self, seed: &str) -> Result<(), EngineError>;
    /// `RPUSH fs:{s}:draw h1 h2 …` (nothing when `entries` is empty).
    fn draw_push(&mut self, entries: &[String]) -> Result<(), EngineError>;
    /// `LLEN fs:{s}:draw`
    fn draw_len(&mut self) -> Result<u64, EngineError>;
    /// `LRANGE fs:{s}:draw offset offset+count-1` (`count` ≥ 1).
    fn draw_range(&mut self, offset: u64, count: u64) -> Result<Vec<String>, EngineError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_record_round_trips_and_reads_plainly() {
        let record = SaleRecord {
            stock: 10,
            sold: 2,
            starts_at: 3,
            ends_at: 999_999_999_999_999,
            hold_ttl_ms: 5,
            rate: 0,
            max_queue: 7,
            rate_credit: 8,
            rate_at: 9,
            order_seq: 180_000_000_000_000,
            price: Some(1999),
            paused_at: None,
            prequeue_ms: None,
            drawn_at: None,
        };
        let text = record.encode();
        assert_eq!(text, "stock=10 sold=2 starts_at=3 ends_at=999999999999999 hold_ttl_ms=5 rate=0 max_queue=7 rate_credit=8 rate_at=9 order_seq=180000000000000 price=1999");
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(record.clone()));
        // A sale without a price leaves the field out.
        let unpriced = SaleRecord {
            price: None,
            ..record
        };
        let text = unpriced.encode();
        assert!(text.ends_with(" order_seq=180000000000000"), "{text}");
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(unpriced.clone()));
        // Paused, with and without a price: each optional field on its own.
        let paused = SaleRecord {
            paused_at: Some(42),
            ..unpriced
        };
        let text = paused.encode();
        assert!(
            text.ends_with(" order_seq=180000000000000 paused_at=42"),
            "{text}"
        );
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(paused.clone()));
        let both = SaleRecord {
            price: Some(5),
            ..paused
        };
        let text = both.encode();
        assert!(text.ends_with(" price=5 paused_at=42"), "{text}");
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(both.clone()));
        // The lottery's fields, each on its own too.
        let window = SaleRecord {
            prequeue_ms: Some(60_000),
            ..unpriced.clone()
        };
        let text = window.encode();
        assert!(
            text.ends_with(" order_seq=180000000000000 prequeue_ms=60000"),
            "{text}"
        );
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(window));
        let drawn = SaleRecord {
            prequeue_ms: Some(1),
            drawn_at: Some(7),
            ..both
        };
        let text = drawn.encode();
        assert!(
            text.ends_with(" price=5 paused_at=42 prequeue_ms=1 drawn_at=7"),
            "{text}"
        );
        assert_eq!(SaleRecord::decode(text.as_bytes()), Ok(drawn));
    }

    /// A record from before `order_seq` (nine fields) reads with
    /// `order_seq = sold`: its orders were numbered 1 to `sold`.
    #[test]
    fn a_legacy_record_reads_with_order_seq_equal_to_sold() {
        let legacy = "stock=10 sold=4 starts_at=3 ends_at=6 hold_ttl_ms=5 rate=0 max_queue=7 rate_credit=8 rate_at=9";
        let record = SaleRecord::decode(legacy.as_bytes()).expect("a legacy record decodes");
        assert_eq!((record.sold, record.order_seq, record.rate_at), (4, 4, 9));
        assert_eq!(record.price, None);
        assert_eq!(record.encode(), format!("{legacy} order_seq=4"));
    }

    fn entry(pairs: &[(&str, &str)]) -> Result<OutboxEntry, MalformedEntry> {
        OutboxEntry::from_fields(pairs.iter().copied())
    }

    const GOOD: [(&str, &str); 5] = [
        ("order_id", "s-1"),
        ("sale_id", "s"),
        ("user_id", "a@b.c"),
        ("amount", "1999"),
        ("confirmed_at", "1800000000000"),
    ];

    #[test]
    fn reads_an_outbox_entry() {
        let expected = OutboxEntry {
            order_id: "s-1".into(),
            sale_id: "s".into(),
            user_id: "a@b.c".into(),
            amount: 1999,
            confirmed_at: 1_800_000_000_000,
            contact: None,
        };
        assert_eq!(entry(&GOOD), Ok(expected.clone()));
        assert_eq!(expected.contact(), "a@b.c");
        let mut typed = GOOD.to_vec();
        typed.push(("contact", "A+1@b.c"));
        let with_contact = entry(&typed).expect("an entry with a contact");
        assert_eq!(with_contact.contact(), "A+1@b.c");
        assert_eq!(
            OutboxEntry::from_fields(with_contact.fields()),
            Ok(with_contact)
        );
        let mut shuffled = GOOD;
        shuffled.reverse();
        assert_eq!(entry(&shuffled), Ok(expected.clone()));
        assert_eq!(OutboxEntry::from_fields(expected.fields()), Ok(expected));
        // As a stream reply comes: a map of owned strings.
        let map: std::collections::HashMap<String, String> = GOOD
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(OutboxEntry::from_fields(&map).is_ok());
    }

    #[test]
    fn refuses_a_malformed_entry() {
        assert!(entry(&[("order_id", "s-1")]).is_err());
        assert!(entry(&[]).is_err());
        // GOOD with `name` set to `value` (added if GOOD has no such field).
        let with = |name: &str, value: &str| {
            let mut pairs: Vec<(&str, &str)> = GOOD
                .iter()
                .map(|&(k, v)| (k, if k == name { value } else { v }))
                .collect();
            if !GOOD.iter().any(|(k, _)| *k == name) {
                pairs.push((name, value));
            }
            entry(&pairs)
        };
        for (name, value) in [
            ("amount", "12.5"),
            ("amount", "-1"),
            ("amount", "+1"),
            ("amount", ""),
            ("amount", "1000000000000000"),
            ("confirmed_at", "x"),
            ("confirmed_at", "1e3"),
            ("sale_id", "t"),
            ("sale_id", "s{"),
            ("user_id", ""),
            ("user_id", "a b"),
            ("order_id", "s-01"),
            ("order_id", "s-"),
            ("contact", "a b"),
            ("contact", ""),
        ] {
            assert!(with(name, value).is_err(), "{name}={value:?}");
        }
        for missing in outbox_field::REQUIRED {
            let pairs: Vec<(&str, &str)> =
                GOOD.into_iter().filter(|(k, _)| *k != missing).collect();
            assert_eq!(
                entry(&pairs),
                Err(MalformedEntry(format!("no {missing}"))),
                "without {missing}"
            );
        }
        let mut repeated = GOOD.to_vec();
        repeated.push(("amount", "1999"));
        assert!(entry(&repeated).is_err());
        let mut extra = GOOD.to_vec();
        extra.push(("garbage", "1"));
        assert!(entry(&extra).is_err());
    }

    #[test]
    fn anything_but_the_exact_format_is_corrupt() {
        let good = SaleRecord::default().encode();
        let bad = [
            String::new(),
            good.replace("sold=0", "sold=-1"),
            good.replace("sold=0", "sold="),
            good.replace("sold=0", "sold=1000000000000000"),
            good.replace(' ', "  "),
            good.replace("stock", "stok"),
            format!("{good} "),
            format!("{good} extra=1"),
            good.replacen(" rate_at=0", "", 1),
            good.replacen(" order_seq=0", " order_seq=", 1),
            good.replacen(" order_seq=0", " order_seq", 1),
            good.replacen(" order_seq=0", " ", 1),
            good.replacen(" order_seq=0", " order_seq=1000000000000000", 1),
            good.replacen(" order_seq=0", " rate_at=0", 1),
            // A legacy record is the first nine fields exactly.
            good.replacen(" rate_at=0 order_seq=0", "", 1),
            good.replacen(" order_seq=0", "", 1) + " ",
            // The price comes last, only after order_seq, with digits.
            format!("{good} price="),
            // paused_at after the price, once, with digits.
            format!("{good} paused_at=1 price=1"),
            format!("{good} drawn_at=1 prequeue_ms=1"),
            format!("{good} prequeue_ms=1 prequeue_ms=1"),
            format!("{good} prequeue_ms=x"),
            format!("{good} paused_at=1 paused_at=1"),
            format!("{good} paused_at="),
            format!("{good} paused_at"),
            good.replacen(" order_seq=0", " paused_at=1 order_seq=0", 1),
            format!("{good} price=1 price=1"),
            format!("{good} price=-1"),
            good.replacen(" order_seq=0", " price=1", 1),
            good.replacen(" order_seq=0", " price=1 order_seq=0", 1),
        ];
        for raw in bad {
            assert_eq!(
                SaleRecord::decode(raw.as_bytes()),
                Err(EngineError::corrupt_sale()),
                "{raw:?}"
            );
        }
    }
}
