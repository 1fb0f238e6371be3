//! [`engine::Store`] on Redis keys. Single-member reads and writes use the
//! low-level key API (the ENQUEUE hot path); range operations use
//! `RedisModule_Call`. Writes made through the key API are not replicated by
//! Redis, so every write replicates itself as an explicit, clock-free effect
//! (absolute expiry, explicit stream id): a replica or an AOF reload rebuilds
//! exactly the primary's data.

use engine::store::field;
use engine::{keys, EngineError, OutboxEntry, SaleRecord, Store};
use redis_module::{Context, KeyType, RedisError, RedisValue};

use crate::raw_key::RawKey;

pub struct RedisStore<'a> {
    ctx: &'a Context,
    sale: &'a str,
}

impl<'a> RedisStore<'a> {
    pub fn new(ctx: &'a Context, sale: &'a str) -> Self {
        RedisStore { ctx, sale }
    }

    fn call(&self, command: &str, args: &[&str]) -> Result<RedisValue, EngineError> {
        self.ctx.call(command, args).map_err(|e| call_error(&e))
    }

    /// Runs a write through `RedisModule_Call` and replicates it as is; only
    /// used with arguments that do not depend on the clock.
    fn write(&self, command: &str, args: &[&str]) -> Result<(), EngineError> {
        self.call(command, args)?;
        self.ctx.replicate(command, args);
        Ok(())
    }
}

fn call_error(error: &RedisError) -> EngineError {
    let text = error.to_string();
    if text.starts_with("WRONGTYPE") {
        EngineError::wrong_type()
    } else {
        EngineError::err(text)
    }
}

fn as_text(value: &RedisValue) -> Option<String> {
    match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.clone()),
        RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
        RedisValue::StringBuffer(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn as_count(value: &RedisValue) -> Result<u64, EngineError> {
    match value {
        RedisValue::Integer(n) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => Err(EngineError::err(format!("unexpected reply {other:?}"))),
    }
}

fn as_members(value: RedisValue) -> Result<Vec<String>, EngineError> {
    match value {
        RedisValue::Array(items) => items
            .iter()
            .map(|v| as_text(v).ok_or_else(|| EngineError::err("unexpected reply")))
            .collect(),
        other => Err(EngineError::err(format!("unexpected reply {other:?}"))),
    }
}

impl Store for RedisStore<'_> {
    fn sale(&mut self) -> Result<Option<SaleRecord>, EngineError> {
        let key = RawKey::read(self.ctx, &keys::sale(self.sale));
        match key.hash_get(&field::ALL)? {
            None => Ok(None),
            Some(values) => {
                let values: Vec<Option<&[u8]>> = values
                    .iter()
                    .map(|v| v.as_ref().map(|s| s.as_slice()))
                    .collect();
                SaleRecord::from_fields(&values).map(Some)
            }
        }
    }

    fn set_sale_fields(&mut self, fields: &[(&str, u64)]) -> Result<(), EngineError> {
        let name = keys::sale(self.sale);
        let key = RawKey::write(self.ctx, &name);
        let values: Vec<String> = fields.iter().map(|(_, v)| v.to_string()).collect();
        let mut args: Vec<&str> = vec![&name];
        for ((field, _), value) in fields.iter().zip(&values) {
            key.hash_set(field, value)?;
            args.extend([*field, value.as_str()]);
        }
        self.ctx.replicate("HSET", args.as_slice());
        Ok(())
    }

    fn order_of(&mut self, user: &str) -> Result<Option<String>, EngineError> {
        let key = RawKey::read(self.ctx, &keys::orders(self.sale));
        Ok(key
            .hash_get(&[user])?
            .and_then(|mut values| values.pop().flatten())
            .map(|s| s.to_string_lossy()))
    }

    fn record_order(&mut self, user: &str, order_id: &str) -> Result<(), EngineError> {
        self.write("HSET", &[&keys::orders(self.sale), user, order_id])
    }

    fn hold_expiry(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        RawKey::read(self.ctx, &keys::holds(self.sale)).zset_score(user)
    }

    fn live_holds(&mut self, now: u64) -> Result<u64, EngineError> {
        let after_now = format!("({now}");
        as_count(&self.call("ZCOUNT", &[&keys::holds(self.sale), &after_now, "+inf"])?)
    }

    fn expired_holds(&mut self, now: u64) -> Result<Vec<String>, EngineError> {
        as_members(self.call(
            "ZRANGEBYSCORE",
            &[&keys::holds(self.sale), "-inf", &now.to_string()],
        )?)
    }

    fn add_hold(&mut self, user: &str, expires_at: u64) -> Result<(), EngineError> {
        let at = expires_at.to_string();
        self.write("ZADD", &[&keys::holds(self.sale), &at, user])?;
        // The hold key is for operators (PTTL from redis-cli); the zset above
        // is what the rules trust, whenever Redis evicts this key.
        self.write("SET", &[&keys::hold(self.sale, user), &at, "PXAT", &at])
    }

    fn remove_hold(&mut self, user: &str) -> Result<(), EngineError> {
        let holds = keys::holds(self.sale);
        if RawKey::write(self.ctx, &holds).zset_rem(user)? {
            self.ctx.replicate("ZREM", &[holds.as_str(), user]);
        }
        let hold = keys::hold(self.sale, user);
        if as_count(&self.call("DEL", &[&hold])?)? > 0 {
            self.ctx.replicate("DEL", &[hold.as_str()]);
        }
        Ok(())
    }

    fn queue_rank(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        let queue = keys::queue(self.sale);
        if RawKey::read(self.ctx, &queue).zset_score(user)?.is_none() {
            return Ok(None);
        }
        match self.call("ZRANK", &[&queue, user])? {
            RedisValue::Integer(rank) => Ok(u64::try_from(rank).ok()),
            _ => Ok(None),
        }
    }

    fn queue_len(&mut self) -> Result<u64, EngineError> {
        let key = RawKey::read(self.ctx, &keys::queue(self.sale));
        key.exists_as(KeyType::ZSet)?;
        Ok(key.len() as u64)
    }

    fn queue_push(&mut self, user: &str, ticket: u64) -> Result<(), EngineError> {
        let queue = keys::queue(self.sale);
        RawKey::write(self.ctx, &queue).zset_add(user, ticket)?;
        self.ctx
            .replicate("ZADD", &[queue.as_str(), &ticket.to_string(), user]);
        Ok(())
    }

    fn queue_remove(&mut self, user: &str) -> Result<(), EngineError> {
        let queue = keys::queue(self.sale);
        if RawKey::write(self.ctx, &queue).zset_rem(user)? {
            self.ctx.replicate("ZREM", &[queue.as_str(), user]);
        }
        Ok(())
    }

    fn queue_pop(&mut self, n: u64) -> Result<Vec<String>, EngineError> {
        let queue = keys::queue(self.sale);
        let last = n.saturating_sub(1).to_string();
        let head = as_members(self.call("ZRANGE", &[&queue, "0", &last])?)?;
        if !head.is_empty() {
            let mut args: Vec<&str> = vec![&queue];
            args.extend(head.iter().map(String::as_str));
            self.write("ZREM", &args)?;
        }
        Ok(head)
    }

    fn queue_clear(&mut self) -> Result<(), EngineError> {
        self.write("DEL", &[&keys::queue(self.sale)])
    }

    fn is_lapsed(&mut self, user: &str) -> Result<bool, EngineError> {
        Ok(RawKey::read(self.ctx, &keys::lapsed(self.sale))
            .zset_score(user)?
            .is_some())
    }

    fn add_lapsed(&mut self, user: &str, expired_at: u64) -> Result<(), EngineError> {
        let lapsed = keys::lapsed(self.sale);
        RawKey::write(self.ctx, &lapsed).zset_add(user, expired_at)?;
        self.ctx
            .replicate("ZADD", &[lapsed.as_str(), &expired_at.to_string(), user]);
        Ok(())
    }

    fn remove_lapsed(&mut self, user: &str) -> Result<(), EngineError> {
        let lapsed = keys::lapsed(self.sale);
        if RawKey::write(self.ctx, &lapsed).zset_rem(user)? {
            self.ctx.replicate("ZREM", &[lapsed.as_str(), user]);
        }
        Ok(())
    }

    fn check_outbox(&mut self) -> Result<(), EngineError> {
        RawKey::read(self.ctx, &keys::outbox(self.sale))
            .exists_as(KeyType::Stream)
            .map(|_| ())
    }

    fn append_outbox(&mut self, n: u64, entry: &OutboxEntry) -> Result<(), EngineError> {
        let outbox = keys::outbox(self.sale);
        let id = format!("0-{n}");
        let fields = entry.fields();
        let mut args: Vec<&str> = vec![&outbox, &id];
        for (name, value) in &fields {
            args.extend([*name, value.as_str()]);
        }
        self.write("XADD", &args)
    }
}
