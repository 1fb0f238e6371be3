//! [`engine::Store`] on Redis keys. The sale's own keys are opened once per
//! command with the low-level key API and reused; ranges go through
//! `RedisModule_Call`, but only as reads of those keys (a write through
//! `RedisModule_Call` would leave the open handles dangling). Low-level writes
//! are not replicated by Redis, so each one replicates itself as an explicit,
//! clock-free effect (absolute expiry, explicit stream id): a replica or an
//! AOF reload rebuilds exactly the primary's data.

use std::cell::RefCell;

use engine::keys::{
    self, KeyKind, DRAW, HOLD, HOLDS, LAPSED, ORDERS, OUTBOX, QUEUE, REGISTERED, SALE, SEED,
};
use engine::{CommandName, EngineError, OutboxEntry, SaleRecord, Store};
use redis_module::{Context, KeyType, RedisError, RedisValue};

use crate::key_names::SaleKeyNames;
use crate::raw_key::{replicate, replicate_all, KeyName, Member, RStr, RawKey};

pub struct RedisStore<'a> {
    ctx: &'a Context,
    sale: &'a str,
    writable: bool,
    read_first: ReadFirst,
    /// [`CommandName::written_keys`] of the running command.
    writes: &'static [&'static str],
    /// The names of the handles below.
    names: &'a SaleKeyNames,
    sale_key: Option<RawKey<'a>>,
    queue: Option<RawKey<'a>>,
    holds: Option<RawKey<'a>>,
    orders: Option<RawKey<'a>>,
    lapsed: Option<RawKey<'a>>,
    /// The command's user argument as Redis passed it, with its bytes: the
    /// member string of that user, with none to make (and free).
    argument: Option<(Member, &'a [u8])>,
    /// The last member string made, reused: a command asks about one user
    /// in several keys.
    member: Option<RStr<'a>>,
}

/// One of the sale's keys, opened on first use and kept for the rest of the
/// command: `handle!(self.queue)` to read it, `handle!(mut self.queue)` to
/// write it. A key is opened for writing at once unless the command reads
/// it first ([`ReadFirst`]); a handle opened for reading is reopened for
/// writing at its first write.
macro_rules! handle {
    ($self:ident . $slot:ident) => {{
        let (ctx, names) = ($self.ctx, $self.names);
        let writable = $self.writable && !$self.read_first.$slot;
        &*$self
            .$slot
            .get_or_insert_with(|| RawKey::open_kept(ctx, &names.$slot, writable))
    }};
    (mut $self:ident . $slot:ident) => {{
        if $self.$slot.as_ref().is_some_and(|key| !key.is_writable()) {
            // Closed before it is opened again.
            $self.$slot = None;
        }
        let (ctx, writable, names) = ($self.ctx, $self.writable, $self.names);
        &*$self
            .$slot
            .get_or_insert_with(|| RawKey::open_kept(ctx, &names.$slot, writable))
    }};
}

/// Which of the handles a command opens for reading only, at first.
#[derive(Default, Clone, Copy)]
struct ReadFirst {
    sale_key: bool,
    queue: bool,
    holds: bool,
    orders: bool,
    lapsed: bool,
}

impl ReadFirst {
    /// ENQUEUE asks whether its user has an order, a hold or a lapsed hold,
    /// and writes `holds` or `lapsed` only for a user back after a hold
    /// lapsed: it opens those three for reading. A missing key opened for
    /// reading costs no handle at all (Redis answers NULL, allocating
    /// nothing, where a handle for writing is allocated and freed), and
    /// early in a sale they are missing; the rare write reopens the key.
    /// The lookups count in Redis's keyspace hits and misses, as a ZSCORE's
    /// would. Every other command, and ENQUEUE's other keys, open for
    /// writing at once: they write what they open, and a second open would
    /// cost more than the first.
    fn of(command: CommandName) -> Self {
        match command {
            CommandName::Enqueue => ReadFirst {
                holds: true,
                orders: true,
                lapsed: true,
                ..ReadFirst::default()
            },
            _ => ReadFirst::default(),
        }
    }
}

impl<'a> RedisStore<'a> {
    pub fn new(
        ctx: &'a Context,
        sale: &'a str,
        command: CommandName,
        names: &'a SaleKeyNames,
        argument: Option<(Member, &'a [u8])>,
    ) -> Self {
        RedisStore {
            ctx,
            sale,
            writable: !command.is_read_only(),
            read_first: ReadFirst::of(command),
            writes: command.written_keys(),
            names,
            sale_key: None,
            queue: None,
            holds: None,
            orders: None,
            lapsed: None,
            argument,
            member: None,
        }
    }

    /// `user` as a Redis string: the command's own argument when it is that
    /// user, else made once per command and reused.
    fn member(&mut self, user: &str) -> Member {
        if let Some((argument, bytes)) = self.argument {
            if bytes == user.as_bytes() {
                return argument;
            }
        }
        match &self.member {
            Some(string) if string.bytes() == user.as_bytes() => string.member(),
            _ => {
                let string = RStr::new(self.ctx, user.as_bytes());
                let member = string.member();
                self.member = Some(string);
                member
            }
        }
    }

    fn name(&self, suffix: &str) -> KeyName {
        KeyName::new(self.sale, suffix, "")
    }

    fn hold_name(&self, user: &str) -> KeyName {
        KeyName::new(self.sale, HOLD, user)
    }

    fn call(&self, command: &str, args: &[&str]) -> Result<RedisValue, EngineError> {
        self.ctx.call(command, args).map_err(|e| call_error(&e))
    }
}

thread_local! {
    /// The sale record decoded last, with its text. Decoding depends on
    /// nothing but the text, and most commands read a sale's record
    /// unchanged, so comparing the text (about 200 bytes) replaces the
    /// parse. Redis runs every module command on its main thread.
    static LAST_DECODED: RefCell<Option<(Vec<u8>, SaleRecord)>> = const { RefCell::new(None) };
}

/// [`SaleRecord::decode`], answered from [`LAST_DECODED`] when `raw` is the
/// text decoded last.
fn decode_sale(raw: &[u8]) -> Result<SaleRecord, EngineError> {
    LAST_DECODED.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((text, record)) = last.as_ref() {
            if text.as_slice() == raw {
                return Ok(record.clone());
            }
        }
        let record = SaleRecord::decode(raw)?;
        match last.as_mut() {
            // The text's buffer is reused: no allocation once it is big enough.
            Some((text, kept)) => {
                text.clear();
                text.extend_from_slice(raw);
                *kept = record.clone();
            }
            None => *last = Some((raw.to_vec(), record.clone())),
        }
        Ok(record)
    })
}

fn call_error(error: &RedisError) -> EngineError {
    EngineError::from_reply(&error.to_string())
}

fn as_text(value: &RedisValue) -> Option<String> {
    match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.clone()),
        RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
        RedisValue::StringBuffer(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn unexpected(value: &RedisValue) -> EngineError {
    EngineError::err(format!("unexpected reply {value:?}"))
}

fn as_count(value: RedisValue) -> Result<u64, EngineError> {
    match value {
        RedisValue::Integer(n) => Ok(u64::try_from(n).unwrap_or(0)),
        other => Err(unexpected(&other)),
    }
}

fn as_members(value: RedisValue) -> Result<Vec<String>, EngineError> {
    match value {
        RedisValue::Array(items) => items
            .iter()
            .map(|v| as_text(v).ok_or_else(|| unexpected(v)))
            .collect(),
        other => Err(unexpected(&other)),
    }
}

impl Store for RedisStore<'_> {
    fn sale(&mut self) -> Result<Option<SaleRecord>, EngineError> {
        handle!(self.sale_key).with_string(decode_sale)?.transpose()
    }

    fn write_sale(&mut self, record: &SaleRecord) -> Result<(), EngineError> {
        let value = record.encode();
        handle!(mut self.sale_key).set_string(value.as_bytes())?;
        replicate!(self.ctx, "SET", s: self.names.sale_key.as_ptr(), b: value.as_bytes());
        Ok(())
    }

    fn order_of(&mut self, user: &str) -> Result<Option<String>, EngineError> {
        let m = self.member(user);
        let value = handle!(self.orders).hash_get(m)?;
        Ok(value.map(|v| String::from_utf8_lossy(v.bytes()).into_owned()))
    }

    fn record_order(&mut self, user: &str, order_id: &str) -> Result<(), EngineError> {
        let m = self.member(user);
        handle!(mut self.orders).hash_set(m, order_id)?;
        replicate!(
            self.ctx,
            "HSET",
            s: self.names.orders.as_ptr(),
            s: m.as_ptr(),
            b: order_id.as_bytes(),
        );
        Ok(())
    }

    fn orders_count(&mut self) -> Result<u64, EngineError> {
        let orders = handle!(self.orders);
        orders.exists_as(KeyType::Hash)?;
        Ok(orders.len())
    }

    fn order_ids(&mut self) -> Result<Vec<String>, EngineError> {
        handle!(self.orders).exists_as(KeyType::Hash)?;
        as_members(self.call("HVALS", &[self.name(ORDERS).as_str()])?)
    }

    fn hold_expiry(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        let m = self.member(user);
        handle!(self.holds).zset_score(m)
    }

    fn live_holds(&mut self, now: u64) -> Result<u64, EngineError> {
        handle!(self.holds).exists_as(KeyType::ZSet)?;
        match self.call(
            "ZCOUNT",
            &[self.name(HOLDS).as_str(), &format!("({now}"), "+inf"],
        )? {
            RedisValue::Integer(n) => Ok(u64::try_from(n).unwrap_or(0)),
            other => Err(unexpected(&other)),
        }
    }

    fn expired_holds(&mut self, now: u64) -> Result<Vec<String>, EngineError> {
        handle!(self.holds).exists_as(KeyType::ZSet)?;
        as_members(self.call(
            "ZRANGEBYSCORE",
            &[self.name(HOLDS).as_str(), "-inf", &now.to_string()],
        )?)
    }

    fn add_hold(&mut self, user: &str, expires_at: u64) -> Result<(), EngineError> {
        let m = self.member(user);
        let at = expires_at.to_string();
        handle!(mut self.holds).zset_add(m, expires_at)?;
        replicate!(
            self.ctx,
            "ZADD",
            s: self.names.holds.as_ptr(),
            b: at.as_bytes(),
            s: m.as_ptr(),
        );
        // The hold key is for operators (PTTL from redis-cli); the zset is
        // what the rules trust, whenever Redis evicts this key. It is not one
        // of the handles above, so RedisModule_Call may write it.
        let hold = self.hold_name(user);
        self.call("SET", &[hold.as_str(), &at, "PXAT", &at])?;
        replicate!(
            self.ctx,
            "SET",
            b: hold.as_bytes(),
            b: at.as_bytes(),
            b: b"PXAT",
            b: at.as_bytes(),
        );
        Ok(())
    }

    fn remove_hold(&mut self, user: &str) -> Result<(), EngineError> {
        let m = self.member(user);
        if handle!(mut self.holds).zset_rem(m)? {
            replicate!(self.ctx, "ZREM", s: self.names.holds.as_ptr(), s: m.as_ptr());
        }
        let hold = self.hold_name(user);
        if RawKey::open(self.ctx, hold.as_bytes(), true).delete() {
            replicate!(self.ctx, "DEL", b: hold.as_bytes());
        }
        Ok(())
    }

    fn queue_rank(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        let m = self.member(user);
        if handle!(self.queue).zset_score(m)?.is_none() {
            return Ok(None);
        }
        match self.call("ZRANK", &[self.name(QUEUE).as_str(), user])? {
            RedisValue::Integer(rank) => Ok(u64::try_from(rank).ok()),
            _ => Ok(None),
        }
    }

    fn queue_len(&mut self) -> Result<u64, EngineError> {
        let queue = handle!(self.queue);
        queue.exists_as(KeyType::ZSet)?;
        Ok(queue.len())
    }

    fn queue_last_ticket(&mut self) -> Result<Option<u64>, EngineError> {
        handle!(self.queue).zset_last_score()
    }

    fn queue_push(&mut self, user: &str, ticket: u64) -> Result<(), EngineError> {
        let m = self.member(user);
        handle!(mut self.queue).zset_add(m, ticket)?;
        let mut score = itoa::Buffer::new();
        replicate!(
            self.ctx,
            "ZADD",
            s: self.names.queue.as_ptr(),
            b: score.format(ticket).as_bytes(),
            s: m.as_ptr(),
        );
        Ok(())
    }

    fn queue_remove(&mut self, user: &str) -> Result<(), EngineError> {
        let m = self.member(user);
        if handle!(mut self.queue).zset_rem(m)? {
            replicate!(self.ctx, "ZREM", s: self.names.queue.as_ptr(), s: m.as_ptr());
        }
        Ok(())
    }

    fn queue_pop(&mut self, n: u64) -> Result<Vec<String>, EngineError> {
        let name = self.name(QUEUE);
        handle!(self.queue).exists_as(KeyType::ZSet)?;
        let head = as_members(self.call(
            "ZRANGE",
            &[name.as_str(), "0", &n.saturating_sub(1).to_string()],
        )?)?;
        let queue = handle!(mut self.queue);
        for user in &head {
            queue.zset_rem(RStr::new(self.ctx, user.as_bytes()).member())?;
        }
        if !head.is_empty() {
            let mut args: Vec<&[u8]> = vec![name.as_bytes()];
            args.extend(head.iter().map(String::as_bytes));
            replicate_all(self.ctx, c"ZREM", &args);
        }
        Ok(head)
    }

    fn queue_clear(&mut self) -> Result<(), EngineError> {
        if handle!(mut self.queue).delete() {
            replicate!(self.ctx, "DEL", s: self.names.queue.as_ptr());
        }
        Ok(())
    }

    fn is_lapsed(&mut self, user: &str) -> Result<bool, EngineError> {
        let m = self.member(user);
        Ok(handle!(self.lapsed).zset_score(m)?.is_some())
    }

    fn add_lapsed(&mut self, user: &str, reclaimed_at: u64) -> Result<(), EngineError> {
        let m = self.member(user);
        handle!(mut self.lapsed).zset_add(m, reclaimed_at)?;
        let mut score = itoa::Buffer::new();
        replicate!(
            self.ctx,
            "ZADD",
            s: self.names.lapsed.as_ptr(),
            b: score.format(reclaimed_at).as_bytes(),
            s: m.as_ptr(),
        );
        Ok(())
    }

    fn remove_lapsed(&mut self, user: &str) -> Result<(), EngineError> {
        let m = self.member(user);
        if handle!(mut self.lapsed).zset_rem(m)? {
            replicate!(self.ctx, "ZREM", s: self.names.lapsed.as_ptr(), s: m.as_ptr());
        }
        Ok(())
    }

    fn check_key_types(&mut self) -> Result<(), EngineError> {
        for (suffix, kind) in keys::TYPES {
            if !self.writes.contains(&suffix) {
                continue;
            }
            let expected = match kind {
                KeyKind::String => KeyType::String,
                KeyKind::ZSet => KeyType::ZSet,
                KeyKind::Hash => KeyType::Hash,
                KeyKind::Stream => KeyType::Stream,
                KeyKind::List => KeyType::List,
            };
            match suffix {
                SALE => handle!(self.sale_key).exists_as(expected)?,
                QUEUE => handle!(self.queue).exists_as(expected)?,
                HOLDS => handle!(self.holds).exists_as(expected)?,
                ORDERS => handle!(self.orders).exists_as(expected)?,
                LAPSED => handle!(self.lapsed).exists_as(expected)?,
                // The outbox and the lottery's keys are not cached handles:
                // they are written through RedisModule_Call.
                other => RawKey::open(self.ctx, self.name(other).as_bytes(), false)
                    .exists_as(expected)?,
            };
        }
        Ok(())
    }

    fn append_outbox(&mut self, n: u64, entry: &OutboxEntry) -> Result<(), EngineError> {
        // Not one of the cached handles, so RedisModule_Call may write it.
        let outbox = self.name(OUTBOX);
        let id = engine::keys::outbox_entry_id(n);
        let fields = entry.fields();
        let mut args: Vec<&str> = vec![outbox.as_str(), &id];
        for (name, value) in &fields {
            args.extend([*name, value.as_str()]);
        }
        self.call("XADD", &args)?;
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        replicate_all(self.ctx, c"XADD", &bytes);
        Ok(())
    }

    // The lottery's keys are touched by few commands and never in the hot
    // path of a sale without a window, so they are not cached handles: all
    // their reads and writes go through RedisModule_Call, and each write
    // replicates itself like the others.

    fn is_registered(&mut self, user: &str) -> Result<bool, EngineError> {
        let value = self.call("ZSCORE", &[self.name(REGISTERED).as_str(), user])?;
        Ok(!matches!(value, RedisValue::Null))
    }

    fn register(&mut self, user: &str, at: u64) -> Result<(), EngineError> {
        let name = self.name(REGISTERED);
        let at = at.to_string();
        self.call("ZADD", &[name.as_str(), &at, user])?;
        replicate!(
            self.ctx,
            "ZADD",
            b: name.as_bytes(),
            b: at.as_bytes(),
            b: user.as_bytes(),
        );
        Ok(())
    }

    fn unregister(&mut self, user: &str) -> Result<(), EngineError> {
        let name = self.name(REGISTERED);
        if as_count(self.call("ZREM", &[name.as_str(), user])?)? > 0 {
            replicate!(self.ctx, "ZREM", b: name.as_bytes(), b: user.as_bytes());
        }
        Ok(())
    }

    fn registered_count(&mut self) -> Result<u64, EngineError> {
        as_count(self.call("ZCARD", &[self.name(REGISTERED).as_str()])?)
    }

    fn registered_users(&mut self) -> Result<Vec<String>, EngineError> {
        as_members(self.call("ZRANGE", &[self.name(REGISTERED).as_str(), "0", "-1"])?)
    }

    fn clear_registered(&mut self) -> Result<(), EngineError> {
        let name = self.name(REGISTERED);
        if as_count(self.call("DEL", &[name.as_str()])?)? > 0 {
            replicate!(self.ctx, "DEL", b: name.as_bytes());
        }
        Ok(())
    }

    fn seed(&mut self) -> Result<Option<String>, EngineError> {
        let value = self.call("GET", &[self.name(SEED).as_str()])?;
        match value {
            RedisValue::Null => Ok(None),
            other => as_text(&other).map(Some).ok_or_else(|| unexpected(&other)),
        }
    }

    fn write_seed(&mut self, seed: &str) -> Result<(), EngineError> {
        let name = self.name(SEED);
        self.call("SET", &[name.as_str(), seed])?;
        replicate!(self.ctx, "SET", b: name.as_bytes(), b: seed.as_bytes());
        Ok(())
    }

    fn draw_push(&mut self, entries: &[String]) -> Result<(), EngineError> {
        if entries.is_empty() {
            return Ok(());
        }
        let name = self.name(DRAW);
        let mut args: Vec<&str> = vec![name.as_str()];
        args.extend(entries.iter().map(String::as_str));
        self.call("RPUSH", &args)?;
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        replicate_all(self.ctx, c"RPUSH", &bytes);
        Ok(())
    }

    fn draw_len(&mut self) -> Result<u64, EngineError> {
        as_count(self.call("LLEN", &[self.name(DRAW).as_str()])?)
    }

    fn draw_range(&mut self, offset: u64, count: u64) -> Result<Vec<String>, EngineError> {
        let last = offset.saturating_add(count).saturating_sub(1);
        as_members(self.call(
            "LRANGE",
            &[
                self.name(DRAW).as_str(),
                &offset.to_string(),
                &last.to_string(),
            ],
        )?)
    }
}
