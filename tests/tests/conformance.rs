//! The conformance suite: written once, run against the module and against
//! the functions library on real redis-server processes. Most tests drive the
//! engine's test clock so every reply is exact; the `real_clock_*` tests use
//! the server clock and real key expiry.

#![allow(clippy::unwrap_used)] // test assertions: a panic is the failure report

use std::time::Duration;

use engine::RestoreReply;
use flashsale::{
    keys, lottery, CommandName, ConfirmReply, DrawReply, EngineClient, EnqueueReply, GrantReply,
    LotteryParams, PauseReply, ReleaseReply, Reply, Resp, ResumeReply, SaleState, SetupParams,
    SetupReply, UserStatus,
};
use redis::aio::MultiplexedConnection;
use tests::{server_time_ms, wait_for, Backend, EngineServer};

const T0: u64 = 1_800_000_000_000;

/// The `k`-th order (from 0) of sale "s" confirmed at `ms`, when no order
/// of it has a higher number: numbers start at `ms × 100` in each ms.
fn order_at(ms: u64, k: u64) -> String {
    keys::order_id("s", ms * engine::rules::ORDERS_PER_MS + k)
}

struct Sale {
    engine: EngineServer,
    client: EngineClient<MultiplexedConnection>,
    conn: MultiplexedConnection,
}

/// A test-clock engine at T0 - 1000 with sale "s": `stock` units, open
/// [T0, T0 + 60 s), holds of 1 s.
async fn sale(backend: Backend, stock: u64, rate: u64, max_queue: u64) -> Sale {
    let engine = EngineServer::start(backend, true).await;
    engine.set_clock(T0 - 1000).await;
    let mut client = engine.client().await;
    let params = SetupParams {
        stock,
        starts_at: T0,
        ends_at: T0 + 60_000,
        hold_ttl_ms: 1000,
        rate,
        max_queue,
        price: None,
    };
    assert_eq!(
        client.setup("s", params).await.expect("setup"),
        SetupReply::Created
    );
    engine.set_clock(T0).await;
    let conn = engine.server.connection().await;
    Sale {
        engine,
        client,
        conn,
    }
}

impl Sale {
    async fn at(&self, ms: u64) {
        self.engine.set_clock(ms).await;
    }

    async fn raw(&mut self, name: CommandName, args: &[&str]) -> Result<Resp, String> {
        self.client.raw(name, args).await.map_err(|e| e.to_string())
    }

    async fn granted(&mut self, max: u64) -> Vec<String> {
        match self.client.grant("s", max).await.expect("grant") {
            GrantReply::Granted { users, .. } => users,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn user(&mut self, user: &str) -> UserStatus {
        self.client
            .status("s", Some(user))
            .await
            .expect("status")
            .user
            .expect("user part")
    }

    /// Every key of the sale with its full content, to prove "nothing changed".
    async fn snapshot(&mut self) -> Vec<(String, String)> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("fs:*")
            .query_async(&mut self.conn)
            .await
            .expect("KEYS");
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let dump: redis::Value = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut self.conn)
                .await
                .expect("DUMP");
            let expire: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(&mut self.conn)
                .await
                .expect("PEXPIRETIME");
            out.push((key, format!("{dump:?} {expire}")));
        }
        out
    }
}

impl Sale {
    /// Every key of every sale with its absolute expiry, to put back later.
    async fn dump(&mut self) -> Vec<(String, Vec<u8>, i64)> {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("fs:*")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let mut out = Vec::new();
        for key in keys {
            let dump: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut self.conn)
                .await
                .unwrap();
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(&mut self.conn)
                .await
                .unwrap();
            out.push((key, dump, at));
        }
        out
    }

    /// Deletes every sale key (Redis lost the sale).
    async fn lose_everything(&mut self) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("fs:*")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut self.conn)
                .await
                .unwrap();
        }
    }

    /// Back to exactly `dump`: what a replica that missed the later writes
    /// holds when it takes over.
    async fn roll_back(&mut self, dump: &[(String, Vec<u8>, i64)]) {
        self.lose_everything().await;
        for (key, value, at) in dump {
            let _: () = redis::cmd("RESTORE")
                .arg(key)
                .arg((*at).max(0))
                .arg(value)
                .arg("ABSTTL")
                .query_async(&mut self.conn)
                .await
                .unwrap();
        }
    }

    async fn confirmed(&mut self, user: &str) -> String {
        match self.client.confirm("s", user, 0).await.unwrap() {
            ConfirmReply::Confirmed { order_id, .. } => order_id,
            other => panic!("{user}: {other:?}"),
        }
    }

    /// RESTORE through the client's decoder: (added, orders).
    async fn restore(&mut self, args: &[&str]) -> Result<(u64, u64), String> {
        let resp = self.raw(CommandName::Restore, args).await?;
        match flashsale::reply::decode(CommandName::Restore, &resp) {
            Ok(Reply::Restore(RestoreReply::Restored { added, orders })) => Ok((added, orders)),
            other => panic!("RESTORE {args:?}: {other:?}"),
        }
    }

    async fn record(&mut self) -> engine::SaleRecord {
        let raw: String = redis::cmd("GET")
            .arg(keys::sale("s"))
            .query_async(&mut self.conn)
            .await
            .unwrap();
        engine::SaleRecord::decode(raw.as_bytes()).unwrap()
    }
}

fn number(order_id: &str) -> u64 {
    keys::order_number("s", order_id).unwrap_or_else(|| panic!("{order_id} is not an order of s"))
}

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.to_string())
}

async fn every_outcome_of_a_purchase(backend: Backend) {
    let mut s = sale(backend, 2, 0, 0).await;
    assert_eq!(
        s.client.enqueue("s", "ann").await.unwrap(),
        EnqueueReply::Queued {
            position: 1,
            length: 1
        }
    );
    assert_eq!(
        s.client.enqueue("s", "bob").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );
    assert_eq!(s.user("bob").await, UserStatus::Queued { position: 2 });
    assert_eq!(s.granted(1).await, vec!["ann"]);
    s.at(T0 + 250).await;
    assert_eq!(
        s.client.enqueue("s", "ann").await.unwrap(),
        EnqueueReply::Holding { ms_left: 750 }
    );
    assert_eq!(s.user("ann").await, UserStatus::Holding { ms_left: 750 });
    assert_eq!(
        s.client.confirm("s", "bob", 0).await.unwrap(),
        ConfirmReply::NoHold
    );
    let ann = order_at(T0 + 250, 0);
    assert_eq!(ann, "s-180000000025000");
    assert_eq!(
        s.client.confirm("s", "ann", 1999).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: ann.clone(),
            amount: 1999,
        }
    );
    assert_eq!(
        s.client.confirm("s", "ann", 1999).await.unwrap(),
        ConfirmReply::Purchased {
            order_id: ann.clone()
        }
    );
    assert_eq!(
        s.client.enqueue("s", "ann").await.unwrap(),
        EnqueueReply::Purchased {
            order_id: ann.clone()
        }
    );
    assert_eq!(
        s.user("ann").await,
        UserStatus::Purchased {
            order_id: ann.clone()
        }
    );
    assert_eq!(
        s.client.release("s", "ann").await.unwrap(),
        ReleaseReply::Purchased {
            order_id: ann.clone()
        }
    );

    assert_eq!(s.granted(5).await, vec!["bob"]);
    // In the same ms: the next number.
    let bob = order_at(T0 + 250, 1);
    assert_eq!(
        s.client.confirm("s", "bob", 5).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: bob.clone(),
            amount: 5,
        }
    );
    assert_eq!(
        s.client.enqueue("s", "cat").await.unwrap(),
        EnqueueReply::SoldOut
    );
    let status = s.client.status("s", None).await.unwrap();
    assert_eq!(
        (
            status.sale.state,
            status.sale.sold,
            status.sale.held,
            status.sale.queued
        ),
        (SaleState::SoldOut, 2, 0, 0)
    );

    // The outbox holds both orders, in order, each with the explicit id
    // 0-<its order number>.
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(keys::outbox("s"))
        .arg("-")
        .arg("+")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|(id, fields)| {
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                id.clone(),
                get("order_id"),
                format!(
                    "{} {} {} {}",
                    get("sale_id"),
                    get("user_id"),
                    get("amount"),
                    get("confirmed_at")
                ),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "0-180000000025000".into(),
                ann,
                format!("s ann 1999 {}", T0 + 250)
            ),
            (
                "0-180000000025001".into(),
                bob,
                format!("s bob 5 {}", T0 + 250)
            ),
        ]
    );
    let orders: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(keys::orders("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(orders.len(), 2);
}

async fn fifo_over_many_users(backend: Backend) {
    let mut s = sale(backend, 150, 0, 0).await;
    let users: Vec<String> = (0..200)
        .map(|i| format!("user{:03}@example.com", (i * 37) % 200))
        .collect();
    for (i, user) in users.iter().enumerate() {
        let expected = EnqueueReply::Queued {
            position: i as u64 + 1,
            length: i as u64 + 1,
        };
        assert_eq!(s.client.enqueue("s", user).await.unwrap(), expected);
    }
    let mut admitted = Vec::new();
    for max in [1, 7, 50, 100, 100] {
        admitted.extend(s.granted(max).await);
    }
    assert_eq!(
        admitted,
        users[..150].to_vec(),
        "admitted in arrival order, never beyond stock"
    );
    assert_eq!(
        s.user(&users[150]).await,
        UserStatus::Queued { position: 1 }
    );
    assert_eq!(
        s.user(&users[199]).await,
        UserStatus::Queued { position: 50 }
    );
}

async fn every_command_is_idempotent(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for _ in 0..3 {
        assert_eq!(
            s.client.enqueue("s", "a").await.unwrap(),
            EnqueueReply::Queued {
                position: 1,
                length: 1
            }
        );
    }
    s.client.enqueue("s", "b").await.unwrap();
    assert_eq!(s.granted(1).await, vec!["a"]);
    // GRANT again admits the next one, never "a" twice.
    assert_eq!(s.granted(1).await, vec!["b"]);
    let before = s.snapshot().await;
    assert_eq!(
        s.client.enqueue("s", "a").await.unwrap(),
        EnqueueReply::Holding { ms_left: 1000 }
    );
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated ENQUEUE changes nothing"
    );
    assert_eq!(
        s.client.confirm("s", "a", 1).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: order_at(T0, 0),
            amount: 1,
        }
    );
    let before = s.snapshot().await;
    assert_eq!(
        s.client.confirm("s", "a", 1).await.unwrap(),
        ConfirmReply::Purchased {
            order_id: order_at(T0, 0)
        }
    );
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated CONFIRM changes nothing"
    );
    assert_eq!(
        s.client.release("s", "b").await.unwrap(),
        ReleaseReply::Released
    );
    let before = s.snapshot().await;
    assert_eq!(
        s.client.release("s", "b").await.unwrap(),
        ReleaseReply::None
    );
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated RELEASE changes nothing"
    );
    s.client.enqueue("s", "c").await.unwrap();
    assert_eq!(
        s.client.release("s", "c").await.unwrap(),
        ReleaseReply::LeftQueue
    );
    assert_eq!(
        s.client.release("s", "c").await.unwrap(),
        ReleaseReply::None
    );
    let params = SetupParams {
        stock: 3,
        starts_at: T0,
        ends_at: T0 + 60_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    assert_eq!(
        s.client.setup("s", params.clone()).await.unwrap(),
        SetupReply::Updated
    );
    let before = s.snapshot().await;
    assert_eq!(
        s.client.setup("s", params).await.unwrap(),
        SetupReply::Updated
    );
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated SETUP changes nothing"
    );
}

async fn expired_holds_free_their_units(backend: Backend) {
    let mut s = sale(backend, 1, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.client.enqueue("s", "b").await.unwrap();
    assert_eq!(s.granted(5).await, vec!["a"]);
    // The hold is a real key with an absolute expiry.
    let expire_at: u64 = redis::cmd("PEXPIRETIME")
        .arg(keys::hold("s", "a"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(expire_at, T0 + 1000);
    s.at(T0 + 999).await;
    assert_eq!(
        s.granted(5).await,
        Vec::<String>::new(),
        "the unit is still held"
    );
    s.at(T0 + 1000).await;
    // Expired — even though nobody reclaimed it yet, it cannot be confirmed.
    assert_eq!(
        s.client.confirm("s", "a", 0).await.unwrap(),
        ConfirmReply::Expired
    );
    assert_eq!(s.user("a").await, UserStatus::Expired);
    assert_eq!(
        s.client.grant("s", 5).await.unwrap(),
        GrantReply::Granted {
            released: 1,
            users: vec!["b".into()]
        }
    );
    assert_eq!(
        s.client.confirm("s", "a", 0).await.unwrap(),
        ConfirmReply::Expired,
        "still told it expired"
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(keys::hold("s", "a"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert!(!exists, "the reclaimed hold key is gone");
    // The reused unit is sold to the next user.
    assert_eq!(
        s.client.confirm("s", "b", 0).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: order_at(T0 + 1000, 0),
            amount: 0,
        }
    );
}

async fn a_lapsed_user_queues_again_at_the_back(backend: Backend) {
    let mut s = sale(backend, 1, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.granted(1).await;
    s.client.enqueue("s", "b").await.unwrap();
    s.at(T0 + 1500).await;
    assert_eq!(
        s.client.enqueue("s", "a").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );
    assert_eq!(s.user("a").await, UserStatus::Queued { position: 2 });
    assert_eq!(s.granted(5).await, vec!["b"]);
}

async fn release_returns_the_unit(backend: Backend) {
    let mut s = sale(backend, 1, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.client.enqueue("s", "b").await.unwrap();
    s.granted(1).await;
    assert_eq!(s.granted(1).await, Vec::<String>::new());
    assert_eq!(
        s.client.release("s", "a").await.unwrap(),
        ReleaseReply::Released
    );
    assert_eq!(
        s.client.confirm("s", "a", 0).await.unwrap(),
        ConfirmReply::NoHold
    );
    assert_eq!(s.granted(1).await, vec!["b"]);
}

async fn window_edges(backend: Backend) {
    let mut s = sale(backend, 5, 0, 0).await;
    s.at(T0 - 1).await;
    assert_eq!(
        s.client.enqueue("s", "a").await.unwrap(),
        EnqueueReply::NotStarted { ms_until_start: 1 }
    );
    assert_eq!(
        s.client.grant("s", 1).await.unwrap(),
        GrantReply::NotStarted { ms_until_start: 1 }
    );
    assert_eq!(
        s.client.status("s", None).await.unwrap().sale.state,
        SaleState::Upcoming
    );
    s.at(T0).await;
    assert_eq!(
        s.client.status("s", None).await.unwrap().sale.state,
        SaleState::Active
    );
    s.client.enqueue("s", "a").await.unwrap();
    s.client.enqueue("s", "b").await.unwrap();
    s.client.enqueue("s", "c").await.unwrap();
    s.at(T0 + 59_999).await;
    assert_eq!(s.granted(1).await, vec!["a"]);
    s.at(T0 + 60_000).await;
    assert_eq!(
        s.client.enqueue("s", "d").await.unwrap(),
        EnqueueReply::Ended
    );
    assert_eq!(
        s.client.confirm("s", "a", 0).await.unwrap(),
        ConfirmReply::Ended
    );
    assert_eq!(
        s.client.status("s", None).await.unwrap().sale.state,
        SaleState::Ended
    );
    assert_eq!(
        s.client.grant("s", 5).await.unwrap(),
        GrantReply::Ended { cleared: 2 }
    );
    assert_eq!(s.client.status("s", None).await.unwrap().sale.queued, 0);
    assert_eq!(
        s.client.grant("s", 5).await.unwrap(),
        GrantReply::Ended { cleared: 0 }
    );
}

async fn queue_full(backend: Backend) {
    let mut s = sale(backend, 5, 0, 2).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.client.enqueue("s", "b").await.unwrap();
    assert_eq!(
        s.client.enqueue("s", "c").await.unwrap(),
        EnqueueReply::QueueFull { length: 2 }
    );
    assert_eq!(
        s.client.enqueue("s", "b").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );
    s.granted(1).await;
    assert_eq!(
        s.client.enqueue("s", "c").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );
}

async fn rate_is_a_total_over_all_callers(backend: Backend) {
    let mut s = sale(backend, 1000, 10, 0).await;
    for i in 0..50 {
        s.client.enqueue("s", &format!("u{i}")).await.unwrap();
    }
    // One second of credit has built up since setup (T0 - 1000).
    assert_eq!(s.granted(100).await.len(), 10);
    // Two "workers" hammering GRANT share the same budget.
    let mut other = s.engine.client().await;
    let mut admitted = 0;
    for step in 1..=20 {
        s.at(T0 + step * 50).await;
        admitted += s.granted(100).await.len();
        if let GrantReply::Granted { users, .. } = other.grant("s", 100).await.unwrap() {
            admitted += users.len();
        }
    }
    assert_eq!(admitted, 10, "1 s at 10/s, however many callers");
}

async fn setup_refuses_stock_below_sold_plus_held(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for u in ["a", "b", "c"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    s.granted(2).await;
    s.client.confirm("s", "a", 0).await.unwrap();
    let before = s.snapshot().await;
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    assert_eq!(
        s.raw(CommandName::Setup, &["s", "1", &start, &end, "1000"])
            .await,
        Err("CONFLICT stock cannot go below sold plus held (2)".into())
    );
    assert_eq!(s.snapshot().await, before);
    assert_eq!(
        s.raw(CommandName::Setup, &["s", "2", &start, &end, "1000"])
            .await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    // Unchanged bookkeeping: the queue, the hold and the order survive an update.
    assert_eq!(s.user("b").await, UserStatus::Holding { ms_left: 1000 });
    assert_eq!(s.user("c").await, UserStatus::Queued { position: 1 });
}

async fn bad_input_is_an_error_and_changes_nothing(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    let before = s.snapshot().await;
    let (start, end) = (T0.to_string(), (T0 + 1).to_string());
    let long_sale = "x".repeat(65);
    let long_user = "u".repeat(129);
    use CommandName::*;
    let cases: Vec<(CommandName, Vec<&str>, &str)> = vec![
        (
            Enqueue,
            vec![],
            "ERR wrong number of arguments for 'FLASHSALE.ENQUEUE'",
        ),
        (
            Enqueue,
            vec!["s"],
            "ERR wrong number of arguments for 'FLASHSALE.ENQUEUE'",
        ),
        (
            Enqueue,
            vec!["s", "a", "b"],
            "ERR wrong number of arguments for 'FLASHSALE.ENQUEUE'",
        ),
        (
            Setup,
            vec!["s", "1", "2", "3"],
            "ERR wrong number of arguments for 'FLASHSALE.SETUP'",
        ),
        (
            Grant,
            vec!["s"],
            "ERR wrong number of arguments for 'FLASHSALE.GRANT'",
        ),
        (
            Confirm,
            vec!["s", "a", "1", "CONTACT", "c", "x"],
            "ERR wrong number of arguments for 'FLASHSALE.CONFIRM'",
        ),
        (Confirm, vec!["s", "a", "1", "2"], "ERR syntax error"),
        (Confirm, vec!["s", "a", "CONTACT"], "ERR syntax error"),
        (
            Confirm,
            vec!["s", "a", "contact", "c", "1"],
            "ERR syntax error",
        ),
        (
            Confirm,
            vec!["s", "a", "1", "Contact", "c d"],
            "ERR invalid contact",
        ),
        (
            Confirm,
            vec!["s", "a", "CONTACT", &long_user],
            "ERR invalid contact",
        ),
        (
            Confirm,
            vec!["s", "a", "x", "CONTACT", "c"],
            "ERR amount must be an integer from 0 to 999999999999999",
        ),
        (
            Pause,
            vec![],
            "ERR wrong number of arguments for 'FLASHSALE.PAUSE'",
        ),
        (
            Resume,
            vec!["s", "x"],
            "ERR wrong number of arguments for 'FLASHSALE.RESUME'",
        ),
        (Pause, vec!["s{"], "ERR invalid sale id"),
        (
            Release,
            vec!["s"],
            "ERR wrong number of arguments for 'FLASHSALE.RELEASE'",
        ),
        (
            Status,
            vec![],
            "ERR wrong number of arguments for 'FLASHSALE.STATUS'",
        ),
        (Enqueue, vec!["s{x}", "a"], "ERR invalid sale id"),
        (Enqueue, vec![&long_sale, "a"], "ERR invalid sale id"),
        (Enqueue, vec!["", "a"], "ERR invalid sale id"),
        (Enqueue, vec!["s", "a b"], "ERR invalid user id"),
        (Enqueue, vec!["s", &long_user], "ERR invalid user id"),
        (Enqueue, vec!["s", "caf\u{e9}"], "ERR invalid user id"),
        (Status, vec!["s", ""], "ERR invalid user id"),
        (
            Setup,
            vec!["s", "abc", &start, &end, "10"],
            "ERR stock must be an integer from 0 to 1000000000",
        ),
        (
            Setup,
            vec!["s", "-1", &start, &end, "10"],
            "ERR stock must be an integer from 0 to 1000000000",
        ),
        (
            Setup,
            vec!["s", "1000000001", &start, &end, "10"],
            "ERR stock must be an integer from 0 to 1000000000",
        ),
        (
            Setup,
            vec!["s", "1", "1e3", &end, "10"],
            "ERR starts_at must be an integer from 0 to 999999999999999",
        ),
        (
            Setup,
            vec!["s", "1", &start, "99999999999999999999", "10"],
            "ERR ends_at must be an integer from 0 to 999999999999999",
        ),
        (
            Setup,
            vec!["s", "1", &end, &start, "10"],
            "ERR ends_at must be after starts_at",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "0"],
            "ERR hold_ttl_ms must be an integer from 1 to 86400000",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "RATE"],
            "ERR syntax error",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "FAST", "1"],
            "ERR syntax error",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "RATE", "1", "rate", "2"],
            "ERR syntax error",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "RATE", "1.5"],
            "ERR RATE must be an integer from 1 to 1000000",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "MAXQUEUE", "0"],
            "ERR MAXQUEUE must be an integer from 1 to 1000000000",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "PRICE", "9.99"],
            "ERR PRICE must be an integer from 0 to 999999999999999",
        ),
        (
            Setup,
            vec!["s", "1", &start, &end, "10", "PRICE", "1", "price", "1"],
            "ERR syntax error",
        ),
        (
            Grant,
            vec!["s", "0"],
            "ERR max must be an integer from 1 to 10000",
        ),
        (
            Grant,
            vec!["s", " 1"],
            "ERR max must be an integer from 1 to 10000",
        ),
        (
            Grant,
            vec!["s", "10001"],
            "ERR max must be an integer from 1 to 10000",
        ),
        (
            Confirm,
            vec!["s", "a", "-5"],
            "ERR amount must be an integer from 0 to 999999999999999",
        ),
        (
            Confirm,
            vec!["s", "a", "0x10"],
            "ERR amount must be an integer from 0 to 999999999999999",
        ),
        (
            Restore,
            vec!["s"],
            "ERR wrong number of arguments for 'FLASHSALE.RESTORE'",
        ),
        (
            Restore,
            vec!["s", "a"],
            "ERR wrong number of arguments for 'FLASHSALE.RESTORE'",
        ),
        (
            Restore,
            vec!["s", "a", "s-1", "b"],
            "ERR wrong number of arguments for 'FLASHSALE.RESTORE'",
        ),
        (Restore, vec!["s}", "a", "s}-1"], "ERR invalid sale id"),
        (Restore, vec!["s", "a b", "s-1"], "ERR invalid user id"),
        (
            Restore,
            vec!["s", "b", "s-1", "a", "s-0"],
            "ERR invalid order id",
        ),
        (Restore, vec!["s", "b", "s-01"], "ERR invalid order id"),
        (Restore, vec!["s", "b", "t-1"], "ERR invalid order id"),
        (Restore, vec!["s", "b", "s-"], "ERR invalid order id"),
        (Restore, vec!["s", "b", "s-1.5"], "ERR invalid order id"),
        (
            Restore,
            vec!["s", "b", "s-1000000000000000"],
            "ERR invalid order id",
        ),
        (
            Restore,
            vec!["s", "b", "s-1", "b", "s-2"],
            "ERR a user is given twice",
        ),
        (
            Restore,
            vec!["s", "b", "s-1", "c", "s-1", "a b", "s-3"],
            "ERR an order id is given twice",
        ),
        (Enqueue, vec!["nosuch", "a"], "NOSALE no such sale"),
        (Grant, vec!["nosuch", "1"], "NOSALE no such sale"),
        (Confirm, vec!["nosuch", "a"], "NOSALE no such sale"),
        (Release, vec!["nosuch", "a"], "NOSALE no such sale"),
        (Status, vec!["nosuch"], "NOSALE no such sale"),
        (Pause, vec!["nosuch"], "NOSALE no such sale"),
        (Resume, vec!["nosuch"], "NOSALE no such sale"),
    ];
    for (name, args, expected) in cases {
        assert_eq!(
            s.raw(name, &args).await,
            Err(expected.to_string()),
            "{name:?} {args:?}"
        );
    }
    // One order more than a call may carry (the arguments are fine).
    let mut many = vec!["s".to_string()];
    for i in 0..=engine::command::MAX_RESTORE_ORDERS {
        many.extend([format!("u{i}"), format!("s-{}", i + 1)]);
    }
    assert_eq!(
        s.client
            .raw(Restore, &many)
            .await
            .map_err(|e| e.to_string()),
        Err("ERR at most 10000 orders per call".to_string())
    );
    assert_eq!(s.snapshot().await, before, "no bad input changed anything");
}

/// Only the keys a command may write unread are type-checked
/// (`CommandName::written_keys`): a broken key it never touches — the
/// lottery's seed, read only by SETUP — refuses neither ENQUEUE, GRANT nor
/// CONFIRM, on either backend.
async fn a_broken_key_a_command_never_touches_does_not_refuse_it(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    let _: () = redis::cmd("HSET")
        .arg(keys::seed("s"))
        .arg("not")
        .arg("a string")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert!(matches!(
        s.client.enqueue("s", "a").await,
        Ok(EnqueueReply::Queued { position: 1, .. })
    ));
    assert_eq!(s.granted(1).await, vec!["a"]);
    assert!(matches!(
        s.client.confirm("s", "a", 5).await,
        Ok(ConfirmReply::Confirmed { .. })
    ));
}

async fn a_key_of_the_wrong_type_is_refused_before_any_write(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.granted(1).await;
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for (key, command, args) in [
        (keys::queue("s"), CommandName::Enqueue, vec!["s", "b"]),
        (keys::outbox("s"), CommandName::Confirm, vec!["s", "a", "5"]),
        (keys::lapsed("s"), CommandName::Confirm, vec!["s", "b"]),
        // RESTORE writes the queue, holds and lapsed of the users it
        // restores: every key's type is checked first.
        (
            keys::lapsed("s"),
            CommandName::Restore,
            vec!["s", "b", "s-5"],
        ),
        (
            keys::orders("s"),
            CommandName::Restore,
            vec!["s", "b", "s-5"],
        ),
    ] {
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut s.conn)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("junk")
            .query_async(&mut s.conn)
            .await
            .unwrap();
        let before = s.snapshot().await;
        assert_eq!(
            s.raw(command, &args).await,
            Err(wrongtype.to_string()),
            "{key}"
        );
        assert_eq!(s.snapshot().await, before, "{key}: nothing changed");
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut s.conn)
            .await
            .unwrap();
    }
    // GRANT writes `lapsed` without reading it first: it checks every key's
    // type before reclaiming the expired hold of "a".
    s.at(T0 + 5000).await;
    let _: () = redis::cmd("SET")
        .arg(keys::lapsed("s"))
        .arg("junk")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Grant, &["s", "1"]).await,
        Err(wrongtype.to_string())
    );
    assert_eq!(s.snapshot().await, before, "GRANT changed nothing");
    let _: () = redis::cmd("DEL")
        .arg(keys::lapsed("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();

    // A hand-made outbox entry ahead of the next order number: CONFIRM's
    // XADD is refused, and it is the first write, so nothing else happened.
    s.client.enqueue("s", "b").await.unwrap();
    assert_eq!(s.granted(1).await, vec!["b"]);
    let _: () = redis::cmd("XADD")
        .arg(keys::outbox("s"))
        .arg("0-999999999999999")
        .arg("by")
        .arg("hand")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "b", "5"]).await,
        Err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
                .to_string()
        )
    );
    assert_eq!(s.snapshot().await, before, "CONFIRM changed nothing");

    let _: () = redis::cmd("SET")
        .arg(keys::sale("s"))
        .arg("stock=lots")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(
        s.raw(CommandName::Status, &["s"]).await,
        Err("ERR corrupt sale record".to_string())
    );
}

/// Real clock, real key expiry: a hold of 300 ms lapses and its unit is
/// granted to the next user; PTTL works on the hold key.
async fn real_clock_hold_expiry(backend: Backend) {
    let engine = EngineServer::start(backend, false).await;
    let mut client = engine.client().await;
    let mut conn = engine.server.connection().await;
    let now = server_time_ms(&mut conn).await;
    let params = SetupParams {
        stock: 1,
        starts_at: now,
        ends_at: now + 600_000,
        hold_ttl_ms: 300,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client.setup("live", params).await.unwrap();
    client.enqueue("live", "a").await.unwrap();
    client.enqueue("live", "b").await.unwrap();
    assert!(
        matches!(client.grant("live", 5).await.unwrap(), GrantReply::Granted { users, .. } if users == ["a"])
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(keys::hold("live", "a"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=300).contains(&pttl), "PTTL {pttl}");
    // Redis evicts the key on its own...
    wait_for("the hold key to expire", Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let exists: bool = redis::cmd("EXISTS")
                .arg(keys::hold("live", "a"))
                .query_async(&mut conn)
                .await
                .ok()?;
            (!exists).then_some(())
        }
    })
    .await;
    // ...and the engine reclaims the unit for the next in line.
    assert_eq!(
        client.confirm("live", "a", 0).await.unwrap(),
        ConfirmReply::Expired
    );
    assert!(
        matches!(client.grant("live", 5).await.unwrap(), GrantReply::Granted { released: 1, users, .. } if users == ["b"])
    );
    assert!(matches!(
        client.confirm("live", "b", 0).await.unwrap(),
        ConfirmReply::Confirmed { .. }
    ));
}

/// Real clock: a sale that starts 200 ms from now opens by itself.
async fn real_clock_window_opens(backend: Backend) {
    let engine = EngineServer::start(backend, false).await;
    let mut client = engine.client().await;
    let mut conn = engine.server.connection().await;
    let now = server_time_ms(&mut conn).await;
    let params = SetupParams {
        stock: 1,
        starts_at: now + 200,
        ends_at: now + 60_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client.setup("soon", params).await.unwrap();
    match client.enqueue("soon", "a").await.unwrap() {
        EnqueueReply::NotStarted { ms_until_start } => assert!(ms_until_start <= 200),
        other => panic!("{other:?}"),
    }
    let reply = wait_for("the sale to open", Duration::from_secs(5), || {
        let mut client = client.clone();
        async move {
            match client.enqueue("soon", "a").await.ok()? {
                EnqueueReply::NotStarted { .. } => None,
                other => Some(other),
            }
        }
    })
    .await;
    assert_eq!(
        reply,
        EnqueueReply::Queued {
            position: 1,
            length: 1
        }
    );
}

/// Over maxmemory, nothing new is admitted or queued, but a holder can still
/// give a unit back.
async fn over_maxmemory_only_release_runs(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.granted(1).await;
    s.client.enqueue("s", "b").await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    for (name, args) in [
        (CommandName::Enqueue, vec!["s", "c"]),
        (CommandName::Grant, vec!["s", "1"]),
        (CommandName::Confirm, vec!["s", "a"]),
        (CommandName::Restore, vec!["s", "a", "s-1"]),
    ] {
        let refused = s
            .raw(name, &args)
            .await
            .expect_err("refused over maxmemory");
        assert!(refused.starts_with("OOM "), "{name:?}: {refused}");
    }
    assert_eq!(
        s.client.release("s", "a").await.unwrap(),
        ReleaseReply::Released
    );
    assert_eq!(
        s.client.release("s", "b").await.unwrap(),
        ReleaseReply::LeftQueue
    );
    // The emergency brake works when Redis is full.
    assert_eq!(s.client.pause("s").await.unwrap(), PauseReply::Paused);
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::Resumed);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut s.conn)
        .await
        .unwrap();
}

/// Issue 10: the primary confirmed orders, then a replica that had not
/// received them took over (the sale rolled back). The buyers after the
/// failover get ids the lost orders never had, and so do the lost buyers
/// who buy again.
async fn a_rolled_back_order_id_is_never_given_again(backend: Backend) {
    let mut s = sale(backend, 5, 0, 0).await;
    for u in ["ann", "bob", "cat", "dan"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    assert_eq!(s.granted(4).await.len(), 4);
    let first = s.confirmed("ann").await;
    let replica = s.dump().await;
    s.at(T0 + 10).await;
    let lost = [s.confirmed("dan").await, s.confirmed("cat").await];
    assert_eq!(lost, [order_at(T0 + 10, 0), order_at(T0 + 10, 1)]);

    s.roll_back(&replica).await;
    assert_eq!(s.client.status("s", None).await.unwrap().sale.sold, 1);
    s.at(T0 + 11).await;
    let after = [s.confirmed("bob").await, s.confirmed("dan").await];
    for id in &after {
        assert!(!lost.contains(id) && *id != first, "{id} was issued before");
        assert!(number(id) > number(&lost[1]), "{id} after {lost:?}");
    }
    assert_eq!(after[0], order_at(T0 + 11, 0));
    let record = s.record().await;
    assert_eq!((record.sold, record.order_seq), (3, number(&after[1])));
}

/// A sale record from before `order_seq` (nine fields, orders numbered 1,
/// 2, …) keeps working and is upgraded by the next write.
async fn a_legacy_sale_record_upgrades_in_place(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    let legacy = format!(
        "stock=3 sold=2 starts_at={T0} ends_at={} hold_ttl_ms=1000 rate=0 max_queue=0 rate_credit=0 rate_at={}",
        T0 + 60_000,
        T0 - 1000
    );
    let _: () = redis::cmd("SET")
        .arg(keys::sale("s"))
        .arg(&legacy)
        .query_async(&mut s.conn)
        .await
        .unwrap();
    for (n, user) in [(1, "old1"), (2, "old2")] {
        let entry = engine::OutboxEntry {
            order_id: format!("s-{n}"),
            sale_id: "s".into(),
            user_id: user.into(),
            amount: 5,
            confirmed_at: T0 - 5,
            contact: None,
        };
        let mut xadd = redis::cmd("XADD");
        xadd.arg(keys::outbox("s")).arg(keys::outbox_entry_id(n));
        for (field, value) in entry.fields() {
            xadd.arg(field).arg(value);
        }
        let _: String = xadd.query_async(&mut s.conn).await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg(keys::orders("s"))
            .arg(user)
            .arg(&entry.order_id)
            .query_async(&mut s.conn)
            .await
            .unwrap();
    }
    let status = s.client.status("s", Some("old2")).await.unwrap();
    assert_eq!(
        (status.sale.sold, status.sale.state),
        (2, SaleState::Active)
    );
    assert_eq!(
        status.user,
        Some(UserStatus::Purchased {
            order_id: "s-2".into()
        })
    );
    let raw: String = redis::cmd("GET")
        .arg(keys::sale("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(raw, legacy, "reading does not rewrite the record");

    s.client.enqueue("s", "new").await.unwrap();
    assert_eq!(s.granted(1).await, ["new"]);
    assert_eq!(s.confirmed("new").await, order_at(T0, 0));
    let raw: String = redis::cmd("GET")
        .arg(keys::sale("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(
        raw,
        format!(
            "{} order_seq={}",
            legacy.replace("sold=2", "sold=3"),
            T0 * 100
        )
    );
    let outbox: u64 = redis::cmd("XLEN")
        .arg(keys::outbox("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(outbox, 3);
}

/// Order numbers come from the clock, up to 999999999999999: the clock
/// runs past it in the year 2286, and a CONFIRM then is an error that
/// changes nothing.
async fn order_numbers_run_out_in_the_year_2286(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    let last_ms = engine::rules::MAX_ORDER_CLOCK_MS;
    let end = engine::command::MAX_TIME_MS.to_string();
    assert_eq!(
        s.raw(
            CommandName::Setup,
            &["s", "3", &T0.to_string(), &end, "1000"]
        )
        .await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    s.at(last_ms).await;
    for u in ["a", "b"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    assert_eq!(s.granted(2).await, ["a", "b"]);
    assert_eq!(s.confirmed("a").await, "s-999999999999900");
    s.at(last_ms + 1).await;
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "b", "5"]).await,
        Err("ERR order numbers exhausted".into())
    );
    assert_eq!(s.snapshot().await, before);
}

/// Redis lost a sale that MongoDB has, orders included: its orders are
/// restored (in batches) before SETUP opens it again, so no buyer ever sees
/// the sale without them.
async fn restore_brings_back_a_sale_redis_lost(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for u in ["ann", "bob", "cat"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    assert_eq!(s.granted(2).await, ["ann", "bob"]);
    let ann = s.confirmed("ann").await;
    s.at(T0 + 3).await;
    let bob = s.confirmed("bob").await;
    s.lose_everything().await;

    // The first batch; the sale is not there yet for anyone.
    assert_eq!(s.restore(&["s", "ann", &ann]).await, Ok((1, 1)));
    for (name, args) in [
        (CommandName::Enqueue, vec!["s", "ann"]),
        (CommandName::Confirm, vec!["s", "bob"]),
        (CommandName::Status, vec!["s"]),
    ] {
        assert_eq!(
            s.raw(name, &args).await,
            Err("NOSALE no such sale".into()),
            "{name:?}"
        );
    }
    // Batches may overlap.
    assert_eq!(
        s.restore(&["s", "ann", &ann, "bob", &bob]).await,
        Ok((1, 2))
    );
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    assert_eq!(
        s.raw(CommandName::Setup, &["s", "1", &start, &end, "1000"])
            .await,
        Err("CONFLICT stock cannot go below sold plus held (2)".into())
    );
    assert_eq!(
        s.raw(CommandName::Setup, &["s", "3", &start, &end, "1000"])
            .await,
        Ok(Resp::Array(vec![bulk("created")]))
    );
    let record = s.record().await;
    assert_eq!((record.sold, record.order_seq), (2, number(&bob)));
    assert_eq!(
        s.client.enqueue("s", "ann").await.unwrap(),
        EnqueueReply::Purchased {
            order_id: ann.clone()
        }
    );
    assert_eq!(
        s.client.confirm("s", "bob", 0).await.unwrap(),
        ConfirmReply::Purchased {
            order_id: bob.clone()
        }
    );
    // cat, whose place was lost, queues again and buys the last unit, in
    // the very ms of bob's order: a new number all the same.
    s.client.enqueue("s", "cat").await.unwrap();
    assert_eq!(s.granted(5).await, ["cat"]);
    let cat = s.confirmed("cat").await;
    assert_eq!(number(&cat), number(&bob) + 1);
    // Only cat's order is new to the outbox: MongoDB has the others.
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(keys::outbox("s"))
        .arg("-")
        .arg("+")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let ids: Vec<&String> = entries.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [&keys::outbox_entry_id(number(&cat))]);
    let before = s.snapshot().await;
    assert_eq!(
        s.restore(&["s", "bob", &bob, "ann", &ann]).await,
        Ok((0, 3))
    );
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated RESTORE changes nothing"
    );
}

/// RESTORE into a sale Redis still has (rolled back to an older state):
/// restored users leave the queue, their holds and the lapsed set; what
/// would sell a unit twice is refused whole.
async fn restore_into_a_live_sale(backend: Backend) {
    let mut s = sale(backend, 4, 0, 0).await;
    for u in ["a", "b"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    assert_eq!(s.granted(2).await, ["a", "b"]);
    let a = s.confirmed("a").await;
    // b's hold lapses and is reclaimed; q holds, w waits.
    s.at(T0 + 1000).await;
    s.client.enqueue("s", "q").await.unwrap();
    s.client.enqueue("s", "w").await.unwrap();
    assert_eq!(s.granted(1).await, ["q"]);
    s.at(T0 + 1500).await;

    let before = s.snapshot().await;
    for (args, error) in [
        (
            vec!["s", "q", "s-7", "a", "s-8"],
            format!("CONFLICT a already has order {a}"),
        ),
        (
            vec!["s", "q", "s-7", "x", &a],
            format!("CONFLICT {a} is another user's order"),
        ),
        // sold 1 + q's hold + 4 new > 4.
        (
            vec!["s", "x", "s-1", "y", "s-2", "z", "s-3", "v", "s-4"],
            "CONFLICT sold plus held would exceed stock (6)".to_string(),
        ),
    ] {
        assert_eq!(s.restore(&args).await, Err(error), "{args:?}");
        assert_eq!(s.snapshot().await, before, "{args:?}: nothing changed");
    }

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
    assert_eq!(s.restore(&args).await, Ok((3, 4)));
    let status = s.client.status("s", None).await.unwrap();
    assert_eq!(
        (status.sale.sold, status.sale.held, status.sale.queued),
        (4, 0, 0)
    );
    assert_eq!(s.record().await.order_seq, 190_000_000_000_000);
    let hold_key: bool = redis::cmd("EXISTS")
        .arg(keys::hold("s", "q"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let lapsed: u64 = redis::cmd("ZCARD")
        .arg(keys::lapsed("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!((hold_key, lapsed), (false, 0));
    for (user, id) in [("q", "s-7"), ("b", "s-190000000000000"), ("w", "s-8")] {
        assert_eq!(
            s.client.confirm("s", user, 0).await.unwrap(),
            ConfirmReply::Purchased {
                order_id: id.into()
            }
        );
        assert_eq!(
            s.user(user).await,
            UserStatus::Purchased {
                order_id: id.into()
            }
        );
    }
    let outbox: u64 = redis::cmd("XLEN")
        .arg(keys::outbox("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(outbox, 1, "restored orders are not added to the outbox");
    let before = s.snapshot().await;
    assert_eq!(s.restore(&args).await, Ok((0, 4)));
    assert_eq!(
        s.snapshot().await,
        before,
        "a repeated RESTORE changes nothing"
    );
}

fn raw_setup(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The sale's price lives in the engine: CONFIRM charges it (an amount
/// given must equal it, or nothing is bought), and it cannot change while a
/// unit is held, so a holder pays what they were admitted at. A sale set up
/// without a PRICE needs the amount.
async fn the_price_is_kept_and_locked_while_units_are_held(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let setup = |price: &'static str| {
        let mut args = vec![
            "s".to_string(),
            "3".into(),
            start.clone(),
            end.clone(),
            "1000".into(),
        ];
        if !price.is_empty() {
            args.extend(["PRICE".to_string(), price.to_string()]);
        }
        args
    };
    for u in ["a", "b"] {
        s.client.enqueue("s", u).await.unwrap();
    }
    s.granted(2).await;
    // Unpriced: CONFIRM needs the amount, and refusing changes nothing.
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "a"]).await,
        Err("NOPRICE the sale has no price; give the amount".into())
    );
    assert_eq!(s.snapshot().await, before);
    // An unpriced sale may get a price while units are held.
    let args = setup("1999");
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&args)).await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    let record: String = redis::cmd("GET")
        .arg(keys::sale("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert!(record.ends_with(" price=1999"), "{record}");
    // Now it is locked: a new price is refused and changes nothing.
    let before = s.snapshot().await;
    let args = setup("2999");
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&args)).await,
        Err("LOCKED the price cannot change while 2 units are held".into())
    );
    assert_eq!(s.snapshot().await, before);
    // The wrong amount buys nothing and names the price.
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "a", "1000"]).await,
        Ok(Resp::Array(vec![bulk("amount_mismatch"), Resp::Int(1999)]))
    );
    assert_eq!(s.snapshot().await, before);
    // Without an amount, or with the right one: the price.
    assert_eq!(
        s.client.confirm("s", "a", None).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: order_at(T0, 0),
            amount: 1999,
        }
    );
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "b", "1999"]).await,
        Ok(Resp::Array(vec![
            bulk("confirmed"),
            bulk(&order_at(T0, 1)),
            Resp::Int(1999)
        ]))
    );
    // Nobody holds a unit: the price may change; SETUP without PRICE keeps it.
    let args = setup("2999");
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&args)).await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    let args = setup("");
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&args)).await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    s.client.enqueue("s", "c").await.unwrap();
    s.granted(1).await;
    assert_eq!(
        s.client.confirm("s", "c", None).await.unwrap(),
        ConfirmReply::Confirmed {
            order_id: order_at(T0, 2),
            amount: 2999,
        }
    );
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys::outbox("s"))
        .arg("-")
        .arg("+")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let amounts: Vec<u64> = entries
        .ids
        .iter()
        .map(|e| e.get::<String>("amount").unwrap().parse().unwrap())
        .collect();
    assert_eq!(amounts, vec![1999, 1999, 2999]);
}

impl Sale {
    async fn state(&mut self) -> SaleState {
        self.client.status("s", None).await.unwrap().sale.state
    }

    /// The outbox entries' fields, in stream order.
    async fn outbox(&mut self) -> Vec<Vec<(String, String)>> {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(keys::outbox("s"))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        entries.into_iter().map(|(_, fields)| fields).collect()
    }
}

/// Issue 13: an admin pauses a live sale. New buyers are told `paused` and
/// change nothing; GRANT admits nobody; those queued keep their place; a
/// holder can still buy; RESUME continues from the same queue. Both are
/// idempotent, and pausing a sale that is not live is refused unchanged.
async fn pause_and_resume_a_live_sale(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for user in ["ann", "bob", "cat"] {
        s.client.enqueue("s", user).await.unwrap();
    }
    assert_eq!(s.granted(1).await, vec!["ann"]);
    s.at(T0 + 10).await;
    assert_eq!(
        s.raw(CommandName::Pause, &["s"]).await,
        Ok(Resp::Array(vec![bulk("paused")]))
    );
    assert_eq!(s.record().await.paused_at, Some(T0 + 10));
    assert_eq!(s.state().await, SaleState::Paused);
    let paused = s.snapshot().await;
    s.at(T0 + 20).await;
    assert_eq!(
        s.raw(CommandName::Pause, &["s"]).await,
        Ok(Resp::Array(vec![bulk("already_paused")]))
    );
    // A new buyer is told, and nothing changes: not the queue, not the
    // record, not even for a GRANT (nobody's hold has expired yet).
    assert_eq!(
        s.raw(CommandName::Enqueue, &["s", "dan"]).await,
        Ok(Resp::Array(vec![bulk("paused")]))
    );
    assert_eq!(
        s.raw(CommandName::Grant, &["s", "10"]).await,
        Ok(Resp::Array(vec![bulk("paused"), Resp::Int(0)]))
    );
    assert_eq!(s.snapshot().await, paused, "paused: nothing changed");
    // Those queued keep their place and are told it.
    assert_eq!(
        s.client.enqueue("s", "cat").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );
    assert_eq!(s.user("bob").await, UserStatus::Queued { position: 1 });
    assert_eq!(s.user("dan").await, UserStatus::None);
    // The holder keeps the unit and can buy it.
    assert_eq!(s.user("ann").await, UserStatus::Holding { ms_left: 980 });
    let ann = s.confirmed("ann").await;
    assert_eq!(ann, order_at(T0 + 20, 0));

    // Resume: the same queue, admission from its head.
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::Resumed);
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::NotPaused);
    assert_eq!(s.record().await.paused_at, None);
    assert_eq!(s.state().await, SaleState::Active);
    assert_eq!(s.granted(1).await, vec!["bob"]);
    assert_eq!(
        s.client.enqueue("s", "dan").await.unwrap(),
        EnqueueReply::Queued {
            position: 2,
            length: 2
        }
    );

    // A hold that expires while paused is reclaimed; its unit waits.
    assert_eq!(s.client.pause("s").await.unwrap(), PauseReply::Paused);
    s.at(T0 + 2000).await;
    assert_eq!(
        s.client.grant("s", 10).await.unwrap(),
        GrantReply::Paused { released: 1 }
    );
    assert_eq!(s.user("bob").await, UserStatus::Expired);
    assert_eq!(s.user("cat").await, UserStatus::Queued { position: 1 });

    // Only a live sale can be paused: after its end it is refused, and the
    // refusal changes nothing. RESUME still clears the mark.
    s.at(T0 + 60_000).await;
    assert_eq!(s.state().await, SaleState::Ended);
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Pause, &["s"]).await,
        Err("CONFLICT only a live sale can be paused; it is ended".to_string())
    );
    assert_eq!(s.snapshot().await, before);
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::Resumed);
    // Before its start, too.
    s.at(T0 - 5).await;
    assert_eq!(
        s.raw(CommandName::Pause, &["s"]).await,
        Err("CONFLICT only a live sale can be paused; it is upcoming".to_string())
    );
}

/// A sold-out sale cannot be paused; SETUP keeps a pause.
async fn pause_refuses_a_sold_out_sale_and_survives_setup(backend: Backend) {
    let mut s = sale(backend, 1, 0, 0).await;
    s.client.enqueue("s", "a").await.unwrap();
    s.granted(1).await;
    assert_eq!(s.client.pause("s").await.unwrap(), PauseReply::Paused);
    let params = SetupParams {
        stock: 2,
        starts_at: T0,
        ends_at: T0 + 90_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    assert_eq!(
        s.client.setup("s", params.clone()).await.unwrap(),
        SetupReply::Updated
    );
    assert_eq!(s.state().await, SaleState::Paused);
    s.confirmed("a").await;
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::Resumed);
    assert_eq!(
        s.client
            .setup("s", SetupParams { stock: 1, ..params })
            .await
            .unwrap(),
        SetupReply::Updated
    );
    assert_eq!(s.state().await, SaleState::SoldOut);
    let before = s.snapshot().await;
    assert_eq!(
        s.raw(CommandName::Pause, &["s"]).await,
        Err("CONFLICT only a live sale can be paused; it is sold_out".to_string())
    );
    assert_eq!(s.snapshot().await, before);
}

/// SETUP ... PAUSED 1 sets the pause mark in the same command: a paused
/// sale Redis lost comes back paused from its first moment (its orders
/// restored first), nobody queues and GRANT admits nobody. A repeat changes
/// nothing, PAUSED 0 clears the mark, omitting it keeps it; a bad value is
/// refused and changes nothing; a sale that is not live takes the mark too.
async fn setup_paused_sets_the_pause_in_one_command(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for user in ["ann", "bob", "cat"] {
        s.client.enqueue("s", user).await.unwrap();
    }
    assert_eq!(s.granted(1).await, vec!["ann"]);
    let ann = s.confirmed("ann").await;
    assert_eq!(s.client.pause("s").await.unwrap(), PauseReply::Paused);
    s.lose_everything().await;

    s.at(T0 + 10).await;
    assert_eq!(s.restore(&["s", "ann", &ann]).await, Ok((1, 1)));
    let (start, end) = (T0.to_string(), (T0 + 60_000).to_string());
    let setup = |tail: &[&str]| {
        let mut args = vec!["s", "3", start.as_str(), end.as_str(), "1000"];
        args.extend_from_slice(tail);
        args.into_iter().map(String::from).collect::<Vec<String>>()
    };
    // A bad value, or no value: refused, nothing written.
    let before = s.snapshot().await;
    for (tail, error) in [
        (
            &["PAUSED", "2"][..],
            "ERR PAUSED must be an integer from 0 to 1",
        ),
        (
            &["paused", "yes"][..],
            "ERR PAUSED must be an integer from 0 to 1",
        ),
        (&["PAUSED"][..], "ERR syntax error"),
        (&["PAUSED", "1", "PAUSED", "1"][..], "ERR syntax error"),
    ] {
        assert_eq!(
            s.raw(CommandName::Setup, &raw_setup(&setup(tail))).await,
            Err(error.to_string()),
            "{tail:?}"
        );
    }
    assert_eq!(s.snapshot().await, before);
    let params = SetupParams {
        stock: 3,
        starts_at: T0,
        ends_at: T0 + 60_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    assert_eq!(
        s.client
            .setup_with_pause("s", params.clone(), LotteryParams::default(), Some(true))
            .await
            .unwrap(),
        SetupReply::Created
    );
    let record = s.record().await;
    assert_eq!((record.sold, record.paused_at), (1, Some(T0 + 10)));
    assert_eq!(s.state().await, SaleState::Paused);
    let paused = s.snapshot().await;
    // Nobody new queues, GRANT admits nobody, the buyer keeps the order.
    assert_eq!(
        s.raw(CommandName::Enqueue, &["s", "bob"]).await,
        Ok(Resp::Array(vec![bulk("paused")]))
    );
    assert_eq!(
        s.raw(CommandName::Grant, &["s", "10"]).await,
        Ok(Resp::Array(vec![bulk("paused"), Resp::Int(0)]))
    );
    assert_eq!(
        s.client.enqueue("s", "ann").await.unwrap(),
        EnqueueReply::Purchased { order_id: ann }
    );
    assert_eq!(s.snapshot().await, paused, "paused: nothing changed");
    // The same SETUP again (the API's restore may run twice): nothing
    // changes, not even paused_at.
    s.at(T0 + 20).await;
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&setup(&["Paused", "1"])))
            .await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    assert_eq!(s.snapshot().await, paused);
    // Omitted: kept.
    assert_eq!(
        s.client.setup("s", params.clone()).await.unwrap(),
        SetupReply::Updated
    );
    assert_eq!(s.snapshot().await, paused);
    // PAUSED 0 clears it: admission starts.
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&setup(&["PAUSED", "0"])))
            .await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    assert_eq!(s.record().await.paused_at, None);
    assert_eq!(s.state().await, SaleState::Active);
    s.client.enqueue("s", "bob").await.unwrap();
    assert_eq!(s.granted(10).await, vec!["bob"]);

    // Not live: after its end the mark is stored all the same (STATUS
    // says ended), and RESUME clears it.
    s.at(T0 + 60_000).await;
    assert_eq!(
        s.raw(CommandName::Setup, &raw_setup(&setup(&["PAUSED", "1"])))
            .await,
        Ok(Resp::Array(vec![bulk("updated")]))
    );
    assert_eq!(s.record().await.paused_at, Some(T0 + 60_000));
    assert_eq!(s.state().await, SaleState::Ended);
    assert_eq!(s.client.resume("s").await.unwrap(), ResumeReply::Resumed);
    // Before the start: upcoming, then paused from the start.
    s.at(T0 - 5).await;
    let later = SetupParams {
        ends_at: T0 + 90_000,
        ..params
    };
    assert_eq!(
        s.client
            .setup_with_pause("s", later, LotteryParams::default(), Some(true))
            .await
            .unwrap(),
        SetupReply::Updated
    );
    assert_eq!(s.state().await, SaleState::Upcoming);
    s.at(T0 + 60_001).await;
    assert_eq!(s.state().await, SaleState::Paused);
    assert_eq!(
        s.client.grant("s", 10).await.unwrap(),
        GrantReply::Paused { released: 1 }
    );
}

/// Issue 13: CONFIRM's CONTACT keeps the address as typed in the order's
/// outbox entry; without it the entry is exactly as before.
async fn confirm_keeps_the_contact_as_typed(backend: Backend) {
    let mut s = sale(backend, 3, 0, 0).await;
    for user in ["bob@x.com", "ann@x.com"] {
        s.client.enqueue("s", user).await.unwrap();
    }
    s.granted(2).await;
    let bob = match s
        .client
        .confirm_with_contact("s", "bob@x.com", 5, Some("Bob+Shoes@x.com"))
        .await
        .unwrap()
    {
        ConfirmReply::Confirmed { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        s.raw(CommandName::Confirm, &["s", "ann@x.com", "5"]).await,
        Ok(Resp::Array(vec![
            bulk("confirmed"),
            bulk(&order_at(T0, 1)),
            Resp::Int(5)
        ]))
    );
    // A repeat ignores the contact, as it ignores the amount.
    assert_eq!(
        s.raw(
            CommandName::Confirm,
            &["s", "bob@x.com", "CONTACT", "x@y.z"]
        )
        .await,
        Ok(Resp::Array(vec![bulk("purchased"), bulk(&bob)]))
    );
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (t0, first, second) = (T0.to_string(), order_at(T0, 0), order_at(T0, 1));
    assert_eq!(
        s.outbox().await,
        vec![
            pairs(&[
                ("order_id", &first),
                ("sale_id", "s"),
                ("user_id", "bob@x.com"),
                ("amount", "5"),
                ("confirmed_at", &t0),
                ("contact", "Bob+Shoes@x.com"),
            ]),
            pairs(&[
                ("order_id", &second),
                ("sale_id", "s"),
                ("user_id", "ann@x.com"),
                ("amount", "5"),
                ("confirmed_at", &t0),
            ]),
        ]
    );
    // As the API and the worker read it.
    let entry = flashsale::outbox::order_entry(&mut s.conn, "s", &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.user_id.as_str(), entry.contact()),
        ("bob@x.com", "Bob+Shoes@x.com")
    );
}

/// A test-clock engine at T0 - 20 s with sale "s" (`stock` units from T0
/// for 60 s, holds of 1 s) with a pre-queue window of 10 s and [`SEED`].
async fn lottery_sale(backend: Backend, stock: u64) -> Sale {
    let engine = EngineServer::start(backend, true).await;
    engine.set_clock(T0 - 20_000).await;
    let mut client = engine.client().await;
    let params = SetupParams {
        stock,
        starts_at: T0,
        ends_at: T0 + 60_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    let lottery = LotteryParams {
        prequeue_ms: Some(10_000),
        seed: Some(SEED.to_string()),
    };
    assert_eq!(
        client
            .setup_with_lottery("s", params, lottery)
            .await
            .expect("setup"),
        SetupReply::Created
    );
    let conn = engine.server.connection().await;
    Sale {
        engine,
        client,
        conn,
    }
}

const SEED: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Issue 13 item 5: buys in the pre-queue window register; the seed stays
/// hidden behind its SHA1 until the first write command at the start
/// draws; the drawn order is what anyone recomputes from the seed and the
/// published SHA1(user) list, registrants are queued in it, ahead of a
/// later arrival; STATUS never draws; PREQUEUE and SEED are locked once the
/// window has opened.
async fn the_prequeue_lottery(backend: Backend) {
    let mut s = lottery_sale(backend, 3).await;
    s.at(T0 - 10_001).await;
    assert_eq!(
        s.raw(CommandName::Enqueue, &["s", "early"]).await,
        Ok(Resp::Array(vec![bulk("not_started"), Resp::Int(10_001)]))
    );
    s.at(T0 - 10_000).await;
    let users: Vec<String> = (0..12).map(|i| format!("u{i}@x.io")).collect();
    for (i, user) in users.iter().enumerate() {
        assert_eq!(
            s.raw(CommandName::Enqueue, &["s", user]).await,
            Ok(Resp::Array(vec![
                bulk("registered"),
                Resp::Int(i as i64 + 1)
            ]))
        );
    }
    // Again: the same answer, nothing changed.
    let before = s.snapshot().await;
    assert_eq!(
        s.client.enqueue("s", &users[3]).await.unwrap(),
        EnqueueReply::Registered { count: 12 }
    );
    assert_eq!(s.snapshot().await, before);
    // Locked: another seed or window is refused and changes nothing; the
    // same ones are fine.
    let params = SetupParams {
        stock: 3,
        starts_at: T0,
        ends_at: T0 + 60_000,
        hold_ttl_ms: 1000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    let other = LotteryParams {
        prequeue_ms: None,
        seed: Some("ab".repeat(32)),
    };
    assert_eq!(
        s.client
            .setup_with_lottery("s", params.clone(), other)
            .await
            .map_err(|e| e.to_string()),
        Err("LOCKED the pre-queue window has opened or the sale has started; PREQUEUE and SEED are fixed".to_string())
    );
    assert_eq!(s.snapshot().await, before);
    assert_eq!(
        s.client.setup("s", params).await.unwrap(),
        SetupReply::Updated
    );
    // Before the draw: the commitment only, and a registered user state,
    // at the start too (STATUS writes nothing).
    let pending = DrawReply::Pending {
        prequeue_ms: 10_000,
        registered: 12,
        commitment: lottery::sha1_hex(SEED.as_bytes()),
    };
    assert_eq!(s.client.draw("s", 0, 100).await.unwrap(), pending);
    s.at(T0).await;
    assert_eq!(s.user(&users[0]).await, UserStatus::Registered);
    assert_eq!(s.client.draw("s", 0, 100).await.unwrap(), pending);
    // A registrant leaves before the draw.
    assert_eq!(
        s.client.release("s", &users[11]).await.unwrap(),
        ReleaseReply::LeftQueue
    );
    // The first write at the start draws: a latecomer queues behind.
    s.at(T0 + 7).await;
    assert_eq!(
        s.client.enqueue("s", "late@x.io").await.unwrap(),
        EnqueueReply::Queued {
            position: 12,
            length: 12
        }
    );
    let DrawReply::Drawn {
        prequeue_ms,
        drawn_at,
        total,
        seed,
        entries,
    } = s.client.draw("s", 0, 1000).await.unwrap()
    else {
        panic!("not drawn");
    };
    assert_eq!((prequeue_ms, drawn_at, total), (10_000, T0 + 7, 11));
    assert_eq!(seed, SEED);
    let hashes: Vec<String> = users[..11].iter().map(|u| lottery::entry(u)).collect();
    assert_eq!(entries, lottery::order_entries(&seed, hashes));
    // The queue is that order: each registrant's position is their place.
    for user in &users[..11] {
        let place = entries
            .iter()
            .position(|e| *e == lottery::entry(user))
            .unwrap();
        assert_eq!(
            s.user(user).await,
            UserStatus::Queued {
                position: place as u64 + 1
            }
        );
    }
    assert_eq!(
        s.client.draw("s", 10, 5).await.unwrap(),
        DrawReply::Drawn {
            prequeue_ms: 10_000,
            drawn_at: T0 + 7,
            total: 11,
            seed: SEED.to_string(),
            entries: entries[10..].to_vec(),
        }
    );
    // Drawn once: a GRANT later admits from the head and draws nothing.
    let head = s.granted(2).await;
    assert_eq!(
        head.iter().map(|u| lottery::entry(u)).collect::<Vec<_>>(),
        entries[..2].to_vec()
    );
    assert_eq!(s.record().await.drawn_at, Some(T0 + 7));
    // The seed's key and the draw are the sale's keys (retention covers
    // them); the registrations are gone.
    let registered: i64 = redis::cmd("EXISTS")
        .arg(keys::registered("s"))
        .query_async(&mut s.conn)
        .await
        .unwrap();
    assert_eq!(registered, 0);
}

/// GRANT draws too (the worker calls it continuously), and a sale without
/// a window has no draw.
async fn grant_draws_and_a_plain_sale_has_none(backend: Backend) {
    let mut s = lottery_sale(backend, 2).await;
    s.at(T0 - 1).await;
    for user in ["a", "b", "c"] {
        s.client.enqueue("s", user).await.unwrap();
    }
    s.at(T0).await;
    let order: Vec<String> = lottery::draw(SEED, ["a", "b", "c"].map(String::from))
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    assert_eq!(s.granted(10).await, order[..2].to_vec());
    assert_eq!(s.user(&order[2]).await, UserStatus::Queued { position: 1 });
    let mut plain = sale(backend, 1, 0, 0).await;
    assert_eq!(plain.client.draw("s", 0, 1).await.unwrap(), DrawReply::None);
}

/// Not a timed assertion: what the draw of 10,000 registrants costs one
/// command on a real server (printed; run with --nocapture).
async fn drawing_ten_thousand_registrants(backend: Backend) {
    let mut s = lottery_sale(backend, 1).await;
    s.at(T0 - 1).await;
    let mut pipe = redis::pipe();
    let name = CommandName::Enqueue;
    for i in 0..10_000 {
        let user = format!("user{i}@example.com");
        match backend {
            Backend::Module => pipe.cmd(name.module_command()).arg("s").arg(user),
            Backend::Lua => pipe
                .cmd("FCALL")
                .arg(name.function_name())
                .arg(1)
                .arg("s")
                .arg(user),
        };
    }
    let _: redis::Value = pipe.query_async(&mut s.conn).await.unwrap();
    s.at(T0).await;
    let started = std::time::Instant::now();
    s.granted(1).await;
    println!(
        "{backend:?}: GRANT drew 10000 registrants in {:?}",
        started.elapsed()
    );
    match s.client.draw("s", 0, 1).await.unwrap() {
        DrawReply::Drawn { total, .. } => assert_eq!(total, 10_000),
        other => panic!("{other:?}"),
    }
}

tests::on_both_backends!(
    the_prequeue_lottery,
    grant_draws_and_a_plain_sale_has_none,
    drawing_ten_thousand_registrants,
    pause_and_resume_a_live_sale,
    pause_refuses_a_sold_out_sale_and_survives_setup,
    setup_paused_sets_the_pause_in_one_command,
    confirm_keeps_the_contact_as_typed,
    the_price_is_kept_and_locked_while_units_are_held,
    every_outcome_of_a_purchase,
    fifo_over_many_users,
    every_command_is_idempotent,
    expired_holds_free_their_units,
    a_lapsed_user_queues_again_at_the_back,
    release_returns_the_unit,
    window_edges,
    queue_full,
    rate_is_a_total_over_all_callers,
    setup_refuses_stock_below_sold_plus_held,
    bad_input_is_an_error_and_changes_nothing,
    a_key_of_the_wrong_type_is_refused_before_any_write,
    a_broken_key_a_command_never_touches_does_not_refuse_it,
    real_clock_hold_expiry,
    real_clock_window_opens,
    over_maxmemory_only_release_runs,
    a_rolled_back_order_id_is_never_given_again,
    a_legacy_sale_record_upgrades_in_place,
    order_numbers_run_out_in_the_year_2286,
    restore_brings_back_a_sale_redis_lost,
    restore_into_a_live_sale,
);
