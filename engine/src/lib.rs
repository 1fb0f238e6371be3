//! The Redis-free core of flashsale.
//!
//! Everything that decides what a `FLASHSALE.*` command does lives here, in
//! plain Rust that knows nothing about Redis: argument parsing ([`parse`]),
//! the sale rules ([`execute`]), the replies ([`Reply`]) and an in-memory
//! [`Model`] used as the reference oracle in tests. The Redis module is a thin
//! adapter that implements [`Store`] on top of Redis keys; the Lua library is
//! a line-by-line port of [`rules`] and is checked against it by the
//! differential tests.

pub mod command;
pub mod error;
pub mod ids;
pub mod keys;
pub mod lottery;
#[cfg(test)]
mod lua_constants;
pub mod model;
pub mod number;
pub mod reply;
pub mod rules;
pub mod store;

pub use command::{parse, Command, CommandName, LotteryParams, RestoredOrder};
pub use error::EngineError;
pub use model::{Model, SaleData};
pub use reply::{
    ConfirmReply, DrawReply, EnqueueReply, GrantReply, PauseReply, ReleaseReply, Reply, Resp,
    RestoreReply, ResumeReply, SaleState, SaleStatus, SetupReply, StatusReply, UserStatus,
};
pub use rules::execute;
pub use store::{MalformedEntry, OutboxEntry, SaleRecord, Store};
