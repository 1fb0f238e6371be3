//! Building and running the application: connect to Redis (the engine) and
//! MongoDB, assemble the router and its layers, bind, serve until a
//! shutdown signal.

use std::any::Any;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use flashsale::{RedisConn, Timeouts};
use tokio::net::{TcpListener, TcpSocket};
use tower::layer::util::Stack;
use tower::util::MapResponseLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Passwords;
use crate::config::Settings;
use crate::http::error_shape::{
    json_errors, method_not_allowed, not_found, panic_response, RequestTimeoutLayer,
};
use crate::http::metrics::{prometheus_handle, TrackLayer};
use crate::http::public_cache::{PublicCache, PUBLIC_READS};
use crate::http::rate_limit::{limit_by, ClientIpKey, IdleSweeper, Quota, StreamCap};
use crate::http::request_id::RequestIdLayer;
use crate::live_sales::{Durability, LiveSales};
use crate::openapi::ApiDoc;
use crate::routes;
use crate::state::{AppState, Shared};
use crate::store::Db;
use crate::{telemetry, web};

pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    /// `/metrics`, on a listener of its own (`METRICS_ADDR`).
    metrics_port: u16,
    metrics_listener: TcpListener,
    metrics_router: Router,
    sweepers: Vec<IdleSweeper>,
    state: AppState,
}

impl Application {
    /// Validates the settings, connects, and binds `BEND_HOST:BEND_PORT`
    /// (port 0: any free port, see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings.validate()?;
        let state = build_state(settings).await?;
        let (router, sweepers) = router(state.clone())?;
        let settings = &state.settings;
        let listener = listen(SocketAddr::new(settings.host, settings.port))
            .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = bind_metrics(settings).await?;
        let metrics_port = metrics_listener.local_addr()?.port();
        let metrics_router = routes::ops::metrics_router()
            .fallback(not_found)
            .with_state(state.clone());
        Ok(Application {
            port,
            listener,
            router,
            metrics_port,
            metrics_listener,
            metrics_router,
            sweepers,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sweepers = self.sweepers;
        let sweeping = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                sweepers.iter().for_each(IdleSweeper::sweep);
            }
        });
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = tokio::spawn(
            axum::serve(self.metrics_listener, self.metrics_router)
                .with_graceful_shutdown(async {
                    let _ = metrics_stopped.await;
                })
                .into_future(),
        );
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        sweeping.abort();
        let _ = stop_metrics.send(());
        if let Ok(Err(e)) = metrics.await {
            tracing::error!(error = %e, "metrics listener failed");
        }
        tracing::info!("stopped");
        served
    }
}

/// Connections the kernel keeps waiting for the API to accept them. When a
/// sale opens, thousands of browsers connect in the same second (and every
/// event stream is a connection of its own); the default of 128 dropped
/// some, which then waited a second for their SYN to be sent again. Linux
/// caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted API may take its port back
    // while old connections are still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The metrics listener. A METRICS_ADDR that was set must be free; the
/// default's port being taken (a second API on this host: a test platform,
/// `scripts/run`) only moves metrics to a free loopback port, with a
/// warning, rather than keeping the shop from starting.
async fn bind_metrics(settings: &Settings) -> anyhow::Result<TcpListener> {
    let addr = settings.metrics_addr();
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if settings.metrics_addr.is_none() => {
            let listener = TcpListener::bind((addr.ip(), 0))
                .await
                .with_context(|| format!("cannot listen on {} for metrics", addr.ip()))?;
            tracing::warn!(
                default = %addr,
                error = %e,
                metrics = %listener.local_addr()?,
                "the default metrics address is taken; set METRICS_ADDR"
            );
            Ok(listener)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} (METRICS_ADDR)")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

/// The Redis connection (a server or a cluster), made lazily: the API
/// starts while Redis is loading or not reachable yet.
pub fn redis_connection(settings: &Settings) -> anyhow::Result<RedisConn> {
    let target = settings.redis_target()?;
    let timeouts = Timeouts {
        connect: settings.redis_timeout(),
        response: settings.redis_timeout(),
    };
    RedisConn::open(&target, timeouts).with_context(|| format!("cannot use Redis at {target}"))
}

/// Settles the engine before serving when Redis answers within a moment;
/// a node without the engine stops the start with the reason. When Redis is
/// not there yet the API starts anyway (not ready, buyers get 503) and
/// keeps trying in the background.
async fn prepare_engine(live: &LiveSales) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(3), live.prepare()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e @ flashsale::ClientError::EngineMissing(_))) => {
            Err(anyhow::anyhow!(e)).context("cannot use the flashsale engine on this Redis")
        }
        Ok(Err(e)) if !e.is_unavailable() => {
            Err(anyhow::anyhow!(e)).context("cannot use the flashsale engine on this Redis")
        }
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer yet".to_string(),
            };
            tracing::warn!(%reason, "Redis is not ready; starting anyway and retrying");
            let live = live.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match live.prepare().await {
                        Ok(_) => return,
                        Err(e) if e.is_unavailable() => {}
                        Err(e) => {
                            tracing::error!(error = %e, "cannot use the flashsale engine on this Redis");
                            tokio::time::sleep(Duration::from_secs(4)).await;
                        }
                    }
                }
            });
            Ok(())
        }
    }
}

async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let secret = settings.jwt_secret()?;
    let buyer_tokens = settings.buyer_tokens()?;
    let redis = redis_connection(&settings)?;
    let db = Db::connect(&settings).await?;
    ensure_indexes(db.clone());
    let live = LiveSales::new(
        redis.clone(),
        settings.engine,
        Durability::new(settings.confirm_min_replicas, settings.confirm_wait_ms),
        db.clone(),
        settings.hold_ttl_seconds,
    );
    prepare_engine(&live).await?;
    let jwt = JwtKeys::new(
        &secret,
        &settings.jwt_issuer,
        &settings.jwt_audience,
        settings.jwt_ttl_seconds,
    );
    let passwords = Passwords::new(settings.password_hash_concurrency())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(AppState::new(Shared {
        settings: Arc::new(settings),
        live,
        redis,
        db,
        jwt: Arc::new(jwt),
        passwords,
        metrics: prometheus_handle()?,
        buyer_tokens: Arc::new(buyer_tokens),
    }))
}

/// Creates the indexes now, or keeps trying in the background while
/// MongoDB is away (the API serves the buy path without it meanwhile).
fn ensure_indexes(db: Db) {
    tokio::spawn(async move {
        loop {
            match db.ensure_indexes().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create MongoDB indexes yet; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    });
}

/// The whole router: routes, docs, fallbacks and the layers around them.
pub fn router(state: AppState) -> anyhow::Result<(Router, Vec<IdleSweeper>)> {
    let settings = state.settings.clone();
    let trusted = settings.trusted_proxies()?;
    let mut sweepers = Vec::new();
    let mut auth = routes::auth::router();
    let mut buying = routes::orders::limited_router();
    // Position, by-email, events.
    let mut reading = routes::orders::router();
    // The public sale view and list (cached), the draw, health and
    // readiness, and the admin catalogue that shares a router with the view.
    let public_cache = PublicCache::new(Duration::from_millis(settings.public_cache_ms));
    let mut public = Router::new()
        .merge(routes::sales::router())
        .merge(web::public_router())
        .merge(routes::ops::router())
        .route_layer(public_cache);
    if settings.rate_limit_enabled {
        let client_prefix = settings.rate_limit_ipv6_client_prefix;
        let mut limited = |router: Router<AppState>,
                           quotas: &[(u8, Quota)],
                           only: Option<&'static [&'static str]>| {
            let (router, sweeper) = limit_by(router, trusted.clone(), quotas, only);
            sweepers.push(sweeper);
            router
        };
        let quota = Quota::per_minute(
            settings.rate_limit_auth_per_minute,
            settings.rate_limit_auth_burst,
        );
        auth = limited(auth, &[(client_prefix, quota)], None);
        let quota = Quota::per_second(
            settings.rate_limit_buy_per_second,
            settings.rate_limit_buy_burst,
        );
        // Both buckets, in one layer: the client's first (so a client over
        // its own limit does not drain its network's), then its IPv6
        // network's.
        buying = limited(
            buying,
            &[
                (client_prefix, quota),
                (
                    settings.rate_limit_ipv6_network_prefix,
                    quota.times(settings.rate_limit_ipv6_network_factor),
                ),
            ],
            None,
        );
        let (per_second, burst) = settings.rate_limit_read();
        reading = reading.route_layer(StreamCap::new(
            ClientIpKey::new(trusted.clone(), client_prefix),
            settings.rate_limit_event_streams(),
        ));
        reading = limited(
            reading,
            &[(client_prefix, Quota::per_second(per_second, burst))],
            None,
        );
        let quota = Quota::per_second(
            settings.rate_limit_public_per_second,
            settings.rate_limit_public_burst,
        );
        // The public reads only, not the admin catalogue beside them.
        public = limited(public, &[(client_prefix, quota)], Some(PUBLIC_READS));
    }

    let app = Router::new()
        .merge(public)
        .merge(reading)
        .merge(buying)
        .merge(routes::admin::router())
        .merge(routes::admin_live::router())
        .merge(auth)
        .merge(web::router())
        .merge(web::with_docs_policy(Router::from(
            SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()),
        )))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let outer = safety_net_layers(metrics_layers(tracing_layers(request_id_layers(
        ServiceBuilder::new(),
    ))))
    .option_layer(cors(&settings)?);
    let layers = limits_layers(outer, settings.body_limit_bytes, settings.request_timeout());
    let app = app.layer(layers).with_state(state);
    Ok((app, sweepers))
}

// The layers around every route. `router` puts them all in one
// `Router::layer` call: axum clones a route's whole service for every
// request, and each `layer` call is one more boxed level to clone (and each
// `middleware::from_fn` boxes again and clones what is inside it), so the
// stack is one `ServiceBuilder` of plain tower layers. One function per
// concern, outermost first, so that `examples/http_layers.rs` prices
// exactly these.

/// `x-request-id` on every request and response (the caller's when usable).
pub type RequestIdLayers<L> = Stack<RequestIdLayer, L>;

pub fn request_id_layers<L>(builder: ServiceBuilder<L>) -> ServiceBuilder<RequestIdLayers<L>> {
    builder.layer(RequestIdLayer)
}

/// Each request in a span with its method, path and request id.
pub type TracingLayer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, fn(&Request) -> tracing::Span>;

pub fn tracing_layers<L>(builder: ServiceBuilder<L>) -> ServiceBuilder<Stack<TracingLayer, L>> {
    builder.layer(
        TraceLayer::new_for_http()
            .make_span_with(telemetry::request_span as fn(&Request) -> tracing::Span)
            // One line per request at debug (RUST_LOG=tower_http=debug):
            // at flash-sale rates an info line each would cost more
            // than the request. Failures (5xx) are logged at error.
            .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
    )
}

/// Request counts and latencies for Prometheus.
pub fn metrics_layers<L>(builder: ServiceBuilder<L>) -> ServiceBuilder<Stack<TrackLayer, L>> {
    builder.layer(TrackLayer)
}

/// `nosniff` and `no-referrer` on every response (pages add their CSP in
/// `web`), panics answered 500, every error in the JSON shape.
pub type SafetyNetLayers<L> = Stack<
    MapResponseLayer<fn(Response) -> Response>,
    Stack<
        CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response>,
        Stack<SetResponseHeaderLayer<HeaderValue>, Stack<SetResponseHeaderLayer<HeaderValue>, L>>,
    >,
>;

pub fn safety_net_layers<L>(builder: ServiceBuilder<L>) -> ServiceBuilder<SafetyNetLayers<L>> {
    builder
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(
            panic_response as fn(Box<dyn Any + Send + 'static>) -> Response,
        ))
        // Inside the panic net: a panic's answer is JSON already.
        .map_response(json_errors as fn(Response) -> Response)
}

/// The request timeout (503 `timeout`) and the body size limit.
pub type LimitsLayers<L> = Stack<DefaultBodyLimit, Stack<RequestTimeoutLayer, L>>;

pub fn limits_layers<L>(
    builder: ServiceBuilder<L>,
    body_limit: usize,
    timeout: Duration,
) -> ServiceBuilder<LimitsLayers<L>> {
    builder
        .layer(RequestTimeoutLayer(timeout))
        .layer(DefaultBodyLimit::max(body_limit))
}

fn cors(settings: &Settings) -> anyhow::Result<Option<CorsLayer>> {
    let origins = settings.cors_origins()?;
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            // A shop on another origin sends the buyer token as a header.
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static(crate::buyer_token::HEADER),
            ])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::listen;

    /// A burst of connections far beyond the old 128 all complete their
    /// handshake while the API has not accepted any of them yet (with a
    /// backlog of 128, the rest had their SYN dropped and waited a second).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog() {
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let connects = (0..600).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let connected = futures::future::join_all(connects)
            .await
            .into_iter()
            .filter(|c| matches!(c, Ok(Ok(_))))
            .count();
        assert_eq!(connected, 600);
        drop(listener);
    }
}
