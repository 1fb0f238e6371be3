//! The `FLASHSALE.*` Redis module. Each handler parses its arguments with the
//! engine, runs the engine's rules against [`RedisStore`] and replies; the
//! sale logic itself lives in the Redis-free `engine` crate.

mod clock;
mod raw_key;
mod redis_store;

use engine::{parse, CommandName, EngineError, Resp};
use redis_module::{
    redis_module, Context, RedisError, RedisResult, RedisString, RedisValue, Status,
};

use crate::redis_store::RedisStore;

fn run(ctx: &Context, name: CommandName, args: Vec<RedisString>) -> RedisResult {
    // args[0] is the command name itself.
    let raw: Vec<&[u8]> = args.iter().skip(1).map(|a| a.as_slice()).collect();
    let outcome = parse(name, &raw).and_then(|command| {
        let now = clock::now_ms(ctx)?;
        let mut store = RedisStore::new(ctx, command.sale(), !name.is_read_only());
        engine::execute(&mut store, now, &command)
    });
    match outcome {
        Ok(reply) => Ok(to_redis_value(reply.to_resp())),
        Err(error) => Err(to_redis_error(&error)),
    }
}

fn to_redis_value(resp: Resp) -> RedisValue {
    match resp {
        Resp::Bulk(s) => RedisValue::BulkString(s),
        Resp::Int(n) => RedisValue::Integer(n),
        Resp::Array(items) => RedisValue::Array(items.into_iter().map(to_redis_value).collect()),
    }
}

fn to_redis_error(error: &EngineError) -> RedisError {
    RedisError::String(error.to_string())
}

fn setup(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Setup, args)
}
fn enqueue(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Enqueue, args)
}
fn grant(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Grant, args)
}
fn confirm(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Confirm, args)
}
fn release(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Release, args)
}
fn status(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    run(ctx, CommandName::Status, args)
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    // Keys are opened for writing once per command and reused; only real
    // writes signal a modification (see raw_key.rs).
    ctx.set_module_options(redis_module::ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED);
    for arg in args {
        match arg.to_string_lossy().to_ascii_uppercase().as_str() {
            "TEST_CLOCK" => {
                clock::enable_test_clock();
                ctx.log_warning("flashsale: TEST_CLOCK enabled; the clock is read from the key flashsale:test-clock");
            }
            other => {
                ctx.log_warning(&format!("flashsale: unknown module argument {other}"));
                return Status::Err;
            }
        }
    }
    Status::Ok
}

// The classic registration form: the #[command] macro and per-command ACL
// categories need Redis 7.2 and would keep the module from loading on 7.0.
redis_module! {
    name: "flashsale",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [
        ["flashsale.setup", setup, "write deny-oom", 1, 1, 1, ""],
        ["flashsale.enqueue", enqueue, "write deny-oom fast", 1, 1, 1, ""],
        ["flashsale.grant", grant, "write deny-oom", 1, 1, 1, ""],
        ["flashsale.confirm", confirm, "write deny-oom", 1, 1, 1, ""],
        ["flashsale.release", release, "write", 1, 1, 1, ""],
        ["flashsale.status", status, "readonly", 1, 1, 1, ""],
    ],
}
