//! Low-level access to Redis keys and strings — markedly faster than
//! `RedisModule_Call` for the single-member reads and writes of the hot path,
//! and written to avoid allocating: names and members go to Redis as
//! (pointer, length), replication uses the `b` format.
//!
//! The module runs with implicit "modified key" signals off, so each write
//! here signals its key itself (WATCH, client-side caching); merely opening a
//! key for writing is not a modification.

use std::ffi::{c_char, c_int, CStr};
use std::ptr;

use engine::EngineError;
use redis_module::{raw, Context, KeyType};

const OK: c_int = raw::REDISMODULE_OK as c_int;
const ERR: c_int = raw::REDISMODULE_ERR as c_int;

/// The bytes of a string Redis owns.
///
/// # Safety
/// `s` must be a valid `RedisModuleString` that outlives the returned slice.
pub unsafe fn string_bytes<'s>(s: *const raw::RedisModuleString) -> &'s [u8] {
    let mut len = 0;
    // SAFETY: per the contract above.
    unsafe {
        match raw::RedisModule_StringPtrLen.map(|f| f(s, &mut len)) {
            Some(p) if !p.is_null() => std::slice::from_raw_parts(p.cast::<u8>(), len),
            _ => &[],
        }
    }
}

/// A `RedisModuleString` we own; freed on drop.
pub struct RStr<'a> {
    ctx: &'a Context,
    ptr: *mut raw::RedisModuleString,
}

impl<'a> RStr<'a> {
    pub fn new(ctx: &'a Context, bytes: &[u8]) -> Self {
        // SAFETY: Redis copies `len` bytes from `bytes`.
        let ptr = unsafe {
            raw::RedisModule_CreateString.map_or(ptr::null_mut(), |f| {
                f(ctx.ctx, bytes.as_ptr().cast::<c_char>(), bytes.len())
            })
        };
        RStr { ctx, ptr }
    }

    /// Takes ownership of a string Redis handed us (may be null).
    fn adopt(ctx: &'a Context, ptr: *mut raw::RedisModuleString) -> Option<Self> {
        (!ptr.is_null()).then_some(RStr { ctx, ptr })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: we own the string; the slice lives no longer than `self`.
        unsafe { string_bytes(self.ptr) }
    }
}

/// A `RedisModuleString` made without a context, so Redis does not free it
/// when the command ends: it can be kept from one command to the next (a
/// sale's key names, [`crate::key_names`]). Freed on drop.
pub struct KeptString(*mut raw::RedisModuleString);

impl KeptString {
    pub fn new(bytes: &[u8]) -> Self {
        // SAFETY: a null context is allowed; Redis copies `len` bytes.
        let ptr = unsafe {
            raw::RedisModule_CreateString.map_or(ptr::null_mut(), |f| {
                f(
                    ptr::null_mut(),
                    bytes.as_ptr().cast::<c_char>(),
                    bytes.len(),
                )
            })
        };
        KeptString(ptr)
    }

    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.0
    }
}

impl Drop for KeptString {
    fn drop(&mut self) {
        // SAFETY: we own the string, made without a context.
        unsafe {
            if let (false, Some(free)) = (self.0.is_null(), raw::RedisModule_FreeString) {
                free(ptr::null_mut(), self.0);
            }
        }
    }
}

/// A borrowed `RedisModuleString`, valid while its owner ([`RStr`]) lives.
#[derive(Clone, Copy)]
pub struct Member(*mut raw::RedisModuleString);

impl RStr<'_> {
    pub fn member(&self) -> Member {
        Member(self.ptr)
    }
}

impl Member {
    /// One of the command's own arguments (`argv`), which Redis keeps for
    /// the whole call.
    pub fn argument(ptr: *mut raw::RedisModuleString) -> Self {
        Member(ptr)
    }

    pub fn as_ptr(self) -> *mut raw::RedisModuleString {
        self.0
    }
}

impl Drop for RStr<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the string.
        unsafe {
            if let (false, Some(free)) = (self.ptr.is_null(), raw::RedisModule_FreeString) {
                free(self.ctx.ctx, self.ptr);
            }
        }
    }
}

/// `fs:{<sale>}:<suffix>[<user>]` on the stack: sale ids are at most 64
/// bytes and user ids 128, so every key name fits.
pub struct KeyName {
    buf: [u8; 256],
    len: usize,
}

impl KeyName {
    pub fn new(sale: &str, suffix: &str, user: &str) -> Self {
        let mut name = KeyName {
            buf: [0; 256],
            len: 0,
        };
        for part in [engine::keys::OPEN, sale, engine::keys::CLOSE, suffix, user] {
            let end = (name.len + part.len()).min(name.buf.len());
            name.buf[name.len..end].copy_from_slice(&part.as_bytes()[..end - name.len]);
            name.len = end;
        }
        name
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// Replicates one write as `command arg...` (to replicas and the AOF), each
/// argument spelled with its kind, which makes the format and the variadic
/// call at compile time:
/// - `b: <&[u8]>`: bytes Redis copies into a new string;
/// - `s: <*mut RedisModuleString>`: a string we hold (a kept key name, the
///   command's own user argument), which Redis shares by reference instead
///   of copying: one allocation and free fewer per argument, on every write.
///
/// Redis holds a reference to an `s` string until the command's effects are
/// propagated, after the handler returns; nothing changes those strings, so
/// what reaches replicas and the AOF is what was written.
macro_rules! replicate {
    ($ctx:expr, $command:literal, $($kind:ident: $arg:expr),+ $(,)?) => {
        $crate::raw_key::replicate!(@args $ctx, $command, [], [], $($kind: $arg),+)
    };
    (@args $ctx:expr, $command:literal, [$($format:literal)*], [$($out:expr),*],
        b: $arg:expr $(, $($rest:tt)*)?) => {{
        let bytes: &[u8] = $arg;
        $crate::raw_key::replicate!(@args $ctx, $command, [$($format)* "b"],
            [$($out,)* bytes.as_ptr().cast::<std::ffi::c_char>(), bytes.len()] $(, $($rest)*)?)
    }};
    (@args $ctx:expr, $command:literal, [$($format:literal)*], [$($out:expr),*],
        s: $arg:expr $(, $($rest:tt)*)?) => {{
        let string: *mut redis_module::raw::RedisModuleString = $arg;
        $crate::raw_key::replicate!(@args $ctx, $command, [$($format)* "s"],
            [$($out,)* string] $(, $($rest)*)?)
    }};
    (@args $ctx:expr, $command:literal, [$($format:literal)*], [$($out:expr),*]) => {
        // SAFETY: one format letter per argument: `b` takes a (pointer,
        // length) pair, `s` a string pointer; both outlive the call.
        unsafe {
            if let Some(replicate) = redis_module::raw::RedisModule_Replicate {
                replicate(
                    $ctx.ctx,
                    concat!($command, "\0").as_ptr().cast(),
                    concat!($($format,)* "\0").as_ptr().cast(),
                    $($out),*
                );
            }
        }
    };
}
pub(crate) use replicate;

/// Replicates `command args...` with any number of arguments, copied
/// (ZREM of a popped head, XADD of an outbox entry, RPUSH of a draw).
pub fn replicate_all(ctx: &Context, command: &CStr, args: &[&[u8]]) {
    let owned: Vec<RStr> = args.iter().map(|a| RStr::new(ctx, a)).collect();
    let mut argv: Vec<*mut raw::RedisModuleString> = owned.iter().map(|s| s.ptr).collect();
    // SAFETY: `v` takes an array of strings and its length; they outlive
    // the call.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx.ctx,
                command.as_ptr(),
                c"v".as_ptr(),
                argv.as_mut_ptr(),
                argv.len(),
            );
        }
    }
}

pub struct RawKey<'a> {
    ctx: &'a Context,
    /// The key's name: `owned`'s, or a [`KeptString`] that outlives `'a`.
    name: *mut raw::RedisModuleString,
    _owned: Option<RStr<'a>>,
    /// Null for a missing key opened for reading.
    key: *mut raw::RedisModuleKey,
    writable: bool,
}

impl<'a> RawKey<'a> {
    pub fn open(ctx: &'a Context, name: &[u8], writable: bool) -> Self {
        let owned = RStr::new(ctx, name);
        let name = owned.ptr;
        Self::open_named(ctx, name, Some(owned), writable)
    }

    /// Opens the key named by a kept string, without making the name again.
    pub fn open_kept(ctx: &'a Context, name: &'a KeptString, writable: bool) -> Self {
        Self::open_named(ctx, name.0, None, writable)
    }

    fn open_named(
        ctx: &'a Context,
        name: *mut raw::RedisModuleString,
        owned: Option<RStr<'a>>,
        writable: bool,
    ) -> Self {
        let mode = if writable {
            raw::KeyMode::READ | raw::KeyMode::WRITE
        } else {
            raw::KeyMode::READ
        };
        let key = raw::open_key(ctx.ctx, name, mode);
        RawKey {
            ctx,
            name,
            _owned: owned,
            key,
            writable,
        }
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn key_type(&self) -> KeyType {
        if self.key.is_null() {
            return KeyType::Empty;
        }
        // SAFETY: `key` is an open key of this context.
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

    pub fn len(&self) -> u64 {
        if self.key.is_null() {
            return 0;
        }
        // SAFETY: open key.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.key)) as u64 }
    }

    fn signal_modified(&self) {
        // SAFETY: valid context and key name.
        unsafe {
            if let Some(signal) = raw::RedisModule_SignalModifiedKey {
                signal(self.ctx.ctx, self.name);
            }
        }
    }

    /// Reads a string value without copying it out of Redis.
    pub fn with_string<T>(&self, read: impl FnOnce(&[u8]) -> T) -> Result<Option<T>, EngineError> {
        if !self.exists_as(KeyType::String)? {
            return Ok(None);
        }
        let mut len = 0;
        // SAFETY: open string key; the bytes are used before anything writes.
        unsafe {
            let data = raw::RedisModule_StringDMA.map_or(ptr::null_mut(), |f| {
                f(self.key, &mut len, raw::KeyMode::READ.bits())
            });
            if data.is_null() {
                return Ok(None);
            }
            Ok(Some(read(std::slice::from_raw_parts(
                data.cast::<u8>(),
                len,
            ))))
        }
    }

    pub fn set_string(&self, value: &[u8]) -> Result<(), EngineError> {
        self.exists_as(KeyType::String)?;
        let value = RStr::new(self.ctx, value);
        // SAFETY: open writable key.
        let status = unsafe { raw::RedisModule_StringSet.map_or(ERR, |f| f(self.key, value.ptr)) };
        ok(status)?;
        self.signal_modified();
        Ok(())
    }

    pub fn hash_get(&self, field: Member) -> Result<Option<RStr<'a>>, EngineError> {
        if !self.exists_as(KeyType::Hash)? {
            return Ok(None);
        }
        let mut value = ptr::null_mut::<raw::RedisModuleString>();
        // SAFETY: open hash key; (field, &out) then NULL.
        let status = unsafe {
            raw::RedisModule_HashGet.map_or(ERR, |f| {
                f(
                    self.key,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    field.0,
                    &mut value as *mut *mut raw::RedisModuleString,
                    ptr::null_mut::<raw::RedisModuleString>(),
                )
            })
        };
        let value = RStr::adopt(self.ctx, value);
        ok(status)?;
        Ok(value)
    }

    pub fn hash_set(&self, field: Member, value: &str) -> Result<(), EngineError> {
        self.exists_as(KeyType::Hash)?;
        let value = RStr::new(self.ctx, value.as_bytes());
        // SAFETY: open writable key, checked above to be a hash or empty.
        // RedisModule_HashSet answers how many fields it updated, not a
        // status, so there is nothing more to check.
        unsafe {
            if let Some(hash_set) = raw::RedisModule_HashSet {
                hash_set(
                    self.key,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    field.0,
                    value.ptr,
                    ptr::null_mut::<raw::RedisModuleString>(),
                );
            }
        }
        self.signal_modified();
        Ok(())
    }

    pub fn zset_score(&self, member: Member) -> Result<Option<u64>, EngineError> {
        if !self.exists_as(KeyType::ZSet)? {
            return Ok(None);
        }
        let mut score = 0f64;
        // SAFETY: open zset key. ERR here means "no such member".
        let status = unsafe {
            raw::RedisModule_ZsetScore.map_or(ERR, |f| f(self.key, member.0, &mut score))
        };
        Ok((status == OK).then_some(score as u64))
    }

    /// The highest score.
    pub fn zset_last_score(&self) -> Result<Option<u64>, EngineError> {
        if !self.exists_as(KeyType::ZSet)? {
            return Ok(None);
        }
        // SAFETY: open zset key; the range is stopped before returning.
        unsafe {
            let started = raw::RedisModule_ZsetLastInScoreRange
                .map_or(ERR, |f| f(self.key, f64::NEG_INFINITY, f64::INFINITY, 0, 0));
            if started != OK {
                return Ok(None);
            }
            let mut score = 0f64;
            let element = raw::RedisModule_ZsetRangeCurrentElement
                .map_or(ptr::null_mut(), |f| f(self.key, &mut score));
            let found = RStr::adopt(self.ctx, element).is_some();
            if let Some(stop) = raw::RedisModule_ZsetRangeStop {
                stop(self.key);
            }
            Ok(found.then_some(score as u64))
        }
    }

    pub fn zset_add(&self, member: Member, score: u64) -> Result<(), EngineError> {
        self.exists_as(KeyType::ZSet)?;
        // SAFETY: open writable key.
        let status = unsafe {
            raw::RedisModule_ZsetAdd.map_or(ERR, |f| {
                f(self.key, score as f64, member.0, ptr::null_mut())
            })
        };
        ok(status)?;
        self.signal_modified();
        Ok(())
    }

    /// Whether the member was there.
    pub fn zset_rem(&self, member: Member) -> Result<bool, EngineError> {
        if !self.exists_as(KeyType::ZSet)? {
            return Ok(false);
        }
        let mut deleted: c_int = 0;
        // SAFETY: open writable key.
        let status = unsafe {
            raw::RedisModule_ZsetRem.map_or(ERR, |f| f(self.key, member.0, &mut deleted))
        };
        ok(status)?;
        if deleted != 0 {
            self.signal_modified();
        }
        Ok(deleted != 0)
    }

    /// Deletes the key; whether it existed.
    pub fn delete(&self) -> bool {
        if self.key_type() == KeyType::Empty {
            return false;
        }
        // SAFETY: open writable key.
        let deleted = unsafe { raw::RedisModule_DeleteKey.map_or(ERR, |f| f(self.key)) } == OK;
        if deleted {
            self.signal_modified();
        }
        deleted
    }
}

fn ok(status: c_int) -> Result<(), EngineError> {
    if status == OK {
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
