//! The buyers' HTTP client: hyper's HTTP/1.1 client connections
//! (`hyper::client::conn::http1`) in a pool of keep-alive connections kept
//! here, without hyper-util's pooled client or reqwest on top (no URL
//! parsing, connector or header maps beyond the request's own per request).
//! The load generator shares the cores with the platform it measures, so
//! what it spends per request is taken from the platform.
//!
//! Each pooled connection is one handshake: its [`SendRequest`] handle and
//! its connection future wait in the pool together between requests, and
//! the buyer's task that takes them drives the connection (the socket's
//! reads and writes) while it waits for its reply: no task per connection,
//! no wake-ups from one task to another per request. A connection is not
//! polled while idle; one the server closed meanwhile is found so when it
//! is taken (or on the request, which then goes again on another). A
//! request is prepared once ([`Client::request`]: the URI parsed, the
//! headers and the body made) and may be sent again as is (a retry).
//!
//! The requests in flight are capped by [`Client::slot`] (`wrk -c`-like: a
//! closed loop of at most that many requests); a connection is only in use
//! while its request is, so connections stay at about that number — except
//! event streams, which keep theirs (the stream is the connection's one
//! reply) and close it when dropped.
//!
//! Plain `http://` only.
//!
//! Cost (2026-11-29, this 2-core machine): in isolation (50 buyers, 200k
//! small POSTs against a canned local server) 7–9 µs of the client's CPU
//! per request against 3.5–5 µs for the hand-written HTTP/1.1 client it
//! replaced, 1.8–2× (same syscalls: one write, one read; the rest is
//! hyper's request/response types, header maps and the channels between
//! the handle and the connection); in a 100,000-buyer stress run about
//! 1.4× the stress program's own CPU while buying (0.14–0.18 cores against
//! 0.11–0.13), with the same run time and p99s.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};

/// A connection's future (boxed: it is large, and moves in and out of the
/// pool with every request).
type Running = Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>;

/// A connection: its handle, and its future while it runs (`None` once
/// it has ended: the connection is closed).
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    connection: Option<Running>,
}

pub struct Client {
    addr: SocketAddr,
    /// `host:port` as the URL spells it.
    host: HeaderValue,
    /// The URL's path, without its trailing `/`: put before every path.
    prefix: String,
    /// Connections between requests; the last one in goes out first.
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
    in_flight: usize,
    /// Longest a request may take, from taking a connection to the last
    /// byte of its reply.
    timeout: Duration,
}

/// A request ready to send (and to send again).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    /// Origin-form: the prefix, the path and the query.
    uri: Uri,
    /// Besides `host` (and `content-length`, which hyper writes).
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Request {
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path and query as sent.
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// The value of the header `name` (besides `host`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// hyper's request, `host` first.
    fn to_hyper(&self, host: &HeaderValue) -> io::Result<hyper::Request<Full<Bytes>>> {
        let mut builder = hyper::Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .header(HOST, host.clone());
        for (name, value) in &self.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|error| invalid(error.to_string()))
    }
}

/// A reply read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when given so.
    pub retry_after: Option<u64>,
    pub body: Bytes,
    /// From the start of the request to the reply's head.
    pub took: Duration,
}

impl Reply {
    /// The body as text (for messages).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// What opening a stream got.
pub enum Opened {
    /// `200`: the body follows, as it comes. `Duration`: to the head.
    Stream(Stream, Duration),
    /// Anything else, read whole.
    Reply(Reply),
}

impl Client {
    /// A client of the API at `api_url` (`http://host:port[/prefix]`),
    /// with at most `in_flight` requests at once.
    pub async fn new(api_url: &str, in_flight: usize, timeout: Duration) -> io::Result<Client> {
        let url: Uri = api_url
            .parse()
            .map_err(|error| invalid(format!("{api_url}: {error}")))?;
        if !url
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("http"))
        {
            return Err(invalid(format!("{api_url}: only http:// is supported")));
        }
        let authority = url
            .authority()
            .ok_or_else(|| invalid(format!("{api_url}: no host")))?;
        let with_port = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let addr = tokio::net::lookup_host(&with_port)
            .await?
            .next()
            .ok_or_else(|| invalid(format!("{authority}: no address")))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|error| invalid(format!("{authority}: {error}")))?;
        let in_flight = in_flight.max(1);
        Ok(Client {
            addr,
            host,
            prefix: url.path().trim_end_matches('/').to_string(),
            idle: Mutex::new(Vec::with_capacity(in_flight)),
            slots: Semaphore::new(in_flight),
            in_flight,
            timeout,
        })
    }

    /// Requests allowed in flight at once.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A place for one request in flight; held while it is.
    pub async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        // Never closed, so never an error.
        self.slots.acquire().await.ok()
    }

    /// A request: `path` (with its query) under the URL's prefix; `headers`
    /// as `name: value` pairs; a JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<&[u8]>,
    ) -> io::Result<Request> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| invalid(format!("{method}: not a method")))?;
        let mut target = String::with_capacity(self.prefix.len() + path.len());
        target.push_str(&self.prefix);
        target.push_str(path);
        let uri = Uri::try_from(target).map_err(|error| invalid(format!("{path}: {error}")))?;
        let mut fields = Vec::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            let field = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok())
                .ok_or_else(|| invalid(format!("{name}: not a valid header")))?;
            fields.push(field);
        }
        if json.is_some() {
            fields.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Ok(Request {
            method,
            uri,
            headers: fields,
            body: json.map(Bytes::copy_from_slice).unwrap_or_default(),
        })
    }

    /// Sends `request` and reads the reply whole. The caller holds a
    /// [`Client::slot`].
    pub async fn exchange(&self, request: &Request) -> io::Result<Reply> {
        let started = Instant::now();
        let exchange = async {
            let (mut conn, response) = self.round_trip(request).await?;
            let took = started.elapsed();
            let (head, body) = response.into_parts();
            let body = drive(&mut conn.connection, read_whole(body)).await?;
            self.check_in(conn);
            Ok(Reply {
                status: head.status.as_u16(),
                retry_after: retry_after(&head.headers),
                body,
                took,
            })
        };
        within(self.timeout, exchange).await
    }

    /// Sends `request` and reads the reply's head: a `200` is left open as a
    /// [`Stream`] (its connection goes with it); anything else is read whole.
    /// Only the head is under the client's timeout.
    pub async fn open(&self, request: &Request, timeout: Duration) -> io::Result<Opened> {
        let started = Instant::now();
        let (mut conn, response) = within(timeout, self.round_trip(request)).await?;
        let took = started.elapsed();
        let (head, body) = response.into_parts();
        if head.status == 200 {
            return Ok(Opened::Stream(Stream { body, conn }, took));
        }
        let body = within(self.timeout, drive(&mut conn.connection, read_whole(body))).await?;
        self.check_in(conn);
        Ok(Opened::Reply(Reply {
            status: head.status.as_u16(),
            retry_after: retry_after(&head.headers),
            body,
            took,
        }))
    }

    /// Sends the request and waits for the reply's head, on an idle
    /// connection or a new one. A request an idle connection could not
    /// carry (the server had closed it, or closed it on the request with
    /// no reply) is sent again on another.
    async fn round_trip(&self, request: &Request) -> io::Result<(Conn, Response<Incoming>)> {
        loop {
            let reused = self.check_out().await;
            let fresh = reused.is_none();
            let mut conn = match reused {
                Some(conn) => conn,
                None => self.connect().await?,
            };
            let sent = conn.sender.send_request(request.to_hyper(&self.host)?);
            match drive(&mut conn.connection, sent).await {
                Ok(response) => return Ok((conn, response)),
                Err(error)
                    if !fresh
                        && (error.is_canceled()
                            || error.is_closed()
                            || error.is_incomplete_message()) =>
                {
                    continue
                }
                Err(error) => return Err(io_error(error)),
            }
        }
    }

    /// An idle connection that is ready for a request; those closed
    /// meanwhile are dropped.
    async fn check_out(&self) -> Option<Conn> {
        loop {
            let mut conn = self.idle.lock().ok()?.pop()?;
            let Conn { sender, connection } = &mut conn;
            if drive(connection, sender.ready()).await.is_ok() {
                return Some(conn);
            }
        }
    }

    fn check_in(&self, conn: Conn) {
        if conn.connection.is_none() || conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> io::Result<Conn> {
        let socket = TcpStream::connect(self.addr).await?;
        socket.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(socket))
            .await
            .map_err(io_error)?;
        Ok(Conn {
            sender,
            connection: Some(Box::new(connection)),
        })
    }
}

/// `work` (on the connection), driving the connection meanwhile: its
/// future is polled after `work` each time (its errors reach `work`), and
/// dropped once it has ended, which fails whatever still waits on it.
async fn drive<W: Future>(connection: &mut Option<Running>, work: W) -> W::Output {
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Some(running) = connection.as_mut() else {
            return Poll::Pending;
        };
        if Pin::new(&mut **running).poll(cx).is_ready() {
            *connection = None;
        }
        // What the connection just did (sent the request, read the reply)
        // is seen at once rather than after a wake-up.
        work.as_mut().poll(cx)
    })
    .await
}

/// A body read whole (one piece of it, as hyper gave it, is not copied).
async fn read_whole(mut body: Incoming) -> io::Result<Bytes> {
    let mut first = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(io_error)?.into_data() else {
            continue;
        };
        match &mut joined {
            Some(all) => all.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut all = Vec::with_capacity(first.len() + data.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
        }
    }
    Ok(joined.map_or(first, Bytes::from))
}

fn retry_after(headers: &hyper::HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn io_error(error: hyper::Error) -> io::Error {
    let kind = if error.is_incomplete_message() {
        io::ErrorKind::UnexpectedEof
    } else if error.is_parse() {
        io::ErrorKind::InvalidData
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, error)
}

/// An open reply body (an event stream), on a connection of its own,
/// closed when the stream is dropped.
pub struct Stream {
    body: Incoming,
    conn: Conn,
}

impl Stream {
    /// Appends the body's next bytes to `out`: `false` once it has ended
    /// (an error if it broke off inside a chunk).
    pub async fn next(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            match drive(&mut self.conn.connection, self.body.frame()).await {
                None => return Ok(false),
                Some(Err(error)) => return Err(io_error(error)),
                Some(Ok(frame)) => {
                    // Trailers: nothing to append.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            out.extend_from_slice(&data);
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }
}

/// `text` for a URL's query: unreserved bytes as they are, the rest `%XX`.
pub fn push_query_value(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn query_values_are_escaped() {
        let mut out = String::new();
        push_query_value(&mut out, "vu000001@stress.test a+b/é");
        assert_eq!(out, "vu000001%40stress.test%20a%2Bb%2F%C3%A9");
    }

    /// What the test server does with the request it has read.
    enum Step {
        /// Writes these bytes.
        Answer(&'static [u8]),
        /// Writes these bytes one at a time.
        Trickle(&'static [u8]),
        /// Writes these bytes, then closes the connection.
        Last(&'static [u8]),
        /// Closes the connection without answering.
        Close,
        /// Answers nothing (and reads on).
        Hang,
    }

    /// What the test server saw: a request on connection `n`, or the client
    /// closing connection `n`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Request(usize, String),
        Closed(usize),
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// A tiny server: each connection (served at once) takes the next step
    /// for each request it reads.
    async fn serve(steps: Vec<Step>) -> (String, Log) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/api/", listener.local_addr().expect("addr"));
        let log: Log = Arc::default();
        let steps = Arc::new(Mutex::new(VecDeque::from(steps)));
        let seen = log.clone();
        tokio::spawn(async move {
            let mut connections = 0;
            while let Ok((socket, _)) = listener.accept().await {
                let n = connections;
                connections += 1;
                tokio::spawn(serve_connection(n, socket, steps.clone(), seen.clone()));
            }
        });
        (url, log)
    }

    async fn serve_connection(
        n: usize,
        mut socket: TcpStream,
        steps: Arc<Mutex<VecDeque<Step>>>,
        log: Log,
    ) {
        socket.set_nodelay(true).expect("nodelay");
        let mut buf = Vec::new();
        loop {
            let request = loop {
                if let Some(end) = whole_request(&buf) {
                    break buf.drain(..end).collect::<Vec<u8>>();
                }
                let mut more = [0u8; 4096];
                match socket.read(&mut more).await {
                    Ok(0) | Err(_) => {
                        log.lock().expect("log").push(Seen::Closed(n));
                        return;
                    }
                    Ok(read) => buf.extend_from_slice(&more[..read]),
                }
            };
            let text = String::from_utf8_lossy(&request).into_owned();
            log.lock().expect("log").push(Seen::Request(n, text));
            let step = steps.lock().expect("steps").pop_front();
            match step {
                Some(Step::Answer(reply)) => {
                    let _ = socket.write_all(reply).await;
                }
                Some(Step::Trickle(reply)) => {
                    for byte in reply {
                        let _ = socket.write_all(&[*byte]).await;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Some(Step::Last(reply)) => {
                    let _ = socket.write_all(reply).await;
                    return;
                }
                Some(Step::Close) => return,
                Some(Step::Hang) | None => {}
            }
        }
    }

    /// The length of the request at the start of `buf`, once it is there.
    fn whole_request(buf: &[u8]) -> Option<usize> {
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        let length = text
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse::<usize>().expect("a length"));
        (buf.len() >= head + length).then_some(head + length)
    }

    fn seen(log: &Log) -> Vec<Seen> {
        log.lock().expect("log").clone()
    }

    /// The connections the requests came on, in order.
    fn connections(log: &Log) -> Vec<usize> {
        seen(log)
            .into_iter()
            .filter_map(|s| match s {
                Seen::Request(n, _) => Some(n),
                Seen::Closed(_) => None,
            })
            .collect()
    }

    /// Waits (a little) until the server saw connection `n` closed.
    async fn closed(log: &Log, n: usize) -> bool {
        for _ in 0..200 {
            if seen(log).contains(&Seen::Closed(n)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    async fn client(url: &str, in_flight: usize, timeout: Duration) -> Client {
        Client::new(url, in_flight, timeout).await.expect("client")
    }

    fn get(client: &Client, path: &str) -> Request {
        client.request("GET", path, &[], None).expect("a request")
    }

    #[tokio::test]
    async fn requests_reuse_connections_and_streams_come_in_pieces() {
        let (url, log) = serve(vec![
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"),
            Step::Answer(b"HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\nretry-after: 1\r\n\r\nnope!"),
            Step::Trickle(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            ),
        ])
        .await;
        let client = client(&url, 4, Duration::from_secs(5)).await;
        let body = br#"{"a":1}"#;
        let request = client
            .request("POST", "/orders/buy", &[("x-buyer-token", "t")], Some(body))
            .expect("a request");
        assert_eq!(request.target(), "/api/orders/buy");
        assert_eq!(request.header("X-Buyer-Token"), Some("t"));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, &reply.body[..]), (200, &b"{}"[..]));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, reply.retry_after), (409, Some(1)));
        assert_eq!(reply.text(), "nope!");
        let request = client
            .request(
                "GET",
                "/orders/events?x=1",
                &[("accept", "text/event-stream")],
                None,
            )
            .expect("a request");
        let Opened::Stream(mut stream, _) = client
            .open(&request, Duration::from_secs(5))
            .await
            .expect("opened")
        else {
            panic!("a stream")
        };
        let mut got = Vec::new();
        let mut pieces = 0;
        while stream.next(&mut got).await.expect("the body") {
            pieces += 1;
        }
        assert_eq!(got, b"hello world");
        assert!(pieces >= 2, "the body came as it came, in {pieces} pieces");
        drop(stream);
        assert_eq!(
            connections(&log),
            [0, 0, 0],
            "one connection carried all three"
        );
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/api/");
        let Seen::Request(_, first) = &seen(&log)[0] else {
            panic!("a request")
        };
        assert_eq!(
            *first,
            "POST /api/orders/buy HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-buyer-token: t\r\n\
             content-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
                .replace("{port}", port)
        );
        let Seen::Request(_, third) = &seen(&log)[2] else {
            panic!("a request")
        };
        assert_eq!(
            *third,
            "GET /api/orders/events?x=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
             accept: text/event-stream\r\n\r\n"
                .replace("{port}", port)
        );
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        // First connection: one reply, then closed on the next request;
        // then one closed by the server while idle.
        let (url, log) = serve(vec![
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"),
            Step::Close,
            Step::Last(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\nb"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nc"),
        ])
        .await;
        let client = client(&url, 1, Duration::from_secs(5)).await;
        let request = get(&client, "/x");
        let first = client.exchange(&request).await.expect("first");
        let second = client
            .exchange(&request)
            .await
            .expect("second, on a new connection");
        // Time for the client to see it closed while idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = client
            .exchange(&request)
            .await
            .expect("third, on a new connection");
        assert_eq!(
            (&first.body[..], &second.body[..], &third.body[..]),
            (&b"a"[..], &b"b"[..], &b"c"[..])
        );
        assert_eq!(connections(&log), [0, 0, 1, 2]);
    }

    const EVENTS: &[u8] = b"event: status\ndata: {\"a\":1}\n\n";

    #[tokio::test]
    async fn chunked_bodies_decode_however_cut() {
        const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              7\r\nevent: \r\n16;x=y\r\nstatus\ndata: {\"a\":1}\n\n\r\n0\r\n\r\n";
        const NEXT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nNEXT";
        let (url, log) = serve(vec![
            Step::Answer(CHUNKED),
            Step::Answer(NEXT),
            Step::Trickle(CHUNKED),
            Step::Answer(NEXT),
            Step::Trickle(CHUNKED),
            Step::Answer(NEXT),
            // Trailers.
            Step::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"),
            Step::Answer(NEXT),
            // An unfinished body, a bad size, a chunk longer than said.
            Step::Last(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n"),
        ])
        .await;
        let client = client(&url, 1, Duration::from_secs(5)).await;
        let request = get(&client, "/events");
        // Whole, then cut at every byte: read whole, then as a stream. The
        // next reply on the connection starts where the body ended.
        for streamed in [false, false, true] {
            let body = if streamed {
                let Opened::Stream(mut stream, _) = client
                    .open(&request, Duration::from_secs(5))
                    .await
                    .expect("opened")
                else {
                    panic!("a stream")
                };
                let mut got = Vec::new();
                while stream.next(&mut got).await.expect("the body") {}
                drop(stream);
                got
            } else {
                client
                    .exchange(&request)
                    .await
                    .expect("a reply")
                    .body
                    .to_vec()
            };
            assert_eq!(body, EVENTS);
            if streamed {
                // A stream's connection goes with it, read to its end or not.
                assert!(closed(&log, 0).await);
            }
            let next = client.exchange(&request).await.expect("the next reply");
            assert_eq!(&next.body[..], b"NEXT");
        }
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(&reply.body[..], b"abc");
        let next = client.exchange(&request).await.expect("the next reply");
        assert_eq!(&next.body[..], b"NEXT");
        assert_eq!(connections(&log), [0, 0, 0, 0, 0, 1, 1, 1]);
        for broken in ["unfinished", "bad size", "too long"] {
            let error = client.exchange(&request).await.expect_err(broken);
            assert_ne!(error.kind(), io::ErrorKind::TimedOut, "{broken}: {error}");
        }
        assert_eq!(connections(&log), [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 3]);
    }

    #[tokio::test]
    async fn reply_heads() {
        let (url, log) = serve(vec![
            Step::Answer(b"HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\nContent-Length: 12\r\nretry-after: 2\r\n\r\n{\"a\":\"bcd\"}\n"),
            // The server will close: the connection is not used again.
            Step::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n"),
            Step::Answer(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\ny"),
            // Ended by the server closing.
            Step::Last(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"),
            Step::Answer(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: soon\r\ncontent-length: 0\r\n\r\n"),
            Step::Answer(b"SSH-2.0-OpenSSH\r\n\r\n"),
        ])
        .await;
        let client = client(&url, 1, Duration::from_secs(5)).await;
        let request = get(&client, "/x");
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(
            (reply.status, reply.retry_after, reply.body.len()),
            (409, Some(2), 12)
        );
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, &reply.body[..]), (200, &b"x"[..]));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, &reply.body[..]), (200, &b"y"[..]));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(reply.text(), "until the end");
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, reply.retry_after), (503, None));
        let error = client.exchange(&request).await.expect_err("not HTTP");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        assert_eq!(connections(&log), [0, 0, 1, 2, 3, 3]);
    }

    #[tokio::test]
    async fn timeouts_end_requests_and_their_connections() {
        let (url, log) = serve(vec![
            Step::Hang,
            Step::Hang,
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"),
            // The head, and a body that never comes.
            Step::Answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot"),
        ])
        .await;
        let client = client(&url, 1, Duration::from_millis(500)).await;
        let request = get(&client, "/x");
        let started = Instant::now();
        let error = client.exchange(&request).await.expect_err("no reply");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(closed(&log, 0).await, "the connection is given up");
        // A stream's head has a timeout of its own.
        let started = Instant::now();
        let Err(error) = client.open(&request, Duration::from_millis(50)).await else {
            panic!("no reply")
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_millis(450));
        assert!(closed(&log, 1).await);
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(&reply.body[..], b"a");
        // Not a 200: read whole, under the client's timeout.
        let Err(error) = client.open(&request, Duration::from_secs(5)).await else {
            panic!("no whole reply")
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(connections(&log), [0, 1, 2, 2]);
    }

    #[tokio::test]
    async fn streams_keep_their_connection_and_close_it_when_dropped() {
        let (url, log) = serve(vec![
            Step::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"),
            Step::Answer(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 4\r\n\r\nslow"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb"),
        ])
        .await;
        let client = client(&url, 4, Duration::from_secs(5)).await;
        let request = get(&client, "/events");
        let Opened::Stream(mut stream, _) = client
            .open(&request, Duration::from_secs(5))
            .await
            .expect("opened")
        else {
            panic!("a stream")
        };
        let mut got = Vec::new();
        assert!(stream.next(&mut got).await.expect("a piece"));
        assert_eq!(got, b"hello");
        // Meanwhile, another request: on another connection.
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(&reply.body[..], b"a");
        drop(stream);
        assert!(
            closed(&log, 0).await,
            "a dropped stream closes its connection"
        );
        // A stream refused is read whole and its connection kept.
        let Opened::Reply(reply) = client
            .open(&request, Duration::from_secs(5))
            .await
            .expect("opened")
        else {
            panic!("a reply")
        };
        assert_eq!((reply.status, reply.retry_after), (429, Some(3)));
        assert_eq!(reply.text(), "slow");
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!(&reply.body[..], b"b");
        assert_eq!(connections(&log), [0, 1, 1, 1]);
        assert!(!seen(&log).contains(&Seen::Closed(1)));
    }

    #[tokio::test]
    async fn requests_in_flight_are_capped() {
        let client = client("http://127.0.0.1:9", 2, Duration::from_secs(1)).await;
        assert_eq!(client.in_flight(), 2);
        let first = client.slot().await.expect("a slot");
        let _second = client.slot().await.expect("a slot");
        let third = tokio::time::timeout(Duration::from_millis(50), client.slot()).await;
        assert!(third.is_err(), "a third request waits");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), client.slot()).await;
        assert!(third.is_ok(), "and goes once one is done");
        let one = Client::new("http://localhost:9/", 0, Duration::from_secs(1))
            .await
            .expect("client");
        assert_eq!(one.in_flight(), 1);
        assert!(
            Client::new("https://127.0.0.1:9", 1, Duration::from_secs(1))
                .await
                .is_err()
        );
        let request = one
            .request("POST", "/b?x=%40", &[("x-buyer-token", "tok")], Some(b"{}"))
            .expect("a request");
        assert_eq!(
            (request.method().as_str(), request.target(), request.body()),
            ("POST", "/b?x=%40", &b"{}"[..])
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(one.request("GET", "/a b", &[], None).is_err());
        assert!(one.request("GET", "/a", &[("x", "a\nb")], None).is_err());
    }
}
