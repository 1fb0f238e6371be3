//! Signed-out tokens. A token is revoked by its `jti` in Redis until the
//! moment it would expire anyway (`PXAT exp`, an absolute time, so a
//! replica or an AOF replay keeps the same deadline); after that the key
//! vanishes and the token is refused for being expired.

use redis::aio::ConnectionManager;

use crate::auth::jwt::{unix_now, Claims};
use crate::error::ApiError;

pub const KEY_PREFIX: &str = "flashsale-api:revoked-jti:";

fn key(jti: &str) -> String {
    format!("{KEY_PREFIX}{jti}")
}

pub async fn revoke(redis: &mut ConnectionManager, claims: &Claims) -> Result<(), ApiError> {
    if claims.exp <= unix_now() {
        return Ok(());
    }
    redis::cmd("SET")
        .arg(key(&claims.jti))
        .arg(1)
        .arg("PXAT")
        .arg(claims.exp.saturating_mul(1000))
        .query_async::<()>(redis)
        .await?;
    Ok(())
}

pub async fn is_revoked(redis: &mut ConnectionManager, jti: &str) -> Result<bool, ApiError> {
    let exists: bool = redis::cmd("EXISTS")
        .arg(key(jti))
        .query_async(redis)
        .await?;
    Ok(exists)
}
