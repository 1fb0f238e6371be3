use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tempfile::TempDir;

use crate::backend::BACKEND_ENV;
use crate::containers::{self, Container, Service, Spec, Wait};

#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Load this module, with `TEST_CLOCK` when the flag is set.
    pub module: Option<(PathBuf, bool)>,
    /// Extra `--name value` settings, e.g. `appendonly yes`.
    pub config: Vec<(String, String)>,
    /// Keep data here (to restart on the same files); a temp dir otherwise.
    pub dir: Option<PathBuf>,
}

/// A `redis-server`: a child process on 127.0.0.1, killed (by PID) on drop
/// ([`RedisServer::start`]); or, for [`crate::EngineServer`] on the
/// container backend, a container with its port published and `dir`
/// mounted on `/data`, removed on drop ([`RedisServer::start_container`]).
/// The same methods work on both; `port` and `dir` stay across restarts.
pub struct RedisServer {
    runner: Runner,
    /// The port to connect to on [`RedisServer::host`].
    pub port: u16,
    /// The data dir (`--dir`; the host side of the container's `/data`).
    pub dir: PathBuf,
    host: String,
    options: ServerOptions,
    _temp: Option<TempDir>,
}

enum Runner {
    Process(Child),
    Container(Box<Container>),
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
                    runner: Runner::Process(child),
                    port,
                    dir,
                    host: "127.0.0.1".into(),
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

    /// A `redis-server` container (see [`crate::containers`]): with
    /// `module = Some(test_clock)` the module image with the engine loaded
    /// (`TEST_CLOCK` when set), else a plain Redis image. The same settings
    /// as [`RedisServer::start`] (no RDB saves, `redis.log` in `dir`,
    /// `options.config`), listening on all of the container's addresses,
    /// DEBUG allowed. `options.module` is ignored: the module is the image's.
    /// Panics with the reason when the container does not start.
    pub async fn start_container(options: ServerOptions, module: Option<bool>) -> RedisServer {
        let (dir, temp) = match &options.dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut args: Vec<String> = [
            "--port",
            "6379",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--dir",
            "/data",
            "--enable-debug-command",
            "yes",
            "--logfile",
            "/data/redis.log",
        ]
        .map(String::from)
        .to_vec();
        for (name, value) in &options.config {
            args.push(format!("--{name}"));
            args.push(value.clone());
        }
        let image = match module {
            Some(test_clock) => {
                args.extend(["--loadmodule".into(), containers::MODULE_IN_IMAGE.into()]);
                if test_clock {
                    args.push("TEST_CLOCK".into());
                }
                containers::module_image()
            }
            None => containers::plain_redis_image(),
        };
        let spec = Spec {
            service: Service::Redis,
            image,
            entrypoint: Some("redis-server".into()),
            args,
            port: 6379,
            data_dir: dir.clone(),
            mount: "/data".into(),
        };
        let container = Container::start(spec).await.unwrap_or_else(|e| {
            panic!("the Redis container did not start ({BACKEND_ENV}=containers): {e}")
        });
        RedisServer {
            port: container.port(),
            host: container.host().to_string(),
            runner: Runner::Container(Box::new(container)),
            dir,
            options,
            _temp: temp,
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and
    /// data dir, with the same options (with AOF on, the data comes back).
    /// A container is killed (`docker kill`) and started again (`docker
    /// start`): same container, same volume.
    pub fn restart(&mut self) {
        self.kill();
        match &mut self.runner {
            Runner::Process(child) => {
                let mut new = spawn(self.port, &self.dir, &self.options);
                assert!(
                    wait_ready(self.port, &mut new),
                    "redis-server did not restart on port {}",
                    self.port
                );
                *child = new;
            }
            Runner::Container(container) => container.start_again(Wait::Ready),
        }
    }

    /// [`RedisServer::restart`] without waiting: returns as soon as the new
    /// process is spawned, before it listens or while it still loads its
    /// data (for tests of programs started against a loading Redis). A
    /// container returns once the server in it answers at all (`-LOADING`
    /// counts): its published port accepts connections and closes them
    /// until then, where a process's port refuses them.
    pub fn restart_no_wait(&mut self) {
        self.kill();
        match &mut self.runner {
            Runner::Process(child) => *child = spawn(self.port, &self.dir, &self.options),
            Runner::Container(container) => container.start_again(Wait::Listening),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.host, self.port)
    }

    /// The host to connect to: 127.0.0.1 for a process; the container's
    /// published address otherwise.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's PID: the child's; for a container, the host PID of its
    /// main process (`docker inspect`; panics when it is not running).
    pub fn pid(&self) -> u32 {
        match &self.runner {
            Runner::Process(child) => child.id(),
            Runner::Container(container) => container
                .pid()
                .unwrap_or_else(|| panic!("container {} is not running", container.id())),
        }
    }

    /// The container, on the container backend (for fault tests: kill,
    /// network disconnect, ...).
    pub fn container(&self) -> Option<&Container> {
        match &self.runner {
            Runner::Process(_) => None,
            Runner::Container(container) => Some(container),
        }
    }

    /// A connection whose replies may take up to 10 s: the redis crate's
    /// default of 500 ms turned a busy machine into failed tests (FLUSHALL,
    /// WAIT timing out under a load average of 10).
    pub async fn connection(&self) -> MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection_with_config(&config)
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
    /// A container: `docker kill`, until Docker reports it stopped.
    pub fn kill(&mut self) {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::Container(container) => container.kill(),
        }
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
        // A container removes itself (docker rm -f) when dropped.
        if let Runner::Process(child) = &mut self.runner {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
