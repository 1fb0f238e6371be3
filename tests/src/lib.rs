//! Test harness: real servers for the suites, with the engine loaded as a
//! module or as the Functions library ([`EngineServer`]), a MongoDB-
//! compatible server ([`MongoServer`]), plain `redis-server` processes
//! ([`RedisServer::start`]) and a whole local Redis Cluster ([`RedisCluster`]).
//!
//! Two backends, the same test code ([`backend`]): `FLASHSALE_TEST_BACKEND=
//! processes` runs `redis-server` and `mongo-sqlite` as child processes on
//! free loopback ports, killed by PID when dropped (the fast default without
//! Docker); `FLASHSALE_TEST_BACKEND=containers` runs [`EngineServer`] and
//! [`MongoServer`] as Docker containers through testcontainers, from local
//! images (`flashsale-redis:local` with the module, a plain Redis image for
//! the Functions library, `flashsale-mongo-sqlite:local`), removed when
//! dropped ([`containers`]); unset or `auto`: containers when a Docker
//! daemon answers and the images are there, processes otherwise. Replicas
//! ([`RedisServer::start`]) and clusters stay processes on both.
//! Container-only fault tests ask [`backend::containers_or_skip`].

pub mod backend;
pub mod cluster;
pub mod containers;
pub mod fixtures;
pub mod mongo_server;
mod redis_server;
pub mod state;

pub use backend::{server_backend, ServerBackend};
pub use cluster::{ClusterNode, ClusterOptions, RedisCluster, Role};
pub use mongo_server::MongoServer;
pub use redis_server::{RedisServer, ServerOptions};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flashsale::{BackendChoice, EngineClient};
use redis::aio::MultiplexedConnection;

/// Which engine implementation a suite runs against.
pub use flashsale::Backend;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The module `.so`: `FLASHSALE_MODULE`, or the release build in `target/`.
/// The test command builds it first (`cargo build -p module --release`).
pub fn module_path() -> PathBuf {
    let path = std::env::var_os("FLASHSALE_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/libflashsale_module.so"));
    assert!(
        path.exists(),
        "module not built: {} is missing (run `cargo build -p module --release`)",
        path.display()
    );
    path
}

/// The functions library; with `test_clock`, the variant that reads the clock
/// from `flashsale:test-clock` (for lock-step differential tests only).
pub fn lua_library(test_clock: bool) -> String {
    let source = flashsale::LUA_LIBRARY;
    if !test_clock {
        return source.to_string();
    }
    let marker = "local TEST_CLOCK = false";
    assert!(
        source.contains(marker),
        "lua/flashsale.lua lost its TEST_CLOCK line"
    );
    source.replacen(marker, "local TEST_CLOCK = true", 1)
}

/// A server with the engine ready, and a client for it.
pub struct EngineServer {
    pub server: RedisServer,
    pub backend: Backend,
    pub test_clock: bool,
}

impl EngineServer {
    pub async fn start(backend: Backend, test_clock: bool) -> EngineServer {
        Self::start_with(backend, test_clock, ServerOptions::default()).await
    }

    /// A server on the harness's backend ([`backend::server_backend`]): a
    /// `redis-server` process (module from [`module_path`]) or a container
    /// (the module image, or a plain Redis image for the Functions library).
    pub async fn start_with(
        backend: Backend,
        test_clock: bool,
        mut options: ServerOptions,
    ) -> EngineServer {
        let server = match backend::server_backend() {
            ServerBackend::Processes => {
                if backend == Backend::Module {
                    options.module = Some((module_path(), test_clock));
                }
                RedisServer::start(options)
            }
            ServerBackend::Containers => {
                let module = (backend == Backend::Module).then_some(test_clock);
                RedisServer::start_container(options, module).await
            }
        };
        let engine = EngineServer {
            server,
            backend,
            test_clock,
        };
        if backend == Backend::Lua {
            let mut conn = engine.server.connection().await;
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg(lua_library(test_clock))
                .query_async::<String>(&mut conn)
                .await
                .expect("FUNCTION LOAD");
        }
        engine
    }

    pub async fn client(&self) -> EngineClient<MultiplexedConnection> {
        let conn = self.server.connection().await;
        match self.backend {
            Backend::Module => EngineClient::connect(conn, BackendChoice::Module)
                .await
                .expect("engine client"),
            // The test-clock variant is loaded already; connect() would
            // replace it with the shipped library.
            Backend::Lua if self.test_clock => EngineClient::attach(conn, Backend::Lua),
            Backend::Lua => EngineClient::connect(conn, BackendChoice::Lua)
                .await
                .expect("engine client"),
        }
    }

    /// Sets the engine clock (test-clock servers only).
    pub async fn set_clock(&self, ms: u64) {
        assert!(self.test_clock, "set_clock needs a test-clock engine");
        let mut conn = self.server.connection().await;
        redis::cmd("SET")
            .arg(engine::keys::TEST_CLOCK)
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await
            .expect("SET test clock");
    }
}

/// Polls `check` every few ms until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for_every(what, timeout, Duration::from_millis(5), check).await
}

/// [`wait_for`] with a chosen polling interval, for checks that cost the
/// server something (a MongoDB count, say).
pub async fn wait_for_every<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// The server's clock in ms (`TIME`).
pub async fn server_time_ms(conn: &mut MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.expect("TIME");
    secs * 1000 + micros / 1000
}

/// Declares each named `async fn(Backend)` twice, as `module::name` and
/// `lua::name` tests: one suite, both engine backends. The calling file must
/// have `Backend` in scope.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Module).await })*
        }
        mod lua {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Lua).await })*
        }
    };
}
