//! What a client reads or writes on a sale's keys directly, outside the
//! engine's commands: an admin's page of the queue, and removing a sale
//! (at once, or once it is archived).
//! The API goes through these rather than the key layout; the worker's
//! outbox stream reads (`worker/src/outbox.rs`) build on `keys` directly.

use redis::aio::ConnectionLike;

use crate::{keys, ClientError, EngineClient};

impl<C: ConnectionLike + Send> EngineClient<C> {
    /// The users at 0-based queue positions `start..start + count`, in
    /// queue order (a read: the queue may move meanwhile).
    pub async fn queue_page(
        &mut self,
        sale: &str,
        start: u64,
        count: u64,
    ) -> Result<Vec<String>, ClientError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        Ok(redis::cmd("ZRANGE")
            .arg(keys::queue(sale))
            .arg(start)
            .arg(start + count - 1)
            .query_async(self.connection())
            .await?)
    }

    /// Every key of `sale`, its record first, then the other fixed keys and
    /// the hold key of each holder.
    async fn every_key(&mut self, sale: &str) -> Result<Vec<String>, ClientError> {
        let holders: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::holds(sale))
            .arg(0)
            .arg(-1)
            .query_async(self.connection())
            .await?;
        let record = keys::sale(sale);
        let mut every = vec![record.clone()];
        every.extend(
            keys::all_but_holds(sale)
                .into_iter()
                .filter(|key| *key != record),
        );
        every.extend(holders.iter().map(|user| keys::hold(sale, user)));
        Ok(every)
    }

    /// Unlinks every key of `sale`. Meant for a sale that has ended (no
    /// hold can be added while the holders are listed); hold keys would
    /// expire on their own anyway.
    pub async fn purge(&mut self, sale: &str) -> Result<(), ClientError> {
        let doomed = self.every_key(sale).await?;
        redis::cmd("UNLINK")
            .arg(&doomed)
            .query_async::<()>(self.connection())
            .await?;
        Ok(())
    }

    /// The sale record as stored (`GET fs:{sale}:sale`); `None` when the
    /// engine has no such sale.
    pub async fn raw_record(&mut self, sale: &str) -> Result<Option<String>, ClientError> {
        Ok(redis::cmd("GET")
            .arg(keys::sale(sale))
            .query_async(self.connection())
            .await?)
    }

    /// Unlinks every key of `sale` if its record still reads `record`, in
    /// one script (atomic): any command that changed the sale since the
    /// caller looked (a CONFIRM, an admin's SETUP) changed the record, and
    /// then nothing is removed. Whether the keys went.
    pub async fn purge_if_unchanged(
        &mut self,
        sale: &str,
        record: &str,
    ) -> Result<bool, ClientError> {
        // UNLINK in slices: `unpack` of more than ~8,000 values overflows
        // Lua's C stack, and a sale can have more hold keys than that.
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
                              for i = 1, #KEYS, 1000 do \
                                redis.call('UNLINK', unpack(KEYS, i, math.min(i + 999, #KEYS))) \
                              end return 1";
        // The record first: the script compares KEYS[1].
        let doomed = self.every_key(sale).await?;
        let removed: i64 = redis::Script::new(SCRIPT)
            .key(doomed)
            .arg(record)
            .invoke_async(self.connection())
            .await?;
        Ok(removed == 1)
    }

    /// The user's arrival ticket in the queue; `None` when not queued.
    pub async fn queue_ticket(
        &mut self,
        sale: &str,
        user: &str,
    ) -> Result<Option<u64>, ClientError> {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(keys::queue(sale))
            .arg(user)
            .query_async(self.connection())
            .await?;
        // Tickets are integers below 2^53, exact in a double.
        Ok(score.map(|t| t as u64))
    }

    /// The tickets at the head and the tail of the queue, in one round
    /// trip; `None` when it is empty. Tickets are handed out one after the
    /// other, so when `tail - head + 1` equals the queue's length a queued
    /// user's place is `ticket - head + 1`, without asking per user.
    pub async fn queue_ends(&mut self, sale: &str) -> Result<Option<(u64, u64)>, ClientError> {
        let queue = keys::queue(sale);
        type Ends = Vec<(String, f64)>;
        let (head, tail): (Ends, Ends) = redis::pipe()
            .cmd("ZRANGE")
            .arg(&queue)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(&queue)
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(self.connection())
            .await?;
        Ok(match (head.first(), tail.first()) {
            (Some((_, head)), Some((_, tail))) => Some((*head as u64, *tail as u64)),
            _ => None,
        })
    }
}
