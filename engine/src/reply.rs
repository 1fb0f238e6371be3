//! Replies. Every command answers an array whose first element is an outcome
//! word; what follows depends on the outcome (see docs/commands.md). The same
//! shapes come out of the module and the Lua library.

use crate::command::CommandName;
use crate::EngineError;

/// The subset of RESP that flashsale replies use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Bulk(String),
    Int(i64),
    Array(Vec<Resp>),
}

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.to_string())
}

fn int(n: u64) -> Resp {
    Resp::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupReply {
    Created,
    Updated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueReply {
    /// In the queue at 1-based `position` of `length`.
    Queued {
        position: u64,
        length: u64,
    },
    Holding {
        ms_left: u64,
    },
    Purchased {
        order_id: String,
    },
    NotStarted {
        ms_until_start: u64,
    },
    Ended,
    SoldOut,
    QueueFull {
        length: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantReply {
    /// `users` got a hold, in queue order; `released` expired holds were freed.
    Granted {
        released: u64,
        users: Vec<String>,
    },
    NotStarted {
        ms_until_start: u64,
    },
    /// The sale is over; `cleared` users were removed from the queue.
    Ended {
        cleared: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmReply {
    Confirmed {
        order_id: String,
    },
    /// Confirmed earlier: the same order id again.
    Purchased {
        order_id: String,
    },
    Ended,
    Expired,
    NoHold,
    SoldOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseReply {
    LeftQueue,
    Released,
    Purchased { order_id: String },
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    Upcoming,
    Active,
    SoldOut,
    Ended,
}

impl SaleState {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::Upcoming => "upcoming",
            SaleState::Active => "active",
            SaleState::SoldOut => "sold_out",
            SaleState::Ended => "ended",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "upcoming" => SaleState::Upcoming,
            "active" => SaleState::Active,
            "sold_out" => SaleState::SoldOut,
            "ended" => SaleState::Ended,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleStatus {
    pub state: SaleState,
    pub stock: u64,
    pub sold: u64,
    /// Live (unexpired) holds.
    pub held: u64,
    pub queued: u64,
    pub starts_at: u64,
    pub ends_at: u64,
    pub hold_ttl_ms: u64,
    pub rate: u64,
    pub max_queue: u64,
    /// The server clock when the status was taken.
    pub now: u64,
}

impl SaleStatus {
    /// Units neither sold nor held.
    pub fn available(&self) -> u64 {
        self.stock.saturating_sub(self.sold + self.held)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStatus {
    Queued { position: u64 },
    Holding { ms_left: u64 },
    Purchased { order_id: String },
    Expired,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReply {
    pub sale: SaleStatus,
    pub user: Option<UserStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Setup(SetupReply),
    Enqueue(EnqueueReply),
    Grant(GrantReply),
    Confirm(ConfirmReply),
    Release(ReleaseReply),
    Status(StatusReply),
}

impl Reply {
    pub fn to_resp(&self) -> Resp {
        let items: Vec<Resp> = match self {
            Reply::Setup(SetupReply::Created) => vec![bulk("created")],
            Reply::Setup(SetupReply::Updated) => vec![bulk("updated")],
            Reply::Enqueue(r) => match r {
                EnqueueReply::Queued { position, length } => {
                    vec![bulk("queued"), int(*position), int(*length)]
                }
                EnqueueReply::Holding { ms_left } => vec![bulk("holding"), int(*ms_left)],
                EnqueueReply::Purchased { order_id } => vec![bulk("purchased"), bulk(order_id)],
                EnqueueReply::NotStarted { ms_until_start } => {
                    vec![bulk("not_started"), int(*ms_until_start)]
                }
                EnqueueReply::Ended => vec![bulk("ended")],
                EnqueueReply::SoldOut => vec![bulk("sold_out")],
                EnqueueReply::QueueFull { length } => vec![bulk("queue_full"), int(*length)],
            },
            Reply::Grant(r) => match r {
                GrantReply::Granted { released, users } => vec![
                    bulk("granted"),
                    int(*released),
                    Resp::Array(users.iter().map(|u| bulk(u)).collect()),
                ],
                GrantReply::NotStarted { ms_until_start } => {
                    vec![bulk("not_started"), int(*ms_until_start)]
                }
                GrantReply::Ended { cleared } => vec![bulk("ended"), int(*cleared)],
            },
            Reply::Confirm(r) => match r {
                ConfirmReply::Confirmed { order_id } => vec![bulk("confirmed"), bulk(order_id)],
                ConfirmReply::Purchased { order_id } => vec![bulk("purchased"), bulk(order_id)],
                ConfirmReply::Ended => vec![bulk("ended")],
                ConfirmReply::Expired => vec![bulk("expired")],
                ConfirmReply::NoHold => vec![bulk("no_hold")],
                ConfirmReply::SoldOut => vec![bulk("sold_out")],
            },
            Reply::Release(r) => match r {
                ReleaseReply::LeftQueue => vec![bulk("left_queue")],
                ReleaseReply::Released => vec![bulk("released")],
                ReleaseReply::Purchased { order_id } => vec![bulk("purchased"), bulk(order_id)],
                ReleaseReply::None => vec![bulk("none")],
            },
            Reply::Status(StatusReply { sale, user }) => {
                let mut items = vec![
                    bulk("state"),
                    bulk(sale.state.as_str()),
                    bulk("stock"),
                    int(sale.stock),
                    bulk("sold"),
                    int(sale.sold),
                    bulk("held"),
                    int(sale.held),
                    bulk("queued"),
                    int(sale.queued),
                    bulk("starts_at"),
                    int(sale.starts_at),
                    bulk("ends_at"),
                    int(sale.ends_at),
                    bulk("hold_ttl_ms"),
                    int(sale.hold_ttl_ms),
                    bulk("rate"),
                    int(sale.rate),
                    bulk("max_queue"),
                    int(sale.max_queue),
                    bulk("now"),
                    int(sale.now),
                ];
                if let Some(user) = user {
                    items.push(bulk("user"));
                    match user {
                        UserStatus::Queued { position } => {
                            items.extend([bulk("queued"), bulk("position"), int(*position)])
                        }
                        UserStatus::Holding { ms_left } => {
                            items.extend([bulk("holding"), bulk("hold_ms"), int(*ms_left)])
                        }
                        UserStatus::Purchased { order_id } => {
                            items.extend([bulk("purchased"), bulk("order_id"), bulk(order_id)])
                        }
                        UserStatus::Expired => items.push(bulk("expired")),
                        UserStatus::None => items.push(bulk("none")),
                    }
                }
                items
            }
        };
        Resp::Array(items)
    }

    /// Decodes what a server answered to `name`. Anything that is not a
    /// well-formed reply is an error naming what was wrong.
    pub fn from_resp(name: CommandName, resp: &Resp) -> Result<Reply, EngineError> {
        let bad = || {
            EngineError::err(format!(
                "unexpected reply to {}: {resp:?}",
                name.module_command()
            ))
        };
        let Resp::Array(items) = resp else {
            return Err(bad());
        };
        let text = |i: usize| match items.get(i) {
            Some(Resp::Bulk(s)) => Ok(s.clone()),
            _ => Err(bad()),
        };
        let num = |i: usize| match items.get(i) {
            Some(Resp::Int(n)) => u64::try_from(*n).map_err(|_| bad()),
            _ => Err(bad()),
        };
        let outcome = text(0)?;
        let len = items.len();
        let exact = |n: usize| if len == n { Ok(()) } else { Err(bad()) };
        Ok(match name {
            CommandName::Setup => {
                exact(1)?;
                Reply::Setup(match outcome.as_str() {
                    "created" => SetupReply::Created,
                    "updated" => SetupReply::Updated,
                    _ => return Err(bad()),
                })
            }
            CommandName::Enqueue => Reply::Enqueue(match outcome.as_str() {
                "queued" => {
                    exact(3)?;
                    EnqueueReply::Queued {
                        position: num(1)?,
                        length: num(2)?,
                    }
                }
                "holding" => {
                    exact(2)?;
                    EnqueueReply::Holding { ms_left: num(1)? }
                }
                "purchased" => {
                    exact(2)?;
                    EnqueueReply::Purchased { order_id: text(1)? }
                }
                "not_started" => {
                    exact(2)?;
                    EnqueueReply::NotStarted {
                        ms_until_start: num(1)?,
                    }
                }
                "ended" => {
                    exact(1)?;
                    EnqueueReply::Ended
                }
                "sold_out" => {
                    exact(1)?;
                    EnqueueReply::SoldOut
                }
                "queue_full" => {
                    exact(2)?;
                    EnqueueReply::QueueFull { length: num(1)? }
                }
                _ => return Err(bad()),
            }),
            CommandName::Grant => Reply::Grant(match outcome.as_str() {
                "granted" => {
                    exact(3)?;
                    let Some(Resp::Array(users)) = items.get(2) else {
                        return Err(bad());
                    };
                    let users = users
                        .iter()
                        .map(|u| match u {
                            Resp::Bulk(s) => Ok(s.clone()),
                            _ => Err(bad()),
                        })
                        .collect::<Result<_, _>>()?;
                    GrantReply::Granted {
                        released: num(1)?,
                        users,
                    }
                }
                "not_started" => {
                    exact(2)?;
                    GrantReply::NotStarted {
                        ms_until_start: num(1)?,
                    }
                }
                "ended" => {
                    exact(2)?;
                    GrantReply::Ended { cleared: num(1)? }
                }
                _ => return Err(bad()),
            }),
            CommandName::Confirm => Reply::Confirm(match (outcome.as_str(), len) {
                ("confirmed", 2) => ConfirmReply::Confirmed { order_id: text(1)? },
                ("purchased", 2) => ConfirmReply::Purchased { order_id: text(1)? },
                ("ended", 1) => ConfirmReply::Ended,
                ("expired", 1) => ConfirmReply::Expired,
                ("no_hold", 1) => ConfirmReply::NoHold,
                ("sold_out", 1) => ConfirmReply::SoldOut,
                _ => return Err(bad()),
            }),
            CommandName::Release => Reply::Release(match (outcome.as_str(), len) {
                ("left_queue", 1) => ReleaseReply::LeftQueue,
                ("released", 1) => ReleaseReply::Released,
                ("purchased", 2) => ReleaseReply::Purchased { order_id: text(1)? },
                ("none", 1) => ReleaseReply::None,
                _ => return Err(bad()),
            }),
            CommandName::Status => {
                if len < 22 {
                    return Err(bad());
                }
                let field = |i: usize, name: &str| {
                    if text(i)? == name {
                        num(i + 1)
                    } else {
                        Err(bad())
                    }
                };
                if outcome != "state" {
                    return Err(bad());
                }
                let sale = SaleStatus {
                    state: SaleState::parse(&text(1)?).ok_or_else(bad)?,
                    stock: field(2, "stock")?,
                    sold: field(4, "sold")?,
                    held: field(6, "held")?,
                    queued: field(8, "queued")?,
                    starts_at: field(10, "starts_at")?,
                    ends_at: field(12, "ends_at")?,
                    hold_ttl_ms: field(14, "hold_ttl_ms")?,
                    rate: field(16, "rate")?,
                    max_queue: field(18, "max_queue")?,
                    now: field(20, "now")?,
                };
                let user = if len == 22 {
                    None
                } else {
                    if text(22)? != "user" {
                        return Err(bad());
                    }
                    Some(match (text(23)?.as_str(), len) {
                        ("queued", 26) if text(24)? == "position" => {
                            UserStatus::Queued { position: num(25)? }
                        }
                        ("holding", 26) if text(24)? == "hold_ms" => {
                            UserStatus::Holding { ms_left: num(25)? }
                        }
                        ("purchased", 26) if text(24)? == "order_id" => UserStatus::Purchased {
                            order_id: text(25)?,
                        },
                        ("expired", 24) => UserStatus::Expired,
                        ("none", 24) => UserStatus::None,
                        _ => return Err(bad()),
                    })
                };
                Reply::Status(StatusReply { sale, user })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_round_trips_through_resp() {
        let status = SaleStatus {
            state: SaleState::Active,
            stock: 10,
            sold: 2,
            held: 3,
            queued: 4,
            starts_at: 5,
            ends_at: 6,
            hold_ttl_ms: 7,
            rate: 8,
            max_queue: 9,
            now: 11,
        };
        let cases = [
            (CommandName::Setup, Reply::Setup(SetupReply::Created)),
            (CommandName::Setup, Reply::Setup(SetupReply::Updated)),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::Queued {
                    position: 1,
                    length: 2,
                }),
            ),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::Holding { ms_left: 3 }),
            ),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::Purchased {
                    order_id: "s-1".into(),
                }),
            ),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::NotStarted { ms_until_start: 9 }),
            ),
            (CommandName::Enqueue, Reply::Enqueue(EnqueueReply::Ended)),
            (CommandName::Enqueue, Reply::Enqueue(EnqueueReply::SoldOut)),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::QueueFull { length: 5 }),
            ),
            (
                CommandName::Grant,
                Reply::Grant(GrantReply::Granted {
                    released: 1,
                    users: vec!["a".into(), "b".into()],
                }),
            ),
            (
                CommandName::Grant,
                Reply::Grant(GrantReply::Granted {
                    released: 0,
                    users: vec![],
                }),
            ),
            (
                CommandName::Grant,
                Reply::Grant(GrantReply::NotStarted { ms_until_start: 1 }),
            ),
            (
                CommandName::Grant,
                Reply::Grant(GrantReply::Ended { cleared: 3 }),
            ),
            (
                CommandName::Confirm,
                Reply::Confirm(ConfirmReply::Confirmed {
                    order_id: "s-1".into(),
                }),
            ),
            (
                CommandName::Confirm,
                Reply::Confirm(ConfirmReply::Purchased {
                    order_id: "s-1".into(),
                }),
            ),
            (CommandName::Confirm, Reply::Confirm(ConfirmReply::Ended)),
            (CommandName::Confirm, Reply::Confirm(ConfirmReply::Expired)),
            (CommandName::Confirm, Reply::Confirm(ConfirmReply::NoHold)),
            (CommandName::Confirm, Reply::Confirm(ConfirmReply::SoldOut)),
            (
                CommandName::Release,
                Reply::Release(ReleaseReply::LeftQueue),
            ),
            (CommandName::Release, Reply::Release(ReleaseReply::Released)),
            (
                CommandName::Release,
                Reply::Release(ReleaseReply::Purchased {
                    order_id: "x-2".into(),
                }),
            ),
            (CommandName::Release, Reply::Release(ReleaseReply::None)),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: None,
                }),
            ),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Queued { position: 2 }),
                }),
            ),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Holding { ms_left: 2 }),
                }),
            ),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Purchased {
                        order_id: "s-9".into(),
                    }),
                }),
            ),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Expired),
                }),
            ),
            (
                CommandName::Status,
                Reply::Status(StatusReply {
                    sale: status,
                    user: Some(UserStatus::None),
                }),
            ),
        ];
        for (name, reply) in cases {
            assert_eq!(Reply::from_resp(name, &reply.to_resp()), Ok(reply));
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        let cases = [
            (CommandName::Enqueue, Resp::Int(1)),
            (CommandName::Enqueue, Resp::Array(vec![])),
            (
                CommandName::Enqueue,
                Resp::Array(vec![bulk("queued"), Resp::Int(1)]),
            ),
            (
                CommandName::Enqueue,
                Resp::Array(vec![bulk("queued"), Resp::Int(-1), Resp::Int(1)]),
            ),
            (
                CommandName::Grant,
                Resp::Array(vec![bulk("granted"), Resp::Int(0), Resp::Int(0)]),
            ),
            (CommandName::Confirm, Resp::Array(vec![bulk("confirmed")])),
            (CommandName::Status, Resp::Array(vec![bulk("state")])),
        ];
        for (name, resp) in cases {
            assert!(Reply::from_resp(name, &resp).is_err(), "{resp:?}");
        }
    }
}
