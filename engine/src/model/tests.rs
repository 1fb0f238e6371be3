//! The sale rules, driven through the model with a fake clock.

use super::*;
use crate::reply::*;
use crate::CommandName::*;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;

/// The id of the first order confirmed at `ms` in sale "s" (with no order
/// numbered that high already): `s-<ms × 100>`.
fn first_order_at(ms: u64) -> String {
    crate::keys::order_id("s", ms * crate::rules::ORDERS_PER_MS)
}

fn call(m: &mut Model, now: u64, name: CommandName, args: &[&str]) -> Result<Reply, String> {
    m.call(now, name, args).map_err(|e| e.to_string())
}

fn ok(m: &mut Model, now: u64, name: CommandName, args: &[&str]) -> Reply {
    match call(m, now, name, args) {
        Ok(reply) => reply,
        Err(e) => panic!("{name:?} {args:?} failed: {e}"),
    }
}

/// The price of sale "s" unless a test gives its own.
const PRICE: u64 = 1999;

/// Sale "s": `stock` units at [`PRICE`], open from T0 for 60 s, holds of
/// 1 s.
fn sale(stock: u64, extra: &[&str]) -> Model {
    let price = PRICE.to_string();
    let mut with_price = vec!["PRICE", price.as_str()];
    with_price.extend_from_slice(extra);
    unpriced_sale(stock, &with_price)
}

/// [`sale`] without a PRICE (unless `extra` has one).
fn unpriced_sale(stock: u64, extra: &[&str]) -> Model {
    let mut m = Model::new();
    let stock = stock.to_string();
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let mut args = vec!["s", &stock, &start, &end, "1000"];
    args.extend_from_slice(extra);
    assert_eq!(
        ok(&mut m, T0 - 10, Setup, &args),
        Reply::Setup(SetupReply::Created)
    );
    m
}

fn granted(m: &mut Model, now: u64, max: u64) -> Vec<String> {
    match ok(m, now, Grant, &["s", &max.to_string()]) {
        Reply::Grant(GrantReply::Granted { users, .. }) => users,
        other => panic!("unexpected {other:?}"),
    }
}

fn user_status(m: &mut Model, now: u64, user: &str) -> UserStatus {
    match ok(m, now, Status, &["s", user]) {
        Reply::Status(StatusReply { user: Some(u), .. }) => u,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_whole_purchase() {
    let mut m = sale(2, &[]);
    assert_eq!(
        ok(&mut m, T0, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 1,
            length: 1
        })
    );
    assert_eq!(granted(&mut m, T0 + 1, 10), vec!["ann"]);
    assert_eq!(
        user_status(&mut m, T0 + 101, "ann"),
        UserStatus::Holding { ms_left: 900 }
    );
    let order_id = first_order_at(T0 + 2);
    assert_eq!(order_id, "s-180000000000200");
    assert_eq!(
        ok(&mut m, T0 + 2, Confirm, &["s", "ann", "1999"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: order_id.clone(),
            amount: PRICE,
        })
    );
    assert_eq!(
        ok(&mut m, T0 + 3, Confirm, &["s", "ann", "1999"]),
        Reply::Confirm(ConfirmReply::Purchased {
            order_id: order_id.clone()
        })
    );
    assert_eq!(
        ok(&mut m, T0 + 3, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::Purchased {
            order_id: order_id.clone()
        })
    );
    let data = m.sale("s").expect("sale exists");
    let record = data.sale.as_ref().expect("record");
    assert_eq!((record.sold, record.order_seq), (1, 180_000_000_000_200));
    assert_eq!(data.outbox.len(), 1);
    let entry = &data.outbox[&180_000_000_000_200];
    assert_eq!(
        (entry.order_id.as_str(), entry.user_id.as_str()),
        (order_id.as_str(), "ann")
    );
    assert_eq!(entry.amount, 1999);
    assert!(data.holds.is_empty() && data.queue.is_empty());
}

#[test]
fn fifo_admission_never_exceeds_stock() {
    let mut m = sale(3, &[]);
    for (i, u) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        assert_eq!(
            ok(&mut m, T0 + i as u64, Enqueue, &["s", u]),
            Reply::Enqueue(EnqueueReply::Queued {
                position: i as u64 + 1,
                length: i as u64 + 1
            })
        );
    }
    // Repeating never creates a second place.
    assert_eq!(
        ok(&mut m, T0 + 9, Enqueue, &["s", "c"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 3,
            length: 5
        })
    );
    assert_eq!(granted(&mut m, T0 + 10, 2), vec!["a", "b"]);
    assert_eq!(granted(&mut m, T0 + 10, 10), vec!["c"]);
    assert_eq!(granted(&mut m, T0 + 10, 10), Vec::<String>::new());
    assert_eq!(
        user_status(&mut m, T0 + 10, "e"),
        UserStatus::Queued { position: 2 }
    );
}

#[test]
fn an_expired_hold_frees_its_unit_and_cannot_be_confirmed() {
    let mut m = sale(1, &[]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    ok(&mut m, T0, Enqueue, &["s", "b"]);
    assert_eq!(granted(&mut m, T0, 5), vec!["a"]);
    // At exactly expiry the hold is gone, even before anyone reclaims it.
    let at_expiry = T0 + 1000;
    assert_eq!(
        ok(&mut m, at_expiry, Confirm, &["s", "a"]),
        Reply::Confirm(ConfirmReply::Expired)
    );
    assert_eq!(user_status(&mut m, at_expiry, "a"), UserStatus::Expired);
    assert_eq!(
        ok(&mut m, at_expiry, Grant, &["s", "5"]),
        Reply::Grant(GrantReply::Granted {
            released: 1,
            users: vec!["b".into()]
        })
    );
    // Reclaimed: still told it expired, not "no hold".
    assert_eq!(
        ok(&mut m, at_expiry, Confirm, &["s", "a"]),
        Reply::Confirm(ConfirmReply::Expired)
    );
    assert_eq!(
        ok(&mut m, at_expiry + 1, Confirm, &["s", "b"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: first_order_at(at_expiry + 1),
            amount: PRICE,
        })
    );
    // Sold out now; the lapsed user learns it when trying again.
    assert_eq!(
        ok(&mut m, at_expiry + 2, Enqueue, &["s", "a"]),
        Reply::Enqueue(EnqueueReply::SoldOut)
    );
}

#[test]
fn a_lapsed_user_may_queue_again_at_the_back() {
    let mut m = sale(1, &[]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    assert_eq!(granted(&mut m, T0, 1), vec!["a"]);
    ok(&mut m, T0 + 1, Enqueue, &["s", "b"]);
    assert_eq!(
        ok(&mut m, T0 + 1500, Enqueue, &["s", "a"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 2,
            length: 2
        })
    );
    assert_eq!(
        user_status(&mut m, T0 + 1500, "a"),
        UserStatus::Queued { position: 2 }
    );
    let data = m.sale("s").expect("sale");
    assert!(data.holds.is_empty());
    assert!(data.lapsed.is_empty());
}

#[test]
fn release_gives_back_a_place_or_a_unit() {
    let mut m = sale(1, &[]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    ok(&mut m, T0, Enqueue, &["s", "b"]);
    assert_eq!(granted(&mut m, T0, 1), vec!["a"]);
    assert_eq!(
        ok(&mut m, T0, Release, &["s", "a"]),
        Reply::Release(ReleaseReply::Released)
    );
    assert_eq!(
        ok(&mut m, T0, Release, &["s", "a"]),
        Reply::Release(ReleaseReply::None)
    );
    assert_eq!(granted(&mut m, T0, 1), vec!["b"]);
    ok(&mut m, T0, Enqueue, &["s", "c"]);
    assert_eq!(
        ok(&mut m, T0, Release, &["s", "c"]),
        Reply::Release(ReleaseReply::LeftQueue)
    );
    assert_eq!(user_status(&mut m, T0, "c"), UserStatus::None);
    ok(&mut m, T0, Confirm, &["s", "b"]);
    assert_eq!(
        ok(&mut m, T0, Release, &["s", "b"]),
        Reply::Release(ReleaseReply::Purchased {
            order_id: first_order_at(T0)
        })
    );
}

#[test]
fn the_window_edges() {
    let mut m = sale(5, &[]);
    assert_eq!(
        ok(&mut m, T0 - 1, Enqueue, &["s", "a"]),
        Reply::Enqueue(EnqueueReply::NotStarted { ms_until_start: 1 })
    );
    assert_eq!(
        ok(&mut m, T0 - 1, Grant, &["s", "1"]),
        Reply::Grant(GrantReply::NotStarted { ms_until_start: 1 })
    );
    assert!(matches!(
        ok(&mut m, T0, Enqueue, &["s", "a"]),
        Reply::Enqueue(EnqueueReply::Queued { .. })
    ));
    ok(&mut m, T0, Enqueue, &["s", "b"]);
    assert_eq!(granted(&mut m, T0 + 59_999, 1), vec!["a"]);
    let end = T0 + 60_000;
    assert_eq!(
        ok(&mut m, end, Enqueue, &["s", "c"]),
        Reply::Enqueue(EnqueueReply::Ended)
    );
    assert_eq!(
        ok(&mut m, end, Confirm, &["s", "a"]),
        Reply::Confirm(ConfirmReply::Ended)
    );
    assert_eq!(
        ok(&mut m, end, Grant, &["s", "1"]),
        Reply::Grant(GrantReply::Ended { cleared: 1 })
    );
    assert!(m.sale("s").expect("sale").queue.is_empty());
    match ok(&mut m, end, Status, &["s"]) {
        Reply::Status(s) => assert_eq!(s.sale.state, SaleState::Ended),
        other => panic!("{other:?}"),
    }
}

#[test]
fn queue_full() {
    let mut m = sale(5, &["MAXQUEUE", "2"]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    ok(&mut m, T0, Enqueue, &["s", "b"]);
    assert_eq!(
        ok(&mut m, T0, Enqueue, &["s", "c"]),
        Reply::Enqueue(EnqueueReply::QueueFull { length: 2 })
    );
    // Those inside still see their place.
    assert_eq!(
        ok(&mut m, T0, Enqueue, &["s", "b"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 2,
            length: 2
        })
    );
}

#[test]
fn rate_limits_admission_over_all_callers() {
    let mut m = sale(1000, &["RATE", "10"]);
    for i in 0..100 {
        ok(&mut m, T0, Enqueue, &["s", &format!("u{i}")]);
    }
    // The bucket fills from setup (T0 - 10) and holds one second's worth.
    assert_eq!(granted(&mut m, T0, 100).len(), 0);
    assert_eq!(granted(&mut m, T0 + 5_000, 100).len(), 10);
    assert_eq!(granted(&mut m, T0 + 5_000, 100).len(), 0);
    assert_eq!(granted(&mut m, T0 + 5_099, 100).len(), 0);
    assert_eq!(granted(&mut m, T0 + 5_100, 100).len(), 1);
    // Then one per 100 ms, however often GRANT is called.
    let mut admitted = 0;
    for step in 1..=200 {
        admitted += granted(&mut m, T0 + 5_100 + step * 50, 3).len();
    }
    assert_eq!(admitted, 100 - 11);
}

#[test]
fn setup_never_lets_stock_fall_below_sold_plus_held() {
    let mut m = sale(3, &[]);
    for u in ["a", "b", "c"] {
        ok(&mut m, T0, Enqueue, &["s", u]);
    }
    granted(&mut m, T0, 2);
    ok(&mut m, T0, Confirm, &["s", "a"]);
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let before = m.sale("s").cloned();
    assert_eq!(
        call(&mut m, T0, Setup, &["s", "1", &start, &end, "1000"]),
        Err("CONFLICT stock cannot go below sold plus held (2)".into())
    );
    assert_eq!(m.sale("s").cloned(), before);
    assert_eq!(
        ok(&mut m, T0, Setup, &["s", "2", &start, &end, "1000"]),
        Reply::Setup(SetupReply::Updated)
    );
    // Once b's hold lapsed, only what is sold counts.
    assert_eq!(
        ok(&mut m, T0 + 1000, Setup, &["s", "1", &start, &end, "1000"]),
        Reply::Setup(SetupReply::Updated)
    );
}

#[test]
fn unknown_sale_and_bad_input_change_nothing() {
    let mut m = sale(1, &[]);
    let before = m.sales.clone();
    for (name, args, err) in [
        (Enqueue, vec!["nope", "a"], "NOSALE no such sale"),
        (Grant, vec!["nope", "1"], "NOSALE no such sale"),
        (Confirm, vec!["nope", "a"], "NOSALE no such sale"),
        (Release, vec!["nope", "a"], "NOSALE no such sale"),
        (Status, vec!["nope"], "NOSALE no such sale"),
        (
            Enqueue,
            vec!["s"],
            "ERR wrong number of arguments for 'FLASHSALE.ENQUEUE'",
        ),
        (Enqueue, vec!["s", "a{b}"], "ERR invalid user id"),
        (
            Grant,
            vec!["s", "-1"],
            "ERR max must be an integer from 1 to 10000",
        ),
        (
            Confirm,
            vec!["s", "a", "1.5"],
            "ERR amount must be an integer from 0 to 999999999999999",
        ),
    ] {
        assert_eq!(
            call(&mut m, T0, name, &args),
            Err(err.to_string()),
            "{name:?} {args:?}"
        );
    }
    assert_eq!(m.sale("nope"), None);
    assert_eq!(m.sales.get("s"), before.get("s"));
}

fn confirmed(m: &mut Model, now: u64, user: &str) -> String {
    match ok(m, now, Confirm, &["s", user]) {
        Reply::Confirm(ConfirmReply::Confirmed { order_id, .. }) => order_id,
        other => panic!("{user}: unexpected {other:?}"),
    }
}

fn number(order_id: &str) -> u64 {
    crate::keys::order_number("s", order_id).expect("an order id of s")
}

/// `users` queued and holding at `now`.
fn holding(m: &mut Model, now: u64, users: &[&str]) {
    for u in users {
        ok(m, now, Enqueue, &["s", u]);
    }
    assert_eq!(granted(m, now, users.len() as u64), users);
}

#[test]
fn order_numbers_follow_the_clock_and_only_grow() {
    let mut m = sale(10, &[]);
    holding(&mut m, T0, &["a", "b", "c", "d", "e"]);
    // Several in one ms: consecutive numbers from now × 100.
    assert_eq!(confirmed(&mut m, T0 + 5, "a"), "s-180000000000500");
    assert_eq!(confirmed(&mut m, T0 + 5, "b"), "s-180000000000501");
    // A later ms jumps ahead to its own range.
    assert_eq!(confirmed(&mut m, T0 + 9, "c"), "s-180000000000900");
    // A clock that steps back never repeats a number.
    assert_eq!(confirmed(&mut m, T0 + 1, "d"), "s-180000000000901");
    let record = m.sale("s").and_then(|d| d.sale.clone()).expect("record");
    assert_eq!((record.sold, record.order_seq), (4, 180_000_000_000_901));
    // The outbox entry of each order is 0-<its number>.
    let data = m.sale("s").expect("sale");
    for (user, order_id) in &data.orders {
        assert_eq!(&data.outbox[&number(order_id)].user_id, user);
    }
}

/// Issue 10: a primary confirmed an order, the write was lost (a replica
/// that had not received it took over), and the next buyer must not get the
/// same id — provided the lost confirms averaged under 100 per ms over the
/// time between them and the successor's.
#[test]
fn a_rolled_back_sale_never_reissues_a_lost_order_id() {
    let mut m = sale(500, &[]);
    let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    holding(&mut m, T0, &names);
    confirmed(&mut m, T0 + 10, "u0");
    let replica = m.clone();
    // The primary goes on: one confirm, then a burst of 150 in one ms.
    let lost = confirmed(&mut m, T0 + 20, "u1");
    let burst: Vec<String> = (2..152)
        .map(|i| confirmed(&mut m, T0 + 21, &users[i]))
        .collect();
    let highest_lost = number(burst.last().expect("burst"));
    assert_eq!(
        highest_lost,
        (T0 + 21) * 100 + 149,
        "150 in one ms run ahead"
    );

    // The replica takes over 1 ms after the single lost confirm: above it.
    let mut successor = replica.clone();
    let next = confirmed(&mut successor, T0 + 21, "u200");
    assert!(number(&next) > number(&lost), "{next} after {lost}");
    // The burst ran 49 numbers ahead of its ms: 1 ms later is not enough
    // (the documented bound), 2 ms are.
    let mut successor = replica.clone();
    assert!(number(&confirmed(&mut successor, T0 + 22, "u200")) <= highest_lost);
    let mut successor = replica;
    let next = confirmed(&mut successor, T0 + 23, "u200");
    assert!(number(&next) > highest_lost, "{next} after {highest_lost}");
    // The lost buyer, still holding on the replica, gets a new id too.
    let again = confirmed(&mut successor, T0 + 23, "u1");
    assert!(number(&again) > highest_lost);
}

#[test]
fn order_numbers_run_out_in_the_year_2286() {
    use crate::command::MAX_ORDER_NUMBER;
    use crate::rules::MAX_ORDER_CLOCK_MS;
    assert_eq!(MAX_ORDER_CLOCK_MS, 9_999_999_999_999);
    let mut m = Model::new();
    let end = MAX_TIME.to_string();
    ok(
        &mut m,
        T0,
        Setup,
        &["s", "5", &T0.to_string(), &end, "1000", "PRICE", "1"],
    );
    holding(&mut m, MAX_ORDER_CLOCK_MS, &["a", "b"]);
    assert_eq!(
        confirmed(&mut m, MAX_ORDER_CLOCK_MS, "a"),
        format!("s-{}", MAX_ORDER_CLOCK_MS * 100)
    );
    let before = m.clone().sales;
    assert_eq!(
        call(&mut m, MAX_ORDER_CLOCK_MS + 1, Confirm, &["s", "b"]),
        Err("ERR order numbers exhausted".into())
    );
    assert_eq!(m.sales, before, "nothing changed");
    assert_eq!(
        confirmed(&mut m, MAX_ORDER_CLOCK_MS, "b"),
        format!("s-{}", MAX_ORDER_CLOCK_MS * 100 + 1)
    );
    // A restored order with the last number leaves none for later buyers.
    holding(&mut m, T0, &["c"]);
    ok(
        &mut m,
        T0,
        Restore,
        &["s", "z", &format!("s-{MAX_ORDER_NUMBER}")],
    );
    assert_eq!(
        call(&mut m, T0, Confirm, &["s", "c"]),
        Err("ERR order numbers exhausted".into())
    );
}

const MAX_TIME: u64 = crate::command::MAX_TIME_MS;

fn restored(m: &mut Model, now: u64, args: &[&str]) -> (u64, u64) {
    match ok(m, now, Restore, args) {
        Reply::Restore(RestoreReply::Restored { added, orders }) => (added, orders),
        other => panic!("unexpected {other:?}"),
    }
}

/// The sale is gone from Redis; its orders come back before SETUP, so the
/// sale is never open without them.
#[test]
fn restore_then_setup_brings_back_a_lost_sale() {
    let mut m = Model::new();
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let orders = ["ann", "s-180000000000500", "bob", "s-180000000000501"];
    assert_eq!(restored(&mut m, T0, &["s", orders[0], orders[1]]), (1, 1));
    assert_eq!(
        restored(
            &mut m,
            T0,
            &["s", orders[0], orders[1], orders[2], orders[3]]
        ),
        (1, 2),
        "a batch again, and one more"
    );
    // Until SETUP the sale does not exist for buyers.
    assert_eq!(
        call(&mut m, T0, Enqueue, &["s", "ann"]),
        Err("NOSALE no such sale".into())
    );
    let data = m.sale("s").cloned().expect("orders recorded");
    assert!(data.sale.is_none() && data.outbox.is_empty());
    // SETUP takes the orders over: sold and the last order number.
    assert_eq!(
        call(&mut m, T0, Setup, &["s", "1", &start, &end, "1000"]),
        Err("CONFLICT stock cannot go below sold plus held (2)".into())
    );
    assert_eq!(
        ok(
            &mut m,
            T0,
            Setup,
            &["s", "3", &start, &end, "1000", "PRICE", "1"]
        ),
        Reply::Setup(SetupReply::Created)
    );
    let record = m.sale("s").and_then(|d| d.sale.clone()).expect("record");
    assert_eq!((record.sold, record.order_seq), (2, 180_000_000_000_501));
    assert_eq!(
        ok(&mut m, T0, Enqueue, &["s", "bob"]),
        Reply::Enqueue(EnqueueReply::Purchased {
            order_id: orders[3].into()
        })
    );
    holding(&mut m, T0 + 1, &["cat"]);
    // Later in the same ms as a restored order, still a new number.
    assert_eq!(confirmed(&mut m, T0 + 5, "cat"), "s-180000000000502");
    assert_eq!(
        ok(&mut m, T0 + 5, Enqueue, &["s", "dan"]),
        Reply::Enqueue(EnqueueReply::SoldOut)
    );
    assert_eq!(m.sale("s").map(|d| d.outbox.len()), Some(1));
}

#[test]
fn restore_into_a_live_sale() {
    let mut m = sale(4, &[]);
    holding(&mut m, T0, &["a", "b"]);
    let a = confirmed(&mut m, T0, "a");
    // b's hold lapses and is reclaimed (b is lapsed); q holds, w waits.
    ok(&mut m, T0 + 1000, Enqueue, &["s", "q"]);
    ok(&mut m, T0 + 1000, Enqueue, &["s", "w"]);
    assert_eq!(granted(&mut m, T0 + 1000, 1), ["q"]);
    let before = m.sale("s").cloned().expect("sale");
    assert_eq!(
        (before.holds.len(), before.queue.len(), before.lapsed.len()),
        (1, 1, 1)
    );

    // The durable record has a, plus q, b and w, which Redis forgot.
    let args = [
        "s",
        "a",
        &a,
        "q",
        "s-7",
        "b",
        "s-190000000000000",
        "w",
        "s-8",
    ];
    let now = T0 + 1500;
    assert_eq!(restored(&mut m, now, &args), (3, 4));
    let data = m.sale("s").cloned().expect("sale");
    let record = data.sale.clone().expect("record");
    assert_eq!((record.sold, record.order_seq), (4, 190_000_000_000_000));
    assert!(data.holds.is_empty() && data.queue.is_empty() && data.lapsed.is_empty());
    assert_eq!(data.outbox.len(), 1, "nothing added to the outbox");
    for (user, id) in [("q", "s-7"), ("b", "s-190000000000000"), ("w", "s-8")] {
        assert_eq!(
            ok(&mut m, now, Confirm, &["s", user]),
            Reply::Confirm(ConfirmReply::Purchased {
                order_id: id.into()
            })
        );
        assert_eq!(
            user_status(&mut m, now, user),
            UserStatus::Purchased {
                order_id: id.into()
            }
        );
    }
    // Idempotent: the same batch again changes nothing.
    let snapshot = m.sales.clone();
    assert_eq!(restored(&mut m, now, &args), (0, 4));
    assert_eq!(m.sales, snapshot);
}

#[test]
fn restore_refuses_what_would_sell_a_unit_twice() {
    let mut m = sale(3, &[]);
    holding(&mut m, T0, &["a", "b"]);
    let a = confirmed(&mut m, T0, "a");
    let before = m.sales.clone();
    // a bought under another id: refused whole, nothing changed.
    assert_eq!(
        call(&mut m, T0, Restore, &["s", "x", "s-1", "a", "s-2"]),
        Err(format!("CONFLICT a already has order {a}"))
    );
    // x under a's id: refused (and checked after the user's own order).
    assert_eq!(
        call(&mut m, T0, Restore, &["s", "x", &a]),
        Err(format!("CONFLICT {a} is another user's order"))
    );
    // sold 1 + b's live hold + 2 more > 3.
    assert_eq!(
        call(&mut m, T0, Restore, &["s", "x", "s-1", "y", "s-2"]),
        Err("CONFLICT sold plus held would exceed stock (4)".into())
    );
    assert_eq!(m.sales, before);
    // b's own order replaces b's hold: that fits.
    assert_eq!(restored(&mut m, T0, &["s", "b", "s-2", "x", "s-1"]), (2, 3));
    // Once b's hold would have lapsed nothing changes: the unit is sold.
    assert_eq!(
        call(&mut m, T0 + 5000, Restore, &["s", "y", "s-3"]),
        Err("CONFLICT sold plus held would exceed stock (4)".into())
    );
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(usize),
    Grant(u64),
    Confirm(usize),
    Release(usize),
    /// The stock, and `PAUSED` (none, 0 or 1).
    Setup(u64, Option<bool>),
    Restore(usize, u64),
    Pause,
    Resume,
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize).prop_map(Op::Enqueue),
        3 => (1..4u64).prop_map(Op::Grant),
        3 => (0..8usize).prop_map(Op::Confirm),
        1 => (0..8usize).prop_map(Op::Release),
        1 => (0..6u64, prop::option::of(any::<bool>())).prop_map(|(stock, paused)| Op::Setup(stock, paused)),
        1 => (0..8usize, prop::sample::select(vec![1u64, 2, T0 * 100 + 500, T0 * 100 + 90_000])).prop_map(|(u, n)| Op::Restore(u, n)),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        2 => (0..800u64).prop_map(Op::Tick),
    ]
}

fn is_paused(m: &Model) -> bool {
    m.sale("s")
        .and_then(|d| d.sale.as_ref())
        .is_some_and(|r| r.paused_at.is_some())
}

proptest! {
    /// Whatever happens, the sale's invariants hold after every command.
    #[test]
    fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..80)) {
        let mut m = sale(3, &["RATE", "5"]);
        let mut now = T0;
        let mut admitted: Vec<String> = Vec::new();
        let mut restored = std::collections::BTreeSet::new();
        let mut issued = std::collections::BTreeMap::new();
        for op in ops {
            let user = |i: usize| format!("u{i}");
            let (start, end) = (T0.to_string(), (T0 + 20_000).to_string());
            let _ = match &op {
                Op::Enqueue(i) => {
                    let paused = is_paused(&m);
                    let queue_before = m.sale("s").map(|d| d.queue.clone());
                    let reply = call(&mut m, now, Enqueue, &["s", &user(*i)]);
                    // A paused sale queues nobody new.
                    if paused {
                        prop_assert_eq!(m.sale("s").map(|d| d.queue.clone()), queue_before);
                    }
                    reply
                }
                Op::Grant(n) => {
                    let paused = is_paused(&m);
                    let queue_before = m.sale("s").map(SaleData::queue_in_order).unwrap_or_default();
                    let reply = call(&mut m, now, Grant, &["s", &n.to_string()]);
                    // A paused sale admits nobody.
                    if paused {
                        prop_assert!(!matches!(&reply, Ok(Reply::Grant(GrantReply::Granted { .. }))), "{:?}", reply);
                    }
                    if let Ok(Reply::Grant(GrantReply::Granted { users, .. })) = &reply {
                        // FIFO: exactly the head of the queue, in order.
                        prop_assert_eq!(&queue_before[..users.len()], &users[..]);
                        admitted.extend(users.iter().cloned());
                    }
                    reply
                }
                Op::Confirm(i) => call(&mut m, now, Confirm, &["s", &user(*i), "1999"]),
                Op::Release(i) => call(&mut m, now, Release, &["s", &user(*i)]),
                Op::Setup(stock, paused) => {
                    let before = m.sale("s").cloned();
                    let mut args = vec!["s".to_string(), stock.to_string(), start, end, "1000".into(), "RATE".into(), "5".into()];
                    if let Some(paused) = paused {
                        args.extend(["PAUSED".into(), u8::from(*paused).to_string()]);
                    }
                    let reply = call(&mut m, now, Setup, &args.iter().map(String::as_str).collect::<Vec<_>>());
                    if reply.is_ok() {
                        // PAUSED sets the mark (keeping its time), or clears
                        // it; without it the mark is kept.
                        let was = before.as_ref().and_then(|d| d.sale.as_ref()).and_then(|r| r.paused_at);
                        let expected = match paused {
                            None => was,
                            Some(true) => was.or(Some(now)),
                            Some(false) => None,
                        };
                        prop_assert_eq!(m.sale("s").and_then(|d| d.sale.as_ref()).and_then(|r| r.paused_at), expected);
                    } else {
                        // A refusal changes nothing.
                        prop_assert_eq!(m.sale("s").cloned(), before);
                    }
                    reply
                }
                Op::Restore(i, n) => {
                    let reply = call(&mut m, now, Restore, &["s", &user(*i), &format!("s-{n}")]);
                    if matches!(reply, Ok(Reply::Restore(RestoreReply::Restored { added: 1, .. }))) {
                        restored.insert(user(*i));
                    }
                    reply
                }
                Op::Pause => {
                    let queue_before = m.sale("s").map(|d| d.queue.clone());
                    let reply = call(&mut m, now, Pause, &["s"]);
                    // Pausing never touches the queue.
                    prop_assert_eq!(m.sale("s").map(|d| d.queue.clone()), queue_before);
                    reply
                }
                Op::Resume => call(&mut m, now, Resume, &["s"]),
                Op::Tick(ms) => { now += ms; continue; }
            };

            let d = m.sale("s").expect("sale").clone();
            let record = d.sale.clone().expect("record");
            let live = d.holds.values().filter(|&&e| e > now).count() as u64;
            prop_assert!(record.sold + live <= record.stock.max(record.sold));
            prop_assert_eq!(record.sold, d.orders.len() as u64);
            for (user, order) in &d.orders {
                prop_assert!(!d.queue.contains_key(user) && !d.holds.contains_key(user));
                // Confirmed orders are in the outbox once, restored ones not.
                let entries = d.outbox.values().filter(|e| &e.order_id == order).count();
                prop_assert_eq!(entries, usize::from(!restored.contains(user)));
                prop_assert!(number(order) <= record.order_seq);
                // An id, once given, stays with its buyer.
                let owner = issued.entry(order.clone()).or_insert_with(|| user.clone());
                prop_assert_eq!(&*owner, user);
            }
            for (n, entry) in &d.outbox {
                prop_assert_eq!(Some(*n), crate::keys::order_number("s", &entry.order_id));
            }
            for user in d.queue.keys() {
                prop_assert!(!d.holds.contains_key(user));
            }
        }
    }
}

fn setup_at(m: &mut Model, now: u64, extra: &[&str]) -> Result<Reply, String> {
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let mut args = vec!["s", "5", &start, &end, "1000"];
    args.extend_from_slice(extra);
    call(m, now, Setup, &args)
}

/// A holder pays the price they were admitted at: while a unit is held the
/// price cannot change (and the refusal changes nothing); once nobody
/// holds one it can. A SETUP without PRICE keeps the price.
#[test]
fn the_price_is_locked_while_units_are_held() {
    let mut m = sale(5, &[]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    assert_eq!(granted(&mut m, T0, 1), vec!["a"]);
    let before = m.sales.clone();
    assert_eq!(
        setup_at(&mut m, T0 + 1, &["PRICE", "2999"]),
        Err("LOCKED the price cannot change while 1 units are held".into())
    );
    assert_eq!(m.sales, before);
    // The same price, or none given, is not a change.
    assert_eq!(
        setup_at(&mut m, T0 + 1, &["PRICE", "1999"]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    assert_eq!(
        setup_at(&mut m, T0 + 1, &[]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    assert_eq!(
        ok(&mut m, T0 + 2, Confirm, &["s", "a"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: first_order_at(T0 + 2),
            amount: PRICE,
        })
    );
    // Nobody holds a unit now.
    assert_eq!(
        setup_at(&mut m, T0 + 3, &["PRICE", "2999"]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    ok(&mut m, T0 + 4, Enqueue, &["s", "b"]);
    assert_eq!(granted(&mut m, T0 + 4, 1), vec!["b"]);
    assert_eq!(
        ok(&mut m, T0 + 5, Confirm, &["s", "b"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: first_order_at(T0 + 5),
            amount: 2999,
        })
    );
    let outbox = &m.sale("s").expect("sale").outbox;
    let amounts: Vec<u64> = outbox.values().map(|e| e.amount).collect();
    assert_eq!(amounts, vec![PRICE, 2999]);
}

/// An amount that is not the price buys nothing: the hold stays, and the
/// reply says the price.
#[test]
fn a_wrong_amount_buys_nothing() {
    let mut m = sale(5, &[]);
    ok(&mut m, T0, Enqueue, &["s", "a"]);
    granted(&mut m, T0, 1);
    let before = m.sales.clone();
    assert_eq!(
        ok(&mut m, T0 + 1, Confirm, &["s", "a", "1000"]),
        Reply::Confirm(ConfirmReply::AmountMismatch { price: PRICE })
    );
    assert_eq!(m.sales, before);
    assert_eq!(
        user_status(&mut m, T0 + 1, "a"),
        UserStatus::Holding { ms_left: 999 }
    );
}

/// A sale set up without a PRICE records what CONFIRM is given, and
/// refuses a CONFIRM without an amount; it may be given a price while units
/// are held.
#[test]
fn an_unpriced_sale_needs_the_amount() {
    let mut m = unpriced_sale(5, &[]);
    for user in ["a", "b"] {
        ok(&mut m, T0, Enqueue, &["s", user]);
    }
    granted(&mut m, T0, 2);
    let before = m.sales.clone();
    assert_eq!(
        call(&mut m, T0 + 1, Confirm, &["s", "a"]),
        Err("NOPRICE the sale has no price; give the amount".into())
    );
    assert_eq!(m.sales, before);
    assert_eq!(
        ok(&mut m, T0 + 1, Confirm, &["s", "a", "700"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: first_order_at(T0 + 1),
            amount: 700,
        })
    );
    assert_eq!(
        setup_at(&mut m, T0 + 2, &["PRICE", "800"]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    assert_eq!(
        ok(&mut m, T0 + 3, Confirm, &["s", "b"]),
        Reply::Confirm(ConfirmReply::Confirmed {
            order_id: first_order_at(T0 + 3),
            amount: 800,
        })
    );
}

fn sale_state(m: &mut Model, now: u64) -> SaleState {
    match ok(m, now, Status, &["s"]) {
        Reply::Status(StatusReply { sale, .. }) => sale.state,
        other => panic!("unexpected {other:?}"),
    }
}

/// PAUSE stops a live sale without taking anything from anyone: new buyers
/// are told `paused` and change nothing, GRANT admits nobody (but still
/// reclaims lapsed holds), the queue keeps its order, a holder can still
/// confirm; RESUME continues exactly where it stopped.
#[test]
fn pause_stops_admission_and_resume_continues() {
    let mut m = sale(3, &[]);
    for user in ["ann", "bob", "cat"] {
        ok(&mut m, T0, Enqueue, &["s", user]);
    }
    assert_eq!(granted(&mut m, T0 + 1, 1), vec!["ann"]);
    assert_eq!(
        ok(&mut m, T0 + 2, Pause, &["s"]),
        Reply::Pause(PauseReply::Paused)
    );
    assert_eq!(sale_state(&mut m, T0 + 3), SaleState::Paused);
    // Idempotent: the second pause changes nothing, not even paused_at.
    let before = m.sale("s").cloned();
    assert_eq!(
        ok(&mut m, T0 + 4, Pause, &["s"]),
        Reply::Pause(PauseReply::AlreadyPaused)
    );
    assert_eq!(m.sale("s").cloned(), before);
    assert_eq!(
        before.and_then(|d| d.sale).and_then(|r| r.paused_at),
        Some(T0 + 2)
    );

    // Nobody new joins; nothing changes.
    let before = m.sale("s").cloned();
    assert_eq!(
        ok(&mut m, T0 + 5, Enqueue, &["s", "dan"]),
        Reply::Enqueue(EnqueueReply::Paused)
    );
    assert_eq!(m.sale("s").cloned(), before);
    // Those queued keep their place and are told it.
    assert_eq!(
        ok(&mut m, T0 + 5, Enqueue, &["s", "cat"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 2,
            length: 2
        })
    );
    assert_eq!(
        user_status(&mut m, T0 + 5, "bob"),
        UserStatus::Queued { position: 1 }
    );
    // GRANT admits nobody, however often it is called.
    assert_eq!(
        ok(&mut m, T0 + 6, Grant, &["s", "10"]),
        Reply::Grant(GrantReply::Paused { released: 0 })
    );
    assert_eq!(
        m.sale("s").map(SaleData::queue_in_order),
        Some(vec!["bob".into(), "cat".into()])
    );
    // The holder keeps the unit and can buy it.
    assert_eq!(confirmed(&mut m, T0 + 7, "ann"), first_order_at(T0 + 7));

    // Resume: admission continues from the head of the same queue.
    assert_eq!(
        ok(&mut m, T0 + 8, Resume, &["s"]),
        Reply::Resume(ResumeReply::Resumed)
    );
    assert_eq!(
        ok(&mut m, T0 + 8, Resume, &["s"]),
        Reply::Resume(ResumeReply::NotPaused)
    );
    assert_eq!(sale_state(&mut m, T0 + 8), SaleState::Active);
    assert_eq!(granted(&mut m, T0 + 9, 1), vec!["bob"]);
    assert!(matches!(
        ok(&mut m, T0 + 9, Enqueue, &["s", "dan"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 2,
            length: 2
        })
    ));
}

/// Holds run on while a sale is paused: one that expires is reclaimed by
/// GRANT as always (its holder lapsed), but its unit goes to nobody until
/// the sale resumes.
#[test]
fn holds_expire_while_paused_and_their_units_wait_for_resume() {
    let mut m = sale(1, &[]);
    ok(&mut m, T0, Enqueue, &["s", "ann"]);
    ok(&mut m, T0, Enqueue, &["s", "bob"]);
    assert_eq!(granted(&mut m, T0, 1), vec!["ann"]);
    ok(&mut m, T0 + 1, Pause, &["s"]);
    assert_eq!(
        ok(&mut m, T0 + 1000, Grant, &["s", "5"]),
        Reply::Grant(GrantReply::Paused { released: 1 })
    );
    assert_eq!(user_status(&mut m, T0 + 1000, "ann"), UserStatus::Expired);
    assert_eq!(
        user_status(&mut m, T0 + 1000, "bob"),
        UserStatus::Queued { position: 1 }
    );
    ok(&mut m, T0 + 2000, Resume, &["s"]);
    assert_eq!(granted(&mut m, T0 + 2000, 5), vec!["bob"]);
}

/// Only a live sale can be paused; the refusal changes nothing. A sale that
/// ends or sells out while paused reports that (the final states win), and
/// RESUME still clears its mark. SETUP keeps the pause.
#[test]
fn pause_needs_a_live_sale() {
    assert_eq!(
        call(&mut Model::new(), T0, Pause, &["s"]),
        Err("NOSALE no such sale".into())
    );
    assert_eq!(
        call(&mut Model::new(), T0, Resume, &["s"]),
        Err("NOSALE no such sale".into())
    );
    let mut m = sale(1, &[]);
    let before = m.sale("s").cloned();
    assert_eq!(
        call(&mut m, T0 - 1, Pause, &["s"]),
        Err("CONFLICT only a live sale can be paused; it is upcoming".into())
    );
    assert_eq!(
        call(&mut m, T0 + 60_000, Pause, &["s"]),
        Err("CONFLICT only a live sale can be paused; it is ended".into())
    );
    assert_eq!(m.sale("s").cloned(), before);
    let mut sold = sale(0, &[]);
    assert_eq!(
        call(&mut sold, T0, Pause, &["s"]),
        Err("CONFLICT only a live sale can be paused; it is sold_out".into())
    );

    ok(&mut m, T0, Pause, &["s"]);
    // SETUP changes the parameters and keeps the pause.
    let (start, end) = (T0.to_string(), (T0 + 90_000).to_string());
    ok(&mut m, T0 + 1, Setup, &["s", "2", &start, &end, "1000"]);
    assert_eq!(sale_state(&mut m, T0 + 1), SaleState::Paused);
    // Over while paused: ENQUEUE and STATUS say so, GRANT clears the queue.
    assert_eq!(sale_state(&mut m, T0 + 90_000), SaleState::Ended);
    assert_eq!(
        ok(&mut m, T0 + 90_000, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::Ended)
    );
    assert_eq!(
        call(&mut m, T0 + 90_000, Pause, &["s"]),
        Err("CONFLICT only a live sale can be paused; it is ended".into())
    );
    assert_eq!(
        ok(&mut m, T0 + 90_000, Resume, &["s"]),
        Reply::Resume(ResumeReply::Resumed)
    );
}

fn paused_at(m: &Model) -> Option<u64> {
    m.sale("s")
        .and_then(|d| d.sale.as_ref())
        .and_then(|r| r.paused_at)
}

/// SETUP ... PAUSED 1 sets the pause mark in the same command: a sale set
/// up again after a loss (its orders restored first) is paused from its
/// first moment — nobody queues, GRANT admits nobody. A repeat changes
/// nothing (not even paused_at); PAUSED 0 clears the mark as RESUME does;
/// without PAUSED the mark is kept. A refused SETUP sets no mark.
#[test]
fn setup_paused_sets_the_pause_in_the_same_command() {
    let mut m = Model::new();
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    assert_eq!(
        restored(&mut m, T0 + 5, &["s", "ann", "s-180000000000500"]),
        (1, 1)
    );
    // Refused (stock below the restored order): nothing written.
    let before = m.sales.clone();
    assert_eq!(
        call(
            &mut m,
            T0 + 5,
            Setup,
            &["s", "0", &start, &end, "1000", "PAUSED", "1"]
        ),
        Err("CONFLICT stock cannot go below sold plus held (1)".into())
    );
    assert_eq!(m.sales, before);
    let paused_setup = ["s", "3", &start, &end, "1000", "PRICE", "5", "PAUSED", "1"];
    assert_eq!(
        ok(&mut m, T0 + 10, Setup, &paused_setup),
        Reply::Setup(SetupReply::Created)
    );
    assert_eq!(paused_at(&m), Some(T0 + 10));
    assert_eq!(sale_state(&mut m, T0 + 10), SaleState::Paused);
    assert_eq!(
        ok(&mut m, T0 + 11, Enqueue, &["s", "bob"]),
        Reply::Enqueue(EnqueueReply::Paused)
    );
    assert_eq!(
        ok(&mut m, T0 + 11, Grant, &["s", "10"]),
        Reply::Grant(GrantReply::Paused { released: 0 })
    );
    // The restored buyer still has their order.
    assert_eq!(
        ok(&mut m, T0 + 11, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::Purchased {
            order_id: "s-180000000000500".into()
        })
    );
    // Idempotent: the same SETUP again changes nothing.
    let before = m.sales.clone();
    assert_eq!(
        ok(&mut m, T0 + 20, Setup, &paused_setup),
        Reply::Setup(SetupReply::Updated)
    );
    assert_eq!(m.sales, before);
    // Without PAUSED the mark is kept.
    ok(&mut m, T0 + 21, Setup, &["s", "3", &start, &end, "1000"]);
    assert_eq!(paused_at(&m), Some(T0 + 10));
    // PAUSED 0 clears it: admission starts from the queue.
    ok(
        &mut m,
        T0 + 22,
        Setup,
        &["s", "3", &start, &end, "1000", "PAUSED", "0"],
    );
    assert_eq!(paused_at(&m), None);
    assert_eq!(sale_state(&mut m, T0 + 22), SaleState::Active);
    ok(&mut m, T0 + 23, Enqueue, &["s", "bob"]);
    assert_eq!(granted(&mut m, T0 + 23, 10), vec!["bob"]);
    // PAUSED 0 on a running sale changes nothing.
    let before = m.sales.clone();
    ok(
        &mut m,
        T0 + 24,
        Setup,
        &["s", "3", &start, &end, "1000", "PAUSED", "0"],
    );
    assert_eq!(m.sales, before);
}

/// Unlike PAUSE, SETUP ... PAUSED 1 marks a sale that is not live: a sale
/// set up again must come back as it was, whatever happened to it since it
/// was paused. The mark changes nothing while the sale is upcoming (STATUS
/// says upcoming, ENQUEUE says not_started), and the sale is paused from
/// its start; sold out and ended win over it in STATUS as always.
#[test]
fn setup_paused_marks_a_sale_that_is_not_live() {
    let mut m = unpriced_sale(2, &["PAUSED", "1"]);
    assert_eq!(paused_at(&m), Some(T0 - 10));
    assert_eq!(sale_state(&mut m, T0 - 5), SaleState::Upcoming);
    assert_eq!(
        ok(&mut m, T0 - 5, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::NotStarted { ms_until_start: 5 })
    );
    assert_eq!(sale_state(&mut m, T0), SaleState::Paused);
    assert_eq!(
        ok(&mut m, T0, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::Paused)
    );
    assert_eq!(
        ok(&mut m, T0, Grant, &["s", "10"]),
        Reply::Grant(GrantReply::Paused { released: 0 })
    );
    assert_eq!(sale_state(&mut m, T0 + 60_000), SaleState::Ended);

    let mut sold = sale(0, &["PAUSED", "1"]);
    assert_eq!(sale_state(&mut sold, T0), SaleState::SoldOut);
    assert!(paused_at(&sold).is_some());

    // An ended sale takes the mark too (and RESUME clears it).
    let mut ended = sale(1, &[]);
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    ok(
        &mut ended,
        T0 + 60_000,
        Setup,
        &["s", "1", &start, &end, "1000", "PAUSED", "1"],
    );
    assert_eq!(paused_at(&ended), Some(T0 + 60_000));
    assert_eq!(sale_state(&mut ended, T0 + 60_000), SaleState::Ended);
    assert_eq!(
        ok(&mut ended, T0 + 60_001, Resume, &["s"]),
        Reply::Resume(ResumeReply::Resumed)
    );
}

/// CONFIRM's CONTACT is kept in the outbox entry as typed; without it the
/// entry is as before (no contact field) and the contact is the user id.
/// A repeated CONFIRM ignores it, like the amount.
#[test]
fn confirm_keeps_the_address_as_typed() {
    let mut m = sale(2, &[]);
    for user in ["bob@x.com", "ann@x.com"] {
        ok(&mut m, T0, Enqueue, &["s", user]);
    }
    granted(&mut m, T0, 2);
    assert!(matches!(
        ok(
            &mut m,
            T0 + 1,
            Confirm,
            &["s", "bob@x.com", "CONTACT", "Bob+Shoes@x.com"]
        ),
        Reply::Confirm(ConfirmReply::Confirmed { .. })
    ));
    assert!(matches!(
        ok(&mut m, T0 + 2, Confirm, &["s", "ann@x.com", "1999"]),
        Reply::Confirm(ConfirmReply::Confirmed { .. })
    ));
    assert!(matches!(
        ok(
            &mut m,
            T0 + 3,
            Confirm,
            &["s", "bob@x.com", "contact", "other@x.com"]
        ),
        Reply::Confirm(ConfirmReply::Purchased { .. })
    ));
    let outbox: Vec<_> = m
        .sale("s")
        .expect("sale")
        .outbox
        .values()
        .cloned()
        .collect();
    assert_eq!(outbox[0].contact.as_deref(), Some("Bob+Shoes@x.com"));
    assert_eq!(outbox[0].contact(), "Bob+Shoes@x.com");
    assert_eq!(outbox[0].user_id, "bob@x.com");
    assert_eq!(outbox[1].contact, None);
    assert_eq!(outbox[1].contact(), "ann@x.com");
    assert_eq!(outbox.len(), 2);
}

/// The seed the lottery tests draw with.
fn seed() -> String {
    "5eed".repeat(16)
}

/// Sale "s" (3 units, from T0 for 60 s) with a pre-queue window of 10 s.
fn lottery_sale(stock: u64) -> Model {
    let seed = seed();
    sale(stock, &["PREQUEUE", "10000", "SEED", &seed])
}

fn draw_of(m: &mut Model, now: u64) -> DrawReply {
    match ok(m, now, Draw, &["s", "0", "1000"]) {
        Reply::Draw(reply) => reply,
        other => panic!("unexpected {other:?}"),
    }
}

fn registered(count: u64) -> Reply {
    Reply::Enqueue(EnqueueReply::Registered { count })
}

#[test]
fn the_prequeue_window_registers_and_hides_the_seed() {
    let mut m = lottery_sale(3);
    let opens = T0 - 10_000;
    assert_eq!(
        ok(&mut m, opens - 1, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::NotStarted {
            ms_until_start: 10_001
        })
    );
    assert_eq!(ok(&mut m, opens, Enqueue, &["s", "ann"]), registered(1));
    // Asking again answers the same and changes nothing.
    let before = m.sale("s").cloned();
    assert_eq!(ok(&mut m, opens + 5, Enqueue, &["s", "ann"]), registered(1));
    assert_eq!(m.sale("s").cloned(), before);
    assert_eq!(ok(&mut m, T0 - 1, Enqueue, &["s", "bob"]), registered(2));
    assert_eq!(user_status(&mut m, T0 - 1, "ann"), UserStatus::Registered);
    assert_eq!(user_status(&mut m, T0 - 1, "cat"), UserStatus::None);
    // Before the draw only the commitment is published; STATUS at the start
    // still does not draw (it writes nothing).
    let pending = DrawReply::Pending {
        prequeue_ms: 10_000,
        registered: 2,
        commitment: crate::lottery::sha1_hex(seed().as_bytes()),
    };
    assert_eq!(draw_of(&mut m, T0 - 1), pending);
    assert_eq!(user_status(&mut m, T0 + 5, "ann"), UserStatus::Registered);
    assert_eq!(draw_of(&mut m, T0 + 5), pending);
    assert!(m.sale("s").is_some_and(|d| d.queue.is_empty()));
}

#[test]
fn the_draw_orders_registrants_as_anyone_can_recompute_and_latecomers_queue_behind() {
    let mut m = lottery_sale(3);
    let users: Vec<String> = (0..20).map(|i| format!("u{i}@x.io")).collect();
    for (i, user) in users.iter().enumerate() {
        assert_eq!(
            ok(&mut m, T0 - 9_000 + i as u64, Enqueue, &["s", user]),
            registered(i as u64 + 1)
        );
    }
    // The first command at the start draws: here a latecomer's ENQUEUE.
    assert_eq!(
        ok(&mut m, T0 + 3, Enqueue, &["s", "late@x.io"]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 21,
            length: 21
        })
    );
    let DrawReply::Drawn {
        prequeue_ms,
        drawn_at,
        total,
        seed: revealed,
        entries,
    } = draw_of(&mut m, T0 + 4)
    else {
        panic!("not drawn");
    };
    assert_eq!((prequeue_ms, drawn_at, total), (10_000, T0 + 3, 20));
    assert_eq!(revealed, seed());
    // Recomputed from the revealed seed and the registrants' SHA1 alone.
    let hashes = users.iter().map(|u| crate::lottery::sha1_hex(u.as_bytes()));
    assert_eq!(
        entries,
        crate::lottery::order_entries(&revealed, hashes.collect::<Vec<_>>())
    );
    // The queue is the draw, then the latecomer.
    let queue = m
        .sale("s")
        .map(SaleData::queue_in_order)
        .unwrap_or_default();
    let queued: Vec<String> = queue.iter().map(|u| crate::lottery::entry(u)).collect();
    assert_eq!(&queued[..20], &entries[..]);
    assert_eq!(queue[20], "late@x.io");
    assert!(m.sale("s").is_some_and(|d| d.registered.is_empty()));
    // A registrant asking again is told their place; admission follows it.
    let first = queue[0].clone();
    assert_eq!(
        ok(&mut m, T0 + 5, Enqueue, &["s", &first]),
        Reply::Enqueue(EnqueueReply::Queued {
            position: 1,
            length: 21
        })
    );
    assert_eq!(granted(&mut m, T0 + 6, 2), queue[..2].to_vec());
    // A page of the draw.
    assert_eq!(
        ok(&mut m, T0 + 7, Draw, &["s", "18", "5"]),
        Reply::Draw(DrawReply::Drawn {
            prequeue_ms: 10_000,
            drawn_at: T0 + 3,
            total: 20,
            seed: seed(),
            entries: entries[18..].to_vec(),
        })
    );
}

#[test]
fn grant_draws_at_the_start_and_only_once() {
    let mut m = lottery_sale(3);
    for user in ["a", "b", "c", "d"] {
        ok(&mut m, T0 - 1, Enqueue, &["s", user]);
    }
    assert_eq!(
        ok(&mut m, T0 - 1, Grant, &["s", "10"]),
        Reply::Grant(GrantReply::NotStarted { ms_until_start: 1 })
    );
    let order: Vec<String> = crate::lottery::draw(&seed(), ["a", "b", "c", "d"].map(String::from))
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    assert_eq!(granted(&mut m, T0, 2), order[..2].to_vec());
    assert_eq!(granted(&mut m, T0 + 1000, 10), order[2..].to_vec());
    let drawn_once = m.sale("s").and_then(|d| d.sale.clone());
    assert_eq!(drawn_once.as_ref().and_then(|r| r.drawn_at), Some(T0));
    assert_eq!(m.sale("s").map(|d| d.draw.len()), Some(4));
}

#[test]
fn lottery_settings_are_locked_once_the_window_opens() {
    let mut m = lottery_sale(3);
    let other = "ab".repeat(32);
    // Before the window: both may change.
    assert_eq!(
        setup_at(&mut m, T0 - 20_000, &["PREQUEUE", "15000", "SEED", &other]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    // Inside it: a change is LOCKED and changes nothing; the same values and
    // other attributes are fine.
    ok(&mut m, T0 - 14_000, Enqueue, &["s", "ann"]);
    let before = m.sale("s").cloned();
    let locked = Err(
        "LOCKED the pre-queue window has opened or the sale has started; PREQUEUE and SEED are fixed"
            .to_string(),
    );
    let s = seed();
    for extra in [
        &["SEED", s.as_str()][..],
        &["PREQUEUE", "1000"],
        &["PREQUEUE", "0"],
    ] {
        assert_eq!(setup_at(&mut m, T0 - 13_000, extra), locked, "{extra:?}");
        assert_eq!(m.sale("s").cloned(), before);
    }
    assert_eq!(
        setup_at(&mut m, T0 - 13_000, &["PREQUEUE", "15000", "SEED", &other]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    assert_eq!(
        setup_at(&mut m, T0 - 13_000, &[]),
        Ok(Reply::Setup(SetupReply::Updated))
    );
    assert_eq!(
        user_status(&mut m, T0 - 13_000, "ann"),
        UserStatus::Registered
    );
    // A sale without a window gets none once it has started.
    let mut plain = sale(3, &[]);
    assert_eq!(
        call(
            &mut plain,
            T0,
            Setup,
            &[
                "s",
                "3",
                &T0.to_string(),
                &(T0 + 60_000).to_string(),
                "1000",
                "PREQUEUE",
                "5",
                "SEED",
                &other
            ]
        ),
        locked
    );
    // A window needs a seed.
    let mut unseeded = sale(3, &[]);
    assert_eq!(
        setup_at(&mut unseeded, T0 - 20_000, &["PREQUEUE", "5000"]),
        Err("ERR PREQUEUE needs a SEED".into())
    );
}

#[test]
fn a_sale_without_a_window_is_unchanged_and_a_registrant_may_leave() {
    let mut plain = sale(3, &[]);
    assert_eq!(draw_of(&mut plain, T0), DrawReply::None);
    assert_eq!(
        ok(&mut plain, T0 - 1, Enqueue, &["s", "ann"]),
        Reply::Enqueue(EnqueueReply::NotStarted { ms_until_start: 1 })
    );
    let mut m = lottery_sale(3);
    ok(&mut m, T0 - 10, Enqueue, &["s", "ann"]);
    ok(&mut m, T0 - 10, Enqueue, &["s", "bob"]);
    assert_eq!(
        ok(&mut m, T0 - 5, Release, &["s", "ann"]),
        Reply::Release(ReleaseReply::LeftQueue)
    );
    assert_eq!(user_status(&mut m, T0 - 5, "ann"), UserStatus::None);
    assert_eq!(granted(&mut m, T0, 10), vec!["bob"]);
    // Registrations stop at MAXQUEUE.
    let seed = seed();
    let mut small = sale(3, &["MAXQUEUE", "1", "PREQUEUE", "100", "SEED", &seed]);
    assert_eq!(ok(&mut small, T0 - 1, Enqueue, &["s", "a"]), registered(1));
    assert_eq!(
        ok(&mut small, T0 - 1, Enqueue, &["s", "b"]),
        Reply::Enqueue(EnqueueReply::QueueFull { length: 1 })
    );
}

/// Not a timed assertion: prints what drawing 10,000 registrants costs the
/// model (the servers' figures are in the conformance test's output).
#[test]
fn drawing_ten_thousand_registrants() {
    let mut m = lottery_sale(3);
    for i in 0..10_000 {
        ok(
            &mut m,
            T0 - 1,
            Enqueue,
            &["s", &format!("user{i}@example.com")],
        );
    }
    let started = std::time::Instant::now();
    granted(&mut m, T0, 1);
    println!("model: drew 10000 registrants in {:?}", started.elapsed());
    assert_eq!(m.sale("s").map(|d| d.queue.len()), Some(9_999));
}
