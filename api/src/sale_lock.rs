//! One admin change to a sale at a time, across API instances. Updating or
//! deleting a sale touches the engine and then MongoDB; two of them
//! interleaved could leave the two disagreeing. A short Redis lock (SET NX
//! PX with a random token, released only by its holder) serialises them; a
//! second admin gets 409 `sale_busy` and retries.

use std::time::Duration;

use flashsale::RedisConn;

use crate::domain::SaleId;
use crate::error::ApiError;

const PREFIX: &str = "flashsale-api:sale-lock:";
/// Longer than any admin change takes; a crashed holder's lock expires.
const LEASE: Duration = Duration::from_secs(15);

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct SaleLock {
    key: String,
    token: String,
    redis: RedisConn,
}

impl SaleLock {
    pub async fn acquire(redis: &RedisConn, sale: &SaleId) -> Result<SaleLock, ApiError> {
        let mut redis = redis.clone();
        let key = format!("{PREFIX}{sale}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .query_async(&mut redis)
            .await?;
        if taken.is_none() {
            return Err(ApiError::conflict(
                "sale_busy",
                "another change to this sale is in progress; try again",
            )
            .with_retry_after(1));
        }
        Ok(SaleLock { key, token, redis })
    }

    /// Releases the lock if it is still ours (a failure only delays the next
    /// change until the lease runs out, so it is logged, not returned).
    pub async fn release(mut self) {
        let result: Result<i64, _> = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut self.redis)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, key = self.key, "could not release a sale lock");
        }
    }
}
