//! What every handler shares: settings, the Redis connection and engine
//! client, MongoDB, the token keys (admin and buyer), the password hasher and the metrics
//! handle.
//!
//! axum clones the state into every route's service for every request (and
//! drops it after), so it is one `Arc`: a clone is one reference count, not
//! one per field (a dozen before, ~12% of the CPU of a `/healthz`). Handlers
//! read `state.field` through `Deref`.

use std::ops::Deref;
use std::sync::Arc;

use flashsale::RedisConn;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Passwords;
use crate::buyer_token::BuyerTokens;
use crate::config::Settings;
use crate::live_sales::LiveSales;
use crate::store::Db;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub settings: Arc<Settings>,
    /// The engine, with the API's recovery rules around it.
    pub live: LiveSales,
    /// One multiplexed connection (reconnecting) for plain Redis commands.
    pub redis: RedisConn,
    pub db: Db,
    pub jwt: Arc<JwtKeys>,
    pub passwords: Passwords,
    pub metrics: PrometheusHandle,
    /// Signs and checks buyer tokens.
    pub buyer_tokens: Arc<BuyerTokens>,
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
