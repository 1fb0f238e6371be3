//! Removing a sale from Redis: the one place outside the engine that needs
//! to know which keys a sale has.

use redis::aio::ConnectionLike;

use crate::{keys, ClientError, EngineClient};

impl<C: ConnectionLike + Send> EngineClient<C> {
    /// Unlinks every key of `sale`. Meant for a sale that has ended (no
    /// hold can be added while the holders are listed); hold keys would
    /// expire on their own anyway.
    pub async fn purge(&mut self, sale: &str) -> Result<(), ClientError> {
        let conn = self.connection();
        let holders: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::holds(sale))
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        let mut doomed = vec![
            keys::sale(sale),
            keys::queue(sale),
            keys::holds(sale),
            keys::lapsed(sale),
            keys::orders(sale),
            keys::outbox(sale),
        ];
        doomed.extend(holders.iter().map(|user| keys::hold(sale, user)));
        redis::cmd("UNLINK")
            .arg(&doomed)
            .query_async::<()>(conn)
            .await?;
        Ok(())
    }
}
