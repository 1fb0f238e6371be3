//! The sale's outbox stream, read through a consumer group: at-least-once
//! delivery, acknowledged only after MongoDB acknowledged the write. Entries
//! a dead worker left pending are claimed by another after an idle time.

use std::collections::HashMap;

use flashsale::keys;
use redis::aio::ConnectionLike;
use redis::{RedisError, RedisResult, Value};

pub const GROUP: &str = "flashsale-workers";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: HashMap<String, String>,
    /// Still pending, but deleted from the stream (by hand): nothing to copy.
    pub deleted: bool,
}

/// Creates the consumer group (and the stream if needed); an existing group
/// is fine.
pub async fn ensure_group<C: ConnectionLike + Send>(conn: &mut C, sale: &str) -> RedisResult<()> {
    let created: RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys::outbox(sale))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `XREADGROUP … STREAMS outbox <from>`: `"0"` re-reads this consumer's own
/// pending entries, `">"` reads new ones.
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
    consumer: &str,
    from: &str,
    count: usize,
) -> RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(keys::outbox(sale))
        .arg(from)
        .query_async(conn)
        .await?;
    // [[stream, [entry, ...]]] or nil
    let Value::Array(streams) = reply else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for stream in streams {
        if let Value::Array(mut parts) = stream {
            if parts.len() == 2 {
                entries.extend(parse_entries(parts.remove(1))?);
            }
        }
    }
    Ok(entries)
}

/// `XAUTOCLAIM`: takes over entries idle for `min_idle_ms` (their worker
/// died), from the start of the pending list.
pub async fn claim_idle<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(keys::outbox(sale))
        .arg(GROUP)
        .arg(consumer)
        .arg(min_idle_ms)
        .arg("0-0")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    // [next-start, [entry, ...], [deleted id, ...]]
    match reply {
        Value::Array(mut parts) if parts.len() >= 2 => parse_entries(parts.swap_remove(1)),
        _ => Ok(Vec::new()),
    }
}

pub async fn ack<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
    ids: &[String],
) -> RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    redis::cmd("XACK")
        .arg(keys::outbox(sale))
        .arg(GROUP)
        .arg(ids)
        .query_async::<i64>(conn)
        .await?;
    Ok(())
}

/// The consumer group's `XINFO GROUPS` fields; `None` while the stream or
/// the group does not exist.
async fn group_info<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
) -> RedisResult<Option<HashMap<String, Value>>> {
    let reply: RedisResult<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys::outbox(sale))
        .query_async(conn)
        .await;
    let groups = match reply {
        Ok(Value::Array(groups)) => groups,
        Ok(_) => return Ok(None),
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    for group in groups {
        let Value::Array(fields) = group else {
            continue;
        };
        let mut info: HashMap<String, Value> = HashMap::new();
        for pair in fields.chunks(2) {
            if let [key, value] = pair {
                info.insert(text(key).unwrap_or_default(), value.clone());
            }
        }
        if info.get("name").and_then(text).as_deref() == Some(GROUP) {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// Entries not yet delivered to any worker, and delivered but unacknowledged
/// (`XINFO GROUPS`: lag, pending); `None` while the group does not exist.
pub async fn backlog<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
) -> RedisResult<Option<(u64, u64)>> {
    let Some(info) = group_info(conn, sale).await? else {
        return Ok(None);
    };
    let number = |name: &str| match info.get(name) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    Ok(Some((number("lag"), number("pending"))))
}

/// A stream entry id `ms-seq` as a pair that orders as Redis orders ids.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Removes the entries MongoDB has: those before the oldest entry still
/// pending (its write failed, its worker died, or it is parked for an
/// operator), before the last one delivered (which stays so the stream
/// still shows the newest order), and confirmed more than `keep_ms` before
/// `now_ms` (an entry's number is at least its confirmation ms ×
/// `ORDERS_PER_MS`). Everything removed was acknowledged, that is written
/// to MongoDB; `XINFO STREAM` still counts every entry ever added
/// (`entries-added`). Returns how many entries went and how many are left.
pub async fn trim_copied<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
    now_ms: u64,
    keep_ms: u64,
) -> RedisResult<(u64, u64)> {
    let Some(info) = group_info(conn, sale).await? else {
        return Ok((0, 0));
    };
    let Some(last_delivered) = info.get("last-delivered-id").and_then(text) else {
        return Ok((0, 0));
    };
    // [count, oldest id, newest id, [[consumer, count], ...]]
    let pending: Value = redis::cmd("XPENDING")
        .arg(keys::outbox(sale))
        .arg(GROUP)
        .query_async(conn)
        .await?;
    let oldest_pending = match &pending {
        Value::Array(parts) => parts.get(1).and_then(text),
        _ => None,
    };
    let mut keep_from = match oldest_pending {
        Some(oldest) if stream_id(&oldest) < stream_id(&last_delivered) => oldest,
        _ => last_delivered,
    };
    let recent = keys::outbox_entry_id(
        now_ms
            .saturating_sub(keep_ms)
            .saturating_mul(engine::rules::ORDERS_PER_MS),
    );
    if stream_id(&recent) < stream_id(&keep_from) {
        keep_from = recent;
    }
    let outbox = keys::outbox(sale);
    if stream_id(&keep_from).is_none_or(|id| id == (0, 0)) {
        let left = redis::cmd("XLEN").arg(&outbox).query_async(conn).await?;
        return Ok((0, left));
    }
    redis::pipe()
        .cmd("XTRIM")
        .arg(&outbox)
        .arg("MINID")
        .arg(&keep_from)
        .cmd("XLEN")
        .arg(&outbox)
        .query_async(conn)
        .await
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn malformed(what: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "malformed stream reply",
        what.to_string(),
    ))
}

/// `[[id, [field, value, ...]], ...]`; an entry deleted meanwhile comes back
/// with nil fields and is marked `deleted`.
fn parse_entries(value: Value) -> RedisResult<Vec<Entry>> {
    let Value::Array(items) = value else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(parts) = item else {
            return Err(malformed("entry is not an array"));
        };
        let [id, fields] = parts.as_slice() else {
            return Err(malformed("entry is not [id, fields]"));
        };
        let id = text(id).ok_or_else(|| malformed("entry id"))?;
        let Value::Array(flat) = fields else {
            entries.push(Entry {
                id,
                fields: HashMap::new(),
                deleted: true,
            });
            continue;
        };
        let fields = flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((text(k)?, text(v)?)),
                _ => None,
            })
            .collect();
        entries.push(Entry {
            id,
            fields,
            deleted: false,
        });
    }
    Ok(entries)
}
