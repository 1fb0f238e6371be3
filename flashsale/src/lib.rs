//! The client crate of flashsale: the connection to a server or a cluster
//! (`connection`), the engine checked on every node (`nodes`), the typed
//! engine client with its reply decoder (`client`, `reply`), the outbox
//! reader (`outbox`), direct key work (`keyspace`), and, re-exported from the
//! Redis-free `engine` crate, the command and reply types and the model.

mod backend;
mod client;
pub mod connection;
mod error;
mod keyspace;
pub mod nodes;
pub mod outbox;
pub mod reply;

pub use backend::{Backend, BackendChoice};
pub use client::{EngineClient, RestoredOrders, LUA_LIBRARY};
pub use connection::{RedisConn, RedisTarget, Timeouts};
pub use engine::error::ErrorCode;
pub use engine::{
    command::SetupParams, keys, lottery, Command, CommandName, ConfirmReply, DrawReply,
    EngineError, EnqueueReply, GrantReply, LotteryParams, MalformedEntry, Model, OutboxEntry,
    PauseReply, ReleaseReply, Reply, Resp, RestoreReply, ResumeReply, SaleState, SaleStatus,
    SetupReply, StatusReply, UserStatus,
};
pub use error::ClientError;
