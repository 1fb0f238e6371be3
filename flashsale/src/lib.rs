//! The shared library of flashsale: the typed engine client and, re-exported
//! from the Redis-free `engine` crate, the command and reply types and the
//! reference model.

mod backend;
mod client;
pub mod connection;
mod error;
mod keyspace;
pub mod nodes;
pub mod outbox;
pub mod reply;

pub use backend::{Backend, BackendChoice};
pub use client::{EngineClient, LUA_LIBRARY};
pub use connection::{RedisConn, RedisTarget, Timeouts};
pub use engine::error::ErrorCode;
pub use engine::{
    command::SetupParams, keys, Command, CommandName, ConfirmReply, EngineError, EnqueueReply,
    GrantReply, MalformedEntry, Model, OutboxEntry, ReleaseReply, Reply, Resp, SaleState,
    SaleStatus, SetupReply, StatusReply, UserStatus,
};
pub use error::ClientError;
