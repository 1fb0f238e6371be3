//! Admission: GRANT for a sale until the engine admits fewer than a full
//! batch (queue empty, no units free, or RATE spent). The engine enforces
//! stock, FIFO and RATE across all workers; this only decides when to ask.

use std::time::Duration;

use flashsale::{ClientError, EngineClient, GrantReply};
use redis::aio::ConnectionLike;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted `granted` users and reclaimed `released` lapsed holds.
    Active {
        granted: u64,
        released: u64,
    },
    Upcoming {
        starts_in: Duration,
    },
    /// The sale is over (its queue has been cleared).
    Ended,
    /// An admin paused the sale: nobody was admitted; `released` lapsed
    /// holds were reclaimed (holds run on while paused).
    Paused {
        released: u64,
    },
}

pub async fn admit<C: ConnectionLike + Send>(
    engine: &mut EngineClient<C>,
    sale: &str,
    batch: u64,
) -> Result<Admission, ClientError> {
    let (mut granted, mut released) = (0, 0);
    loop {
        match engine.grant(sale, batch).await? {
            GrantReply::Granted {
                released: freed,
                users,
            } => {
                granted += users.len() as u64;
                released += freed;
                metrics::counter!("flashsale_worker_holds_granted_total")
                    .increment(users.len() as u64);
                metrics::counter!("flashsale_worker_holds_released_total").increment(freed);
                if (users.len() as u64) < batch {
                    return Ok(Admission::Active { granted, released });
                }
            }
            GrantReply::NotStarted { ms_until_start } => {
                return Ok(Admission::Upcoming {
                    starts_in: Duration::from_millis(ms_until_start),
                })
            }
            GrantReply::Ended { .. } => return Ok(Admission::Ended),
            GrantReply::Paused { released: freed } => {
                metrics::counter!("flashsale_worker_holds_released_total").increment(freed);
                return Ok(Admission::Paused {
                    released: released + freed,
                });
            }
        }
    }
}
