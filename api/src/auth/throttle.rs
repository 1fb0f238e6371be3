//! Sign-in throttling per account, whatever the client address: a
//! password-guessing botnet spreads its guesses over many addresses, so the
//! per-IP limit never slows it, but every guess names the account. After
//! `SIGNIN_MAX_FAILURES` failures in a row the account is locked for
//! `SIGNIN_LOCKOUT_MS`, doubling with each further failure up to
//! `SIGNIN_LOCKOUT_MAX_MS`; while locked, sign-in answers 429 + Retry-After
//! before any Argon2 work, so guesses cost the server nothing. A success
//! clears the count.
//!
//! The state is in Redis (shared by every API instance, surviving a
//! restart): `flashsale-api:{signin:<email>}:failures` (a counter, forgotten
//! after twice the longest lock) and `…:locked` (expires when the lock
//! does). One hash tag, so both keys live in one cluster slot.

use std::time::Duration;

use axum::http::StatusCode;
use flashsale::RedisConn;

use crate::config::Settings;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct SigninThrottle {
    pub max_failures: u32,
    pub first_lock: Duration,
    pub longest_lock: Duration,
}

fn keys(account: &str) -> (String, String) {
    (
        format!("flashsale-api:{{signin:{account}}}:failures"),
        format!("flashsale-api:{{signin:{account}}}:locked"),
    )
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl SigninThrottle {
    pub fn from_settings(settings: &Settings) -> Self {
        SigninThrottle {
            max_failures: settings.signin_max_failures.max(1),
            first_lock: Duration::from_millis(settings.signin_lockout_ms.max(1)),
            longest_lock: Duration::from_millis(
                settings
                    .signin_lockout_max_ms
                    .max(settings.signin_lockout_ms)
                    .max(1),
            ),
        }
    }

    /// The lock after `failures` failures in a row, if any.
    pub fn lock_after(&self, failures: u64) -> Option<Duration> {
        let over = failures.checked_sub(u64::from(self.max_failures))?;
        // 2^over, saturating well before it overflows.
        let factor = 1u64 << over.min(32);
        Some(
            Duration::from_millis(ms(self.first_lock).saturating_mul(factor))
                .min(self.longest_lock),
        )
    }

    /// 429 + Retry-After while `account` is locked.
    pub async fn check(&self, redis: &mut RedisConn, account: &str) -> Result<(), ApiError> {
        let (_, locked) = keys(account);
        let left_ms: i64 = redis::cmd("PTTL").arg(&locked).query_async(redis).await?;
        if left_ms > 0 {
            let secs = u64::try_from(left_ms).unwrap_or(1).div_ceil(1000).max(1);
            return Err(ApiError::client(
                StatusCode::TOO_MANY_REQUESTS,
                "signin_locked",
                format!("too many failed sign-ins for this account; retry in {secs} s"),
            )
            .with_retry_after(secs));
        }
        Ok(())
    }

    /// Counts a failure and locks the account when it has too many.
    pub async fn failed(&self, redis: &mut RedisConn, account: &str) -> Result<(), ApiError> {
        let (failures, locked) = keys(account);
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&failures, 1)
            .cmd("PEXPIRE")
            .arg(&failures)
            .arg(ms(self.longest_lock).saturating_mul(2))
            .ignore()
            .query_async(redis)
            .await?;
        if let Some(lock) = self.lock_after(count) {
            tracing::warn!(
                account,
                failures = count,
                lock_ms = ms(lock),
                "sign-in locked"
            );
            redis::cmd("SET")
                .arg(&locked)
                .arg(1)
                .arg("PX")
                .arg(ms(lock).max(1))
                .query_async::<()>(redis)
                .await?;
        }
        Ok(())
    }

    pub async fn succeeded(&self, redis: &mut RedisConn, account: &str) -> Result<(), ApiError> {
        let (failures, locked) = keys(account);
        redis::cmd("DEL")
            .arg(&failures)
            .arg(&locked)
            .query_async::<()>(redis)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_after_the_allowed_failures_up_to_the_longest() {
        let throttle = SigninThrottle {
            max_failures: 3,
            first_lock: Duration::from_secs(30),
            longest_lock: Duration::from_secs(900),
        };
        assert_eq!(throttle.lock_after(2), None);
        assert_eq!(throttle.lock_after(3), Some(Duration::from_secs(30)));
        assert_eq!(throttle.lock_after(4), Some(Duration::from_secs(60)));
        assert_eq!(throttle.lock_after(5), Some(Duration::from_secs(120)));
        assert_eq!(throttle.lock_after(9), Some(Duration::from_secs(900)));
        assert_eq!(
            throttle.lock_after(u64::MAX),
            Some(Duration::from_secs(900))
        );
    }
}
