//! Where the harness runs its servers: local processes or Docker containers.
//!
//! `FLASHSALE_TEST_BACKEND` chooses, once per test process:
//!
//! - `processes`: `redis-server` and `mongo-sqlite` as child processes on
//!   127.0.0.1 (the fast default for developers; no Docker needed).
//! - `containers`: the same servers as containers (testcontainers), from
//!   local images (see [`crate::containers`]). A container that cannot start
//!   FAILS the test, with the reason; nothing is skipped.
//! - `auto` or unset: containers when a Docker daemon answers (`DOCKER_HOST`,
//!   else `/var/run/docker.sock`) and the images are there; processes
//!   otherwise, with the reason printed once on stderr.
//!
//! Only [`crate::EngineServer`] and [`crate::MongoServer`] follow the choice.
//! [`crate::RedisServer::start`] and [`crate::RedisCluster`] always run
//! processes (replicas, clusters and the like are process tests).

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that picks the backend.
pub const BACKEND_ENV: &str = "FLASHSALE_TEST_BACKEND";

/// Where [`crate::EngineServer`] and [`crate::MongoServer`] run their servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerBackend {
    Processes,
    Containers,
}

/// What `FLASHSALE_TEST_BACKEND` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Processes,
    Containers,
    Auto,
}

/// `FLASHSALE_TEST_BACKEND`, parsed; panics on a value it does not know.
pub fn requested() -> Requested {
    match std::env::var(BACKEND_ENV)
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "auto" => Requested::Auto,
        "processes" | "process" => Requested::Processes,
        "containers" | "container" | "docker" => Requested::Containers,
        other => panic!("{BACKEND_ENV}={other:?}: expected processes, containers or auto"),
    }
}

/// The backend of this test process, decided once (see the module docs).
pub fn server_backend() -> ServerBackend {
    static CHOICE: OnceLock<ServerBackend> = OnceLock::new();
    *CHOICE.get_or_init(|| match requested() {
        Requested::Processes => ServerBackend::Processes,
        Requested::Containers => ServerBackend::Containers,
        Requested::Auto => match containers_usable() {
            Ok(()) => ServerBackend::Containers,
            Err(why) => {
                say(&format!("{BACKEND_ENV}=auto: using processes ({why})"));
                ServerBackend::Processes
            }
        },
    })
}

/// Whether containers were asked for explicitly (`FLASHSALE_TEST_BACKEND=
/// containers`): then nothing may skip for want of Docker.
pub fn containers_required() -> bool {
    requested() == Requested::Containers
}

/// For tests that only make sense on containers (container fault tests):
/// true when the backend is containers; otherwise prints why the test is
/// skipped and returns false. With `FLASHSALE_TEST_BACKEND=containers` the
/// backend is containers, so such a test always runs (and fails if Docker
/// does not work).
pub fn containers_or_skip(test: &str) -> bool {
    match server_backend() {
        ServerBackend::Containers => true,
        ServerBackend::Processes => {
            say(&format!(
                "{test}: skipped: a container fault test, and the harness runs processes \
                 ({BACKEND_ENV}={}); run it with {BACKEND_ENV}=containers",
                std::env::var(BACKEND_ENV).unwrap_or_else(|_| "<unset>".into())
            ));
            false
        }
    }
}

/// A line on the real stderr: past the test harness's output capture, so
/// it shows in a normal `cargo test` run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Ok when a Docker daemon answers and every image the container backend
/// needs is there; the reason otherwise. A few local HTTP requests.
pub fn containers_usable() -> Result<(), String> {
    let endpoint = docker_endpoint()?;
    let ping = endpoint.get("/_ping")?;
    if !ping.starts_with("HTTP/1.") || !ping.contains(" 200 ") {
        return Err(format!("Docker at {endpoint} does not answer /_ping"));
    }
    for image in crate::containers::required_images() {
        if !endpoint.image_exists(&image)? {
            return Err(format!(
                "Docker answers but image {image} is missing (scripts/docker-up builds it)"
            ));
        }
    }
    Ok(())
}

/// Whether `image` is present in the local Docker daemon.
pub(crate) fn image_exists(image: &str) -> Result<bool, String> {
    docker_endpoint()?.image_exists(image)
}

/// Where the Docker API listens, from `DOCKER_HOST` (unix:// or tcp://).
enum Endpoint {
    Unix(String),
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

fn docker_endpoint() -> Result<Endpoint, String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if host.is_empty() {
        return Ok(Endpoint::Unix("/var/run/docker.sock".into()));
    }
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(Endpoint::Unix(path.into()));
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0") {
            return Err(format!(
                "DOCKER_HOST={host} with TLS: the harness cannot probe it; \
                 set {BACKEND_ENV}=containers to use it"
            ));
        }
        return Ok(Endpoint::Tcp(addr.trim_end_matches('/').into()));
    }
    Err(format!("DOCKER_HOST={host}: not unix:// or tcp://"))
}

impl Endpoint {
    /// One HTTP/1.0 GET; the whole reply (status line, headers, body).
    fn get(&self, path: &str) -> Result<String, String> {
        let timeout = Duration::from_secs(2);
        let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
        let mut reply = Vec::new();
        let result = match self {
            Endpoint::Unix(socket) => {
                std::os::unix::net::UnixStream::connect(socket).and_then(|mut s| {
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    s.write_all(request.as_bytes())?;
                    s.read_to_end(&mut reply)
                })
            }
            Endpoint::Tcp(addr) => {
                use std::net::ToSocketAddrs;
                addr.to_socket_addrs()
                    .and_then(|mut addrs| {
                        addrs.next().ok_or_else(|| {
                            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                        })
                    })
                    .and_then(|a| std::net::TcpStream::connect_timeout(&a, timeout))
                    .and_then(|mut s| {
                        s.set_read_timeout(Some(timeout))?;
                        s.set_write_timeout(Some(timeout))?;
                        s.write_all(request.as_bytes())?;
                        s.read_to_end(&mut reply)
                    })
            }
        };
        result.map_err(|e| format!("no Docker daemon answers at {self}: {e}"))?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    fn image_exists(&self, image: &str) -> Result<bool, String> {
        let reply = self.get(&format!("/images/{image}/json"))?;
        Ok(reply.starts_with("HTTP/1.") && reply.contains(" 200 "))
    }
}
