//! The sale state machine. Each function reads everything it needs, decides,
//! and only then writes; `now` is the server clock in ms.
//!
//! Invariants every command keeps (checked by the tests):
//! - `sold + live holds <= stock`;
//! - a user is in at most one of: queue, live hold, orders;
//! - the queue is ordered by ticket, tickets only grow (FIFO);
//! - `sold` is the number of orders, and `order_seq` is at least every
//!   order's number;
//! - every order CONFIRM made is in `orders` and in the outbox exactly once
//!   (orders RESTORE recorded come from the durable record and are not).

use std::collections::HashSet;

use crate::command::{Command, LotteryParams, RestoredOrder, SetupParams, MAX_ORDER_NUMBER};
use crate::error::{message, ErrorCode};
use crate::reply::*;
use crate::store::{OutboxEntry, SaleRecord, Store};
use crate::EngineError;
use crate::{keys, lottery};

/// A hold's worth of rate credit; credit is kept in thousandths of a hold so
/// that one ms at RATE r/s adds exactly `r` units.
pub const CREDIT_PER_HOLD: u64 = 1000;

/// Order numbers per ms of the clock: CONFIRM takes at least
/// `now × ORDERS_PER_MS`, so a primary that takes over after a failover —
/// its clock later, its copy of the sale possibly missing the last orders —
/// issues numbers above any the lost writes gave out, as long as those
/// averaged fewer than this many per ms (see docs/commands.md).
pub const ORDERS_PER_MS: u64 = 100;
/// The last ms of the clock with an order number of its own.
pub const MAX_ORDER_CLOCK_MS: u64 = MAX_ORDER_NUMBER / ORDERS_PER_MS;

/// The number of the next order of a sale whose last order number is
/// `order_seq`: above it, and at least `now × ORDERS_PER_MS`. `None` when
/// the clock is past [`MAX_ORDER_CLOCK_MS`] or `order_seq` is already
/// [`MAX_ORDER_NUMBER`].
pub fn next_order_number(order_seq: u64, now: u64) -> Option<u64> {
    if now > MAX_ORDER_CLOCK_MS || order_seq >= MAX_ORDER_NUMBER {
        return None;
    }
    Some((order_seq + 1).max(now * ORDERS_PER_MS))
}

pub fn execute<S: Store>(store: &mut S, now: u64, command: &Command) -> Result<Reply, EngineError> {
    Ok(match command {
        Command::Setup {
            sale,
            params,
            lottery,
            paused,
        } => Reply::Setup(setup(store, now, sale, params, lottery, *paused)?),
        Command::Enqueue { user, .. } => Reply::Enqueue(enqueue(store, now, user)?),
        Command::Grant { max, .. } => Reply::Grant(grant(store, now, *max)?),
        Command::Confirm {
            sale,
            user,
            amount,
            contact,
        } => Reply::Confirm(confirm(
            store,
            now,
            sale,
            user,
            *amount,
            contact.as_deref(),
        )?),
        Command::Release { user, .. } => Reply::Release(release(store, user)?),
        Command::Status { user, .. } => Reply::Status(status(store, now, user.as_deref())?),
        Command::Restore { orders, .. } => Reply::Restore(restore(store, now, orders)?),
        Command::Pause { .. } => Reply::Pause(pause(store, now)?),
        Command::Resume { .. } => Reply::Resume(resume(store)?),
        Command::Draw { offset, count, .. } => Reply::Draw(draw(store, *offset, *count)?),
    })
}

fn existing_sale<S: Store>(store: &mut S) -> Result<SaleRecord, EngineError> {
    store.sale()?.ok_or_else(EngineError::no_sale)
}

pub fn setup<S: Store>(
    store: &mut S,
    now: u64,
    sale: &str,
    params: &SetupParams,
    lottery: &LotteryParams,
    paused: Option<bool>,
) -> Result<SetupReply, EngineError> {
    let existing = store.sale()?;
    let kept_seed = store.seed()?;
    let kept = match &existing {
        Some(current) => current.clone(),
        // A new sale starts with an empty rate bucket that fills from now,
        // and takes over the orders its keys hold already (RESTORE records
        // them before the sale exists).
        None => {
            let sold = store.orders_count()?;
            let mut order_seq = 0;
            if sold > 0 {
                for order_id in store.order_ids()? {
                    if let Some(n) = crate::command::restorable_order_number(sale, &order_id) {
                        order_seq = order_seq.max(n);
                    }
                }
            }
            SaleRecord {
                sold,
                order_seq,
                rate_at: now,
                ..SaleRecord::default()
            }
        }
    };
    let held = store.live_holds(now)?;
    let committed = kept.sold + held;
    if params.stock < committed {
        return Err(EngineError::new(
            ErrorCode::Conflict,
            message::stock_below_committed(committed),
        ));
    }
    // A holder pays the price they were admitted at: it may change only
    // while nobody holds a unit (giving an unpriced sale a price changes
    // nothing anyone was shown by the engine).
    let price = params.price.or(kept.price);
    if kept.price.is_some() && price != kept.price && held > 0 {
        return Err(EngineError::new(
            ErrorCode::Locked,
            message::price_locked(held),
        ));
    }
    // The pre-queue lottery: PREQUEUE 0 removes the window; omitted, both
    // are kept.
    let prequeue_ms = match lottery.prequeue_ms {
        Some(0) => None,
        Some(ms) => Some(ms),
        None => kept.prequeue_ms,
    };
    let seed = lottery.seed.clone().or_else(|| kept_seed.clone());
    if prequeue_ms.is_some() && seed.is_none() {
        return Err(EngineError::err(message::PREQUEUE_NEEDS_SEED));
    }
    // Once the window has opened (or the sale started, or the draw ran),
    // the commitment already published must stay the seed drawn with, and
    // registrations must not appear or vanish with the window.
    if existing.is_some() && (prequeue_ms != kept.prequeue_ms || seed != kept_seed) {
        let opened = now >= kept.window_opens_at().unwrap_or(kept.starts_at);
        if opened || kept.drawn_at.is_some() {
            return Err(EngineError::new(ErrorCode::Locked, message::LOTTERY_LOCKED));
        }
    }
    // The pause mark, in the same write as everything else: `PAUSED 1`
    // keeps an existing mark's time (a repeat changes nothing) and sets
    // one at `now` otherwise, whatever the sale's state — STATUS lets
    // upcoming, sold out and ended win over it, as for a sale paused while
    // live, and a sale set up again after a loss must come back as it was
    // whatever happened to it since. `PAUSED 0` clears it, as RESUME.
    let paused_at = match paused {
        None => kept.paused_at,
        Some(true) => kept.paused_at.or(Some(now)),
        Some(false) => None,
    };
    if seed != kept_seed {
        if let Some(seed) = &seed {
            store.write_seed(seed)?;
        }
    }
    store.write_sale(&SaleRecord {
        stock: params.stock,
        starts_at: params.starts_at,
        ends_at: params.ends_at,
        hold_ttl_ms: params.hold_ttl_ms,
        rate: params.rate,
        max_queue: params.max_queue,
        price,
        prequeue_ms,
        paused_at,
        ..kept
    })?;
    Ok(if existing.is_some() {
        SetupReply::Updated
    } else {
        SetupReply::Created
    })
}

pub fn enqueue<S: Store>(store: &mut S, now: u64, user: &str) -> Result<EnqueueReply, EngineError> {
    let mut sale = existing_sale(store)?;
    if let Some(order_id) = store.order_of(user)? {
        return Ok(EnqueueReply::Purchased { order_id });
    }
    if now >= sale.ends_at {
        return Ok(EnqueueReply::Ended);
    }
    let hold = store.hold_expiry(user)?;
    if let Some(expires_at) = hold {
        if expires_at > now {
            return Ok(EnqueueReply::Holding {
                ms_left: expires_at - now,
            });
        }
    }
    if now < sale.starts_at {
        if sale.window_opens_at().is_some_and(|opens| now >= opens) {
            return register(store, &sale, now, user);
        }
        return Ok(EnqueueReply::NotStarted {
            ms_until_start: sale.starts_at - now,
        });
    }
    if sale.draw_pending() {
        sale = run_draw(store, sale, now)?;
    }
    if sale.sold >= sale.stock {
        return Ok(EnqueueReply::SoldOut);
    }
    let length = store.queue_len()?;
    if let Some(rank) = store.queue_rank(user)? {
        return Ok(EnqueueReply::Queued {
            position: rank + 1,
            length,
        });
    }
    // Those queued keep their place (above); nobody new joins.
    if sale.paused_at.is_some() {
        return Ok(EnqueueReply::Paused);
    }
    if sale.max_queue > 0 && length >= sale.max_queue {
        return Ok(EnqueueReply::QueueFull { length });
    }
    let lapsed = store.is_lapsed(user)?;
    // Tickets grow with arrival, so the queue (ordered by ticket) is FIFO.
    let ticket = store.queue_last_ticket()?.map_or(1, |last| last + 1);
    // A user whose hold lapsed may queue again, at the back.
    if hold.is_some() {
        store.remove_hold(user)?;
    }
    if lapsed {
        store.remove_lapsed(user)?;
    }
    store.queue_push(user, ticket)?;
    Ok(EnqueueReply::Queued {
        position: length + 1,
        length: length + 1,
    })
}

/// ENQUEUE in the pre-queue window: the user is registered for the draw
/// (once; asking again answers the same), unless the sale is sold out or
/// the registrations already fill MAXQUEUE.
fn register<S: Store>(
    store: &mut S,
    sale: &SaleRecord,
    now: u64,
    user: &str,
) -> Result<EnqueueReply, EngineError> {
    if store.is_registered(user)? {
        return Ok(EnqueueReply::Registered {
            count: store.registered_count()?,
        });
    }
    if sale.sold >= sale.stock {
        return Ok(EnqueueReply::SoldOut);
    }
    let count = store.registered_count()?;
    if sale.max_queue > 0 && count >= sale.max_queue {
        return Ok(EnqueueReply::QueueFull { length: count });
    }
    store.register(user, now)?;
    Ok(EnqueueReply::Registered { count: count + 1 })
}

/// The pre-queue draw, run once by the first ENQUEUE or GRANT at or after
/// the start: the registered users get queue tickets in [`lottery::draw`]
/// order, ahead of anyone who arrives later; the order is published as
/// SHA1(user) hex in the draw list, and the record notes `drawn_at`, which
/// reveals the seed (DRAW). Reads everything first, then writes. Costs one
/// sort of the registrations and one SHA1 pair per registrant.
fn run_draw<S: Store>(
    store: &mut S,
    sale: SaleRecord,
    now: u64,
) -> Result<SaleRecord, EngineError> {
    store.check_key_types()?;
    let seed = store
        .seed()?
        .ok_or_else(|| EngineError::err(message::SEED_MISSING))?;
    let users = store.registered_users()?;
    let mut ticket = store.queue_last_ticket()?.unwrap_or(0);
    let drawn = lottery::draw(&seed, users);
    let mut entries = Vec::with_capacity(drawn.len());
    for (user, entry) in drawn {
        ticket += 1;
        store.queue_push(&user, ticket)?;
        entries.push(entry);
    }
    store.draw_push(&entries)?;
    store.clear_registered()?;
    let sale = SaleRecord {
        drawn_at: Some(now),
        ..sale
    };
    store.write_sale(&sale)?;
    Ok(sale)
}

/// Frees lapsed holds, then admits up to `max` users from the head of the
/// queue — no more than the units neither sold nor held, and no faster than
/// RATE. At the start of a sale with a pre-queue window, draws first.
pub fn grant<S: Store>(store: &mut S, now: u64, max: u64) -> Result<GrantReply, EngineError> {
    let mut sale = existing_sale(store)?;
    store.check_key_types()?;
    if now >= sale.starts_at && sale.draw_pending() {
        sale = run_draw(store, sale, now)?;
    }
    let expired = store.expired_holds(now)?;
    let queued = store.queue_len()?;
    let outcome = if now >= sale.ends_at {
        GrantOutcome::Ended
    } else if now < sale.starts_at {
        GrantOutcome::NotStarted
    } else if sale.paused_at.is_some() {
        // Nobody is admitted and the rate bucket is left alone: on resume
        // it holds at most a second's worth, as always.
        GrantOutcome::Paused
    } else {
        let held = store.live_holds(now)?;
        let available = sale.stock.saturating_sub(sale.sold + held);
        let (allowance, credit) = rate_allowance(&sale, now);
        let admit = max.min(queued).min(available).min(allowance);
        GrantOutcome::Admit { admit, credit }
    };

    for user in &expired {
        store.remove_hold(user)?;
        store.add_lapsed(user, now)?;
    }
    let released = expired.len() as u64;
    Ok(match outcome {
        GrantOutcome::Ended => {
            if queued > 0 {
                store.queue_clear()?;
            }
            GrantReply::Ended { cleared: queued }
        }
        GrantOutcome::NotStarted => GrantReply::NotStarted {
            ms_until_start: sale.starts_at - now,
        },
        GrantOutcome::Paused => GrantReply::Paused { released },
        GrantOutcome::Admit { admit, credit } => {
            let users = if admit > 0 {
                store.queue_pop(admit)?
            } else {
                Vec::new()
            };
            let expires_at = now + sale.hold_ttl_ms;
            for user in &users {
                store.add_hold(user, expires_at)?;
            }
            if sale.rate > 0 {
                let spent = users.len() as u64 * CREDIT_PER_HOLD;
                store.write_sale(&SaleRecord {
                    rate_credit: credit.saturating_sub(spent),
                    rate_at: now.max(sale.rate_at),
                    ..sale
                })?;
            }
            GrantReply::Granted { released, users }
        }
    })
}

enum GrantOutcome {
    Ended,
    NotStarted,
    Paused,
    Admit { admit: u64, credit: u64 },
}

/// Token bucket: RATE holds per second, a burst of at most one second's
/// worth. Returns (holds allowed now, credit after topping up).
fn rate_allowance(sale: &SaleRecord, now: u64) -> (u64, u64) {
    if sale.rate == 0 {
        return (u64::MAX, 0);
    }
    let capacity = sale.rate * CREDIT_PER_HOLD;
    // At most a second counts, so the product stays far below 2^53.
    let elapsed = now.saturating_sub(sale.rate_at).min(1000);
    let credit = (sale.rate_credit + elapsed * sale.rate).min(capacity);
    (credit / CREDIT_PER_HOLD, credit)
}

pub fn confirm<S: Store>(
    store: &mut S,
    now: u64,
    sale_id: &str,
    user: &str,
    amount: Option<u64>,
    contact: Option<&str>,
) -> Result<ConfirmReply, EngineError> {
    let sale = existing_sale(store)?;
    if let Some(order_id) = store.order_of(user)? {
        return Ok(ConfirmReply::Purchased { order_id });
    }
    if now >= sale.ends_at {
        return Ok(ConfirmReply::Ended);
    }
    match store.hold_expiry(user)? {
        Some(expires_at) if expires_at > now => {}
        Some(_) => return Ok(ConfirmReply::Expired),
        None if store.is_lapsed(user)? => return Ok(ConfirmReply::Expired),
        None => return Ok(ConfirmReply::NoHold),
    }
    if sale.sold >= sale.stock {
        return Ok(ConfirmReply::SoldOut);
    }
    let amount = match (amount, sale.price) {
        (Some(amount), Some(price)) if amount != price => {
            return Ok(ConfirmReply::AmountMismatch { price })
        }
        (Some(amount), _) => amount,
        (None, Some(price)) => price,
        (None, None) => return Err(EngineError::new(ErrorCode::NoPrice, message::NO_PRICE)),
    };
    let n = next_order_number(sale.order_seq, now)
        .ok_or_else(|| EngineError::err(message::ORDER_NUMBERS_EXHAUSTED))?;
    store.check_key_types()?;

    let order_id = keys::order_id(sale_id, n);
    // The outbox first: XADD is the one write that can still be refused (a
    // hand-made entry with a higher id), and then nothing else is written.
    store.append_outbox(
        n,
        &OutboxEntry {
            order_id: order_id.clone(),
            sale_id: sale_id.to_string(),
            user_id: user.to_string(),
            amount,
            confirmed_at: now,
            contact: contact.map(str::to_string),
        },
    )?;
    store.write_sale(&SaleRecord {
        sold: sale.sold + 1,
        order_seq: n,
        ..sale
    })?;
    store.record_order(user, &order_id)?;
    store.remove_hold(user)?;
    Ok(ConfirmReply::Confirmed { order_id, amount })
}

/// Records orders the durable record has (an order id per user), for a
/// sale Redis lost or rolled back. A user with another order, or an order
/// id another user has, refuses the whole call. Into an existing sale: each
/// new order counts as sold and raises `order_seq` to its number. Without the sale
/// record: only the orders are recorded, for the SETUP that creates the
/// sale to take over. Either way a restored user leaves the queue, their
/// hold and the lapsed set, and nothing is added to the outbox (the durable
/// record has these orders already).
pub fn restore<S: Store>(
    store: &mut S,
    now: u64,
    orders: &[RestoredOrder],
) -> Result<RestoreReply, EngineError> {
    let sale = store.sale()?;
    store.check_key_types()?;
    struct New<'a> {
        order: &'a RestoredOrder,
        queued: bool,
        hold: Option<u64>,
        lapsed: bool,
        registered: bool,
    }
    let recorded = store.orders_count()?;
    // The sale's order ids, read once if an order turns out to be new.
    let mut taken: Option<HashSet<String>> = None;
    let mut new = Vec::new();
    let mut highest = 0;
    for order in orders {
        highest = highest.max(order.number);
        match store.order_of(&order.user)? {
            Some(existing) if existing == order.order_id => continue,
            Some(existing) => {
                return Err(EngineError::new(
                    ErrorCode::Conflict,
                    message::has_other_order(&order.user, existing),
                ))
            }
            None => {}
        }
        if recorded > 0 {
            let ids = match &mut taken {
                Some(ids) => ids,
                None => taken.insert(store.order_ids()?.into_iter().collect()),
            };
            if ids.contains(&order.order_id) {
                return Err(EngineError::new(
                    ErrorCode::Conflict,
                    message::order_id_taken(&order.order_id),
                ));
            }
        }
        new.push(New {
            order,
            queued: store.queue_rank(&order.user)?.is_some(),
            hold: store.hold_expiry(&order.user)?,
            lapsed: store.is_lapsed(&order.user)?,
            registered: store.is_registered(&order.user)?,
        });
    }
    let added = new.len() as u64;
    if let Some(record) = &sale {
        // Restored users give up their holds: only the others' still count.
        let freed = new
            .iter()
            .filter(|n| n.hold.is_some_and(|expiry| expiry > now))
            .count() as u64;
        let committed = record.sold + added + store.live_holds(now)? - freed;
        if committed > record.stock {
            return Err(EngineError::new(
                ErrorCode::Conflict,
                message::orders_exceed_stock(committed),
            ));
        }
    }

    for n in &new {
        let user = &n.order.user;
        if n.queued {
            store.queue_remove(user)?;
        }
        if n.hold.is_some() {
            store.remove_hold(user)?;
        }
        if n.lapsed {
            store.remove_lapsed(user)?;
        }
        if n.registered {
            store.unregister(user)?;
        }
        store.record_order(user, &n.order.order_id)?;
    }
    if let Some(record) = sale {
        let updated = SaleRecord {
            sold: record.sold + added,
            order_seq: record.order_seq.max(highest),
            ..record.clone()
        };
        if updated != record {
            store.write_sale(&updated)?;
        }
    }
    Ok(RestoreReply::Restored {
        added,
        orders: recorded + added,
    })
}

pub fn release<S: Store>(store: &mut S, user: &str) -> Result<ReleaseReply, EngineError> {
    let sale = existing_sale(store)?;
    if let Some(order_id) = store.order_of(user)? {
        return Ok(ReleaseReply::Purchased { order_id });
    }
    if store.queue_rank(user)?.is_some() {
        store.queue_remove(user)?;
        return Ok(ReleaseReply::LeftQueue);
    }
    if store.hold_expiry(user)?.is_some() {
        store.remove_hold(user)?;
        return Ok(ReleaseReply::Released);
    }
    // A registration before the draw is a place in the line too.
    if sale.draw_pending() && store.is_registered(user)? {
        store.unregister(user)?;
        return Ok(ReleaseReply::LeftQueue);
    }
    Ok(ReleaseReply::None)
}

/// The sale's state at `now`, as STATUS reports it: the first that
/// applies of upcoming, sold out, ended, paused, active.
fn sale_state(sale: &SaleRecord, now: u64) -> SaleState {
    if now < sale.starts_at {
        SaleState::Upcoming
    } else if sale.sold >= sale.stock {
        SaleState::SoldOut
    } else if now >= sale.ends_at {
        SaleState::Ended
    } else if sale.paused_at.is_some() {
        SaleState::Paused
    } else {
        SaleState::Active
    }
}

/// Stops a live sale: nobody new queues (ENQUEUE answers `paused`) and
/// GRANT admits nobody; the queue keeps its order, holds run on and can be
/// confirmed or released. Only a live sale — started, not over, not sold
/// out — can be paused; pausing a paused one changes nothing.
pub fn pause<S: Store>(store: &mut S, now: u64) -> Result<PauseReply, EngineError> {
    let sale = existing_sale(store)?;
    match sale_state(&sale, now) {
        SaleState::Paused => Ok(PauseReply::AlreadyPaused),
        SaleState::Active => {
            store.write_sale(&SaleRecord {
                paused_at: Some(now),
                ..sale
            })?;
            Ok(PauseReply::Paused)
        }
        state @ (SaleState::Upcoming | SaleState::SoldOut | SaleState::Ended) => Err(
            EngineError::new(ErrorCode::Conflict, message::not_live(state.as_str())),
        ),
    }
}

/// Lets a paused sale run again, exactly where it stopped: the same queue,
/// the same window. Works in any state, so a sale that ended or sold out
/// while paused can still be unmarked.
pub fn resume<S: Store>(store: &mut S) -> Result<ResumeReply, EngineError> {
    let sale = existing_sale(store)?;
    if sale.paused_at.is_none() {
        return Ok(ResumeReply::NotPaused);
    }
    store.write_sale(&SaleRecord {
        paused_at: None,
        ..sale
    })?;
    Ok(ResumeReply::Resumed)
}

pub fn status<S: Store>(
    store: &mut S,
    now: u64,
    user: Option<&str>,
) -> Result<StatusReply, EngineError> {
    let sale = existing_sale(store)?;
    let held = store.live_holds(now)?;
    let queued = store.queue_len()?;
    let state = sale_state(&sale, now);
    let user = match user {
        None => None,
        Some(user) => Some(if let Some(order_id) = store.order_of(user)? {
            UserStatus::Purchased { order_id }
        } else {
            match store.hold_expiry(user)? {
                Some(expires_at) if expires_at > now => UserStatus::Holding {
                    ms_left: expires_at - now,
                },
                Some(_) => UserStatus::Expired,
                None if store.is_lapsed(user)? => UserStatus::Expired,
                None => match store.queue_rank(user)? {
                    Some(rank) => UserStatus::Queued { position: rank + 1 },
                    // Registered, and the draw has not run (STATUS never
                    // draws: it writes nothing).
                    None if sale.draw_pending() && store.is_registered(user)? => {
                        UserStatus::Registered
                    }
                    None => UserStatus::None,
                },
            }
        }),
    };
    Ok(StatusReply {
        sale: SaleStatus {
            state,
            stock: sale.stock,
            sold: sale.sold,
            held,
            queued,
            starts_at: sale.starts_at,
            ends_at: sale.ends_at,
            hold_ttl_ms: sale.hold_ttl_ms,
            rate: sale.rate,
            max_queue: sale.max_queue,
            now,
        },
        user,
    })
}

/// What the lottery publishes: before the draw, the registrations so far
/// and the commitment SHA1(seed); after it, the seed and a page of the draw.
pub fn draw<S: Store>(store: &mut S, offset: u64, count: u64) -> Result<DrawReply, EngineError> {
    let sale = existing_sale(store)?;
    let Some(prequeue_ms) = sale.prequeue_ms.filter(|&ms| ms > 0) else {
        return Ok(DrawReply::None);
    };
    let seed = store
        .seed()?
        .ok_or_else(|| EngineError::err(message::SEED_MISSING))?;
    Ok(match sale.drawn_at {
        None => DrawReply::Pending {
            prequeue_ms,
            registered: store.registered_count()?,
            commitment: lottery::commitment(&seed),
        },
        Some(drawn_at) => DrawReply::Drawn {
            prequeue_ms,
            drawn_at,
            total: store.draw_len()?,
            seed,
            entries: store.draw_range(offset, count)?,
        },
    })
}
