//! `flashsale-sse-bench` (run by `bench/sse.sh`): what following buyers over
//! Server-Sent Events (`GET /orders/events`) costs the API, against the
//! same buyers polling `GET /orders/position` once a second.
//!
//! It starts redis-server with the module and the MongoDB-compatible server
//! (the test harness, `tests`), and the API in a process of its own: this
//! program again, `serve`, which builds it in-process with
//! `api::Application::build` (port 0, dev mode, the per-IP buy limit
//! raised). No worker: the bench admits buyers itself (GRANT through
//! `flashsale::EngineClient`), so the instant of each admission is known.
//! The connections come from this process (raw HTTP/1.1 on tokio sockets,
//! one socket per buyer), so the API process holds only the API.
//!
//! Each round has two phases, in alternating order (SSE first in even
//! rounds): a fresh sale with N queued buyers, then N connections — one
//! event stream per buyer, or one keep-alive connection per buyer asking
//! once a second at its own phase. Measured per phase: the API's RSS
//! before and after opening them (`/proc/<pid>/status` VmRSS), the CPU
//! time of the API, Redis and this process over an idle window
//! (`/proc/<pid>/stat` utime + stime), and the fan-out: GRANT a batch and
//! time, for every connection whose place changed, the admission → its
//! first update showing the new place (`ready` for the admitted, the
//! place minus the batch for the rest), checked against that expectation.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use flashsale::GrantReply;
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Value};
use stress::sse::{EventParser, SseEvent};
use stress::stats::percentile;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(
    name = "flashsale-sse-bench",
    about = "Server-Sent Events against polling: the API's memory, CPU and fan-out latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// (internal) The API in this process, until stdin closes; prints
    /// `port <n>` when it listens.
    Serve {
        #[arg(long)]
        redis_url: String,
        #[arg(long)]
        mongo_url: String,
        #[arg(long)]
        mongo_db: String,
    },
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Buyers, each with one connection (capped by the open-files limit).
    #[arg(long, default_value_t = 20_000)]
    connections: usize,
    /// Length of each idle window.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Rounds; each measures SSE and polling once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Buyers admitted by each GRANT.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// GRANTs per phase.
    #[arg(long, default_value_t = 5)]
    batches: usize,
    /// New buyers (not followed) joining the queue per second during the
    /// idle window, straight through the engine (ENQUEUE): a queue that
    /// grows while people wait.
    #[arg(long, default_value_t = 0)]
    arrivals_per_second: u64,
}

/// File descriptors kept for everything but the buyers' sockets, in this
/// process and in the API's (Redis, MongoDB, the listener, stdio, …).
const RESERVED_FDS: usize = 200;
/// Connections being opened at once (each until its first answer).
const OPENING_AT_ONCE: usize = 256;
/// How long a phase waits for every update it expects.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Serve {
            redis_url,
            mongo_url,
            mongo_db,
        }) => serve(redis_url, mongo_url, mongo_db).await,
        // Interrupted: the bench's servers (Redis, MongoDB, the API) are
        // stopped as it is dropped.
        None => tokio::select! {
            done = bench(cli.bench) => done,
            () = interrupted() => bail!("interrupted"),
        },
    }
}

async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The API, as `stress/tests/common` builds it, until stdin closes.
async fn serve(redis_url: String, mongo_url: String, mongo_db: String) -> anyhow::Result<()> {
    let mut settings = api::Settings::defaults()?;
    settings.host = Ipv4Addr::LOCALHOST.into();
    settings.port = 0;
    settings.dev_mode = true;
    settings.jwt_secret = Some("sse-bench-secret-that-is-long-enough-0123456789".into());
    settings.redis_url = redis_url;
    settings.mongo_url = mongo_url;
    settings.mongo_db = mongo_db;
    // One address plays every buyer.
    settings.rate_limit_buy_per_second = 1_000_000;
    settings.rate_limit_buy_burst = 1_000_000;
    api::seed_admin::seed_admin(
        &settings,
        &api::config::SeedAdminArgs {
            email: None,
            password: None,
        },
    )
    .await?;
    let app = api::Application::build(settings).await?;
    println!("port {}", app.port());
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    app.run_until(stdin_closed).await?;
    Ok(())
}

/// The API's process: stopped (stdin closed, then killed) when dropped.
struct ApiProcess {
    child: Child,
    port: u16,
}

impl ApiProcess {
    fn spawn(redis_url: &str, mongo_url: &str, mongo_db: &str) -> anyhow::Result<ApiProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--redis-url", redis_url, "--mongo-url", mongo_url])
            .args(["--mongo-db", mongo_db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the API process")?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            use std::io::BufRead;
            std::io::BufReader::new(stdout).read_line(&mut line)?;
        }
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok());
        let mut api = ApiProcess { child, port: 0 };
        match port {
            Some(port) => api.port = port,
            None => bail!("the API process did not start (said {line:?})"),
        }
        Ok(api)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- /proc

/// CPU time of a process so far (utime + stime of all its threads).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .context("/proc/<pid>/stat field")?
            .parse()?)
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Resident memory (VmRSS), KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// This process's soft limit of open files.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// Until the API holds fewer than `fds` files (the last phase's sockets
/// closed on its side too).
async fn until_fds_below(pid: u32, fds: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) >= fds && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    api: f64,
    redis: f64,
    bench: f64,
}

impl Cpu {
    fn now(api: u32, redis: u32) -> anyhow::Result<Cpu> {
        Ok(Cpu {
            api: cpu_seconds(api)?,
            redis: cpu_seconds(redis)?,
            bench: cpu_seconds(std::process::id())?,
        })
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            api: self.api - before.api,
            redis: self.redis - before.redis,
            bench: self.bench - before.bench,
        }
    }
}

// ------------------------------------------------------- raw HTTP/1.1

/// A response's head: the status and the headers that matter here.
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
}

/// Reads a response head from `reader`.
async fn read_head(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        bail!("connection closed before a response");
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("status line {line:?}"))?;
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("connection closed in a response head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(2048, stream))
}

/// `Transfer-Encoding: chunked`, undone a piece at a time.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    size: u64,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// The chunk's size, in hex.
    #[default]
    Size,
    /// Extensions after the size, up to the end of the line.
    SizeLine,
    Data(u64),
    /// The CRLF after the data.
    DataEnd,
    /// The last chunk came.
    Done,
}

impl Chunked {
    /// Appends the data in `input` to `out`; `true` once the body ended.
    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> bool {
        while let Some(&byte) = input.first() {
            match self.state {
                ChunkState::Size | ChunkState::SizeLine => {
                    input = &input[1..];
                    if byte == b'\n' {
                        self.state = match self.size {
                            0 => ChunkState::Done,
                            n => ChunkState::Data(n),
                        };
                        self.size = 0;
                    } else if self.state == ChunkState::Size {
                        match (byte as char).to_digit(16) {
                            Some(digit) => {
                                self.size = self.size.saturating_mul(16) + u64::from(digit)
                            }
                            None => self.state = ChunkState::SizeLine,
                        }
                    }
                }
                ChunkState::Data(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    input = &input[1..];
                    if byte == b'\n' {
                        self.state = ChunkState::Size;
                    }
                }
                ChunkState::Done => return true,
            }
        }
        self.state == ChunkState::Done
    }
}

// ------------------------------------------------------------ buyers

const QUEUED: u8 = 1;
const READY: u8 = 2;
const OTHER: u8 = 3;

/// One buyer's connection: what it was told last, and when it first saw
/// a change after the latest mark (a GRANT).
#[derive(Default)]
struct Follower {
    status: AtomicU8,
    position: AtomicU64,
    updates: AtomicU64,
    /// The place the latest GRANT gave this buyer (from the engine's
    /// queue): `ready`, or queued at a place `batch` nearer the head.
    expect_status: AtomicU8,
    expect_position: AtomicU64,
    /// The latest mark whose expected place this connection showed, and
    /// when it first did.
    seen_mark: AtomicU64,
    changed_at_ns: AtomicU64,
}

/// What every connection of a phase shares.
struct Shared {
    started: Instant,
    /// Bumped before each GRANT.
    mark: AtomicU64,
    /// Connections that got their first answer.
    answered: AtomicUsize,
    /// Status events (SSE) or position replies (polling).
    updates: AtomicU64,
    keep_alives: AtomicU64,
    /// Event streams that ended or broke; polls that failed.
    failures: AtomicU64,
    /// Failures by what went wrong.
    failure_kinds: Mutex<BTreeMap<String, u64>>,
    /// Polls' latencies (µs) while `recording`.
    recording: AtomicBool,
    poll_latencies_us: Mutex<Vec<u64>>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            started: Instant::now(),
            mark: AtomicU64::new(0),
            answered: AtomicUsize::new(0),
            updates: AtomicU64::new(0),
            keep_alives: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failure_kinds: Mutex::new(BTreeMap::new()),
            recording: AtomicBool::new(false),
            poll_latencies_us: Mutex::new(Vec::new()),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn failed(&self, error: &anyhow::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut kinds) = self.failure_kinds.lock() {
            let mut kind = format!("{error:#}");
            kind.truncate(120);
            *kinds.entry(kind).or_default() += 1;
        }
    }

    /// A buyer's state as its connection was told it.
    fn observe(&self, follower: &Follower, view: &Value) {
        let status = match view["status"].as_str() {
            Some("queued") => QUEUED,
            Some("ready") => READY,
            _ => OTHER,
        };
        let position = view["position"].as_u64().unwrap_or(0);
        let mark = self.mark.load(Ordering::SeqCst);
        if follower.seen_mark.load(Ordering::Relaxed) != mark
            && follower.expect_status.load(Ordering::Relaxed) == status
            && follower.expect_position.load(Ordering::Relaxed) == position
        {
            follower
                .changed_at_ns
                .store(self.now_ns(), Ordering::Relaxed);
            follower.seen_mark.store(mark, Ordering::Relaxed);
        }
        follower.status.store(status, Ordering::Relaxed);
        follower.position.store(position, Ordering::Relaxed);
        if follower.updates.fetch_add(1, Ordering::Relaxed) == 0 {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        self.updates.fetch_add(1, Ordering::Relaxed);
    }
}

/// Follows one buyer over `GET /orders/events` until the task is dropped.
async fn follow_events(
    addr: SocketAddr,
    request: String,
    follower: Arc<Follower>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
) {
    if let Err(error) = follow_events_or_fail(addr, &request, &follower, &shared, gate).await {
        shared.failed(&error);
    }
}

async fn follow_events_or_fail(
    addr: SocketAddr,
    request: &str,
    follower: &Follower,
    shared: &Shared,
    gate: Arc<Semaphore>,
) -> anyhow::Result<()> {
    let mut permit = Some(gate.acquire_owned().await?);
    let mut reader = connect(addr).await?;
    let request = format!("{request}Accept: text/event-stream\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes()).await?;
    let head = read_head(&mut reader).await?;
    if head.status != 200 || !head.chunked {
        bail!("events: status {}, chunked {}", head.status, head.chunked);
    }
    let mut chunked = Chunked::default();
    let mut parser = EventParser::default();
    let (mut data, mut events) = (Vec::new(), Vec::<SseEvent>::new());
    let mut buf = vec![0u8; 2048];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            bail!("the event stream ended");
        }
        data.clear();
        let ended = chunked.decode(&buf[..n], &mut data);
        let comments = parser.comments;
        parser.feed(&data, &mut events);
        shared
            .keep_alives
            .fetch_add(parser.comments - comments, Ordering::Relaxed);
        for event in events.drain(..) {
            if event.event == "status" {
                let view: Value = serde_json::from_str(&event.data)?;
                shared.observe(follower, &view);
                // The first answer came: let the next connection open.
                drop(permit.take());
            }
        }
        if ended {
            bail!("the event stream ended");
        }
    }
}

/// One buyer asking `GET /orders/position` every `every` (at a phase of
/// its own) on one keep-alive connection, until the task is dropped.
async fn poll_position(
    addr: SocketAddr,
    request: String,
    every: Duration,
    follower: Arc<Follower>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
) {
    let request = format!("{request}Accept: application/json\r\n\r\n");
    let mut connection = None;
    let mut body = Vec::new();
    let mut next = None;
    let mut permit = gate.acquire_owned().await.ok();
    loop {
        let asked = Instant::now();
        match ask(addr, &mut connection, &request, &mut body).await {
            Ok((200, view)) => {
                if shared.recording.load(Ordering::Relaxed) {
                    if let Ok(mut taken) = shared.poll_latencies_us.lock() {
                        taken.push(u64::try_from(asked.elapsed().as_micros()).unwrap_or(0));
                    }
                }
                shared.observe(&follower, &view);
            }
            // An answer, not the place (503 when the API is swamped): the
            // connection stays.
            Ok((status, view)) => {
                let code = view["error"]["code"].as_str().unwrap_or("-");
                shared.failed(&anyhow::anyhow!("position: {status} {code}"));
            }
            Err(error) => {
                connection = None;
                shared.failed(&error);
            }
        }
        // After the first answer, at a phase of this buyer's own.
        let at = *next.get_or_insert_with(|| {
            tokio::time::Instant::now() + rand::thread_rng().gen_range(Duration::ZERO..every)
        });
        drop(permit.take());
        tokio::time::sleep_until(at).await;
        next = Some(at + every);
    }
}

/// One request on the buyer's connection (opened again when it broke):
/// the status and the JSON body.
async fn ask(
    addr: SocketAddr,
    connection: &mut Option<BufReader<TcpStream>>,
    request: &str,
    body: &mut Vec<u8>,
) -> anyhow::Result<(u16, Value)> {
    if connection.is_none() {
        *connection = Some(connect(addr).await?);
    }
    let Some(reader) = connection.as_mut() else {
        bail!("no connection");
    };
    reader.get_mut().write_all(request.as_bytes()).await?;
    let head = read_head(reader).await?;
    let length = head.content_length.context("position: no content-length")?;
    body.resize(length, 0);
    reader.read_exact(body).await?;
    Ok((head.status, serde_json::from_slice(body)?))
}

// ------------------------------------------------------------- phases

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sse,
    Poll,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sse => "SSE",
            Mode::Poll => "polling 1/s",
        }
    }
}

struct Ctx {
    args: BenchArgs,
    connections: usize,
    http: reqwest::Client,
    redis_url: String,
    mongo_url: String,
    mongo_db: String,
    redis_pid: u32,
    engine: flashsale::EngineClient<redis::aio::MultiplexedConnection>,
}

/// A fresh API process for one phase (so each phase's memory starts from
/// the same place), and the admin signed in on it.
struct Api {
    process: ApiProcess,
    base: String,
    addr: SocketAddr,
    token: String,
    pid: u32,
}

impl Api {
    async fn start(ctx: &Ctx) -> anyhow::Result<Api> {
        let process = ApiProcess::spawn(&ctx.redis_url, &ctx.mongo_url, &ctx.mongo_db)?;
        let base = format!("http://127.0.0.1:{}", process.port);
        let token = sign_in(&ctx.http, &base).await?;
        Ok(Api {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, process.port)),
            pid: process.pid(),
            base,
            token,
            process,
        })
    }
}

struct Phase {
    mode: Mode,
    round: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    open_seconds: f64,
    idle: Cpu,
    /// Status events or position replies during the idle window.
    idle_updates: u64,
    idle_keep_alives: u64,
    /// Polls answered with an error, or failed, in the idle window.
    idle_failures: u64,
    /// FLASHSALE.STATUS calls Redis served in the idle window.
    idle_status_calls: u64,
    /// Buyers who joined the queue in the idle window (`--arrivals-per-second`).
    arrived: u64,
    poll_latencies_us: Vec<u64>,
    fan_out: FanOut,
    failures: u64,
    failure_kinds: BTreeMap<String, u64>,
}

impl Phase {
    fn kib_per_connection(&self, connections: usize) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) / connections.max(1) as f64
    }
}

#[derive(Default)]
struct FanOut {
    /// Admission → each changed connection's first update (µs), all batches.
    latencies_us: Vec<u64>,
    /// Per batch: admission → the last changed connection updated (µs).
    all_updated_us: Vec<u64>,
    /// Connections not shown their new place within the timeout…
    missing: usize,
    /// …of which told something else since the GRANT.
    wrong: usize,
    /// Connections whose place changed, over all batches.
    changed: usize,
    /// The API's CPU from each GRANT until every connection was told (s).
    api_cpu: f64,
    first_wrong: Option<String>,
}

async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let reply: Value = http
        .post(format!("{base}/auth/signin"))
        .json(&json!({
            "email": api::seed_admin::DEV_ADMIN_EMAIL,
            "password": api::seed_admin::DEV_ADMIN_PASSWORD,
        }))
        .send()
        .await?
        .json()
        .await?;
    reply["accessToken"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("sign-in: {reply}"))
}

/// A sale open from a second from now, for two hours, with enough stock
/// for every GRANT and holds that outlast the phase.
async fn create_sale(ctx: &Ctx, api: &Api) -> anyhow::Result<String> {
    let starts_at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let body = json!({
        "name": "sse bench",
        "description": "bench/sse.sh",
        "initialQuantity": ctx.connections.max(1),
        "pricePerUnit": "1.00",
        "startsAt": starts_at,
        "endsAt": starts_at + chrono::Duration::hours(2),
        "holdTtlSeconds": 3600,
    });
    let reply: Value = ctx
        .http
        .post(format!("{}/flash-sales", api.base))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = reply["id"]
        .as_str()
        .with_context(|| format!("create the sale: {reply}"))?
        .to_string();
    let wait = (starts_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    Ok(id)
}

fn email(i: usize) -> String {
    format!("b{i:06}@sse.bench")
}

fn buyer_index(email: &str) -> Option<usize> {
    email
        .strip_prefix('b')?
        .strip_suffix("@sse.bench")?
        .parse()
        .ok()
}

/// `POST /orders/buy` for every buyer; the buyer tokens they got, by
/// buyer (each later request about a buyer carries its token).
async fn enqueue(ctx: &Ctx, api: &Api, sale: &str) -> anyhow::Result<Vec<String>> {
    let buys = (0..ctx.connections).map(|i| {
        let request = ctx
            .http
            .post(format!("{}/orders/buy", api.base))
            .json(&json!({ "email": email(i), "flashSaleId": sale }));
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let token = body["buyerToken"].as_str();
            match token {
                Some(token) if status.is_success() && body["status"] == "queued" => {
                    anyhow::Ok((i, token.to_string()))
                }
                _ => bail!("buy: {status} {body}"),
            }
        }
    });
    let mut tokens = vec![String::new(); ctx.connections];
    let mut buys = futures::stream::iter(buys).buffer_unordered(64);
    while let Some(bought) = buys.next().await {
        let (i, token) = bought?;
        tokens[i] = token;
    }
    Ok(tokens)
}

/// The raw `GET` of `route` for buyer `i`, with its buyer token (the
/// `Accept` header follows, then the blank line).
fn buyer_request(sale: &str, i: usize, token: &str, route: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://127.0.0.1{route}"),
        &[("flashSaleId", sale), ("email", email(i).as_str())],
    )?;
    Ok(format!(
        "GET {}?{} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}: {token}\r\n",
        url.path(),
        url.query().unwrap_or(""),
        stress::BUYER_TOKEN_HEADER
    ))
}

async fn run_phase(ctx: &mut Ctx, mode: Mode, round: usize) -> anyhow::Result<Phase> {
    let api = Api::start(ctx).await?;
    let sale = create_sale(ctx, &api).await?;
    let tokens = enqueue(ctx, &api, &sale).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before_kib = rss_kib(api.pid)?;
    let open_fds_at_start = open_fds(api.pid);

    let shared = Arc::new(Shared::new());
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut followers = Vec::with_capacity(ctx.connections);
    let mut tasks = JoinSet::new();
    let opening = Instant::now();
    for (i, token) in tokens.iter().enumerate() {
        let follower = Arc::new(Follower::default());
        followers.push(follower.clone());
        let (shared, gate) = (shared.clone(), gate.clone());
        match mode {
            Mode::Sse => {
                let request = buyer_request(&sale, i, token, "/orders/events")?;
                tasks.spawn(follow_events(api.addr, request, follower, shared, gate));
            }
            Mode::Poll => {
                let request = buyer_request(&sale, i, token, "/orders/position")?;
                let every = Duration::from_secs(1);
                tasks.spawn(poll_position(
                    api.addr, request, every, follower, shared, gate,
                ));
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(300);
    while shared.answered.load(Ordering::Relaxed) < ctx.connections {
        if Instant::now() > until
            || (mode == Mode::Sse && shared.failures.load(Ordering::Relaxed) > 0)
        {
            let kinds = shared.failure_kinds.lock().map(|f| f.clone()).ok();
            bail!(
                "{}: {} of {} connections answered; {} failures ({kinds:?})",
                mode.name(),
                shared.answered.load(Ordering::Relaxed),
                ctx.connections,
                shared.failures.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_seconds = opening.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kib = rss_kib(api.pid)?;

    // Idle: nobody admitted, the queue still.
    let (updates, keep_alives, failures) = (
        shared.updates.load(Ordering::Relaxed),
        shared.keep_alives.load(Ordering::Relaxed),
        shared.failures.load(Ordering::Relaxed),
    );
    let mut arrivals_client = grant_client(&ctx.redis_url).await?;
    let statuses = status_calls(arrivals_client.connection()).await?;
    shared.recording.store(true, Ordering::Relaxed);
    let before = Cpu::now(api.pid, ctx.redis_pid)?;
    let window = Duration::from_secs(ctx.args.seconds);
    let arrived = arrive(
        &mut arrivals_client,
        &sale,
        ctx.args.arrivals_per_second,
        window,
    )
    .await?;
    let idle = Cpu::now(api.pid, ctx.redis_pid)?.since(before);
    shared.recording.store(false, Ordering::Relaxed);
    let idle_status_calls = status_calls(arrivals_client.connection()).await? - statuses;
    let idle_updates = shared.updates.load(Ordering::Relaxed) - updates;
    let idle_keep_alives = shared.keep_alives.load(Ordering::Relaxed) - keep_alives;
    let idle_failures = shared.failures.load(Ordering::Relaxed) - failures;
    let mut poll_latencies_us = shared
        .poll_latencies_us
        .lock()
        .map(|mut taken| std::mem::take(&mut *taken))
        .unwrap_or_default();
    poll_latencies_us.sort_unstable();

    let fan_out = fan_out(ctx, api.pid, &sale, &shared, &followers).await?;
    let failures = shared.failures.load(Ordering::Relaxed);
    let failure_kinds = shared
        .failure_kinds
        .lock()
        .map(|kinds| kinds.clone())
        .unwrap_or_default();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Every connection closed: the process stops at once.
    until_fds_below(api.pid, open_fds_at_start + 50).await;
    drop(api.process);
    Ok(Phase {
        mode,
        round,
        rss_before_kib,
        rss_after_kib,
        open_seconds,
        idle,
        idle_updates,
        idle_keep_alives,
        idle_failures,
        idle_status_calls,
        arrived,
        poll_latencies_us,
        fan_out,
        failures,
        failure_kinds,
    })
}

/// FLASHSALE.STATUS calls the server has served (INFO commandstats).
async fn status_calls(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            name.to_ascii_lowercase()
                .ends_with("flashsale.status")
                .then(|| calls.parse::<u64>().ok())?
        })
        .sum())
}

/// Over `window`: `per_second` new buyers a second join the queue (none:
/// just waits). How many joined.
async fn arrive(
    engine: &mut flashsale::EngineClient<redis::aio::MultiplexedConnection>,
    sale: &str,
    per_second: u64,
    window: Duration,
) -> anyhow::Result<u64> {
    let started = tokio::time::Instant::now();
    if per_second == 0 {
        tokio::time::sleep(window).await;
        return Ok(0);
    }
    let mut arrived = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < window {
        tick.tick().await;
        let due =
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX) * per_second / 1000;
        while arrived < due {
            arrived += 1;
            engine
                .enqueue(sale, &format!("a{arrived:07}@arrive.bench"))
                .await?;
        }
    }
    Ok(arrived)
}

/// GRANTs of `batch`, each at a random moment (not in step with the
/// API's feed), timed until every connection whose place changed showed
/// its new place.
async fn fan_out(
    ctx: &mut Ctx,
    api_pid: u32,
    sale: &str,
    shared: &Shared,
    followers: &[Arc<Follower>],
) -> anyhow::Result<FanOut> {
    let batch = ctx.args.batch;
    let mut result = FanOut::default();
    for _ in 0..ctx.args.batches {
        let pause = rand::thread_rng().gen_range(500..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Who must hear what, from the engine's queue: the first `batch`
        // places are admitted, the rest move up by `batch`.
        let queue: Vec<String> = redis::cmd("ZRANGE")
            .arg(flashsale::keys::queue(sale))
            .arg(0)
            .arg(-1)
            .query_async(ctx.engine.connection())
            .await?;
        let mut expected = Vec::with_capacity(queue.len());
        for (index, user) in queue.iter().enumerate() {
            // Arrivals (`--arrivals-per-second`) are not followed.
            let Some(i) = buyer_index(user).filter(|&i| i < followers.len()) else {
                continue;
            };
            let place = index as u64 + 1;
            let (status, position) = if place <= batch {
                (READY, 0)
            } else {
                (QUEUED, place - batch)
            };
            followers[i].expect_status.store(status, Ordering::Relaxed);
            followers[i]
                .expect_position
                .store(position, Ordering::Relaxed);
            expected.push((i, followers[i].updates.load(Ordering::Relaxed)));
        }
        let cpu_before = cpu_seconds(api_pid)?;
        let mark = shared.mark.fetch_add(1, Ordering::SeqCst) + 1;
        let granted_at = shared.now_ns();
        match ctx.engine.grant(sale, batch).await? {
            GrantReply::Granted { users, .. } if users.len() as u64 == batch => {}
            other => bail!("GRANT {batch}: {other:?}"),
        }
        let until = Instant::now() + UPDATE_TIMEOUT;
        let told = |&(i, _): &(usize, u64)| followers[i].seen_mark.load(Ordering::Relaxed) == mark;
        while !expected.iter().all(told) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        result.api_cpu += cpu_seconds(api_pid)? - cpu_before;
        let mut latest = 0;
        for &(i, updates) in &expected {
            let follower = &followers[i];
            if follower.seen_mark.load(Ordering::Relaxed) == mark {
                let at = follower.changed_at_ns.load(Ordering::Relaxed);
                let latency_us = at.saturating_sub(granted_at) / 1000;
                latest = latest.max(latency_us);
                result.latencies_us.push(latency_us);
                continue;
            }
            result.missing += 1;
            if follower.updates.load(Ordering::Relaxed) > updates {
                // Told something since the GRANT, but not its new place.
                result.wrong += 1;
                result.first_wrong.get_or_insert_with(|| {
                    format!(
                        "buyer {i}: expected {:?}, shown {:?}",
                        (
                            follower.expect_status.load(Ordering::Relaxed),
                            follower.expect_position.load(Ordering::Relaxed)
                        ),
                        (
                            follower.status.load(Ordering::Relaxed),
                            follower.position.load(Ordering::Relaxed)
                        )
                    )
                });
            }
        }
        result.changed += expected.len();
        result.all_updated_us.push(latest);
    }
    result.latencies_us.sort_unstable();
    result.all_updated_us.sort_unstable();
    Ok(result)
}

// ------------------------------------------------------------- report

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A ratio, or a dash when it has no meaning (nothing measured on one side).
fn times(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.1}x")
    } else {
        "–".into()
    }
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

/// One figure of a phase.
type Measure<'a> = &'a dyn Fn(&Phase) -> f64;

fn report(ctx: &Ctx, phases: &[Phase]) -> String {
    use std::fmt::Write;
    let (n, secs) = (ctx.connections, ctx.args.seconds as f64);
    let of = |mode: Mode| -> Vec<&Phase> { phases.iter().filter(|p| p.mode == mode).collect() };
    let (sse, poll) = (of(Mode::Sse), of(Mode::Poll));
    let rounds: BTreeMap<usize, (Option<&Phase>, Option<&Phase>)> =
        phases.iter().fold(BTreeMap::new(), |mut m, p| {
            let e = m.entry(p.round).or_insert((None, None));
            match p.mode {
                Mode::Sse => e.0 = Some(p),
                Mode::Poll => e.1 = Some(p),
            }
            m
        });
    // Per-round ratios polling / SSE, then their median.
    let ratio = |f: &dyn Fn(&Phase) -> f64| -> String {
        times(median(
            rounds
                .values()
                .filter_map(|(s, p)| Some(f((*p)?) / f((*s)?)))
                .collect(),
        ))
    };
    let med = |phases: &[&Phase], f: &dyn Fn(&Phase) -> f64| -> f64 {
        median(phases.iter().map(|p| f(p)).collect())
    };
    let pooled = |phases: &[&Phase], q: f64| -> f64 {
        let mut all: Vec<u64> = phases
            .iter()
            .flat_map(|p| p.fan_out.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        percentile(&all, q)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SSE vs polling: {n} queued buyers, one connection each; median of {} interleaved rounds, \
         {secs:.0} s idle window each; GRANT {} × {} per phase",
        rounds.len(),
        ctx.args.batches,
        ctx.args.batch
    );
    let _ = writeln!(
        out,
        "(API: a process of its own, fresh for each phase, api::Application::build, dev mode; \
         connections: raw HTTP/1.1 from the bench process; no worker — the bench GRANTs; CPU: /proc/<pid>/stat \
         utime+stime; memory: VmRSS; ratios: medians of the per-round ratios)\n"
    );
    let _ = writeln!(out, "| measure | SSE | polling 1/s | polling / SSE |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let kib = |p: &Phase| p.kib_per_connection(n);
    let _ = writeln!(
        out,
        "| API memory per connection (KiB, RSS after − before opening) | {:.1} | {:.1} | {} |",
        med(&sse, &kib),
        med(&poll, &kib),
        ratio(&kib)
    );
    let rows: [(&str, Measure); 4] = [
        ("API CPU", &|p: &Phase| p.idle.api),
        ("Redis CPU", &|p: &Phase| p.idle.redis),
        ("bench client CPU", &|p: &Phase| p.idle.bench),
        ("API + Redis CPU", &|p: &Phase| p.idle.api + p.idle.redis),
    ];
    for (name, f) in rows {
        let _ = writeln!(
            out,
            "| {name}, {secs:.0} s idle (s; cores) | {:.2}; {:.3} | {:.2}; {:.3} | {} |",
            med(&sse, f),
            med(&sse, f) / secs,
            med(&poll, f),
            med(&poll, f) / secs,
            ratio(f)
        );
    }
    // Every answer cost the API, the refusals too.
    let per_poll = |p: &Phase, cpu: f64| cpu / (p.idle_updates + p.idle_failures).max(1) as f64;
    let _ = writeln!(
        out,
        "| updates in the idle window /s (SSE: status events; polling: 200 replies, {n}/s asked) | {:.1} | {:.0} | |",
        med(&sse, &|p: &Phase| p.idle_updates as f64 / secs),
        med(&poll, &|p: &Phase| p.idle_updates as f64 / secs),
    );
    let _ = writeln!(
        out,
        "| engine STATUS calls /s in the idle window | {:.1} | {:.0} | |",
        med(&sse, &|p: &Phase| p.idle_status_calls as f64 / secs),
        med(&poll, &|p: &Phase| p.idle_status_calls as f64 / secs),
    );
    if phases.iter().any(|p| p.arrived > 0) {
        let _ = writeln!(
            out,
            "| new buyers joining the queue in the idle window /s | {:.0} | {:.0} | |",
            med(&sse, &|p: &Phase| p.arrived as f64 / secs),
            med(&poll, &|p: &Phase| p.arrived as f64 / secs),
        );
    }
    let _ = writeln!(
        out,
        "| polls answered with an error or failed in the idle window /s | | {:.0} | |",
        med(&poll, &|p: &Phase| p.idle_failures as f64 / secs),
    );
    let _ = writeln!(
        out,
        "| CPU per poll answered, API / Redis (µs) | | {:.1} / {:.1} | |",
        med(&poll, &|p: &Phase| per_poll(p, p.idle.api) * 1e6),
        med(&poll, &|p: &Phase| per_poll(p, p.idle.redis) * 1e6),
    );
    let _ =
        writeln!(
        out,
        "| API + Redis cores for {n} buyers (polling: CPU per poll × {n}/s) | {:.3} | {:.2} | {} |",
        med(&sse, &|p: &Phase| (p.idle.api + p.idle.redis) / secs),
        med(&poll, &|p: &Phase| per_poll(p, p.idle.api + p.idle.redis) * n as f64),
        times(median(
            rounds
                .values()
                .filter_map(|(s, p)| {
                    let (s, p) = ((*s)?, (*p)?);
                    Some(per_poll(p, p.idle.api + p.idle.redis) * n as f64
                        / ((s.idle.api + s.idle.redis) / secs))
                })
                .collect()
        )),
    );
    let _ = writeln!(
        out,
        "| keep-alive comments /s | {:.0} | | |",
        med(&sse, &|p: &Phase| p.idle_keep_alives as f64 / secs)
    );
    let poll_lat = |q: f64| med(&poll, &|p: &Phase| percentile(&p.poll_latencies_us, q));
    let _ = writeln!(
        out,
        "| poll latency p50 / p99 (ms) | | {:.1} / {:.1} | |",
        poll_lat(50.0),
        poll_lat(99.0)
    );
    let _ = writeln!(
        out,
        "| fan-out: admission → changed connection told, p50 / p99 / max (ms, all batches) | \
         {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {} (p50) |",
        pooled(&sse, 50.0),
        pooled(&sse, 99.0),
        pooled(&sse, 100.0),
        pooled(&poll, 50.0),
        pooled(&poll, 99.0),
        pooled(&poll, 100.0),
        ratio(&|p: &Phase| percentile(&p.fan_out.latencies_us, 50.0)),
    );
    let all = |p: &Phase| {
        ms(median(
            p.fan_out.all_updated_us.iter().map(|&v| v as f64).collect(),
        ))
    };
    let _ = writeln!(
        out,
        "| fan-out: admission → every changed connection told, median batch (ms) | {:.0} | {:.0} | {} |",
        med(&sse, &all),
        med(&poll, &all),
        ratio(&all)
    );
    let _ = writeln!(
        out,
        "| API CPU from a GRANT until all told, per changed connection (µs; polling: its polls meanwhile too) | {:.1} | {:.1} | |",
        med(&sse, &|p: &Phase| p.fan_out.api_cpu / p.fan_out.changed.max(1) as f64 * 1e6),
        med(&poll, &|p: &Phase| p.fan_out.api_cpu / p.fan_out.changed.max(1) as f64 * 1e6),
    );
    let _ = writeln!(
        out,
        "| time to open {n} connections, first answer each (s) | {:.1} | {:.1} | |",
        med(&sse, &|p: &Phase| p.open_seconds),
        med(&poll, &|p: &Phase| p.open_seconds),
    );
    let _ = writeln!(out, "\nper phase:\n");
    let _ = writeln!(
        out,
        "| round | mode | RSS before → after (MiB) | KiB/conn | API CPU s | Redis CPU s | \
         bench CPU s | idle updates | fan-out p50/p99/max ms | changed | wrong | missing | failures |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for p in phases {
        let f = &p.fan_out;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} → {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.0}/{:.0}/{:.0} | {} | {} | {} | {} |",
            p.round + 1,
            p.mode.name(),
            p.rss_before_kib as f64 / 1024.0,
            p.rss_after_kib as f64 / 1024.0,
            p.kib_per_connection(n),
            p.idle.api,
            p.idle.redis,
            p.idle.bench,
            p.idle_updates,
            percentile(&f.latencies_us, 50.0),
            percentile(&f.latencies_us, 99.0),
            percentile(&f.latencies_us, 100.0),
            f.changed,
            f.wrong,
            f.missing,
            p.failures
        );
    }
    for p in phases {
        for (kind, count) in &p.failure_kinds {
            let _ = writeln!(
                out,
                "round {} {}: {count} × {kind}",
                p.round + 1,
                p.mode.name()
            );
        }
        if let Some(wrong) = &p.fan_out.first_wrong {
            let _ = writeln!(
                out,
                "round {} {}: first wrong: {wrong}",
                p.round + 1,
                p.mode.name()
            );
        }
    }
    out
}

/// The bench's own engine client: on a busy machine a GRANT's reply may
/// take longer than the redis crate's default 500 ms.
async fn grant_client(
    url: &str,
) -> anyhow::Result<flashsale::EngineClient<redis::aio::MultiplexedConnection>> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    let conn = redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(flashsale::EngineClient::connect(conn, flashsale::BackendChoice::Module).await?)
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let limit = open_files_limit();
    let connections = args.connections.min(limit.saturating_sub(RESERVED_FDS));
    if connections < args.connections {
        eprintln!(
            "note: {} connections asked, {connections} fit the open-files limit ({limit}, \
             less {RESERVED_FDS} kept for everything else)",
            args.connections
        );
    }
    if connections == 0 {
        bail!("no connections fit the open-files limit ({limit})");
    }
    eprintln!("starting redis-server (module) and the MongoDB-compatible server");
    let engine = tests::EngineServer::start(tests::Backend::Module, false).await;
    let mongo = tests::MongoServer::start().await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut ctx = Ctx {
        connections,
        http,
        redis_url: engine.server.url(),
        mongo_url: mongo.url(),
        mongo_db: mongo.database_name(),
        redis_pid: engine.server.pid(),
        engine: grant_client(&engine.server.url()).await?,
        args,
    };
    eprintln!(
        "redis pid {}; {connections} connections per phase, a fresh API process each",
        ctx.redis_pid
    );
    let mut phases = Vec::new();
    for round in 0..ctx.args.rounds {
        let order = if round % 2 == 0 {
            [Mode::Sse, Mode::Poll]
        } else {
            [Mode::Poll, Mode::Sse]
        };
        for mode in order {
            let phase = run_phase(&mut ctx, mode, round).await?;
            eprintln!(
                "round {} {}: RSS {:.1} KiB/conn, idle CPU API {:.2} s Redis {:.2} s bench {:.2} s, \
                 fan-out p50 {:.0} ms max {:.0} ms ({} wrong, {} missing), opened in {:.1} s",
                round + 1,
                mode.name(),
                phase.kib_per_connection(ctx.connections),
                phase.idle.api,
                phase.idle.redis,
                phase.idle.bench,
                percentile(&phase.fan_out.latencies_us, 50.0),
                percentile(&phase.fan_out.latencies_us, 100.0),
                phase.fan_out.wrong,
                phase.fan_out.missing,
                phase.open_seconds
            );
            phases.push(phase);
        }
    }
    println!("{}", report(&ctx, &phases));
    Ok(())
}

#[cfg(test)]
mod chunk_tests {
    use super::Chunked;

    #[test]
    fn a_chunked_body_cut_anywhere_decodes_whole() {
        let body = b"e\r\nevent: status\n\r\n10;ext=1\r\ndata: {\"a\":1}\n\n\n\r\n0\r\n\r\n";
        let whole = b"event: status\ndata: {\"a\":1}\n\n\n".to_vec();
        for cut in 0..body.len() {
            let (mut chunked, mut out) = (Chunked::default(), Vec::new());
            let early = chunked.decode(&body[..cut], &mut out);
            let ended = chunked.decode(&body[cut..], &mut out);
            assert_eq!(out, whole, "cut at {cut}");
            assert!(ended && (!early || cut >= body.len() - 2), "cut at {cut}");
        }
    }
}
