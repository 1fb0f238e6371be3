//! Replies written straight with the reply API, from the engine's RESP tree.

use std::ffi::{c_char, c_longlong, CString};

use engine::{EngineError, Resp};
use redis_module::{raw, Context};

pub fn send(ctx: &Context, resp: &Resp) {
    // SAFETY: a valid context inside a command call.
    unsafe {
        match resp {
            Resp::Bulk(s) => {
                if let Some(f) = raw::RedisModule_ReplyWithStringBuffer {
                    f(ctx.ctx, s.as_ptr().cast::<c_char>(), s.len());
                }
            }
            Resp::Int(n) => {
                if let Some(f) = raw::RedisModule_ReplyWithLongLong {
                    f(ctx.ctx, *n as c_longlong);
                }
            }
            Resp::Array(items) => {
                if let Some(f) = raw::RedisModule_ReplyWithArray {
                    f(ctx.ctx, items.len() as std::ffi::c_long);
                }
                for item in items {
                    send(ctx, item);
                }
            }
        }
    }
}

/// `-CODE message`; the code is the first word, as Redis clients expect.
pub fn error(ctx: &Context, error: &EngineError) {
    let text = error.to_string().replace(['\r', '\n'], " ");
    let text = CString::new(text).unwrap_or_default();
    // SAFETY: a valid context; the string outlives the call.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithError {
            f(ctx.ctx, text.as_ptr());
        }
    }
}
