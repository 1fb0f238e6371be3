//! The `FLASHSALE.*` Redis module. Each command parses its arguments with the
//! engine, runs the engine's rules against [`RedisStore`] and replies; the
//! sale logic itself lives in the Redis-free `engine` crate.
//!
//! Commands are registered in `init` with `RedisModule_CreateCommand` and
//! handled straight from `argv` (no per-argument allocation), which matters
//! for ENQUEUE, the hot path. The classic registration also keeps the module
//! loadable on Redis 7.0: no 7.2-only ACL-category calls are made.

mod clock;
mod key_names;
mod raw_key;
mod redis_store;
mod reply;

use std::ffi::{c_int, CString};

use engine::{parse, CommandName};
use redis_module::{raw, redis_module, Context, RedisString, Status};

use crate::redis_store::RedisStore;

/// Up to this many words (the command's name included) are passed to the
/// parser without a heap allocation.
const FEW_ARGS: usize = 8;

fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    name: CommandName,
) -> c_int {
    let ctx = Context::new(ctx);
    let count = usize::try_from(argc).unwrap_or(0);
    // argv[0] is the command name itself.
    // SAFETY: Redis passes `argc` valid strings that outlive this call.
    let arg = |i: usize| unsafe { raw_key::string_bytes(*argv.add(i)) };
    // The hot commands' few arguments stay on the stack.
    let mut few: [&[u8]; FEW_ARGS] = [&[]; FEW_ARGS];
    let many: Vec<&[u8]>;
    let args: &[&[u8]] = if count <= FEW_ARGS {
        for (i, slot) in few.iter_mut().enumerate().take(count).skip(1) {
            *slot = arg(i);
        }
        &few[1..count.max(1)]
    } else {
        many = (1..count).map(arg).collect();
        &many
    };
    // The user, for the commands that name one, is the second argument:
    // the store uses Redis's string of it as the member it reads and writes.
    let user = (count > 2).then(|| {
        // SAFETY: argv[2] exists (count > 2) and lives for the whole call.
        (raw_key::Member::argument(unsafe { *argv.add(2) }), args[1])
    });
    let outcome = parse(name, args).and_then(|command| {
        let now = clock::now_ms(&ctx)?;
        let names = key_names::take(command.sale());
        let mut store = RedisStore::new(&ctx, command.sale(), name, &names, user);
        let outcome = engine::execute(&mut store, now, &command);
        // Its keys are closed before their names are kept for the next command.
        drop(store);
        key_names::give_back(names);
        outcome
    });
    match outcome {
        Ok(reply) => reply::send(&ctx, &reply),
        Err(error) => reply::error(&ctx, &error),
    }
    raw::REDISMODULE_OK as c_int
}

macro_rules! handlers {
    ($($fn_name:ident => $command:ident),* $(,)?) => {
        $(extern "C" fn $fn_name(ctx: *mut raw::RedisModuleCtx, argv: *mut *mut raw::RedisModuleString, argc: c_int) -> c_int {
            dispatch(ctx, argv, argc, CommandName::$command)
        })*
    };
}

handlers!(
    setup => Setup,
    enqueue => Enqueue,
    grant => Grant,
    confirm => Confirm,
    release => Release,
    status => Status,
    restore => Restore,
    pause => Pause,
    resume => Resume,
    draw => Draw,
);

type Handler =
    extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// Every command and its handler. Each declares one key, the sale id (first
/// argument), whose slot is the slot of every key the sale has; its flags
/// are the engine's ([`CommandName::flags`]), as for the Lua library.
const COMMANDS: [(CommandName, Handler); 10] = [
    (CommandName::Setup, setup),
    (CommandName::Enqueue, enqueue),
    (CommandName::Grant, grant),
    (CommandName::Confirm, confirm),
    (CommandName::Release, release),
    (CommandName::Status, status),
    (CommandName::Restore, restore),
    (CommandName::Pause, pause),
    (CommandName::Resume, resume),
    (CommandName::Draw, draw),
];

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    for arg in args {
        match arg.to_string_lossy().to_ascii_uppercase().as_str() {
            "TEST_CLOCK" => {
                clock::enable_test_clock();
                ctx.log_warning(&format!(
                    "flashsale: TEST_CLOCK enabled; the clock is read from the key {}",
                    engine::keys::TEST_CLOCK
                ));
            }
            other => {
                ctx.log_warning(&format!("flashsale: unknown module argument {other}"));
                return Status::Err;
            }
        }
    }
    // Keys are opened for writing once per command and reused; only real
    // writes signal a modification (see raw_key.rs).
    ctx.set_module_options(redis_module::ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED);
    for (command, handler) in COMMANDS {
        // Registered in lower case, as before: `COMMAND INFO` shows it so.
        let name = c_string(&command.module_command().to_ascii_lowercase());
        let flags = c_string(&command.flags().module_flags());
        // SAFETY: called from OnLoad with a valid context; Redis copies the
        // name and flags before this returns.
        let created = unsafe {
            raw::RedisModule_CreateCommand.map_or(raw::REDISMODULE_ERR as c_int, |create| {
                create(
                    ctx.ctx,
                    name.as_ptr(),
                    Some(handler),
                    flags.as_ptr(),
                    1,
                    1,
                    1,
                )
            })
        };
        if created != raw::REDISMODULE_OK as c_int {
            ctx.log_warning(&format!("flashsale: cannot create {name:?}"));
            return Status::Err;
        }
    }
    Status::Ok
}

/// Names and flags are plain ASCII words: never an inner NUL.
fn c_string(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

redis_module! {
    name: "flashsale",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
}
