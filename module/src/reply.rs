//! Replies written straight with the reply API. The writer is generated from
//! the engine's one declaration of the wire format
//! ([`engine::with_reply_shapes!`]), like the engine's encoder
//! ([`engine::Reply::to_resp`]) and the client's decoder, so it writes the
//! same bytes as the encoder's RESP tree — without building that tree, whose
//! vector and outcome string were allocated and freed on every command.

use std::ffi::{c_char, c_long, c_longlong, CString};

use engine::{
    ConfirmReply, DrawReply, EngineError, EnqueueReply, GrantReply, PauseReply, ReleaseReply,
    Reply, RestoreReply, ResumeReply, SaleState, SetupReply, StatusReply, UserStatus,
};
use redis_module::{raw, Context};

fn array(ctx: &Context, len: usize) {
    // SAFETY: a valid context inside a command call.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithArray {
            f(ctx.ctx, c_long::try_from(len).unwrap_or(c_long::MAX));
        }
    }
}

fn bulk(ctx: &Context, s: &str) {
    // SAFETY: a valid context; Redis copies the bytes.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithStringBuffer {
            f(ctx.ctx, s.as_ptr().cast::<c_char>(), s.len());
        }
    }
}

/// One value of a reply, written as [`engine::reply::Field::to_resp`]
/// encodes it.
trait Write {
    fn write(&self, ctx: &Context);
}

impl Write for u64 {
    fn write(&self, ctx: &Context) {
        // Capped as the encoder caps it.
        let n = i64::try_from(*self).unwrap_or(i64::MAX);
        // SAFETY: a valid context.
        unsafe {
            if let Some(f) = raw::RedisModule_ReplyWithLongLong {
                f(ctx.ctx, n as c_longlong);
            }
        }
    }
}

impl Write for String {
    fn write(&self, ctx: &Context) {
        bulk(ctx, self);
    }
}

impl Write for Vec<String> {
    fn write(&self, ctx: &Context) {
        array(ctx, self.len());
        for s in self {
            bulk(ctx, s);
        }
    }
}

impl Write for SaleState {
    fn write(&self, ctx: &Context) {
        bulk(ctx, self.as_str());
    }
}

/// 1 for each field it is given: counts a variant's fields.
macro_rules! one {
    ($field:ident) => {
        1
    };
}

/// The module's half of [`engine::with_reply_shapes!`]: the writer.
macro_rules! define_writer {
    (
        positional: [$(
            $command:ident => $reply:ident {$(
                $(#[$variant_doc:meta])*
                $variant:ident $({ $($field:ident: $ty:ty),* $(,)? })? = $word:literal
            ),* $(,)?}
        )*]
        named: $status_command:ident => $status:ident {
            $sale:ident: $sale_status:ident {$(
                $(#[$sale_doc:meta])*
                $sale_field:ident: $sale_ty:ty
            ),* $(,)?}
            $user:ident: $user_status:ident = $user_name:literal {$(
                $(#[$user_doc:meta])*
                $user_variant:ident $({ $($user_field:ident: $user_ty:ty = $user_field_name:literal),* $(,)? })? = $user_word:literal
            ),* $(,)?}
        }
    ) => {
        /// Writes `reply`: the bytes of `reply.to_resp()`.
        pub fn send(ctx: &Context, reply: &Reply) {
            match reply {
                $(Reply::$command(reply) => match reply {
                    $($reply::$variant $({ $($field),* })? => {
                        // The outcome word, then the fields in their order.
                        array(ctx, 1 $($(+ one!($field))*)?);
                        bulk(ctx, $word);
                        $($(Write::write($field, ctx);)*)?
                    })*
                },)*
                Reply::$status_command($status { $sale, $user }) => {
                    // Name/value pairs: the sale's, then the user's.
                    let user_len = match $user {
                        None => 0,
                        Some(user) => match user {
                            $($user_status::$user_variant { .. } => {
                                2 $($(+ 2 * one!($user_field))*)?
                            })*
                        },
                    };
                    array(ctx, 2 * (0 $(+ one!($sale_field))*) + user_len);
                    $(
                        bulk(ctx, stringify!($sale_field));
                        Write::write(&$sale.$sale_field, ctx);
                    )*
                    if let Some(user) = $user {
                        bulk(ctx, $user_name);
                        bulk(ctx, user.outcome());
                        match user {
                            $($user_status::$user_variant $({ $($user_field),* })? => {
                                $($(
                                    bulk(ctx, $user_field_name);
                                    Write::write($user_field, ctx);
                                )*)?
                            })*
                        }
                    }
                }
            }
        }
    };
}

engine::with_reply_shapes!(define_writer);

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
