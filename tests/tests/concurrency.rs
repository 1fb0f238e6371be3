//! Many clients race ENQUEUE / GRANT / CONFIRM / RELEASE on one sale over
//! separate connections, with the real clock and holds short enough to lapse.
//! Afterwards: never oversold, one order per user, every order in the outbox
//! exactly once, and admission in arrival order.
//!
//! `FLASHSALE_RACE_USERS` sets the number of users (default 400).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashsale::{ConfirmReply, EnqueueReply, GrantReply, SetupParams, UserStatus};
use tests::state::read_sale;
use tests::{server_time_ms, Backend, EngineServer};

const BUYER_TASKS: usize = 8;
const GRANTERS: usize = 3;
const STOCK: u64 = 80;

/// What a user does once admitted, decided by its number so runs repeat.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Intent {
    Buy,
    Release,
    Abandon,
    LeaveQueue,
}

fn intent(i: usize) -> Intent {
    match i % 10 {
        0 => Intent::Release,
        1 => Intent::Abandon,
        2 => Intent::LeaveQueue,
        _ => Intent::Buy,
    }
}

async fn racing_clients_keep_every_invariant(backend: Backend) {
    let users: usize = std::env::var("FLASHSALE_RACE_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let engine = EngineServer::start(backend, false).await;
    let mut admin = engine.client().await;
    let mut conn = engine.server.connection().await;
    let now = server_time_ms(&mut conn).await;
    let params = SetupParams {
        stock: STOCK,
        starts_at: now,
        ends_at: now + 600_000,
        hold_ttl_ms: 250,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    admin.setup("race", params).await.expect("setup");
    let stop = Arc::new(AtomicBool::new(false));

    // Granters: each records its batches in the order it got them.
    let mut granters = Vec::new();
    for g in 0..GRANTERS {
        let mut client = engine.client().await;
        let stop = stop.clone();
        granters.push(tokio::spawn(async move {
            let mut batches: Vec<Vec<String>> = Vec::new();
            let mut max = 1 + g as u64;
            while !stop.load(Ordering::Relaxed) {
                match client.grant("race", max).await.expect("grant") {
                    GrantReply::Granted { users, .. } if !users.is_empty() => batches.push(users),
                    _ => tokio::time::sleep(Duration::from_millis(1)).await,
                }
                max = max % 4 + 1;
            }
            batches
        }));
    }

    // Buyers: each task enqueues its users one after another (so their
    // arrival order is known), then acts on whatever they are granted.
    let mut buyers = Vec::new();
    for t in 0..BUYER_TASKS {
        let mut client = engine.client().await;
        let mine: Vec<(usize, String)> = (t..users)
            .step_by(BUYER_TASKS)
            .map(|i| (i, format!("user{i}@race.test")))
            .collect();
        buyers.push(tokio::spawn(async move {
            let mut arrived = Vec::new();
            let mut left = BTreeSet::new();
            for (i, user) in &mine {
                match client.enqueue("race", user).await.expect("enqueue") {
                    EnqueueReply::Queued { .. } => arrived.push(user.clone()),
                    EnqueueReply::SoldOut => break,
                    other => panic!("{user}: {other:?}"),
                }
                if intent(*i) == Intent::LeaveQueue
                    && client.release("race", user).await.expect("release")
                        == flashsale::ReleaseReply::LeftQueue
                {
                    left.insert(user.clone());
                }
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut done: BTreeSet<String> = left.clone();
            let mut confirmed = BTreeMap::new();
            while done.len() < arrived.len() && Instant::now() < deadline {
                let mut sold_out = false;
                for (i, user) in &mine {
                    if done.contains(user) || !arrived.contains(user) {
                        continue;
                    }
                    let status = client.status("race", Some(user)).await.expect("status");
                    sold_out = status.sale.sold >= STOCK;
                    match status.user {
                        Some(UserStatus::Holding { .. }) => match intent(*i) {
                            Intent::Buy => {
                                match client.confirm("race", user, 100).await.expect("confirm") {
                                    ConfirmReply::Confirmed { order_id, .. } => {
                                        confirmed.insert(user.clone(), order_id);
                                    }
                                    ConfirmReply::Expired => {}
                                    other => panic!("{user}: {other:?}"),
                                }
                                done.insert(user.clone());
                            }
                            Intent::Release => {
                                client.release("race", user).await.expect("release");
                                done.insert(user.clone());
                            }
                            Intent::Abandon | Intent::LeaveQueue => {}
                        },
                        Some(UserStatus::Expired) | Some(UserStatus::Purchased { .. }) => {
                            done.insert(user.clone());
                        }
                        _ => {}
                    }
                }
                if sold_out {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (arrived, left, confirmed)
        }));
    }

    let mut arrivals = Vec::new();
    let mut leavers = BTreeSet::new();
    let mut confirmed = BTreeMap::new();
    for buyer in buyers {
        let (arrived, left, mine) = buyer.await.expect("buyer task");
        arrivals.push(arrived);
        leavers.extend(left);
        confirmed.extend(mine);
    }
    stop.store(true, Ordering::Relaxed);
    let mut batches = Vec::new();
    for granter in granters {
        batches.push(granter.await.expect("granter task"));
    }

    let data = read_sale(&mut conn, "race").await;
    let sold = data.sale.as_ref().map_or(0, |r| r.sold);
    assert!(sold <= STOCK, "oversold: {sold} > {STOCK}");
    assert_eq!(sold, STOCK, "enough buyers to sell out");
    assert_eq!(data.orders.len() as u64, sold, "one order per unit sold");
    assert_eq!(data.outbox.len() as u64, sold, "one outbox entry per order");
    let outbox_orders: BTreeSet<&String> = data.outbox.values().map(|e| &e.order_id).collect();
    let outbox_users: BTreeSet<&String> = data.outbox.values().map(|e| &e.user_id).collect();
    assert_eq!(outbox_orders.len() as u64, sold, "order ids are unique");
    assert_eq!(
        outbox_users.len() as u64,
        sold,
        "at most one order per user"
    );
    for entry in data.outbox.values() {
        assert_eq!(data.orders.get(&entry.user_id), Some(&entry.order_id));
    }
    assert_eq!(
        confirmed
            .iter()
            .map(|(u, o)| (u.clone(), o.clone()))
            .collect::<BTreeMap<_, _>>(),
        data.orders,
        "every CONFIRMED reply is an order, and nothing else is"
    );
    let now = server_time_ms(&mut conn).await;
    let live = data.holds.values().filter(|&&e| e > now).count() as u64;
    assert!(sold + live <= STOCK);
    for user in data.queue.keys() {
        assert!(
            !data.holds.contains_key(user) && !data.orders.contains_key(user),
            "{user} is in two places"
        );
    }

    // FIFO: a user is never admitted before someone who arrived earlier
    // through the same connection and stayed in the queue.
    let mut admitted_at: BTreeMap<&String, (usize, usize, usize)> = BTreeMap::new();
    for (g, list) in batches.iter().enumerate() {
        for (b, batch) in list.iter().enumerate() {
            for (p, user) in batch.iter().enumerate() {
                assert!(
                    admitted_at.insert(user, (g, b, p)).is_none(),
                    "{user} admitted twice"
                );
            }
        }
    }
    let mut violations = Vec::new();
    for arrived in &arrivals {
        let stayed: Vec<&String> = arrived.iter().filter(|u| !leavers.contains(*u)).collect();
        for pair in stayed.windows(2) {
            match (admitted_at.get(pair[0]), admitted_at.get(pair[1])) {
                (None, Some(_)) => {
                    violations.push(format!("{} admitted, earlier {} not", pair[1], pair[0]))
                }
                (Some(a), Some(b)) if a.0 == b.0 && a > b => {
                    violations.push(format!("{} before {}", pair[1], pair[0]))
                }
                _ => {}
            }
        }
    }
    assert!(violations.is_empty(), "FIFO violations: {violations:?}");
    assert!(
        admitted_at.len() as u64 >= STOCK,
        "every sold unit was admitted first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn module_racing_clients_keep_every_invariant() {
    racing_clients_keep_every_invariant(Backend::Module).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lua_racing_clients_keep_every_invariant() {
    racing_clients_keep_every_invariant(Backend::Lua).await
}
