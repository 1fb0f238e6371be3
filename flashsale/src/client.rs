//! Talks to whichever engine the server has: the `FLASHSALE.*` module
//! commands when the module is loaded, otherwise the `flashsale` Redis
//! Functions library (loaded on connect if missing or outdated).

use engine::command::SetupParams;
use engine::{
    Command, CommandName, ConfirmReply, EnqueueReply, GrantReply, ReleaseReply, Reply, Resp,
    SetupReply, StatusReply,
};
use redis::aio::ConnectionLike;
use redis::Value;

use crate::{Backend, BackendChoice, ClientError};

/// The Redis Functions library, identical in behaviour to the module.
pub const LUA_LIBRARY: &str = include_str!("../../lua/flashsale.lua");

#[derive(Clone)]
pub struct EngineClient<C> {
    conn: C,
    backend: Backend,
}

impl<C: ConnectionLike + Send> EngineClient<C> {
    pub async fn connect(mut conn: C, choice: BackendChoice) -> Result<Self, ClientError> {
        let backend = match choice {
            BackendChoice::Module => Backend::Module,
            BackendChoice::Lua => Backend::Lua,
            BackendChoice::Auto if has_module(&mut conn).await? => Backend::Module,
            BackendChoice::Auto => Backend::Lua,
        };
        match backend {
            Backend::Module if !has_module(&mut conn).await? => {
                return Err(ClientError::Reply(
                    "the FLASHSALE module is not loaded on this server".into(),
                ))
            }
            Backend::Lua => ensure_library(&mut conn).await?,
            Backend::Module => {}
        }
        Ok(EngineClient { conn, backend })
    }

    /// Uses `backend` as it is on the server: no detection, no loading.
    pub fn attach(conn: C, backend: Backend) -> Self {
        EngineClient { conn, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn connection(&mut self) -> &mut C {
        &mut self.conn
    }

    /// Sends one command with raw arguments (sale id first) and returns the
    /// raw reply; an error reply is [`ClientError::Server`] with its exact text.
    pub async fn raw<A: redis::ToRedisArgs + Send + Sync>(
        &mut self,
        name: CommandName,
        args: &[A],
    ) -> Result<Resp, ClientError> {
        let mut cmd = match self.backend {
            Backend::Module => redis::cmd(name.module_command()),
            Backend::Lua => {
                let mut cmd = redis::cmd(if name.is_read_only() {
                    "FCALL_RO"
                } else {
                    "FCALL"
                });
                // The sale id is the one declared key; FCALL needs numkeys 1
                // even when arguments are missing, so arity errors come from
                // the library like they come from the module.
                cmd.arg(name.function_name())
                    .arg(if args.is_empty() { 0 } else { 1 });
                cmd
            }
        };
        for arg in args {
            cmd.arg(arg);
        }
        let value: Value = cmd
            .query_async(&mut self.conn)
            .await
            .map_err(ClientError::from_redis)?;
        to_resp(value)
    }

    pub async fn execute(&mut self, command: &Command) -> Result<Reply, ClientError> {
        let resp = self.raw(command.name(), &command.to_args()).await?;
        crate::reply::decode(command.name(), &resp)
    }

    pub async fn setup(
        &mut self,
        sale: &str,
        params: SetupParams,
    ) -> Result<SetupReply, ClientError> {
        match self
            .execute(&Command::Setup {
                sale: sale.into(),
                params,
            })
            .await?
        {
            Reply::Setup(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    pub async fn enqueue(&mut self, sale: &str, user: &str) -> Result<EnqueueReply, ClientError> {
        match self
            .execute(&Command::Enqueue {
                sale: sale.into(),
                user: user.into(),
            })
            .await?
        {
            Reply::Enqueue(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    pub async fn grant(&mut self, sale: &str, max: u64) -> Result<GrantReply, ClientError> {
        match self
            .execute(&Command::Grant {
                sale: sale.into(),
                max,
            })
            .await?
        {
            Reply::Grant(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    pub async fn confirm(
        &mut self,
        sale: &str,
        user: &str,
        amount: u64,
    ) -> Result<ConfirmReply, ClientError> {
        match self
            .execute(&Command::Confirm {
                sale: sale.into(),
                user: user.into(),
                amount,
            })
            .await?
        {
            Reply::Confirm(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    pub async fn release(&mut self, sale: &str, user: &str) -> Result<ReleaseReply, ClientError> {
        match self
            .execute(&Command::Release {
                sale: sale.into(),
                user: user.into(),
            })
            .await?
        {
            Reply::Release(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    pub async fn status(
        &mut self,
        sale: &str,
        user: Option<&str>,
    ) -> Result<StatusReply, ClientError> {
        match self
            .execute(&Command::Status {
                sale: sale.into(),
                user: user.map(str::to_string),
            })
            .await?
        {
            Reply::Status(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }
}

fn mismatch(reply: Reply) -> ClientError {
    ClientError::Reply(format!("{reply:?}"))
}

async fn has_module<C: ConnectionLike + Send>(conn: &mut C) -> Result<bool, ClientError> {
    let info: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("flashsale.enqueue")
        .query_async(conn)
        .await?;
    Ok(matches!(info, Value::Array(items) if items.iter().any(|i| *i != Value::Nil)))
}

/// Loads the functions library unless the server already runs this exact code.
async fn ensure_library<C: ConnectionLike + Send>(conn: &mut C) -> Result<(), ClientError> {
    let listed: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("flashsale")
        .arg("WITHCODE")
        .query_async(conn)
        .await?;
    if library_code(&listed).as_deref() == Some(LUA_LIBRARY) {
        return Ok(());
    }
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(LUA_LIBRARY)
        .query_async::<Value>(conn)
        .await
        .map_err(ClientError::from_redis)?;
    Ok(())
}

/// The `library_code` of the library named exactly `flashsale`, if listed.
fn library_code(listed: &Value) -> Option<String> {
    let Value::Array(libraries) = listed else {
        return None;
    };
    libraries.iter().find_map(|library| {
        let Value::Array(fields) = library else {
            return None;
        };
        let get = |name: &str| {
            fields.chunks(2).find_map(|pair| match pair {
                [key, value] if as_text(key).as_deref() == Some(name) => as_text(value),
                _ => None,
            })
        };
        (get("library_name").as_deref() == Some("flashsale"))
            .then(|| get("library_code"))
            .flatten()
    })
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn to_resp(value: Value) -> Result<Resp, ClientError> {
    Ok(match value {
        Value::BulkString(bytes) => Resp::Bulk(String::from_utf8_lossy(&bytes).into_owned()),
        Value::SimpleString(s) => Resp::Bulk(s),
        Value::Okay => Resp::Bulk("OK".into()),
        Value::Int(n) => Resp::Int(n),
        Value::Array(items) => {
            Resp::Array(items.into_iter().map(to_resp).collect::<Result<_, _>>()?)
        }
        other => return Err(ClientError::Reply(format!("{other:?}"))),
    })
}
