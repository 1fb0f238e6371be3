//! Admin accounts: sign-in (a 15-minute bearer token), sign-out (revokes
//! it), and sign-up — which takes an admin's token: there is no anonymous
//! sign-up; the first admin comes from `flashsale-api seed-admin`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::accounts::create_admin;
use crate::auth::throttle::SigninThrottle;
use crate::auth::{revocation, AdminUser};
use crate::domain::Email;
use crate::error::{ApiError, ErrorBody};
use crate::http::extract::Json;
use crate::routes::time_from_bson;
use crate::state::AppState;
use crate::store::users;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/signin", post(signin))
        .route("/auth/signout", post(signout))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(value_type = crate::domain::Email)]
    pub email: String,
    /// 8 to 256 characters (MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS).
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminAccount {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// Create another admin (admin only).
#[utoipa::path(
    post,
    path = "/auth/signup",
    tag = "auth",
    request_body = Credentials,
    security(("bearer" = [])),
    responses(
        (status = 201, body = AdminAccount),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "email_taken", body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn signup(
    admin: AdminUser,
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email)?;
    let user = create_admin(&state.db, &state.passwords, &email, body.password).await?;
    tracing::info!(by = admin.email, email = %email, "admin created");
    let account = AdminAccount {
        id: user.id.to_hex(),
        email: user.email,
        is_admin: user.is_admin,
        created_at: time_from_bson(user.created_at),
    };
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires (at most 900).
    pub expires_in: u64,
}

/// Sign in as an admin.
#[utoipa::path(
    post,
    path = "/auth/signin",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "invalid_credentials", body = ErrorBody),
        (status = 429, description = "rate_limited (this address), or signin_locked: too many failures for this account (Retry-After)", body = ErrorBody),
    )
)]
pub async fn signin(
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid = || {
        ApiError::client(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong email or password",
        )
    };
    // A malformed address cannot match an account: same answer as a wrong
    // one, so sign-in never tells which addresses exist.
    let email = Email::parse(&body.email).ok();
    // A locked account is refused before any MongoDB or Argon2 work.
    let throttle = SigninThrottle::from_settings(&state.settings);
    let mut redis = state.redis.clone();
    let attempt = match &email {
        Some(email) => Some(throttle.admit(&mut redis, email.as_str()).await?),
        None => None,
    };
    let user = match &email {
        Some(email) => users::find_by_email(&state.db.users, email.as_str()).await?,
        None => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state.passwords.verify(body.password, hash).await?;
    let user = match user {
        Some(user) if matches && user.is_admin => user,
        _ => {
            // Unknown accounts count too: the answer must not tell them apart.
            if let (Some(email), Some(attempt)) = (&email, attempt) {
                throttle.failed(&mut redis, email.as_str(), attempt).await?;
            }
            return Err(invalid());
        }
    };
    throttle.succeeded(&mut redis, &user.email).await?;
    let (token, _) = state.jwt.issue(&user.id.to_hex(), &user.email)?;
    tracing::info!(email = user.email, "admin signed in");
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl_seconds(),
    }))
}

/// Sign out: the token is refused from now on.
#[utoipa::path(
    post,
    path = "/auth/signout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn signout(
    admin: AdminUser,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    revocation::revoke(&mut state.redis.clone(), &admin.claims).await?;
    tracing::info!(email = admin.email, "admin signed out");
    Ok(StatusCode::NO_CONTENT)
}
