//! Replies. Every command answers an array whose first element is an outcome
//! word; what follows depends on the outcome (see docs/commands.md). The same
//! shapes come out of the module and the Lua library.
//!
//! The wire format is declared once, in [`with_reply_shapes!`]: each reply
//! type with its outcome words and typed fields. This crate expands the
//! declaration into the reply types and their encoder ([`Reply::to_resp`],
//! used by the module and the model); the client crate (`flashsale`) expands
//! the same declaration into its decoder. A value travels as its [`Field`]
//! says.

/// The subset of RESP that flashsale replies use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Bulk(String),
    Int(i64),
    Array(Vec<Resp>),
}

/// One value of a reply, both ways.
pub trait Field: Sized {
    fn to_resp(&self) -> Resp;
    /// `None` when `resp` is not a value of this type.
    fn from_resp(resp: &Resp) -> Option<Self>;
}

impl Field for u64 {
    fn to_resp(&self) -> Resp {
        Resp::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }

    fn from_resp(resp: &Resp) -> Option<Self> {
        match resp {
            Resp::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
}

impl Field for String {
    fn to_resp(&self) -> Resp {
        Resp::Bulk(self.clone())
    }

    fn from_resp(resp: &Resp) -> Option<Self> {
        match resp {
            Resp::Bulk(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl Field for Vec<String> {
    fn to_resp(&self) -> Resp {
        Resp::Array(self.iter().map(Field::to_resp).collect())
    }

    fn from_resp(resp: &Resp) -> Option<Self> {
        match resp {
            Resp::Array(items) => items.iter().map(String::from_resp).collect(),
            _ => None,
        }
    }
}

impl Field for SaleState {
    fn to_resp(&self) -> Resp {
        word(self.as_str())
    }

    fn from_resp(resp: &Resp) -> Option<Self> {
        match resp {
            Resp::Bulk(s) => SaleState::from_word(s),
            _ => None,
        }
    }
}

fn word(s: &str) -> Resp {
    Resp::Bulk(s.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    Upcoming,
    Active,
    SoldOut,
    Ended,
    /// Started, not over, and stopped by PAUSE: nobody new queues or is
    /// admitted; holds run on.
    Paused,
}

impl SaleState {
    pub const ALL: [SaleState; 5] = [
        SaleState::Upcoming,
        SaleState::Active,
        SaleState::SoldOut,
        SaleState::Ended,
        SaleState::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::Upcoming => "upcoming",
            SaleState::Active => "active",
            SaleState::SoldOut => "sold_out",
            SaleState::Ended => "ended",
            SaleState::Paused => "paused",
        }
    }

    /// The inverse of [`SaleState::as_str`].
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == word)
    }
}

/// The wire format of every reply, declared once; calls `$then!` with the
/// declaration. The engine expands it (below) into the reply types and
/// their encoder, the client crate into its decoder.
///
/// - `positional`: per command, its reply type; per outcome, the variant,
///   its typed fields and its outcome word. On the wire: the word, then the
///   field values in their declared order.
/// - `named`: STATUS, a flat list of name/value pairs: every field of the
///   sale status under its own name, then, when a user was asked about,
///   `user <word>` and that outcome's fields, each under the name given.
#[doc(hidden)]
#[macro_export]
macro_rules! with_reply_shapes {
    ($then:ident) => {
        $then! {
            positional: [
                Setup => SetupReply {
                    Created = "created",
                    Updated = "updated",
                }
                Enqueue => EnqueueReply {
                    /// In the queue at 1-based `position` of `length`.
                    Queued { position: u64, length: u64 } = "queued",
                    Holding { ms_left: u64 } = "holding",
                    Purchased { order_id: String } = "purchased",
                    NotStarted { ms_until_start: u64 } = "not_started",
                    Ended = "ended",
                    SoldOut = "sold_out",
                    QueueFull { length: u64 } = "queue_full",
                    /// The sale is paused: nobody new joins the queue.
                    Paused = "paused",
                    /// In the pre-queue window: registered for the draw at
                    /// the start, one of `count` registered.
                    Registered { count: u64 } = "registered",
                }
                Grant => GrantReply {
                    /// `users` got a hold, in queue order; `released` expired
                    /// holds were freed.
                    Granted { released: u64, users: Vec<String> } = "granted",
                    NotStarted { ms_until_start: u64 } = "not_started",
                    /// The sale is over; `cleared` users were removed from the
                    /// queue.
                    Ended { cleared: u64 } = "ended",
                    /// The sale is paused: nobody was admitted; `released`
                    /// expired holds were freed.
                    Paused { released: u64 } = "paused",
                }
                Confirm => ConfirmReply {
                    /// A new order, charged `amount` (the sale's price).
                    Confirmed { order_id: String, amount: u64 } = "confirmed",
                    /// Confirmed earlier: the same order id again.
                    Purchased { order_id: String } = "purchased",
                    Ended = "ended",
                    Expired = "expired",
                    NoHold = "no_hold",
                    SoldOut = "sold_out",
                    /// The amount given is not the sale's `price`; nothing
                    /// was bought.
                    AmountMismatch { price: u64 } = "amount_mismatch",
                }
                Release => ReleaseReply {
                    LeftQueue = "left_queue",
                    Released = "released",
                    Purchased { order_id: String } = "purchased",
                    None = "none",
                }
                Restore => RestoreReply {
                    /// `added` orders were new to the sale; it has `orders`
                    /// orders now.
                    Restored { added: u64, orders: u64 } = "restored",
                }
                Pause => PauseReply {
                    /// The sale was running and is paused now.
                    Paused = "paused",
                    /// It was paused already: nothing changed.
                    AlreadyPaused = "already_paused",
                }
                Resume => ResumeReply {
                    /// The sale was paused and runs again.
                    Resumed = "resumed",
                    /// It was not paused: nothing changed.
                    NotPaused = "not_paused",
                }
                Draw => DrawReply {
                    /// The sale has no pre-queue window.
                    None = "none",
                    /// Not drawn yet: `registered` users so far; the seed
                    /// stays hidden, `commitment` is its SHA1 (hex).
                    Pending {
                        prequeue_ms: u64,
                        registered: u64,
                        commitment: String,
                    } = "pending",
                    /// Drawn at `drawn_at` with `seed`: `total` registrants;
                    /// `entries` is the page asked for of SHA1(user) hex, in
                    /// the order they were given queue tickets.
                    Drawn {
                        prequeue_ms: u64,
                        drawn_at: u64,
                        total: u64,
                        seed: String,
                        entries: Vec<String>,
                    } = "drawn",
                }
            ]
            named: Status => StatusReply {
                sale: SaleStatus {
                    state: SaleState,
                    stock: u64,
                    sold: u64,
                    /// Live (unexpired) holds.
                    held: u64,
                    queued: u64,
                    starts_at: u64,
                    ends_at: u64,
                    hold_ttl_ms: u64,
                    rate: u64,
                    max_queue: u64,
                    /// The server clock when the status was taken.
                    now: u64,
                }
                user: UserStatus = "user" {
                    Queued { position: u64 = "position" } = "queued",
                    Holding { ms_left: u64 = "hold_ms" } = "holding",
                    Purchased { order_id: String = "order_id" } = "purchased",
                    Expired = "expired",
                    /// Registered in the pre-queue window; the draw has not
                    /// run yet.
                    Registered = "registered",
                    None = "none",
                }
            }
        }
    };
}

/// The engine's half of [`with_reply_shapes!`]: the types and the encoder.
macro_rules! define_replies {
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
        $(
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub enum $reply {$(
                $(#[$variant_doc])*
                $variant $({ $($field: $ty),* })?,
            )*}

            impl $reply {
                /// The outcome word, first on the wire.
                pub fn outcome(&self) -> &'static str {
                    match self {
                        $(Self::$variant { .. } => $word,)*
                    }
                }

                fn encode(&self, items: &mut Vec<Resp>) {
                    items.push(word(self.outcome()));
                    match self {
                        $(Self::$variant $({ $($field),* })? => {
                            $($(items.push(Field::to_resp($field));)*)?
                        })*
                    }
                }
            }
        )*

        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $sale_status {$(
            $(#[$sale_doc])*
            pub $sale_field: $sale_ty,
        )*}

        impl $sale_status {
            /// The names of the sale's figures in a STATUS reply, in order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($sale_field)),*];

            fn encode(&self, items: &mut Vec<Resp>) {
                $(
                    items.push(word(stringify!($sale_field)));
                    items.push(self.$sale_field.to_resp());
                )*
            }
        }

        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $user_status {$(
            $(#[$user_doc])*
            $user_variant $({ $($user_field: $user_ty),* })?,
        )*}

        impl $user_status {
            /// The word after `user` on the wire.
            pub fn outcome(&self) -> &'static str {
                match self {
                    $(Self::$user_variant { .. } => $user_word,)*
                }
            }

            fn encode(&self, items: &mut Vec<Resp>) {
                items.push(word(self.outcome()));
                match self {
                    $(Self::$user_variant $({ $($user_field),* })? => {
                        $($(
                            items.push(word($user_field_name));
                            items.push(Field::to_resp($user_field));
                        )*)?
                    })*
                }
            }
        }

        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $status {
            pub $sale: $sale_status,
            pub $user: Option<$user_status>,
        }

        impl $status {
            /// The name of the user's status in a STATUS reply.
            pub const USER: &'static str = $user_name;

            fn encode(&self, items: &mut Vec<Resp>) {
                self.$sale.encode(items);
                if let Some(user) = &self.$user {
                    items.push(word(Self::USER));
                    user.encode(items);
                }
            }
        }

        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Reply {
            $($command($reply),)*
            $status_command($status),
        }

        impl Reply {
            pub fn to_resp(&self) -> Resp {
                let mut items = Vec::new();
                match self {
                    $(Reply::$command(reply) => reply.encode(&mut items),)*
                    Reply::$status_command(reply) => reply.encode(&mut items),
                }
                Resp::Array(items)
            }
        }
    };
}

with_reply_shapes!(define_replies);

impl SaleStatus {
    /// Units neither sold nor held.
    pub fn available(&self) -> u64 {
        self.stock.saturating_sub(self.sold + self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> Resp {
        Resp::Int(n)
    }

    /// The bytes on the wire, spelled out: what the module, the model and
    /// the Lua library all answer.
    #[test]
    fn replies_on_the_wire() {
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
        let sale_items = || {
            vec![
                word("state"),
                word("active"),
                word("stock"),
                int(10),
                word("sold"),
                int(2),
                word("held"),
                int(3),
                word("queued"),
                int(4),
                word("starts_at"),
                int(5),
                word("ends_at"),
                int(6),
                word("hold_ttl_ms"),
                int(7),
                word("rate"),
                int(8),
                word("max_queue"),
                int(9),
                word("now"),
                int(11),
            ]
        };
        let with = |tail: Vec<Resp>| {
            let mut items = sale_items();
            items.extend(tail);
            Resp::Array(items)
        };
        let cases = [
            (
                Reply::Setup(SetupReply::Created),
                Resp::Array(vec![word("created")]),
            ),
            (
                Reply::Enqueue(EnqueueReply::Queued {
                    position: 1,
                    length: 2,
                }),
                Resp::Array(vec![word("queued"), int(1), int(2)]),
            ),
            (
                Reply::Enqueue(EnqueueReply::QueueFull { length: 5 }),
                Resp::Array(vec![word("queue_full"), int(5)]),
            ),
            (
                Reply::Enqueue(EnqueueReply::Purchased {
                    order_id: "s-1".into(),
                }),
                Resp::Array(vec![word("purchased"), word("s-1")]),
            ),
            (
                Reply::Grant(GrantReply::Granted {
                    released: 1,
                    users: vec!["a".into(), "b".into()],
                }),
                Resp::Array(vec![
                    word("granted"),
                    int(1),
                    Resp::Array(vec![word("a"), word("b")]),
                ]),
            ),
            (
                Reply::Confirm(ConfirmReply::NoHold),
                Resp::Array(vec![word("no_hold")]),
            ),
            (
                Reply::Release(ReleaseReply::LeftQueue),
                Resp::Array(vec![word("left_queue")]),
            ),
            (
                Reply::Enqueue(EnqueueReply::Paused),
                Resp::Array(vec![word("paused")]),
            ),
            (
                Reply::Grant(GrantReply::Paused { released: 2 }),
                Resp::Array(vec![word("paused"), int(2)]),
            ),
            (
                Reply::Pause(PauseReply::AlreadyPaused),
                Resp::Array(vec![word("already_paused")]),
            ),
            (
                Reply::Resume(ResumeReply::Resumed),
                Resp::Array(vec![word("resumed")]),
            ),
            (
                Reply::Restore(RestoreReply::Restored {
                    added: 2,
                    orders: 5,
                }),
                Resp::Array(vec![word("restored"), int(2), int(5)]),
            ),
            (
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: None,
                }),
                with(vec![]),
            ),
            (
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Holding { ms_left: 2 }),
                }),
                with(vec![word("user"), word("holding"), word("hold_ms"), int(2)]),
            ),
            (
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Queued { position: 3 }),
                }),
                with(vec![word("user"), word("queued"), word("position"), int(3)]),
            ),
            (
                Reply::Status(StatusReply {
                    sale: status.clone(),
                    user: Some(UserStatus::Purchased {
                        order_id: "s-9".into(),
                    }),
                }),
                with(vec![
                    word("user"),
                    word("purchased"),
                    word("order_id"),
                    word("s-9"),
                ]),
            ),
            (
                Reply::Status(StatusReply {
                    sale: status,
                    user: Some(UserStatus::None),
                }),
                with(vec![word("user"), word("none")]),
            ),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_resp(), wire, "{reply:?}");
        }
    }

    #[test]
    fn sale_states_by_word() {
        for state in SaleState::ALL {
            assert_eq!(SaleState::from_word(state.as_str()), Some(state));
        }
        assert_eq!(SaleState::from_word("soldout"), None);
        assert_eq!(
            SaleStatus::FIELDS,
            [
                "state",
                "stock",
                "sold",
                "held",
                "queued",
                "starts_at",
                "ends_at",
                "hold_ttl_ms",
                "rate",
                "max_queue",
                "now"
            ]
        );
    }
}
