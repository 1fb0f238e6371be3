//! The `AdminUser` extractor: a route that takes one is admin-only. It
//! accepts `Authorization: Bearer <token>` where the token verifies (HS256,
//! issuer, audience, lifetime), has not been signed out, and belongs to an
//! account that still exists and is an admin.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use mongodb::bson::oid::ObjectId;

use crate::auth::jwt::Claims;
use crate::auth::revocation;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::users;

/// Tokens are a few hundred bytes; anything much longer is not ours.
const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone)]
pub struct AdminUser {
    pub id: ObjectId,
    pub email: String,
    pub claims: Claims,
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an admin bearer token is required"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is malformed"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(token)
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let claims = state.jwt.verify(bearer_token(parts)?)?;
        if revocation::is_revoked(&mut state.redis.clone(), &claims.jti).await? {
            return Err(ApiError::unauthorized("the token has been signed out"));
        }
        let id = ObjectId::parse_str(&claims.sub)
            .map_err(|_| ApiError::unauthorized("the token's subject is not an account"))?;
        let user = users::find_by_id(&state.db.users, id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's account no longer exists"))?;
        if !user.is_admin {
            return Err(ApiError::forbidden(
                "not_admin",
                "this account is not an admin",
            ));
        }
        Ok(AdminUser {
            id,
            email: user.email,
            claims,
        })
    }
}
