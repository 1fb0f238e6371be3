//! The reference model: the same rules over plain in-memory collections that
//! mirror the Redis keys one to one, so a test can compare a model's state
//! with a server's key by key.

use std::collections::BTreeMap;

use crate::command::{parse, CommandName};
use crate::reply::Reply;
use crate::rules::execute;
use crate::store::{OutboxEntry, SaleRecord, Store};
use crate::EngineError;

/// Everything one sale keeps, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleData {
    /// `fs:{s}:sale`; `None` = the sale does not exist.
    pub sale: Option<SaleRecord>,
    /// `fs:{s}:queue`: user → ticket.
    pub queue: BTreeMap<String, u64>,
    /// `fs:{s}:holds`: user → expiry (ms).
    pub holds: BTreeMap<String, u64>,
    /// `fs:{s}:orders`: user → order id.
    pub orders: BTreeMap<String, String>,
    /// `fs:{s}:lapsed`: user → when the lapsed hold was reclaimed.
    pub lapsed: BTreeMap<String, u64>,
    /// `fs:{s}:outbox`: entry id `0-n` → entry.
    pub outbox: BTreeMap<u64, OutboxEntry>,
    /// `fs:{s}:registered`: user → when they registered for the draw.
    pub registered: BTreeMap<String, u64>,
    /// `fs:{s}:seed`
    pub seed: Option<String>,
    /// `fs:{s}:draw`: the published draw, in order.
    pub draw: Vec<String>,
}

impl SaleData {
    /// Users in queue order.
    pub fn queue_in_order(&self) -> Vec<String> {
        let mut by_ticket: Vec<(u64, &String)> = self.queue.iter().map(|(u, t)| (*t, u)).collect();
        by_ticket.sort();
        by_ticket.into_iter().map(|(_, u)| u.clone()).collect()
    }
}

impl Store for SaleData {
    fn sale(&mut self) -> Result<Option<SaleRecord>, EngineError> {
        Ok(self.sale.clone())
    }

    fn write_sale(&mut self, record: &SaleRecord) -> Result<(), EngineError> {
        self.sale = Some(record.clone());
        Ok(())
    }

    fn order_of(&mut self, user: &str) -> Result<Option<String>, EngineError> {
        Ok(self.orders.get(user).cloned())
    }

    fn record_order(&mut self, user: &str, order_id: &str) -> Result<(), EngineError> {
        self.orders.insert(user.to_string(), order_id.to_string());
        Ok(())
    }

    fn orders_count(&mut self) -> Result<u64, EngineError> {
        Ok(self.orders.len() as u64)
    }

    fn order_ids(&mut self) -> Result<Vec<String>, EngineError> {
        Ok(self.orders.values().cloned().collect())
    }

    fn hold_expiry(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        Ok(self.holds.get(user).copied())
    }

    fn live_holds(&mut self, now: u64) -> Result<u64, EngineError> {
        Ok(self.holds.values().filter(|&&e| e > now).count() as u64)
    }

    fn expired_holds(&mut self, now: u64) -> Result<Vec<String>, EngineError> {
        let mut expired: Vec<(u64, String)> = self
            .holds
            .iter()
            .filter(|(_, &e)| e <= now)
            .map(|(u, e)| (*e, u.clone()))
            .collect();
        expired.sort();
        Ok(expired.into_iter().map(|(_, u)| u).collect())
    }

    fn add_hold(&mut self, user: &str, expires_at: u64) -> Result<(), EngineError> {
        self.holds.insert(user.to_string(), expires_at);
        Ok(())
    }

    fn remove_hold(&mut self, user: &str) -> Result<(), EngineError> {
        self.holds.remove(user);
        Ok(())
    }

    fn queue_rank(&mut self, user: &str) -> Result<Option<u64>, EngineError> {
        let Some(&ticket) = self.queue.get(user) else {
            return Ok(None);
        };
        Ok(Some(
            self.queue.values().filter(|&&t| t < ticket).count() as u64
        ))
    }

    fn queue_len(&mut self) -> Result<u64, EngineError> {
        Ok(self.queue.len() as u64)
    }

    fn queue_last_ticket(&mut self) -> Result<Option<u64>, EngineError> {
        Ok(self.queue.values().max().copied())
    }

    fn queue_push(&mut self, user: &str, ticket: u64) -> Result<(), EngineError> {
        self.queue.insert(user.to_string(), ticket);
        Ok(())
    }

    fn queue_remove(&mut self, user: &str) -> Result<(), EngineError> {
        self.queue.remove(user);
        Ok(())
    }

    fn queue_pop(&mut self, n: u64) -> Result<Vec<String>, EngineError> {
        let head: Vec<String> = self.queue_in_order().into_iter().take(n as usize).collect();
        for user in &head {
            self.queue.remove(user);
        }
        Ok(head)
    }

    fn queue_clear(&mut self) -> Result<(), EngineError> {
        self.queue.clear();
        Ok(())
    }

    fn is_lapsed(&mut self, user: &str) -> Result<bool, EngineError> {
        Ok(self.lapsed.contains_key(user))
    }

    fn add_lapsed(&mut self, user: &str, reclaimed_at: u64) -> Result<(), EngineError> {
        self.lapsed.insert(user.to_string(), reclaimed_at);
        Ok(())
    }

    fn remove_lapsed(&mut self, user: &str) -> Result<(), EngineError> {
        self.lapsed.remove(user);
        Ok(())
    }

    fn check_key_types(&mut self) -> Result<(), EngineError> {
        Ok(())
    }

    fn append_outbox(&mut self, n: u64, entry: &OutboxEntry) -> Result<(), EngineError> {
        self.outbox.insert(n, entry.clone());
        Ok(())
    }

    fn is_registered(&mut self, user: &str) -> Result<bool, EngineError> {
        Ok(self.registered.contains_key(user))
    }

    fn register(&mut self, user: &str, at: u64) -> Result<(), EngineError> {
        self.registered.insert(user.to_string(), at);
        Ok(())
    }

    fn unregister(&mut self, user: &str) -> Result<(), EngineError> {
        self.registered.remove(user);
        Ok(())
    }

    fn registered_count(&mut self) -> Result<u64, EngineError> {
        Ok(self.registered.len() as u64)
    }

    fn registered_users(&mut self) -> Result<Vec<String>, EngineError> {
        Ok(self.registered.keys().cloned().collect())
    }

    fn clear_registered(&mut self) -> Result<(), EngineError> {
        self.registered.clear();
        Ok(())
    }

    fn seed(&mut self) -> Result<Option<String>, EngineError> {
        Ok(self.seed.clone())
    }

    fn write_seed(&mut self, seed: &str) -> Result<(), EngineError> {
        self.seed = Some(seed.to_string());
        Ok(())
    }

    fn draw_push(&mut self, entries: &[String]) -> Result<(), EngineError> {
        self.draw.extend_from_slice(entries);
        Ok(())
    }

    fn draw_len(&mut self) -> Result<u64, EngineError> {
        Ok(self.draw.len() as u64)
    }

    fn draw_range(&mut self, offset: u64, count: u64) -> Result<Vec<String>, EngineError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        Ok(self.draw.iter().skip(start).take(count).cloned().collect())
    }
}

/// Many sales, driven by raw command arguments exactly like a server.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub sales: BTreeMap<String, SaleData>,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one command given its arguments after the name (sale id first).
    pub fn call<A: AsRef<[u8]>>(
        &mut self,
        now: u64,
        name: CommandName,
        args: &[A],
    ) -> Result<Reply, EngineError> {
        let command = parse(name, args)?;
        let data = self.sales.entry(command.sale().to_string()).or_default();
        // Work on a copy so a failed command leaves the model untouched, as
        // the servers must.
        let mut scratch = data.clone();
        let reply = execute(&mut scratch, now, &command)?;
        *data = scratch;
        Ok(reply)
    }

    pub fn sale(&self, sale: &str) -> Option<&SaleData> {
        self.sales.get(sale).filter(|d| *d != &SaleData::default())
    }
}

#[cfg(test)]
mod tests;
