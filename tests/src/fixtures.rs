//! Engine-level set-ups shared by suites and benchmarks: queued users and
//! confirmed orders, made through the module commands, pipelined.

use flashsale::{EngineClient, GrantReply};
use redis::aio::MultiplexedConnection;

/// Queues `users` in order on a module-backed engine.
pub async fn queue_users(conn: &mut MultiplexedConnection, sale: &str, users: &[String]) {
    for chunk in users.chunks(500) {
        let mut pipe = redis::pipe();
        for user in chunk {
            pipe.cmd("FLASHSALE.ENQUEUE").arg(sale).arg(user);
        }
        let _: Vec<redis::Value> = pipe.query_async(conn).await.expect("enqueue");
    }
}

/// `users` queued, granted and confirmed (amount 1999 each), so their
/// orders sit in the sale's outbox. The sale needs the stock for them.
pub async fn confirm_orders(
    client: &mut EngineClient<MultiplexedConnection>,
    conn: &mut MultiplexedConnection,
    sale: &str,
    users: &[String],
) {
    queue_users(conn, sale, users).await;
    // A running worker may admit some of them first: grant until nobody
    // waits, whoever does the granting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let GrantReply::Ended { .. } = client.grant(sale, 10_000).await.expect("grant") {
            panic!("sale {sale} ended while granting");
        }
        if client.status(sale, None).await.expect("status").sale.queued == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "could not admit the users of {sale}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for chunk in users.chunks(500) {
        let mut pipe = redis::pipe();
        for user in chunk {
            pipe.cmd("FLASHSALE.CONFIRM").arg(sale).arg(user).arg(1999);
        }
        let _: Vec<redis::Value> = pipe.query_async(conn).await.expect("confirm");
    }
}
