//! Signed-out tokens. A token is revoked by its `jti` in Redis until the
//! moment it would be refused anyway — its expiry plus the validation leeway
//! (`PXAT`, an absolute time, so a replica or an AOF replay keeps the same
//! deadline); after that the key vanishes and the token is refused for being
//! expired.

use flashsale::RedisConn;

use crate::auth::jwt::{unix_now, Claims, LEEWAY_SECONDS};
use crate::error::ApiError;

pub const KEY_PREFIX: &str = "flashsale-api:revoked-jti:";

fn key(jti: &str) -> String {
    format!("{KEY_PREFIX}{jti}")
}

pub async fn revoke(redis: &mut RedisConn, claims: &Claims) -> Result<(), ApiError> {
    // Validation accepts a token up to `exp + LEEWAY_SECONDS`: the deny-list
    // entry must outlive that, or a signed-out token would work again.
    let refused_from = claims.exp.saturating_add(LEEWAY_SECONDS);
    if refused_from <= unix_now() {
        return Ok(());
    }
    redis::cmd("SET")
        .arg(key(&claims.jti))
        .arg(1)
        .arg("PXAT")
        .arg(refused_from.saturating_mul(1000))
        .query_async::<()>(redis)
        .await?;
    Ok(())
}

pub async fn is_revoked(redis: &mut RedisConn, jti: &str) -> Result<bool, ApiError> {
    let exists: bool = redis::cmd("EXISTS")
        .arg(key(jti))
        .query_async(redis)
        .await?;
    Ok(exists)
}
