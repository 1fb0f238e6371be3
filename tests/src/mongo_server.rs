//! A MongoDB endpoint for tests.
//!
//! With `MONGO_URL` set (a real MongoDB, e.g. a `mongo:7` container), every
//! [`MongoServer`] uses that server and gets a database name of its own.
//! Otherwise each [`MongoServer`] is a private `mongo-sqlite` process
//! (FerretDB v1 with its SQLite backend, `tools/mongo-sqlite`, built once per
//! machine by `scripts/build-mongo-sqlite`) on a free 127.0.0.1 port with a
//! fresh temp dir, killed by PID when dropped. That server runs one command
//! at a time (FerretDB v1 alone does not make `$inc`/findAndModify atomic
//! against concurrent commands; see `tools/mongo-sqlite/serialize.go`), so
//! single-document atomicity holds as on MongoDB.
//!
//! On the container backend ([`crate::backend`]), without `MONGO_URL`, the
//! same program runs in a container of `flashsale-mongo-sqlite:local`
//! ([`crate::containers`]) with its SQLite files in a temp dir mounted on
//! `/data/db`; stop, kill and restart act on the container (`docker stop`,
//! `docker kill`, `docker start`: same port, same files).

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::Client;
use tempfile::TempDir;

use crate::backend::{ServerBackend, BACKEND_ENV};
use crate::containers::{self, Container, Service, Spec};

/// How long a server may take to answer `ping` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the process is killed. The
/// server itself exits within 1 s of being asked (`--shutdown-timeout=1s`),
/// usually within milliseconds.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `mongo-sqlite` binary, built (or found up to date) once per process.
pub fn mongo_sqlite_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let script = crate::workspace_root().join("scripts/build-mongo-sqlite");
        let output = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed ({}); is Go installed?",
            script.display(),
            output.status
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{} printed no path", script.display()));
        assert!(
            path.exists(),
            "{} is missing after the build",
            path.display()
        );
        path
    })
}

/// A database name no other test (in this process or an earlier run against
/// the same `MONGO_URL`) uses.
fn unique_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // MongoDB allows 63 bytes; this stays well under that.
    format!("fstest_{}_{:x}_{n}", std::process::id(), nanos % (1 << 48))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A local `mongo-sqlite` process and its files.
struct Local {
    child: Option<Child>,
    /// Closing it asks the server to shut down (`--exit-on-stdin-eof`); it
    /// also closes when this test process dies, so no server outlives it.
    stdin: Option<ChildStdin>,
    port: u16,
    /// `<temp>/data`: the SQLite files; kept across stop/restart.
    data_dir: PathBuf,
    /// `<temp>/mongo-sqlite.log`: the server's stderr, appended across restarts.
    log_path: PathBuf,
    _temp: TempDir,
}

/// A MongoDB endpoint for one test: see the module docs.
pub struct MongoServer {
    url: String,
    database: String,
    local: Option<Local>,
    container: Option<MongoContainer>,
}

/// The server in a container, and its files.
struct MongoContainer {
    container: Container,
    _temp: TempDir,
}

impl MongoServer {
    /// `MONGO_URL` if set, else a fresh `mongo-sqlite` on a free port; returns
    /// once the server answers `ping`.
    pub async fn start() -> MongoServer {
        if std::env::var("MONGO_URL").map_or(true, |u| u.is_empty())
            && crate::backend::server_backend() == ServerBackend::Containers
        {
            return Self::start_container().await;
        }
        if let Some(url) = std::env::var("MONGO_URL").ok().filter(|u| !u.is_empty()) {
            let server = MongoServer {
                url,
                database: unique_database_name(),
                local: None,
                container: None,
            };
            let client = server.client().await;
            ping_until_ready(&client, Instant::now() + START_TIMEOUT, || true)
                .await
                .unwrap_or_else(|e| panic!("MONGO_URL={} does not answer ping: {e}", server.url));
            return server;
        }

        let temp = tempfile::Builder::new()
            .prefix("flashsale-mongo-")
            .tempdir()
            .expect("temp dir");
        let data_dir = temp.path().join("data");
        let log_path = temp.path().join("mongo-sqlite.log");
        let mut local = Local {
            child: None,
            stdin: None,
            port: 0,
            data_dir,
            log_path,
            _temp: temp,
        };
        // A port picked free can be taken before the server binds it: then
        // the process exits at once, and we try another port.
        let mut last_error = String::new();
        for _ in 0..5 {
            local.port = free_port();
            match local.spawn_and_wait().await {
                Ok(()) => {
                    return MongoServer {
                        url: local_url(local.port),
                        database: unique_database_name(),
                        local: Some(local),
                        container: None,
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!(
            "mongo-sqlite did not start: {last_error}\nlog:\n{}",
            local.log()
        );
    }

    /// The program in a container of [`containers::mongo_image`], its files
    /// in a fresh temp dir on `/data/db`; panics with the reason when it does
    /// not start.
    async fn start_container() -> MongoServer {
        let temp = tempfile::Builder::new()
            .prefix("flashsale-mongo-")
            .tempdir()
            .expect("temp dir");
        let spec = Spec {
            service: Service::Mongo,
            image: containers::mongo_image(),
            entrypoint: Some("mongo-sqlite".into()),
            args: [
                "--listen",
                "0.0.0.0:27017",
                "--dir",
                "/data/db",
                "--shutdown-timeout=1s",
            ]
            .map(String::from)
            .to_vec(),
            port: 27017,
            data_dir: temp.path().to_path_buf(),
            mount: "/data/db".into(),
        };
        let container = Container::start(spec).await.unwrap_or_else(|e| {
            panic!("the MongoDB-compatible container did not start ({BACKEND_ENV}=containers): {e}")
        });
        MongoServer {
            url: format!("mongodb://{}:{}/", container.host(), container.port()),
            database: unique_database_name(),
            local: None,
            container: Some(MongoContainer {
                container,
                _temp: temp,
            }),
        }
    }

    /// The container, on the container backend (for fault tests: network
    /// disconnect, ...).
    pub fn container(&self) -> Option<&Container> {
        self.container.as_ref().map(|c| &c.container)
    }

    /// `mongodb://127.0.0.1:PORT/` (or `MONGO_URL`, or the container's).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A new client for [`Self::url`].
    pub async fn client(&self) -> Client {
        let mut options = ClientOptions::parse(&self.url)
            .await
            .unwrap_or_else(|e| panic!("bad MongoDB url {}: {e}", self.url));
        options.app_name = Some("flashsale-tests".to_string());
        Client::with_options(options).expect("MongoDB client")
    }

    /// A database name of this server's own (unique per `MongoServer`), so
    /// tests sharing a `MONGO_URL` do not see each other's data.
    pub fn database_name(&self) -> String {
        self.database.clone()
    }

    /// The database named [`Self::database_name`], on a new client.
    pub async fn database(&self) -> mongodb::Database {
        self.client().await.database(&self.database)
    }

    /// Whether this is a local process or a container that [`Self::stop`],
    /// [`Self::kill`] and [`Self::restart`] control (false with `MONGO_URL`).
    pub fn is_local(&self) -> bool {
        self.local.is_some() || self.container.is_some()
    }

    /// The local server's port (`None` with `MONGO_URL`); a container's
    /// published port.
    pub fn port(&self) -> Option<u16> {
        if let Some(c) = &self.container {
            return Some(c.container.port());
        }
        self.local.as_ref().map(|l| l.port)
    }

    /// The local server's PID while it runs (a container's main process:
    /// its host PID).
    pub fn pid(&self) -> Option<u32> {
        if let Some(c) = &self.container {
            return c.container.pid();
        }
        self.local
            .as_ref()
            .and_then(|l| l.child.as_ref())
            .map(Child::id)
    }

    /// The local server's SQLite directory (kept across stop/restart).
    pub fn data_dir(&self) -> Option<&Path> {
        if let Some(c) = &self.container {
            return Some(c.container.data_dir());
        }
        self.local.as_ref().map(|l| l.data_dir.as_path())
    }

    /// Stops the local server gracefully and waits for the process to exit:
    /// it closes its listener and every client connection at once, then its
    /// SQLite files; SIGKILL only if it is still there after 10 s. Every
    /// write it acknowledged is on disk (SQLite WAL, synchronous=FULL).
    /// Clients see their connections drop and reconnect by themselves after
    /// [`Self::restart`]. The port and the data dir stay for the restart.
    /// No-op when already stopped.
    /// A container: `docker stop` (SIGTERM, the same graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(c) = &self.container {
            return c.container.stop(STOP_TIMEOUT);
        }
        self.local_mut("stop").stop(STOP_TIMEOUT);
    }

    /// Kills the local server with SIGKILL (a crash) and waits for it; the
    /// data dir stays.
    /// A container: `docker kill`.
    pub fn kill(&mut self) {
        if let Some(c) = &self.container {
            return c.container.kill();
        }
        self.local_mut("kill").kill();
    }

    /// Starts the local server again on the same port and the same data dir
    /// (stopping it first if it still runs); returns once it answers `ping`.
    /// A container: stopped as by [`Self::stop`], then `docker start`.
    pub async fn restart(&mut self) {
        if let Some(c) = &self.container {
            c.container.stop(STOP_TIMEOUT);
            c.container.start_again_async().await;
            return;
        }
        let local = self.local_mut("restart");
        local.stop(STOP_TIMEOUT);
        let deadline = Instant::now() + START_TIMEOUT;
        // The port may be briefly held by someone else: keep trying it.
        loop {
            match local.spawn_and_wait().await {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!(
                    "mongo-sqlite did not restart on port {}: {e}\nlog:\n{}",
                    local.port,
                    local.log()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_mut(&mut self, what: &str) -> &mut Local {
        self.local.as_mut().unwrap_or_else(|| {
            panic!("MongoServer::{what} needs a local server; MONGO_URL is set (check is_local())")
        })
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            local.kill();
        }
    }
}

fn local_url(port: u16) -> String {
    format!("mongodb://127.0.0.1:{port}/")
}

impl Local {
    /// Spawns the binary on `self.port` and waits until it answers `ping`.
    /// Err if the process exits first (e.g. the port was taken) or the
    /// deadline passes; the process is gone then.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let binary = mongo_sqlite_binary();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open mongo-sqlite log");
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--dir")
            .arg(&self.data_dir)
            .arg("--exit-on-stdin-eof")
            // Client connections are closed at once; this only bounds a
            // command still running.
            .arg("--shutdown-timeout=1s")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.stdin = child.stdin.take();
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let result = async {
            // Cheap TCP polling first, then a real command.
            loop {
                if let Some(status) = self.exit_status() {
                    return Err(format!("mongo-sqlite exited early ({status})"));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "port {} not open after {START_TIMEOUT:?}",
                        self.port
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut options = ClientOptions::parse(local_url(self.port))
                .await
                .map_err(|e| e.to_string())?;
            options.server_selection_timeout = Some(Duration::from_secs(2));
            options.connect_timeout = Some(Duration::from_secs(2));
            let client = Client::with_options(options).map_err(|e| e.to_string())?;
            let running = || self.exit_status().is_none();
            let pinged = ping_until_ready(&client, deadline, running).await;
            client.shutdown().await;
            pinged
        }
        .await;
        if result.is_err() {
            self.kill();
        }
        result
    }

    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        }
    }

    fn stop(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // EOF on stdin: the server shuts down as on SIGTERM.
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
    }

    fn log(&self) -> String {
        File::open(&self.log_path)
            .and_then(|mut f| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut f, &mut s).map(|_| s)
            })
            .unwrap_or_default()
    }
}

/// Sends `ping` until it succeeds, the deadline passes, or `running` says the
/// process is gone.
async fn ping_until_ready(
    client: &Client,
    deadline: Instant,
    mut running: impl FnMut() -> bool,
) -> Result<(), String> {
    loop {
        let error = match client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
        {
            // A reply with `ok: 0` comes back as an Err.
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if !running() {
            return Err(format!("mongo-sqlite exited early; last ping: {error}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("no ping reply after {START_TIMEOUT:?}: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
