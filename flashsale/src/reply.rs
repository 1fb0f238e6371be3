//! Decoding what a server answered: RESP back into the engine's typed
//! replies. Generated from the engine's one declaration of the wire format
//! ([`engine::with_reply_shapes!`]), the same the engine's encoder is
//! generated from; only clients decode, so the decoder lives here.

use engine::reply::Field;
use engine::{
    CommandName, ConfirmReply, DrawReply, EnqueueReply, GrantReply, PauseReply, ReleaseReply,
    Reply, Resp, RestoreReply, ResumeReply, SaleState, SaleStatus, SetupReply, StatusReply,
    UserStatus,
};

use crate::ClientError;

/// Decodes what a server answered to `name`. Anything that is not a
/// well-formed reply is [`ClientError::Reply`] with the reply in it.
pub fn decode(name: CommandName, resp: &Resp) -> Result<Reply, ClientError> {
    decode_reply(name, resp).ok_or_else(|| {
        ClientError::Reply(format!(
            "unexpected reply to {}: {resp:?}",
            name.module_command()
        ))
    })
}

/// The outcome word and the values after it.
fn positional(resp: &Resp) -> Option<(&str, Values<'_>)> {
    match resp {
        Resp::Array(items) => match items.split_first() {
            Some((Resp::Bulk(word), rest)) => Some((word, Values(rest.iter()))),
            _ => None,
        },
        _ => None,
    }
}

/// The values of a positional reply, taken in their declared order.
struct Values<'a>(std::slice::Iter<'a, Resp>);

impl Values<'_> {
    fn next<T: Field>(&mut self) -> Option<T> {
        T::from_resp(self.0.next()?)
    }

    /// Every value was taken.
    fn finish<T>(mut self, reply: T) -> Option<T> {
        self.0.next().is_none().then_some(reply)
    }
}

/// The name/value pairs of a STATUS reply, looked up by name.
struct Named<'a> {
    pairs: Vec<(&'a str, &'a Resp, bool)>,
}

impl<'a> Named<'a> {
    fn new(resp: &'a Resp) -> Option<Self> {
        let Resp::Array(items) = resp else {
            return None;
        };
        if items.len() % 2 != 0 {
            return None;
        }
        let pairs = items
            .chunks(2)
            .map(|pair| match pair {
                [Resp::Bulk(name), value] => Some((name.as_str(), value, false)),
                _ => None,
            })
            .collect::<Option<_>>()?;
        Some(Named { pairs })
    }

    /// The value named `name`: `Some(None)` when there is none, `None` when
    /// there are two or it is not a `T`.
    fn optional<T: Field>(&mut self, name: &str) -> Option<Option<T>> {
        let mut named = self.pairs.iter_mut().filter(|(n, ..)| *n == name);
        let Some((_, value, taken)) = named.next() else {
            return Some(None);
        };
        if named.next().is_some() {
            return None;
        }
        *taken = true;
        T::from_resp(value).map(Some)
    }

    /// The value named `name`, exactly once.
    fn required<T: Field>(&mut self, name: &str) -> Option<T> {
        self.optional(name).flatten()
    }

    /// Every name was asked for: an unknown name makes the reply malformed.
    fn finish<T>(self, reply: T) -> Option<T> {
        self.pairs
            .iter()
            .all(|(_, _, taken)| *taken)
            .then_some(reply)
    }
}

/// The client's half of [`engine::with_reply_shapes!`]: the decoder.
macro_rules! define_decoder {
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
        fn decode_reply(name: CommandName, resp: &Resp) -> Option<Reply> {
            match name {
                $(CommandName::$command => {
                    // SETUP's outcomes carry no values.
                    #[allow(unused_mut)]
                    let (word, mut values) = positional(resp)?;
                    let reply = match word {
                        $($word => $reply::$variant $({ $($field: values.next::<$ty>()?),* })?,)*
                        _ => return None,
                    };
                    values.finish(Reply::$command(reply))
                })*
                CommandName::$status_command => {
                    let mut named = Named::new(resp)?;
                    let $sale = $sale_status {
                        $($sale_field: named.required::<$sale_ty>(stringify!($sale_field))?,)*
                    };
                    let $user = match named.optional::<String>($user_name)? {
                        None => None,
                        Some(word) => Some(match word.as_str() {
                            $($user_word => $user_status::$user_variant $({
                                $($user_field: named.required::<$user_ty>($user_field_name)?),*
                            })?,)*
                            _ => return None,
                        }),
                    };
                    named.finish(Reply::$status_command($status { $sale, $user }))
                }
            }
        }
    };
}

engine::with_reply_shapes!(define_decoder);

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.to_string())
    }

    fn status() -> SaleStatus {
        SaleStatus {
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
        }
    }

    fn status_items(user: Option<UserStatus>) -> Vec<Resp> {
        let reply = Reply::Status(StatusReply {
            sale: status(),
            user,
        });
        match reply.to_resp() {
            Resp::Array(items) => items,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_reply_round_trips_through_resp() {
        let status = status();
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
                CommandName::Grant,
                Reply::Grant(GrantReply::Paused { released: 1 }),
            ),
            (CommandName::Enqueue, Reply::Enqueue(EnqueueReply::Paused)),
            (CommandName::Pause, Reply::Pause(PauseReply::Paused)),
            (CommandName::Pause, Reply::Pause(PauseReply::AlreadyPaused)),
            (CommandName::Resume, Reply::Resume(ResumeReply::Resumed)),
            (CommandName::Resume, Reply::Resume(ResumeReply::NotPaused)),
            (
                CommandName::Enqueue,
                Reply::Enqueue(EnqueueReply::Registered { count: 4 }),
            ),
            (CommandName::Draw, Reply::Draw(DrawReply::None)),
            (
                CommandName::Draw,
                Reply::Draw(DrawReply::Drawn {
                    prequeue_ms: 1,
                    drawn_at: 2,
                    total: 3,
                    seed: "ab".into(),
                    entries: vec!["c".into()],
                }),
            ),
            (
                CommandName::Confirm,
                Reply::Confirm(ConfirmReply::Confirmed {
                    order_id: "s-1".into(),
                    amount: 1999,
                }),
            ),
            (
                CommandName::Confirm,
                Reply::Confirm(ConfirmReply::AmountMismatch { price: 1999 }),
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
                CommandName::Restore,
                Reply::Restore(RestoreReply::Restored {
                    added: 0,
                    orders: 7,
                }),
            ),
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
            assert_eq!(decode(name, &reply.to_resp()).ok(), Some(reply));
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
            (
                CommandName::Confirm,
                Resp::Array(vec![bulk("confirmed"), bulk("s-1")]),
            ),
            (CommandName::Status, Resp::Array(vec![bulk("state")])),
            // One value too many, an unknown word, a word another command has.
            (
                CommandName::Enqueue,
                Resp::Array(vec![bulk("ended"), Resp::Int(1)]),
            ),
            (CommandName::Setup, Resp::Array(vec![bulk("deleted")])),
            (CommandName::Setup, Resp::Array(vec![bulk("ended")])),
            (
                CommandName::Restore,
                Resp::Array(vec![bulk("restored"), Resp::Int(1)]),
            ),
            (
                CommandName::Grant,
                Resp::Array(vec![
                    bulk("granted"),
                    Resp::Int(0),
                    Resp::Array(vec![Resp::Int(1)]),
                ]),
            ),
        ];
        for (name, resp) in cases {
            let error = decode(name, &resp).expect_err("malformed");
            assert!(
                matches!(&error, ClientError::Reply(text)
                    if text.starts_with(&format!("unexpected reply to {}: ", name.module_command()))),
                "{resp:?}: {error}"
            );
        }
    }

    /// STATUS is read by name: the order of the pairs does not matter, and
    /// a decoder that went by position could not tell these apart.
    #[test]
    fn status_is_decoded_by_name() {
        let decode_items = |items: Vec<Resp>| decode(CommandName::Status, &Resp::Array(items)).ok();
        let status_of = |reply: Option<Reply>| match reply {
            Some(Reply::Status(status)) => Some(status),
            _ => None,
        };
        // stock=10 and sold=2 swapped, pair by pair: the same status.
        let mut items = status_items(None);
        items.swap(2, 4);
        items.swap(3, 5);
        assert_eq!(
            status_of(decode_items(items)).map(|s| s.sale),
            Some(status())
        );
        // Only the names swapped: now stock is 2 and sold is 10.
        let mut items = status_items(None);
        items.swap(2, 4);
        let swapped = status_of(decode_items(items)).expect("decodes").sale;
        assert_eq!((swapped.stock, swapped.sold), (2, 10));
        // The user's pairs first.
        let mut items = status_items(Some(UserStatus::Holding { ms_left: 4 }));
        items.rotate_right(4);
        assert_eq!(
            status_of(decode_items(items)).map(|s| s.user),
            Some(Some(UserStatus::Holding { ms_left: 4 }))
        );
    }

    #[test]
    fn status_needs_every_name_exactly_once_and_no_other() {
        let refused = |items: Vec<Resp>| {
            assert!(
                decode(CommandName::Status, &Resp::Array(items.clone())).is_err(),
                "{items:?}"
            )
        };
        for missing in 0..SaleStatus::FIELDS.len() {
            let mut items = status_items(None);
            items.drain(2 * missing..2 * missing + 2);
            refused(items);
        }
        // A name twice (even with the same value), an unknown name, a
        // name that is not a string, a name without a value.
        let mut items = status_items(None);
        items.extend([bulk("stock"), Resp::Int(10)]);
        refused(items);
        let mut items = status_items(None);
        items.extend([bulk("colour"), bulk("red")]);
        refused(items);
        let mut items = status_items(None);
        items[2] = Resp::Int(0);
        refused(items);
        let mut items = status_items(None);
        items.push(bulk("user"));
        refused(items);
        // A name with a value of the wrong type, or a state no one has.
        let mut items = status_items(None);
        items[3] = bulk("10");
        refused(items);
        let mut items = status_items(None);
        items[1] = bulk("closing");
        refused(items);
        // The user's detail under another outcome's name, missing, or
        // given to an outcome that has none.
        let mut items = status_items(Some(UserStatus::Queued { position: 2 }));
        let at = items.len() - 2;
        items[at] = bulk("hold_ms");
        refused(items);
        let mut items = status_items(Some(UserStatus::Queued { position: 2 }));
        items.truncate(items.len() - 2);
        refused(items);
        let mut items = status_items(Some(UserStatus::Expired));
        items.extend([bulk("position"), Resp::Int(1)]);
        refused(items);
        let mut items = status_items(Some(UserStatus::Expired));
        let at = items.len() - 1;
        items[at] = bulk("gone");
        refused(items);
    }
}
