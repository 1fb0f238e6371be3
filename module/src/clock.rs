//! The server clock, or — only when the module was loaded with `TEST_CLOCK` —
//! a clock the tests set through the key `flashsale:test-clock`, so the
//! differential tests can drive the module and the Lua library in lock step.

use std::sync::atomic::{AtomicBool, Ordering};

use engine::EngineError;
use redis_module::{raw, Context};

use crate::raw_key::RawKey;

static TEST_CLOCK: AtomicBool = AtomicBool::new(false);

pub fn enable_test_clock() {
    TEST_CLOCK.store(true, Ordering::Relaxed);
}

pub fn now_ms(ctx: &Context) -> Result<u64, EngineError> {
    if TEST_CLOCK.load(Ordering::Relaxed) {
        let key = RawKey::open(ctx, engine::keys::TEST_CLOCK.as_bytes(), false);
        let parsed =
            key.with_string(|value| std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()))?;
        if let Some(value) = parsed {
            return value
                .ok_or_else(|| EngineError::err(engine::error::message::INVALID_TEST_CLOCK));
        }
    }
    // SAFETY: the function pointer is filled in when the module loads.
    let ms = unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) };
    Ok(u64::try_from(ms).unwrap_or(0))
}
