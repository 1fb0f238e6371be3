//! What every handler shares: settings, the Redis connection and engine
//! client, MongoDB, the token keys (admin and buyer), the password hasher and the metrics
//! handle. Cloned per request; everything inside is cheap to clone.

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
pub struct AppState {
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
