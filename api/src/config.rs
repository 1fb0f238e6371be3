//! Every setting of the API, in one place: command-line flags, each with an
//! environment variable of the same meaning (the flag wins). Names follow the
//! seed where it had one (`BEND_HOST`, `BEND_PORT`, `MONGO_URL`, `REDIS_URL`,
//! `HOLD_TTL_SECONDS`, `JWT_SECRET`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flashsale::{BackendChoice, RedisTarget};

use crate::auth::secret::Secret;
use crate::buyer_token::{self, BuyerTokens, KeyError, SecretSpec, SigningKey};
use crate::http::client_ip::{IpNet, TrustedProxies};

/// Longest lifetime of an access token the API issues (the limit).
pub const MAX_JWT_TTL_SECONDS: u64 = 15 * 60;
/// Secrets shorter than this are refused outside dev mode (HS256 wants at
/// least as many bytes as the hash output).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Used in dev mode when `JWT_SECRET` is not set; never accepted otherwise.
pub const DEV_JWT_SECRET: &str = "flashsale-dev-only-jwt-secret-do-not-use-in-production";
/// The key id of the buyer-token key derived from the JWT secret when
/// BUYER_TOKEN_SECRETS is not set, and what it is derived for.
pub const DERIVED_BUYER_TOKEN_KID: &str = "jwt";
const BUYER_TOKEN_KEY_PURPOSE: &[u8] = b"flashsale buyer-token key";
/// Well-known placeholder secrets (the seed's `.env.example` and common
/// tutorials) refused outside dev mode, whatever their length.
const DEFAULT_SECRETS: &[&str] = &[
    DEV_JWT_SECRET,
    "secret",
    "changeme",
    "change-me",
    "jwt-secret",
    "jwt_secret",
    "your-secret-key",
    "your_jwt_secret",
    "supersecret",
    "mysecret",
];

#[derive(Debug, Parser)]
#[command(name = "flashsale-api", version, about = "The flashsale HTTP API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create the first admin account (like the seed's `npm run seed:admin`).
    /// In dev mode the defaults are admin@example.com / admin123.
    SeedAdmin(SeedAdminArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SeedAdminArgs {
    #[arg(long = "email", env = "ADMIN_EMAIL")]
    pub email: Option<String>,
    #[arg(long = "password", env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long = "host", env = "BEND_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (tests).
    #[arg(long = "port", env = "BEND_PORT", default_value_t = 3000)]
    pub port: u16,

    /// The Redis server (not used when REDIS_CLUSTER_NODES is set).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Redis Cluster seed nodes, `host:port,host:port,…`; when set, the API
    /// talks to the cluster and REDIS_URL is not used.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    /// Which engine implementation to use on the Redis server.
    #[arg(long, env = "ENGINE", value_enum, default_value = "auto")]
    pub engine: BackendChoice,
    /// Timeout of one Redis command (ms).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_timeout_ms: u64,

    #[arg(long, env = "MONGO_URL", default_value = "mongodb://127.0.0.1:27017/")]
    pub mongo_url: String,
    /// The MongoDB database holding flash_sales, users and orders.
    #[arg(long, env = "MONGO_DB", default_value = "flashsale")]
    pub mongo_db: String,
    /// How long to wait for a reachable MongoDB server before failing (ms).
    #[arg(long, env = "MONGO_TIMEOUT_MS", default_value_t = 3000)]
    pub mongo_timeout_ms: u64,

    /// Replicas that must have a confirmed order before the buyer is told
    /// (WAIT in the same round trip as the CONFIRM); unset: 1 when the sale's
    /// primary has replicas, 0 when it has none.
    #[arg(long, env = "CONFIRM_MIN_REPLICAS")]
    pub confirm_min_replicas: Option<u64>,
    /// How long a confirm waits for those replicas (ms) before answering
    /// 503 `not_durable` (the buyer retries; a retry never buys twice).
    #[arg(long, env = "CONFIRM_WAIT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub confirm_wait_ms: u64,

    /// Hold length of sales created without `holdTtlSeconds`.
    #[arg(long, env = "HOLD_TTL_SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hold_ttl_seconds: u64,

    /// HS256 secret for admin tokens (at least 32 bytes outside dev mode).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    #[arg(long, env = "JWT_ISSUER", default_value = "flashsale-api")]
    pub jwt_issuer: String,
    #[arg(long, env = "JWT_AUDIENCE", default_value = "flashsale-admin")]
    pub jwt_audience: String,
    /// Lifetime of an access token (at most 900 s).
    #[arg(long, env = "JWT_TTL_SECONDS", default_value_t = MAX_JWT_TTL_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=900))]
    pub jwt_ttl_seconds: u64,

    /// Development mode: allows the built-in JWT secret and the default
    /// seed-admin credentials. Never set it in production.
    #[arg(long, env = "DEV_MODE", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev_mode: bool,
    /// Dev mode is refused on a non-loopback BEND_HOST (anyone who can reach
    /// it could sign in as admin@example.com / admin123) unless this is set.
    #[arg(long, env = "ALLOW_DEV_ON_PUBLIC_HOST", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_dev_on_public_host: bool,

    /// Browser origins allowed by CORS, comma-separated; `*` for any; empty
    /// for none (same-origin only).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,
    /// Peers (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is
    /// believed. Empty: the socket's address is the client, always.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// Largest accepted request body (bytes).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub body_limit_bytes: usize,
    /// A request taking longer than this is answered 503 (ms).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Per-client-IP limits. `false` turns them off (a load test may raise
    /// them instead).
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit_enabled: bool,
    /// Sign-in, sign-up and sign-out requests per minute per IP...
    #[arg(long, env = "RATE_LIMIT_AUTH_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_auth_per_minute: u32,
    /// ...with bursts of up to this many.
    #[arg(long, env = "RATE_LIMIT_AUTH_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_auth_burst: u32,
    /// Buy and confirm requests per second per IP...
    #[arg(long, env = "RATE_LIMIT_BUY_PER_SECOND", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_buy_per_second: u32,
    /// ...with bursts of up to this many.
    #[arg(long, env = "RATE_LIMIT_BUY_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_buy_burst: u32,

    /// Concurrent password hashes (Argon2id is CPU- and memory-heavy);
    /// default: half the CPUs (at least 1), so buyers always get CPU.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,

    /// Position, by-email and event-stream requests per second per client;
    /// default: 2 × RATE_LIMIT_BUY_PER_SECOND (a buyer polls more often than
    /// it buys, and an operator who raises the buy limit for many buyers
    /// behind one address raises their polling with it).
    #[arg(long, env = "RATE_LIMIT_READ_PER_SECOND",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_read_per_second: Option<u32>,
    /// ...with bursts of up to this many; default: 2 × RATE_LIMIT_BUY_BURST.
    #[arg(long, env = "RATE_LIMIT_READ_BURST",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_read_burst: Option<u32>,
    /// Event streams (`GET /orders/events`) open at once per client;
    /// default: RATE_LIMIT_BUY_BURST.
    #[arg(long, env = "RATE_LIMIT_EVENT_STREAMS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_event_streams: Option<u32>,
    /// Public reads per second per client: `/public/flash-sales` and
    /// `/flash-sales/{saleId}/public` (not the admin catalogue)...
    #[arg(long, env = "RATE_LIMIT_PUBLIC_PER_SECOND", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_public_per_second: u32,
    /// ...with bursts of up to this many.
    #[arg(long, env = "RATE_LIMIT_PUBLIC_BURST", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_public_burst: u32,
    /// The IPv6 prefix that is one client (a subscriber usually holds a /64).
    #[arg(long, env = "RATE_LIMIT_IPV6_CLIENT_PREFIX", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub rate_limit_ipv6_client_prefix: u8,
    /// The wider IPv6 prefix (a site, often a /48 = 65,536 /64s) whose
    /// buys and confirms share one more bucket: a client must pass both.
    #[arg(long, env = "RATE_LIMIT_IPV6_NETWORK_PREFIX", default_value_t = 48,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub rate_limit_ipv6_network_prefix: u8,
    /// That network bucket allows this many times the per-client buy quota.
    #[arg(long, env = "RATE_LIMIT_IPV6_NETWORK_FACTOR", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit_ipv6_network_factor: u32,

    /// Sign-in failures for one account before it is locked (whatever the
    /// client address; the lock answers 429 without running Argon2).
    #[arg(long, env = "SIGNIN_MAX_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub signin_max_failures: u32,
    /// The first lock's length (ms); then one attempt per lock window, and
    /// each failure doubles the lock.
    #[arg(long, env = "SIGNIN_LOCKOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub signin_lockout_ms: u64,
    /// The longest lock (ms); failures are forgotten after twice this.
    #[arg(long, env = "SIGNIN_LOCKOUT_MAX_MS", default_value_t = 900_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub signin_lockout_max_ms: u64,

    /// Where `/metrics` is served: a listener of its own, never the public
    /// port. Default 127.0.0.1:9464 (127.0.0.1:0, any free port, when
    /// BEND_PORT is 0 as in tests).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// How long the public sale list and a sale's public view are reused
    /// (ms), so N public reads cost far fewer than N engine calls; 0: never.
    #[arg(long, env = "PUBLIC_CACHE_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub public_cache_ms: u64,

    /// Log lines as text or JSON (filter with RUST_LOG).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    // Buyer tokens and identity (src/buyer_token.rs).
    /// Keys that sign buyer tokens, `kid:secret,kid:secret`: the first
    /// signs, all verify (add the new key first, drop the old one once its
    /// tokens have expired). Each secret at least 32 bytes outside dev mode.
    /// Unset: one key (kid `jwt`) derived from the JWT secret.
    #[arg(
        long,
        env = "BUYER_TOKEN_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub buyer_token_secrets: Vec<SecretSpec>,
    /// A buyer token stays good this long after its sale's end (to see the
    /// order afterwards; a sale extended by more outlives its tokens).
    #[arg(long, env = "BUYER_TOKEN_GRACE_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub buyer_token_grace_seconds: u64,
    /// One person, one place: `bob+1@x.com` counts as `bob@x.com`.
    #[arg(long, env = "IDENTITY_STRIP_PLUS_TAGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub identity_strip_plus_tags: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("JWT_SECRET is required outside dev mode")]
    MissingJwtSecret,
    #[error("JWT_SECRET is a well-known default; set a random secret")]
    DefaultJwtSecret,
    #[error("JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes outside dev mode")]
    ShortJwtSecret,
    #[error("TRUSTED_PROXIES: {0:?} is not an IP address or CIDR")]
    BadTrustedProxy(String),
    #[error("CORS_ORIGINS: {0:?} is not a valid origin (e.g. https://shop.example.com)")]
    BadCorsOrigin(String),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("BUYER_TOKEN_SECRETS: {0}")]
    BadBuyerTokenKey(KeyError),
    #[error("BUYER_TOKEN_SECRETS: the secret of key id {0:?} must be at least {MIN_JWT_SECRET_BYTES} bytes outside dev mode")]
    WeakBuyerTokenSecret(String),
    #[error("CORS_ORIGINS=* is only accepted in dev mode; list the shop's origins")]
    AnyCorsOrigin,
    #[error("dev mode (built-in secret and admin) on the non-loopback BEND_HOST {0}; set ALLOW_DEV_ON_PUBLIC_HOST=true if that is really meant")]
    DevModeOnPublicHost(IpAddr),
}

impl Settings {
    /// Defaults plus the environment, as `flashsale-api` with no flags.
    /// Tests start from this and change fields.
    pub fn defaults() -> Result<Settings, clap::Error> {
        Cli::try_parse_from(["flashsale-api"]).map(|cli| cli.settings)
    }

    /// The JWT secret to use, refusing weak ones outside dev mode.
    pub fn jwt_secret(&self) -> Result<Vec<u8>, ConfigError> {
        match (self.jwt_secret.as_ref().map(Secret::expose), self.dev_mode) {
            (None, true) => Ok(DEV_JWT_SECRET.as_bytes().to_vec()),
            (Some(secret), true) => Ok(secret.as_bytes().to_vec()),
            (None, false) => Err(ConfigError::MissingJwtSecret),
            (Some(secret), false) => {
                if DEFAULT_SECRETS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(secret.trim()))
                {
                    Err(ConfigError::DefaultJwtSecret)
                } else if secret.len() < MIN_JWT_SECRET_BYTES {
                    Err(ConfigError::ShortJwtSecret)
                } else {
                    Ok(secret.as_bytes().to_vec())
                }
            }
        }
    }

    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .map_err(|_| ConfigError::BadTrustedProxy(s.into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::new)
    }

    /// The CORS origins, trimmed, without empty entries.
    pub fn cors_origins(&self) -> Result<Vec<String>, ConfigError> {
        let origins: Vec<String> = self
            .cors_origins
            .iter()
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for origin in &origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(ConfigError::BadCorsOrigin(origin.clone()));
            }
            if origin == "*" && !self.dev_mode {
                return Err(ConfigError::AnyCorsOrigin);
            }
        }
        Ok(origins)
    }

    pub fn password_hash_concurrency(&self) -> usize {
        self.password_hash_concurrency
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cpus / 2).max(1)
            })
    }

    /// Position, by-email and event requests per second per client.
    pub fn rate_limit_read(&self) -> (u32, u32) {
        (
            self.rate_limit_read_per_second
                .unwrap_or(self.rate_limit_buy_per_second.saturating_mul(2)),
            self.rate_limit_read_burst
                .unwrap_or(self.rate_limit_buy_burst.saturating_mul(2)),
        )
    }

    pub fn rate_limit_event_streams(&self) -> u32 {
        self.rate_limit_event_streams
            .unwrap_or(self.rate_limit_buy_burst)
    }

    /// The metrics listener's address (see `METRICS_ADDR`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr.unwrap_or_else(|| {
            let port = if self.port == 0 { 0 } else { 9464 };
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        })
    }

    /// A single server, or the cluster when REDIS_CLUSTER_NODES is set.
    pub fn redis_target(&self) -> anyhow::Result<RedisTarget> {
        RedisTarget::from_settings(&self.redis_url, self.redis_cluster_nodes.as_deref())
            .map_err(anyhow::Error::msg)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms.max(1))
    }

    pub fn mongo_timeout(&self) -> Duration {
        Duration::from_millis(self.mongo_timeout_ms.max(1))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The buyer-token keys: BUYER_TOKEN_SECRETS (strong ones outside dev
    /// mode), or one derived from the JWT secret, which has the same rules.
    pub fn buyer_tokens(&self) -> Result<BuyerTokens, ConfigError> {
        let specs: Vec<&SecretSpec> = self
            .buyer_token_secrets
            .iter()
            .filter(|s| !s.is_blank())
            .collect();
        let keys = if specs.is_empty() {
            let jwt = buyer_token::Secret::new(self.jwt_secret()?);
            let derived = jwt.derive(BUYER_TOKEN_KEY_PURPOSE);
            vec![SigningKey::new(DERIVED_BUYER_TOKEN_KID, derived)
                .map_err(ConfigError::BadBuyerTokenKey)?]
        } else {
            let mut keys = Vec::with_capacity(specs.len());
            for spec in specs {
                let key = SigningKey::parse(spec).map_err(ConfigError::BadBuyerTokenKey)?;
                if !self.dev_mode && key.secret_len() < MIN_JWT_SECRET_BYTES {
                    return Err(ConfigError::WeakBuyerTokenSecret(key.kid().to_string()));
                }
                keys.push(key);
            }
            keys
        };
        BuyerTokens::new(keys, Duration::from_secs(self.buyer_token_grace_seconds))
            .map_err(ConfigError::BadBuyerTokenKey)
    }

    /// Checks everything that can be wrong before anything connects.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.jwt_secret()?;
        self.buyer_tokens()?;
        self.trusted_proxies()?;
        self.cors_origins()?;
        if self.body_limit_bytes == 0 {
            return Err(ConfigError::Zero("BODY_LIMIT_BYTES"));
        }
        if self.dev_mode && !self.host.is_loopback() && !self.allow_dev_on_public_host {
            return Err(ConfigError::DevModeOnPublicHost(self.host));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut all = vec!["flashsale-api"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(cli) => cli.settings,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn jwt_secret_rules() {
        assert!(matches!(
            settings(&[]).jwt_secret(),
            Err(ConfigError::MissingJwtSecret)
        ));
        assert!(settings(&["--dev-mode", "true"]).jwt_secret().is_ok());
        assert!(matches!(
            settings(&["--jwt-secret", "short"]).jwt_secret(),
            Err(ConfigError::ShortJwtSecret)
        ));
        assert!(matches!(
            settings(&["--jwt-secret", DEV_JWT_SECRET]).jwt_secret(),
            Err(ConfigError::DefaultJwtSecret)
        ));
        let strong = "0123456789abcdef0123456789abcdef";
        assert!(settings(&["--jwt-secret", strong]).jwt_secret().is_ok());
    }

    #[test]
    fn buyer_token_key_rules() {
        let strong = "0123456789abcdef0123456789abcdef";
        // Derived from the JWT secret when not set; refused like it.
        assert!(matches!(
            settings(&[]).buyer_tokens(),
            Err(ConfigError::MissingJwtSecret)
        ));
        assert!(settings(&["--jwt-secret", strong]).buyer_tokens().is_ok());
        assert!(settings(&["--dev-mode", "true"]).buyer_tokens().is_ok());
        let with = |keys: &str| settings(&["--jwt-secret", strong, "--buyer-token-secrets", keys]);
        assert!(with(&format!("k2:{strong}x,k1:{strong}"))
            .buyer_tokens()
            .is_ok());
        assert!(matches!(
            with("k1:short").buyer_tokens(),
            Err(ConfigError::WeakBuyerTokenSecret(kid)) if kid == "k1"
        ));
        assert!(matches!(
            with(strong).buyer_tokens(),
            Err(ConfigError::BadBuyerTokenKey(KeyError::NotKidSecret))
        ));
        assert!(matches!(
            with(&format!("a:{strong},a:{strong}")).buyer_tokens(),
            Err(ConfigError::BadBuyerTokenKey(KeyError::DuplicateKid(_)))
        ));
        // Short secrets are fine in dev mode; secrets never print.
        let dev = settings(&[
            "--dev-mode",
            "true",
            "--buyer-token-secrets",
            "d:tiny-secret",
        ]);
        assert!(dev.buyer_tokens().is_ok());
        assert!(!format!("{dev:?}").contains("tiny-secret"));
        let error = with("k1:short-secret")
            .buyer_tokens()
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| !e.contains("short-secret")));
    }

    #[test]
    fn jwt_ttl_is_capped_at_fifteen_minutes() {
        let mut all = vec!["flashsale-api", "--jwt-ttl-seconds", "901"];
        assert!(Cli::try_parse_from(all.clone()).is_err());
        all[2] = "900";
        assert!(Cli::try_parse_from(all).is_ok());
    }

    #[test]
    fn lists() {
        let s = settings(&[
            "--trusted-proxies",
            "10.0.0.0/8, 127.0.0.1",
            "--cors-origins",
            "https://a.example,http://b.example:8080/",
        ]);
        assert!(s.trusted_proxies().is_ok());
        assert_eq!(
            s.cors_origins().ok(),
            Some(vec![
                "https://a.example".to_string(),
                "http://b.example:8080".to_string()
            ])
        );
        assert!(settings(&["--trusted-proxies", "nope"])
            .trusted_proxies()
            .is_err());
        assert!(settings(&["--cors-origins", "ftp://x"])
            .cors_origins()
            .is_err());
    }

    #[test]
    fn any_cors_origin_only_in_dev_mode() {
        let any = settings(&["--cors-origins", "*"]);
        assert!(matches!(
            any.cors_origins(),
            Err(ConfigError::AnyCorsOrigin)
        ));
        assert!(settings(&["--cors-origins", "*", "--dev-mode", "true"])
            .cors_origins()
            .is_ok());
        assert!(settings(&["--cors-origins", "https://shop.example"])
            .cors_origins()
            .is_ok());
    }

    #[test]
    fn dev_mode_only_on_loopback_unless_explicitly_allowed() {
        let dev = ["--dev-mode", "true"];
        for host in ["127.0.0.1", "::1"] {
            assert!(settings(&[&dev[..], &["--host", host]].concat())
                .validate()
                .is_ok());
        }
        for host in ["0.0.0.0", "::", "192.0.2.10"] {
            assert!(matches!(
                settings(&[&dev[..], &["--host", host]].concat()).validate(),
                Err(ConfigError::DevModeOnPublicHost(_))
            ));
            assert!(settings(
                &[
                    &dev[..],
                    &["--host", host, "--allow-dev-on-public-host", "true"]
                ]
                .concat()
            )
            .validate()
            .is_ok());
        }
        // Outside dev mode any host is fine (with a real secret).
        let strong = "0123456789abcdef0123456789abcdef";
        assert!(settings(&["--host", "0.0.0.0", "--jwt-secret", strong])
            .validate()
            .is_ok());
    }

    #[test]
    fn settings_never_print_the_jwt_secret() {
        let secret = "a-secret-nobody-may-read-0123456789abcdef";
        let s = settings(&["--jwt-secret", secret]);
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(s.jwt_secret().is_ok_and(|k| k == secret.as_bytes()));
    }

    #[test]
    fn argon2_takes_at_most_half_the_cpus_by_default() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = settings(&[]).password_hash_concurrency();
        assert!(n >= 1 && (n <= cpus / 2 || n == 1), "{n} of {cpus}");
        let set = settings(&["--password-hash-concurrency", "3"]);
        assert_eq!(set.password_hash_concurrency(), 3);
    }

    #[test]
    fn derived_limits_and_the_metrics_address() {
        let s = settings(&[]);
        assert_eq!(s.rate_limit_read(), (20, 40));
        assert_eq!(s.rate_limit_event_streams(), 20);
        assert_eq!(s.metrics_addr().to_string(), "127.0.0.1:9464");
        let s = settings(&["--port", "0", "--rate-limit-buy-per-second", "7"]);
        assert_eq!(s.metrics_addr().to_string(), "127.0.0.1:0");
        assert_eq!(s.rate_limit_read().0, 14);
        let s = settings(&["--metrics-addr", "0.0.0.0:9999"]);
        assert_eq!(s.metrics_addr().to_string(), "0.0.0.0:9999");
    }
}
