//! Sign-in throttling per account, whatever the client address: a
//! password-guessing botnet spreads its guesses over many addresses, so the
//! per-IP limit never slows it, but every guess names the account. After
//! `SIGNIN_MAX_FAILURES` failures in a row the account is locked for
//! `SIGNIN_LOCKOUT_MS`; after that each window lets one attempt through,
//! and its failure locks for twice as long as the last time, up to
//! `SIGNIN_LOCKOUT_MAX_MS`. While locked, sign-in answers 429 + Retry-After
//! before any Argon2 work, so guesses cost the server nothing. A success
//! clears it all.
//!
//! An attempt is counted when it starts, not when its password check
//! fails: a wave of simultaneous guesses gets at most one more attempt than
//! the allowed failures through to Argon2, the rest are refused at once.
//!
//! The state is in Redis (shared by every API instance, surviving a
//! restart): `flashsale-api:{signin:<email>}:attempts` (a counter,
//! forgotten after twice the longest lock) and `…:locked` (expires when the
//! lock does). One hash tag, so both keys live in one cluster slot and the
//! script below may use both.

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

/// An attempt let through: its number since the last success.
#[derive(Debug, Clone, Copy)]
pub struct Attempt(u64);

/// Atomically: refuse while locked (without counting); otherwise count the
/// attempt, and when it is past the allowed failures lock the account now
/// (first × 2^(n − K), at most the longest) so that this attempt is the
/// window's only one. Returns {attempt number, 0} or {0, ms left}.
const ADMIT: &str = r"
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {0, left} end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local over = n - tonumber(ARGV[1])
if over > 0 then
  local lock = tonumber(ARGV[2]) * 2 ^ math.min(over, 32)
  lock = math.min(lock, tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'PX', math.floor(lock))
end
return {n, 0}
";

fn keys(account: &str) -> (String, String) {
    (
        format!("flashsale-api:{{signin:{account}}}:attempts"),
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

    /// Lets an attempt for `account` through, or answers 429 +
    /// Retry-After while the account is locked.
    pub async fn admit(&self, redis: &mut RedisConn, account: &str) -> Result<Attempt, ApiError> {
        let (attempts, locked) = keys(account);
        let (n, left_ms): (u64, u64) = redis::Script::new(ADMIT)
            .key(&attempts)
            .key(&locked)
            .arg(self.max_failures)
            .arg(ms(self.first_lock))
            .arg(ms(self.longest_lock))
            .arg(ms(self.longest_lock).saturating_mul(2))
            .invoke_async(redis)
            .await?;
        if n == 0 {
            let secs = left_ms.div_ceil(1000).max(1);
            return Err(ApiError::client(
                StatusCode::TOO_MANY_REQUESTS,
                "signin_locked",
                format!("too many failed sign-ins for this account; retry in {secs} s"),
            )
            .with_retry_after(secs));
        }
        Ok(Attempt(n))
    }

    /// The attempt's password was wrong: the last allowed failure locks the
    /// account (later ones were locked when they were let through).
    pub async fn failed(
        &self,
        redis: &mut RedisConn,
        account: &str,
        attempt: Attempt,
    ) -> Result<(), ApiError> {
        if attempt.0 != u64::from(self.max_failures) {
            return Ok(());
        }
        let (_, locked) = keys(account);
        tracing::warn!(account, failures = attempt.0, "sign-in locked");
        // NX: a longer lock set meanwhile by a later attempt stays.
        redis::cmd("SET")
            .arg(&locked)
            .arg(1)
            .arg("PX")
            .arg(ms(self.first_lock).max(1))
            .arg("NX")
            .query_async::<()>(redis)
            .await?;
        Ok(())
    }

    pub async fn succeeded(&self, redis: &mut RedisConn, account: &str) -> Result<(), ApiError> {
        let (attempts, locked) = keys(account);
        redis::cmd("DEL")
            .arg(&attempts)
            .arg(&locked)
            .query_async::<()>(redis)
            .await?;
        Ok(())
    }
}
