//! The container backend of the harness (testcontainers, async runner).
//!
//! [`crate::EngineServer`] and [`crate::MongoServer`] start these when
//! [`crate::backend::server_backend`] says containers; the suites do not
//! change. Images are local (nothing is pulled; `scripts/docker-up` builds
//! them offline):
//!
//! | what | image | override |
//! |---|---|---|
//! | Redis + the engine module | `flashsale-redis:local` (docker/redis.Dockerfile) | `FLASHSALE_TEST_REDIS_IMAGE` |
//! | plain Redis, for the Functions library | `FLASHSALE_TEST_PLAIN_REDIS_IMAGE`, else `REDIS_IMAGE` (what `eval "$(scripts/docker-up)"` sets), else the first present of `redis:7.2-bookworm`, `local/redis:7.0-bookworm` | |
//! | the MongoDB-compatible server (tools/mongo-sqlite) | `flashsale-mongo-sqlite:local` | `FLASHSALE_TEST_MONGO_IMAGE` |
//!
//! Every container publishes its port on a host port picked free (fixed for
//! the container's life, so a restart keeps the URL), bind-mounts a
//! directory of the test on its data dir (`/data` for Redis, `/data/db` for
//! the MongoDB-compatible image: a restart finds its data, as a
//! process restarted on the same `--dir` does), and runs as the owner of
//! that directory (the test can read and delete the files). It is removed
//! (by container id, `docker rm -f`) when its [`Container`] is dropped;
//! containers left by a test process that was killed are removed by the
//! next test process on the same host (labels `org.flashsale.test.*`).
//!
//! Fault operations: [`Container::kill`] (SIGKILL, `docker kill`),
//! [`Container::stop`] (`docker stop`), [`Container::start_again`] (`docker
//! start`, same container and volume), [`Container::disconnect`] /
//! [`Container::connect`] (`docker network disconnect/connect` on the
//! container's network).
//!
//! All Docker calls run on one runtime of their own (a background thread
//! for the whole test process): testcontainers shares one Docker client
//! between the tests of a binary, and a client whose connections were made
//! on a test's runtime breaks when that test ends ("runtime dropped the
//! dispatch task"). The sync methods block the calling thread on that
//! runtime, never on the caller's.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::models::{NetworkConnectRequest, NetworkDisconnectRequest};
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::{IntoContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Where the module sits in the Redis image (docker/redis.Dockerfile).
pub const MODULE_IN_IMAGE: &str = "/usr/local/lib/redis/modules/libflashsale_module.so";
/// The Redis-with-module image.
pub const REDIS_IMAGE_ENV: &str = "FLASHSALE_TEST_REDIS_IMAGE";
pub const DEFAULT_REDIS_IMAGE: &str = "flashsale-redis:local";
/// The plain Redis image (the engine as a Functions library).
pub const PLAIN_REDIS_IMAGE_ENV: &str = "FLASHSALE_TEST_PLAIN_REDIS_IMAGE";
pub const PLAIN_REDIS_CANDIDATES: [&str; 2] = ["redis:7.2-bookworm", "local/redis:7.0-bookworm"];
/// The MongoDB-compatible image.
pub const MONGO_IMAGE_ENV: &str = "FLASHSALE_TEST_MONGO_IMAGE";
pub const DEFAULT_MONGO_IMAGE: &str = "flashsale-mongo-sqlite:local";

/// How long a container may take to start and answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a killed container may take to be reported as not running.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Redis image with the module.
pub fn module_image() -> String {
    env_or(REDIS_IMAGE_ENV, DEFAULT_REDIS_IMAGE)
}

/// The plain Redis image (see the module docs for the order of choice).
pub fn plain_redis_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            for var in [PLAIN_REDIS_IMAGE_ENV, "REDIS_IMAGE"] {
                if let Some(image) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                    return image.trim().to_string();
                }
            }
            PLAIN_REDIS_CANDIDATES
                .iter()
                .find(|image| crate::backend::image_exists(image).unwrap_or(false))
                .unwrap_or(&PLAIN_REDIS_CANDIDATES[0])
                .to_string()
        })
        .clone()
}

/// The MongoDB-compatible image.
pub fn mongo_image() -> String {
    env_or(MONGO_IMAGE_ENV, DEFAULT_MONGO_IMAGE)
}

/// The images the container backend needs (all must be present locally).
pub fn required_images() -> Vec<String> {
    vec![module_image(), plain_redis_image(), mongo_image()]
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The runtime every Docker call runs on (see the module docs).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(RUNTIME_THREAD)
            .enable_all()
            .build()
            .expect("the harness's Docker runtime")
    })
}

/// Runs `fut` on the Docker runtime and awaits it from any runtime.
pub(crate) async fn on_docker<T, F>(fut: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    match runtime().spawn(fut).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs `fut` on the Docker runtime and blocks this thread until it ends
/// (from sync code, `Drop`, or a test's runtime: it never blocks on the
/// caller's runtime).
pub(crate) fn on_docker_blocking<T, F>(fut: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    assert!(
        !on_docker_thread(),
        "a blocking Docker call on the harness's Docker runtime itself"
    );
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let task = runtime().spawn(fut);
    runtime().spawn(async move {
        let _ = tx.send(task.await);
    });
    match rx.recv() {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("the harness's Docker runtime is gone"),
    }
}

async fn docker() -> Result<Docker, String> {
    docker_client_instance()
        .await
        .map_err(|e| format!("no Docker client: {e}"))
}

/// What is in a container, and how to tell it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `redis-server`: ready when `PING` answers `PONG` (not `LOADING`).
    Redis,
    /// `mongo-sqlite`: ready when `ping` answers.
    Mongo,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Redis => "redis",
            Service::Mongo => "mongo",
        }
    }
}

/// How long [`Container::start_again`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until the server answers normally (Redis: `PONG`, its data loaded).
    Ready,
    /// Until the server inside listens: Redis answers `PING` at all
    /// (`-LOADING` counts). A published port accepts connections before
    /// that (docker-proxy) and closes them, where a process's port refuses
    /// them; this is the container's "spawned, maybe still loading".
    Listening,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub service: Service,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<String>,
    pub args: Vec<String>,
    /// The port the server listens on inside the container.
    pub port: u16,
    /// Bind-mounted on [`Spec::mount`]; must exist.
    pub data_dir: PathBuf,
    /// Where the data dir is mounted in the container (`/data` for Redis,
    /// `/data/db` for the MongoDB-compatible image).
    pub mount: String,
}

/// A running (or stopped) test container; removed when dropped.
pub struct Container {
    /// Taken in `drop` to remove it on the Docker runtime.
    inner: Option<ContainerAsync<GenericImage>>,
    id: String,
    name: String,
    spec: Spec,
    host: String,
    host_port: u16,
    network: String,
}

impl Container {
    /// Creates and starts the container, then waits until the server in it
    /// answers. Err with the reason (and the server's log) otherwise.
    pub async fn start(spec: Spec) -> Result<Container, String> {
        on_docker(start(spec)).await
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name (`flashsale-test-<service>-<pid>-<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image it runs.
    pub fn image(&self) -> &str {
        &self.spec.image
    }

    /// The host to connect to (testcontainers' `get_host`; `127.0.0.1` for
    /// a local daemon).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The published port on [`Self::host`]; the same after a restart.
    pub fn port(&self) -> u16 {
        self.host_port
    }

    /// The host directory mounted in the container ([`Spec::mount`]).
    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    /// The Docker network it is attached to (what [`Self::disconnect`]
    /// leaves).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The host PID of the container's main process while it runs
    /// (`docker inspect .State.Pid`; a host PID when the daemon runs on this
    /// machine).
    pub fn pid(&self) -> Option<u32> {
        let id = self.id.clone();
        on_docker_blocking(async move { state(&id).await.ok().and_then(|s| s.pid) })
    }

    /// Whether the container runs.
    pub fn is_running(&self) -> bool {
        let id = self.id.clone();
        on_docker_blocking(async move { state(&id).await.map(|s| s.running).unwrap_or(false) })
    }

    /// `docker kill` (SIGKILL), then waits until Docker reports it stopped.
    /// No-op when it is not running. The volume stays.
    pub fn kill(&self) {
        let id = self.id.clone();
        on_docker_blocking(async move { kill(&id).await }).unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Self::kill`] for async code.
    pub async fn kill_async(&self) {
        let id = self.id.clone();
        on_docker(async move { kill(&id).await })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker stop` (SIGTERM, SIGKILL after `timeout`). No-op when stopped.
    pub fn stop(&self, timeout: Duration) {
        let id = self.id.clone();
        on_docker_blocking(async move { stop(&id, timeout).await })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker start` of the same container (same port, same volume), then
    /// waits as `wait` says.
    pub fn start_again(&self, wait: Wait) {
        let id = self.id.clone();
        let spec = self.spec.clone();
        let (host, port) = (self.host.clone(), self.host_port);
        on_docker_blocking(async move {
            start_existing(&id).await?;
            match wait {
                Wait::Ready => wait_ready(&id, &spec, &host, port).await,
                Wait::Listening => wait_listening(&id, &spec, &host, port).await,
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Self::start_again`] (waiting) for async code.
    pub async fn start_again_async(&self) {
        let id = self.id.clone();
        let spec = self.spec.clone();
        let (host, port) = (self.host.clone(), self.host_port);
        on_docker(async move {
            start_existing(&id).await?;
            wait_ready(&id, &spec, &host, port).await
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker network disconnect` from [`Self::network`]: the published
    /// port stops answering (connections through it are cut, new ones are
    /// refused) while the server keeps running.
    pub async fn disconnect(&self) {
        let (id, network) = (self.id.clone(), self.network.clone());
        on_docker(async move {
            docker()
                .await?
                .disconnect_network(
                    &network,
                    NetworkDisconnectRequest {
                        container: id.clone(),
                        force: Some(true),
                    },
                )
                .await
                .map_err(|e| format!("docker network disconnect {network} {id}: {e}"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `docker network connect` to [`Self::network`] again: the port is
    /// published again (the same host port).
    pub async fn connect(&self) {
        let (id, network) = (self.id.clone(), self.network.clone());
        on_docker(async move {
            docker()
                .await?
                .connect_network(
                    &network,
                    NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: None,
                    },
                )
                .await
                .map_err(|e| format!("docker network connect {network} {id}: {e}"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The container's stdout and stderr so far (for failure messages).
    pub fn logs(&self) -> String {
        let id = self.id.clone();
        on_docker_blocking(async move { logs(&id).await })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(container) = self.inner.take() {
            let id = self.id.clone();
            let remove = async move {
                if let Err(e) = container.rm().await {
                    eprintln!("could not remove test container {id}: {e}");
                }
            };
            if on_docker_thread() {
                // Blocking a Docker runtime thread on its own runtime could
                // starve it: let the removal run on its own.
                runtime().spawn(remove);
            } else {
                on_docker_blocking(remove);
            }
        }
    }
}

const RUNTIME_THREAD: &str = "flashsale-docker";

fn on_docker_thread() -> bool {
    std::thread::current().name() == Some(RUNTIME_THREAD)
}

/// The fields of `docker inspect .State` the harness uses.
struct State {
    running: bool,
    pid: Option<u32>,
    exit_code: Option<i64>,
}

async fn state(id: &str) -> Result<State, String> {
    let info = docker()
        .await?
        .inspect_container(id, None)
        .await
        .map_err(|e| format!("docker inspect {id}: {e}"))?;
    let state = info.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    Ok(State {
        running,
        pid: state
            .pid
            .filter(|pid| running && *pid > 0)
            .and_then(|pid| u32::try_from(pid).ok()),
        exit_code: state.exit_code,
    })
}

/// 304 (already in that state) and 409 (not running) are not errors here.
fn benign(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 304 | 409,
            ..
        }
    )
}

async fn kill(id: &str) -> Result<(), String> {
    if let Err(e) = docker().await?.kill_container(id, None).await {
        if !benign(&e) {
            return Err(format!("docker kill {id}: {e}"));
        }
    }
    wait_stopped(id).await
}

async fn stop(id: &str, timeout: Duration) -> Result<(), String> {
    let options = StopContainerOptionsBuilder::new()
        .t(timeout.as_secs().max(1) as i32)
        .build();
    if let Err(e) = docker().await?.stop_container(id, Some(options)).await {
        if !benign(&e) {
            return Err(format!("docker stop {id}: {e}"));
        }
    }
    wait_stopped(id).await
}

async fn wait_stopped(id: &str) -> Result<(), String> {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while state(id).await?.running {
        if Instant::now() >= deadline {
            return Err(format!(
                "container {id} still runs {EXIT_TIMEOUT:?} after the kill"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn start_existing(id: &str) -> Result<(), String> {
    if let Err(e) = docker().await?.start_container(id, None).await {
        if !benign(&e) {
            return Err(format!("docker start {id}: {e}"));
        }
    }
    Ok(())
}

async fn logs(id: &str) -> String {
    use futures::StreamExt;
    use testcontainers::bollard::query_parameters::LogsOptionsBuilder;
    let Ok(docker) = docker().await else {
        return String::new();
    };
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail("200")
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// The label keys of test containers (for the sweep of leftovers).
const LABEL: &str = "org.flashsale.test";
const LABEL_PID: &str = "org.flashsale.test.pid";
const LABEL_HOST: &str = "org.flashsale.test.host";

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Removes the test containers of this host whose test process is gone
/// (killed before its drops ran). Once per process; errors are ignored.
async fn sweep_leftovers() {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(docker) = docker().await else { return };
            let filters = HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_HOST}={}", hostname())],
            )]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            let Ok(list) = docker.list_containers(Some(options)).await else {
                return;
            };
            for container in list {
                let pid = container
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_PID))
                    .and_then(|p| p.parse::<u32>().ok());
                let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if let (false, Some(id)) = (alive, container.id) {
                    let options = RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = docker.remove_container(&id, Some(options)).await;
                }
            }
        })
        .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `name:tag` split at the tag's colon (a registry port has a `/` after it).
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

async fn start(spec: Spec) -> Result<Container, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    sweep_leftovers().await;
    let docker = docker().await?;
    if let Err(e) = docker.inspect_image(&spec.image).await {
        return Err(format!(
            "image {} is not available ({e}); nothing is pulled: build it with scripts/docker-up, \
             or point the harness at another image (tests/src/containers.rs)",
            spec.image
        ));
    }
    let meta = std::fs::metadata(&spec.data_dir)
        .map_err(|e| format!("data dir {}: {e}", spec.data_dir.display()))?;
    let user = format!("{}:{}", meta.uid(), meta.gid());
    let (name, tag) = split_image(&spec.image);

    // A port picked free can be taken before Docker binds it: try another.
    let mut last_error = String::new();
    for _ in 0..5 {
        let host_port = free_port();
        let container_name = format!(
            "flashsale-test-{}-{}-{}",
            spec.service.name(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut image = GenericImage::new(name.clone(), tag.clone());
        if let Some(entrypoint) = &spec.entrypoint {
            image = image.with_entrypoint(entrypoint);
        }
        let request = image
            .with_cmd(spec.args.clone())
            .with_mapped_port(host_port, spec.port.tcp())
            .with_mount(Mount::bind_mount(
                spec.data_dir.to_string_lossy().into_owned(),
                spec.mount.clone(),
            ))
            .with_user(user.clone())
            .with_container_name(container_name.clone())
            .with_label(LABEL, "1")
            .with_label(LABEL_PID, std::process::id().to_string())
            .with_label(LABEL_HOST, hostname())
            .with_startup_timeout(START_TIMEOUT);
        let container = match request.start().await {
            Ok(container) => container,
            Err(e) => {
                // Created but not started (port taken, ...): remove it.
                let options = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                let _ = docker
                    .remove_container(&container_name, Some(options))
                    .await;
                last_error = format!("{e}");
                let port_taken = last_error.contains("already allocated")
                    || last_error.contains("address already in use");
                if port_taken {
                    continue;
                }
                return Err(format!(
                    "container {container_name} from {} did not start: {last_error}",
                    spec.image
                ));
            }
        };
        let id = container.id().to_string();
        let host = match container.get_host().await {
            Ok(host) if host.to_string() == "localhost" => "127.0.0.1".to_string(),
            Ok(host) => host.to_string(),
            Err(e) => return Err(format!("no host for container {id}: {e}")),
        };
        let network = docker
            .inspect_container(&id, None)
            .await
            .ok()
            .and_then(|i| i.network_settings)
            .and_then(|n| n.networks)
            .and_then(|n| n.keys().next().cloned())
            .unwrap_or_else(|| "bridge".to_string());
        let container = Container {
            inner: Some(container),
            id,
            name: container_name,
            spec,
            host,
            host_port,
            network,
        };
        if let Err(e) = wait_ready(&container.id, &container.spec, &container.host, host_port).await
        {
            let mut container = container;
            if let Some(inner) = container.inner.take() {
                let _ = inner.rm().await;
            }
            return Err(e);
        }
        return Ok(container);
    }
    Err(format!(
        "container from {} did not start: {last_error}",
        spec.image
    ))
}

/// Waits until the server answers on `host:port`; Err (with its log) when
/// the container exits or the deadline passes.
async fn wait_ready(id: &str, spec: &Spec, host: &str, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut polls = 0u64;
    loop {
        let answer = match spec.service {
            Service::Redis => redis_ready(host, port).await,
            Service::Mongo => mongo_ready(host, port).await,
        };
        let last = match answer {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Every 20th poll, ask Docker whether the container still runs.
        polls = (polls + 1) % 20;
        let timed_out = Instant::now() >= deadline;
        if timed_out || polls == 0 {
            let state = state(id).await?;
            if timed_out || !state.running {
                let why = if state.running {
                    format!("no answer after {START_TIMEOUT:?}")
                } else {
                    format!("the container exited (code {:?})", state.exit_code)
                };
                return Err(format!(
                    "{} in container {id} ({}) on {host}:{port}: {why}; last: {last}\n{}",
                    spec.service.name(),
                    spec.image,
                    server_log(id, spec).await
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`Wait::Listening`]: for Redis, until a raw `PING` gets any reply line;
/// for other services the same as [`wait_ready`].
async fn wait_listening(id: &str, spec: &Spec, host: &str, port: u16) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    if spec.service != Service::Redis {
        return wait_ready(id, spec, host, port).await;
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut polls = 0u64;
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
            stream.write_all(b"PING\r\n").await?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await?;
            Ok::<_, std::io::Error>(line)
        };
        if let Ok(Ok(line)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            if !line.trim().is_empty() {
                return Ok(());
            }
        }
        polls = (polls + 1) % 20;
        if Instant::now() >= deadline || (polls == 0 && !state(id).await?.running) {
            return Err(format!(
                "redis in container {id} ({}) does not listen on {host}:{port}\n{}",
                spec.image,
                server_log(id, spec).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn redis_ready(host: &str, port: u16) -> Result<(), String> {
    let client =
        redis::Client::open(format!("redis://{host}:{port}/")).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING timed out".into()),
    }
}

async fn mongo_ready(host: &str, port: u16) -> Result<(), String> {
    use mongodb::bson::doc;
    let mut options = mongodb::options::ClientOptions::parse(format!("mongodb://{host}:{port}/"))
        .await
        .map_err(|e| e.to_string())?;
    options.server_selection_timeout = Some(Duration::from_secs(1));
    options.connect_timeout = Some(Duration::from_secs(1));
    let client = mongodb::Client::with_options(options).map_err(|e| e.to_string())?;
    let result = client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    client.shutdown().await;
    result
}

/// Redis logs to `/data/redis.log` (as the process backend does); the
/// others to stdout/stderr.
async fn server_log(id: &str, spec: &Spec) -> String {
    let file = spec.data_dir.join("redis.log");
    match spec.service {
        Service::Redis if file.exists() => format!(
            "{}:\n{}",
            file.display(),
            std::fs::read_to_string(&file).unwrap_or_default()
        ),
        _ => format!("docker logs {id}:\n{}", logs(id).await),
    }
}
