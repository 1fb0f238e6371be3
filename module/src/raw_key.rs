//! A Redis key opened with the low-level key API — markedly faster than
//! `RedisModule_Call` for the single-member reads and writes of the hot path.
//! Closed on drop.

use std::os::raw::c_int;
use std::ptr;

use engine::EngineError;
use redis_module::{raw, Context, KeyType, RedisString};

pub struct RawKey<'a> {
    ctx: &'a Context,
    key: *mut raw::RedisModuleKey,
}

impl<'a> RawKey<'a> {
    fn open(ctx: &'a Context, name: &str, mode: raw::KeyMode) -> Self {
        let name = ctx.create_string(name);
        let key = raw::open_key(ctx.ctx, name.inner, mode);
        RawKey { ctx, key }
    }

    pub fn read(ctx: &'a Context, name: &str) -> Self {
        Self::open(ctx, name, raw::KeyMode::READ)
    }

    pub fn write(ctx: &'a Context, name: &str) -> Self {
        Self::open(ctx, name, raw::KeyMode::READ | raw::KeyMode::WRITE)
    }

    fn key_type(&self) -> KeyType {
        if self.key.is_null() {
            return KeyType::Empty;
        }
        // SAFETY: `key` is an open key of this module context.
        unsafe { raw::RedisModule_KeyType.map_or(KeyType::Empty, |f| f(self.key).into()) }
    }

    /// `Ok(false)` for a missing key, `Ok(true)` for one of `expected`, and
    /// WRONGTYPE for anything else.
    pub fn exists_as(&self, expected: KeyType) -> Result<bool, EngineError> {
        match self.key_type() {
            KeyType::Empty => Ok(false),
            t if t == expected => Ok(true),
            _ => Err(EngineError::wrong_type()),
        }
    }

    pub fn len(&self) -> usize {
        if self.key.is_null() {
            return 0;
        }
        // SAFETY: open key.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.key)) }
    }

    pub fn string_value(&self) -> Result<Option<Vec<u8>>, EngineError> {
        if !self.exists_as(KeyType::String)? {
            return Ok(None);
        }
        let mut len = 0;
        // SAFETY: open string key; the pointer is valid until the key changes.
        let ptr = unsafe {
            raw::RedisModule_StringDMA.map_or(ptr::null_mut(), |f| {
                f(self.key, &mut len, raw::KeyMode::READ.bits())
            })
        };
        if ptr.is_null() {
            return Ok(None);
        }
        // SAFETY: Redis guarantees `len` readable bytes at `ptr`.
        Ok(Some(
            unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec(),
        ))
    }

    /// HMGET of `fields`; `None` when the key does not exist.
    pub fn hash_get(
        &self,
        fields: &[&str],
    ) -> Result<Option<Vec<Option<RedisString>>>, EngineError> {
        if !self.exists_as(KeyType::Hash)? {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(fields.len());
        for field in fields {
            let field = self.ctx.create_string(*field);
            let mut value: *mut raw::RedisModuleString = ptr::null_mut();
            // SAFETY: open hash key; REDISMODULE_HASH_NONE takes (field, &out) pairs.
            let status = unsafe {
                raw::RedisModule_HashGet.map_or(raw::REDISMODULE_ERR as c_int, |f| {
                    f(
                        self.key,
                        raw::REDISMODULE_HASH_NONE as c_int,
                        field.inner,
                        &mut value as *mut *mut raw::RedisModuleString,
                        ptr::null_mut::<raw::RedisModuleString>(),
                    )
                })
            };
            if status != raw::REDISMODULE_OK as c_int {
                return Err(EngineError::wrong_type());
            }
            values.push(if value.is_null() {
                None
            } else {
                Some(RedisString::from_redis_module_string(self.ctx.ctx, value))
            });
        }
        Ok(Some(values))
    }

    pub fn hash_set(&self, field: &str, value: &str) -> Result<(), EngineError> {
        self.exists_as(KeyType::Hash)?;
        let field = self.ctx.create_string(field);
        let value = self.ctx.create_string(value);
        // SAFETY: open writable key, checked above to be a hash or empty.
        // RedisModule_HashSet answers how many fields it updated, not a
        // status, so there is nothing more to check.
        unsafe {
            if let Some(hash_set) = raw::RedisModule_HashSet {
                hash_set(
                    self.key,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    field.inner,
                    value.inner,
                    ptr::null_mut::<raw::RedisModuleString>(),
                );
            }
        }
        Ok(())
    }

    pub fn zset_score(&self, member: &str) -> Result<Option<u64>, EngineError> {
        if !self.exists_as(KeyType::ZSet)? {
            return Ok(None);
        }
        let member = self.ctx.create_string(member);
        let mut score = 0f64;
        // SAFETY: open zset key.
        let status = unsafe {
            raw::RedisModule_ZsetScore.map_or(raw::REDISMODULE_ERR as c_int, |f| {
                f(self.key, member.inner, &mut score)
            })
        };
        // ERR here means "no such member".
        Ok((status == raw::REDISMODULE_OK as c_int).then_some(score as u64))
    }

    pub fn zset_add(&self, member: &str, score: u64) -> Result<(), EngineError> {
        self.exists_as(KeyType::ZSet)?;
        let member = self.ctx.create_string(member);
        // SAFETY: open writable key.
        let status = unsafe {
            raw::RedisModule_ZsetAdd.map_or(raw::REDISMODULE_ERR as c_int, |f| {
                f(self.key, score as f64, member.inner, ptr::null_mut())
            })
        };
        ok_or_wrong_type(status)
    }

    /// Whether the member was there.
    pub fn zset_rem(&self, member: &str) -> Result<bool, EngineError> {
        if !self.exists_as(KeyType::ZSet)? {
            return Ok(false);
        }
        let member = self.ctx.create_string(member);
        let mut deleted: c_int = 0;
        // SAFETY: open writable key.
        let status = unsafe {
            raw::RedisModule_ZsetRem.map_or(raw::REDISMODULE_ERR as c_int, |f| {
                f(self.key, member.inner, &mut deleted)
            })
        };
        ok_or_wrong_type(status)?;
        Ok(deleted != 0)
    }
}

fn ok_or_wrong_type(status: c_int) -> Result<(), EngineError> {
    if status == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(EngineError::wrong_type())
    }
}

impl Drop for RawKey<'_> {
    fn drop(&mut self) {
        if !self.key.is_null() {
            raw::close_key(self.key);
        }
    }
}
