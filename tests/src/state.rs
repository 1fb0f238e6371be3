//! Reads a sale's keys back into the model's [`SaleData`], so a server's
//! state can be compared with the reference model field by field.

use std::collections::BTreeMap;

use engine::{keys, OutboxEntry, SaleData, SaleRecord};
use redis::aio::MultiplexedConnection;

async fn query<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    cmd: &mut redis::Cmd,
) -> T {
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("query failed: {e}"))
}

async fn zset(conn: &mut MultiplexedConnection, key: &str) -> BTreeMap<String, u64> {
    let pairs: Vec<(String, f64)> = query(
        conn,
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES"),
    )
    .await;
    pairs.into_iter().map(|(m, s)| (m, s as u64)).collect()
}

/// The sale's data as stored in Redis.
pub async fn read_sale(conn: &mut MultiplexedConnection, sale: &str) -> SaleData {
    let raw: Option<String> = query(conn, redis::cmd("GET").arg(keys::sale(sale))).await;
    let record = raw.map(|raw| {
        SaleRecord::decode(raw.as_bytes()).unwrap_or_else(|e| panic!("sale record {raw:?}: {e}"))
    });
    let entries: Vec<(String, Vec<(String, String)>)> = query(
        conn,
        redis::cmd("XRANGE")
            .arg(keys::outbox(sale))
            .arg("-")
            .arg("+"),
    )
    .await;
    let mut outbox = BTreeMap::new();
    for (id, fields) in entries {
        let n: u64 = id
            .strip_prefix("0-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("outbox id {id} is not 0-<n>"));
        // The engine's own decoder: every field, the optional contact too.
        let entry =
            OutboxEntry::from_fields(fields).unwrap_or_else(|e| panic!("outbox entry {id}: {e}"));
        outbox.insert(n, entry);
    }
    SaleData {
        sale: record,
        queue: zset(conn, &keys::queue(sale)).await,
        holds: zset(conn, &keys::holds(sale)).await,
        orders: query(conn, redis::cmd("HGETALL").arg(keys::orders(sale))).await,
        lapsed: zset(conn, &keys::lapsed(sale)).await,
        outbox,
        registered: zset(conn, &keys::registered(sale)).await,
        seed: query(conn, redis::cmd("GET").arg(keys::seed(sale))).await,
        draw: query(
            conn,
            redis::cmd("LRANGE").arg(keys::draw(sale)).arg(0).arg(-1),
        )
        .await,
    }
}

/// Every hold in the holds zset has its key, valued and expiring at exactly
/// the zset's expiry (unless Redis already evicted it), and no other keys
/// exist under the sale's tag. Returns the problems found.
pub async fn check_hold_keys(
    conn: &mut MultiplexedConnection,
    sale: &str,
    data: &SaleData,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected = keys::all_but_holds(sale);
    for (user, expiry) in &data.holds {
        let key = keys::hold(sale, user);
        let value: Option<String> = query(conn, redis::cmd("GET").arg(&key)).await;
        let expire_at: i64 = query(conn, redis::cmd("PEXPIRETIME").arg(&key)).await;
        match value {
            None => {}
            Some(v) if v == expiry.to_string() && expire_at == *expiry as i64 => {}
            Some(v) => problems.push(format!(
                "{key} = {v} expiring at {expire_at}, hold says {expiry}"
            )),
        }
        expected.push(key);
    }
    let pattern = format!("fs:{{{sale}}}:*");
    let present: Vec<String> = query(conn, redis::cmd("KEYS").arg(&pattern)).await;
    for key in present {
        if !expected.contains(&key) {
            problems.push(format!("unexpected key {key}"));
        }
    }
    problems
}
