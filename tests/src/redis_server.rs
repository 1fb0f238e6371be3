use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tempfile::TempDir;

#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Load this module, with `TEST_CLOCK` when the flag is set.
    pub module: Option<(PathBuf, bool)>,
    /// Extra `--name value` settings, e.g. `appendonly yes`.
    pub config: Vec<(String, String)>,
    /// Keep data here (to restart on the same files); a temp dir otherwise.
    pub dir: Option<PathBuf>,
}

/// A `redis-server` child process on 127.0.0.1, killed (by PID) on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    options: ServerOptions,
    _temp: Option<TempDir>,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    pub fn start(options: ServerOptions) -> RedisServer {
        let (dir, temp) = match &options.dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        // A port picked free can be taken before redis binds it; try again.
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(port, &dir, &options);
            if wait_ready(port, &mut child) {
                return RedisServer {
                    child,
                    port,
                    dir,
                    options,
                    _temp: temp,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start; log:\n{log}");
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and
    /// data dir, with the same options (with AOF on, the data comes back).
    pub fn restart(&mut self) {
        self.kill();
        let mut child = spawn(self.port, &self.dir, &self.options);
        assert!(
            wait_ready(self.port, &mut child),
            "redis-server did not restart on port {}",
            self.port
        );
        self.child = child;
    }

    /// [`RedisServer::restart`] without waiting: returns as soon as the new
    /// process is spawned, before it listens or while it still loads its
    /// data (for tests of programs started against a loading Redis).
    pub fn restart_no_wait(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, &self.options);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    pub fn sync_connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_connection()
            .expect("connect to test redis")
    }

    /// Kills the process (SIGKILL) and waits for it; the data dir stays.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn(port: u16, dir: &std::path::Path, options: &ServerOptions) -> Child {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .args(["--dir", &dir.to_string_lossy()])
    .args(["--enable-debug-command", "local"])
    .args(["--logfile", &dir.join("redis.log").to_string_lossy()])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (name, value) in &options.config {
        cmd.arg(format!("--{name}")).arg(value);
    }
    if let Some((module, test_clock)) = &options.module {
        cmd.arg("--loadmodule").arg(module);
        if *test_clock {
            cmd.arg("TEST_CLOCK");
        }
    }
    cmd.spawn().expect("redis-server on PATH")
}

/// Waits until `child` answers on `port` and has finished loading its data;
/// false when it exits (e.g. the port was taken) or does not answer in time.
pub(crate) fn wait_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("redis://127.0.0.1:{port}/");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut conn) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
            // LOADING replies mean the AOF is still being read. The pid check
            // tells our server from another one that took the port first.
            if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                return server_pid(&mut conn) == Some(child.id());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// `process_id` from `INFO server`.
fn server_pid(conn: &mut redis::Connection) -> Option<u32> {
    let info: String = redis::cmd("INFO").arg("server").query(conn).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
