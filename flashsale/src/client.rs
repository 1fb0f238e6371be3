//! Talks to whichever engine the server has: the `FLASHSALE.*` module
//! commands when the module is loaded, otherwise the `flashsale` Redis
//! Functions library (loaded on connect if missing or outdated).

use engine::command::{LotteryParams, RestoredOrder, SetupParams, MAX_RESTORE_ORDERS};
use engine::{
    Command, CommandName, ConfirmReply, DrawReply, EnqueueReply, GrantReply, PauseReply,
    ReleaseReply, Reply, Resp, RestoreReply, ResumeReply, SetupReply, StatusReply,
};
use redis::aio::ConnectionLike;
use redis::{Cmd, Value};

use crate::{nodes, Backend, BackendChoice, ClientError, RedisConn};

/// The Redis Functions library, identical in behaviour to the module.
pub const LUA_LIBRARY: &str = include_str!("../../lua/flashsale.lua");

#[derive(Clone)]
pub struct EngineClient<C> {
    conn: C,
    backend: Backend,
}

impl<C: ConnectionLike + Send> EngineClient<C> {
    /// A client for one server that is the whole deployment (tests, tools):
    /// checks the engine is there, loading the Functions library if needed.
    /// Programs that may run on a cluster use [`EngineClient::prepare`].
    pub async fn connect(mut conn: C, choice: BackendChoice) -> Result<Self, ClientError> {
        let backend = nodes::prepare_node(&mut conn, choice, "this server").await?;
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

    /// The command for `name` with raw arguments (sale id first), as this
    /// backend spells it.
    fn command<A: redis::ToRedisArgs + Send + Sync>(&self, name: CommandName, args: &[A]) -> Cmd {
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
        cmd
    }

    /// Sends one command with raw arguments (sale id first) and returns the
    /// raw reply; an error reply is [`ClientError::Server`] with its exact text.
    pub async fn raw<A: redis::ToRedisArgs + Send + Sync>(
        &mut self,
        name: CommandName,
        args: &[A],
    ) -> Result<Resp, ClientError> {
        let value: Value = self
            .command(name, args)
            .query_async(&mut self.conn)
            .await
            .map_err(ClientError::from_redis)?;
        to_resp(value)
    }

    /// CONFIRM, made durable on `replicas` replicas within `timeout_ms`,
    /// all in one round trip to the sale's primary: `ROLE`, `CONFIRM`,
    /// `WAIT replicas timeout_ms`, `ROLE`. Returns the reply and whether the
    /// order is known to be on that many replicas:
    /// - a new order (`confirmed`): WAIT's count, which covers this
    ///   connection's writes, this confirm's included;
    /// - an earlier one (`purchased`, a retry; perhaps written through
    ///   another connection, which WAIT does not cover): the replicas whose
    ///   acknowledged offset, after the WAIT, reaches the primary's offset
    ///   from before this CONFIRM — and so that earlier write.
    ///
    /// Never a false "durable"; a false "not yet" is answered by a retry.
    pub async fn confirm_replicated(
        &mut self,
        sale: &str,
        user: &str,
        amount: impl Into<Option<u64>>,
        replicas: u64,
        timeout_ms: u64,
    ) -> Result<(ConfirmReply, bool), ClientError> {
        self.confirm_replicated_with_contact(sale, user, amount, None, replicas, timeout_ms)
            .await
    }

    /// [`EngineClient::confirm_replicated`] with the buyer's address as
    /// typed (`CONTACT`), kept in the order's outbox entry when `user` is a
    /// normalised identity; `None` is the plain call (the contact is `user`).
    pub async fn confirm_replicated_with_contact(
        &mut self,
        sale: &str,
        user: &str,
        amount: impl Into<Option<u64>>,
        contact: Option<&str>,
        replicas: u64,
        timeout_ms: u64,
    ) -> Result<(ConfirmReply, bool), ClientError> {
        let confirm = Command::Confirm {
            sale: sale.into(),
            user: user.into(),
            amount: amount.into(),
            contact: contact.map(str::to_string),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("ROLE")
            .add_command(self.command(CommandName::Confirm, &confirm.to_args()))
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms)
            .cmd("ROLE");
        let (before, reply, acked, after): (Value, Value, u64, Value) = pipe
            .query_async(&mut self.conn)
            .await
            .map_err(ClientError::from_redis)?;
        let reply = match crate::reply::decode(CommandName::Confirm, &to_resp(reply)?)? {
            Reply::Confirm(r) => r,
            other => return Err(mismatch(other)),
        };
        let durable = match reply {
            ConfirmReply::Confirmed { .. } => acked >= replicas,
            ConfirmReply::Purchased { .. } => {
                let (offset, _) = role(&before)?;
                let (_, replica_offsets) = role(&after)?;
                replica_offsets.iter().filter(|o| **o >= offset).count() as u64 >= replicas
            }
            // Nothing was written: nothing to make durable.
            _ => true,
        };
        Ok((reply, durable))
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
        self.setup_with_lottery(sale, params, LotteryParams::default())
            .await
    }

    /// SETUP with the pre-queue lottery's `PREQUEUE` and `SEED` (each
    /// `None`: the sale's kept). Refused with LOCKED once the window has
    /// opened, if either would change.
    pub async fn setup_with_lottery(
        &mut self,
        sale: &str,
        params: SetupParams,
        lottery: LotteryParams,
    ) -> Result<SetupReply, ClientError> {
        self.setup_with_pause(sale, params, lottery, None).await
    }

    /// SETUP with `PAUSED`: `Some(true)` sets the sale's pause mark in the
    /// same command (a sale set up again after a loss is paused from its
    /// first moment; the mark is set whatever the sale's state, and keeps
    /// its time when already set), `Some(false)` clears it, `None` keeps it.
    pub async fn setup_with_pause(
        &mut self,
        sale: &str,
        params: SetupParams,
        lottery: LotteryParams,
        paused: Option<bool>,
    ) -> Result<SetupReply, ClientError> {
        match self
            .execute(&Command::Setup {
                sale: sale.into(),
                params,
                lottery,
                paused,
            })
            .await?
        {
            Reply::Setup(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    /// DRAW: what the pre-queue lottery publishes, a page of `count`
    /// entries from `offset` once drawn.
    pub async fn draw(
        &mut self,
        sale: &str,
        offset: u64,
        count: u64,
    ) -> Result<DrawReply, ClientError> {
        match self
            .execute(&Command::Draw {
                sale: sale.into(),
                offset,
                count,
            })
            .await?
        {
            Reply::Draw(r) => Ok(r),
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

    /// ENQUEUE and, in the same round trip, `then`: commands on keys in the
    /// sale's slot, which run right after it on the sale's node whatever
    /// ENQUEUE answers — the caller undoes what a refused ENQUEUE should not
    /// have left behind. The outer error is the round trip's; the inner
    /// result is ENQUEUE's own answer; then come `then`'s raw replies.
    pub async fn enqueue_then(
        &mut self,
        sale: &str,
        user: &str,
        then: &[Cmd],
    ) -> Result<(Result<EnqueueReply, ClientError>, Vec<Value>), ClientError> {
        let enqueue = Command::Enqueue {
            sale: sale.into(),
            user: user.into(),
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors()
            .add_command(self.command(CommandName::Enqueue, &enqueue.to_args()));
        for cmd in then {
            pipe.add_command(cmd.clone());
        }
        let mut replies: Vec<Value> = pipe
            .query_async(&mut self.conn)
            .await
            .map_err(ClientError::from_redis)?;
        if replies.is_empty() {
            return Err(ClientError::Reply("ENQUEUE: no reply".into()));
        }
        let reply = match replies.remove(0) {
            Value::ServerError(error) => Err(ClientError::from_redis(error.into())),
            value => to_resp(value)
                .and_then(|resp| crate::reply::decode(CommandName::Enqueue, &resp))
                .and_then(|reply| match reply {
                    Reply::Enqueue(r) => Ok(r),
                    other => Err(mismatch(other)),
                }),
        };
        Ok((reply, replies))
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
        amount: impl Into<Option<u64>>,
    ) -> Result<ConfirmReply, ClientError> {
        self.confirm_with_contact(sale, user, amount, None).await
    }

    /// CONFIRM with the buyer's address as typed (`CONTACT`), kept in the
    /// order's outbox entry (the worker writes it to the order's
    /// `userEmail`) when `user` is a normalised identity. `None` is the
    /// plain [`EngineClient::confirm`]: the order's contact is `user`.
    pub async fn confirm_with_contact(
        &mut self,
        sale: &str,
        user: &str,
        amount: impl Into<Option<u64>>,
        contact: Option<&str>,
    ) -> Result<ConfirmReply, ClientError> {
        match self
            .execute(&Command::Confirm {
                sale: sale.into(),
                user: user.into(),
                amount: amount.into(),
                contact: contact.map(str::to_string),
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

    /// PAUSE: stops a live sale (nobody new queues or is admitted; holds
    /// run on). `AlreadyPaused` when it was; a sale that is not live is
    /// refused with `CONFLICT`.
    pub async fn pause(&mut self, sale: &str) -> Result<PauseReply, ClientError> {
        match self.execute(&Command::Pause { sale: sale.into() }).await? {
            Reply::Pause(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    /// RESUME: lets a paused sale run again where it stopped; `NotPaused`
    /// when it was not paused.
    pub async fn resume(&mut self, sale: &str) -> Result<ResumeReply, ClientError> {
        match self.execute(&Command::Resume { sale: sale.into() }).await? {
            Reply::Resume(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    /// RESTORE: records `orders` as orders of `sale` (at most
    /// [`MAX_RESTORE_ORDERS`] per call).
    pub async fn restore(
        &mut self,
        sale: &str,
        orders: Vec<RestoredOrder>,
    ) -> Result<RestoreReply, ClientError> {
        match self
            .execute(&Command::Restore {
                sale: sale.into(),
                orders,
            })
            .await?
        {
            Reply::Restore(r) => Ok(r),
            other => Err(mismatch(other)),
        }
    }

    /// Gives the engine back `sale`'s orders from the durable record, each
    /// `(order id, buyer)`, in as many RESTORE calls as needed. Ids the
    /// engine cannot have issued for this sale (not `<sale>-<n>`) are
    /// skipped and returned. Orders the engine has already are no-ops, so
    /// this can be repeated.
    pub async fn restore_recorded(
        &mut self,
        sale: &str,
        recorded: Vec<(String, String)>,
    ) -> Result<RestoredOrders, ClientError> {
        let mut result = RestoredOrders::default();
        let mut orders = Vec::with_capacity(recorded.len());
        for (order_id, user) in recorded {
            match engine::command::restorable_order_number(sale, &order_id) {
                Some(number) => orders.push(RestoredOrder {
                    user,
                    order_id,
                    number,
                }),
                None => result.skipped.push(order_id),
            }
        }
        let batch = usize::try_from(MAX_RESTORE_ORDERS).unwrap_or(usize::MAX);
        while !orders.is_empty() {
            let rest = orders.split_off(orders.len().min(batch));
            let RestoreReply::Restored { added, orders: now } = self
                .restore(sale, std::mem::replace(&mut orders, rest))
                .await?;
            result.added += added;
            result.orders = now;
        }
        Ok(result)
    }
}

impl EngineClient<RedisConn> {
    /// A client for a server or a cluster: every node checked (the module on
    /// each, or the Functions library loaded on each primary); see
    /// [`nodes::prepare`].
    pub async fn prepare(mut conn: RedisConn, choice: BackendChoice) -> Result<Self, ClientError> {
        let backend = nodes::prepare(&mut conn, choice).await?;
        Ok(EngineClient { conn, backend })
    }
}

/// What [`EngineClient::restore_recorded`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredOrders {
    /// Orders the engine did not have.
    pub added: u64,
    /// The sale's orders after the last call (0 when nothing was sent).
    pub orders: u64,
    /// Recorded ids that are not this sale's engine order ids.
    pub skipped: Vec<String>,
}

/// A primary's `ROLE`: its replication offset and each replica's
/// acknowledged offset.
fn role(value: &Value) -> Result<(u64, Vec<u64>), ClientError> {
    let bad = || ClientError::Reply(format!("unexpected ROLE reply: {value:?}"));
    let Value::Array(items) = value else {
        return Err(bad());
    };
    let number = |v: &Value| match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    };
    match items.as_slice() {
        [_master, offset, Value::Array(replicas)] => {
            let offset = number(offset).ok_or_else(bad)?;
            let acked = replicas
                .iter()
                .filter_map(|r| match r {
                    Value::Array(fields) => fields.get(2).and_then(number),
                    _ => None,
                })
                .collect();
            Ok((offset, acked))
        }
        _ => Err(bad()),
    }
}

fn mismatch(reply: Reply) -> ClientError {
    ClientError::Reply(format!("{reply:?}"))
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
