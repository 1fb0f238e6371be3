//! The engine's outbox stream as a client reads it outside the worker's
//! consumer group: the entry behind one order id.

use engine::{keys, OutboxEntry};
use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;
use redis::Value;

use crate::ClientError;

/// The outbox entry of `order_id` in `sale` (order `<sale>-<n>` is entry
/// `0-<n>`). `None` when the id is not one of the sale's, the entry is gone
/// (trimmed, or deleted by hand), or it does not decode: callers then fall
/// back to the durable record.
pub async fn order_entry<C: ConnectionLike + Send>(
    conn: &mut C,
    sale: &str,
    order_id: &str,
) -> Result<Option<OutboxEntry>, ClientError> {
    let Some(n) = keys::order_number(sale, order_id) else {
        return Ok(None);
    };
    let id = keys::outbox_entry_id(n);
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys::outbox(sale))
        .arg(&id)
        .arg(&id)
        .query_async(conn)
        .await?;
    let Some(entry) = reply.ids.into_iter().next() else {
        return Ok(None);
    };
    Ok(decode(entry.map.iter()).filter(|e| e.order_id == order_id))
}

/// An entry from its field/value pairs as Redis returned them; `None` if
/// it does not decode (see [`OutboxEntry::from_fields`]).
pub fn decode<'a>(
    fields: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Option<OutboxEntry> {
    let mut pairs = Vec::with_capacity(engine::store::outbox_field::ALL.len());
    for (name, value) in fields {
        let text = match value {
            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.to_string(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        pairs.push((name.as_str(), text));
    }
    OutboxEntry::from_fields(pairs).ok()
}
