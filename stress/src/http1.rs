//! The buyers' HTTP/1.1 client: a pool of keep-alive connections, each
//! request written as one buffer and its reply read in the buyer's own task
//! (no connection task, no channels between tasks, no URL parsing or header
//! maps per request). The load generator shares the cores with the platform
//! it measures, so what it spends per request is taken from the platform.
//!
//! The requests in flight are capped by [`Client::slot`] (`wrk -c`-like: a
//! closed loop of at most that many requests); a connection is only in use
//! while its request is, so connections stay at about that number — except
//! event streams, which keep theirs (the stream is the connection's one
//! reply) and close it when dropped.
//!
//! Plain `http://` only; replies sized by `Content-Length`, chunked, or
//! ended by the server closing the connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Longest reply head accepted.
const MAX_HEAD: usize = 64 * 1024;

pub struct Client {
    addr: SocketAddr,
    /// `host:port` as the URL spells it (the `Host` header).
    authority: String,
    /// The URL's path, without its trailing `/`: put before every path.
    prefix: String,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
    in_flight: usize,
    /// Longest a request may take, from taking a connection to the last
    /// byte of its reply.
    timeout: Duration,
}

/// A reply read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when given so.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
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
        let rest = api_url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &api_url[7..])
            .ok_or_else(|| invalid(format!("{api_url}: only http:// is supported")))?;
        let (authority, prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await?
            .next()
            .ok_or_else(|| invalid(format!("{authority}: no address")))?;
        let in_flight = in_flight.max(1);
        Ok(Client {
            addr,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
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

    /// The bytes of a request: `path` (with its query) under the URL's
    /// prefix; `headers` as `name: value` pairs; a JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + json.map_or(0, <[u8]>::len));
        for part in [
            method,
            " ",
            &self.prefix,
            path,
            " HTTP/1.1\r\nhost: ",
            &self.authority,
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            for part in [name, ": ", value, "\r\n"] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        if let Some(json) = json {
            out.extend_from_slice(b"content-type: application/json\r\ncontent-length: ");
            out.extend_from_slice(json.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(json);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Sends `request` (from [`Client::request`]) and reads the reply whole.
    /// The caller holds a [`Client::slot`].
    pub async fn exchange(&self, request: &[u8]) -> io::Result<Reply> {
        let started = Instant::now();
        let exchange = async {
            let (mut conn, head) = self.round_trip(request, started).await?;
            let mut body = Vec::new();
            let mut reader = BodyReader::for_head(&head);
            reader.read_to_end(&mut conn, &mut body).await?;
            if !head.close && reader.done() {
                self.check_in(conn);
            }
            Ok(Reply {
                status: head.status,
                retry_after: head.retry_after,
                body,
                took: head.took,
            })
        };
        within(self.timeout, exchange).await
    }

    /// Sends `request` and reads the reply's head: a `200` is left open as a
    /// [`Stream`] (its connection goes with it); anything else is read whole.
    /// Only the head is under the client's timeout.
    pub async fn open(&self, request: &[u8], timeout: Duration) -> io::Result<Opened> {
        let started = Instant::now();
        let (mut conn, head) = within(timeout, self.round_trip(request, started)).await?;
        let mut reader = BodyReader::for_head(&head);
        if head.status == 200 {
            return Ok(Opened::Stream(Stream { conn, reader }, head.took));
        }
        let mut body = Vec::new();
        within(self.timeout, reader.read_to_end(&mut conn, &mut body)).await?;
        if !head.close && reader.done() {
            self.check_in(conn);
        }
        Ok(Opened::Reply(Reply {
            status: head.status,
            retry_after: head.retry_after,
            body,
            took: head.took,
        }))
    }

    /// Writes the request and reads the reply's head, on an idle connection
    /// or a new one. An idle connection the server had closed meanwhile
    /// (nothing came back at all) is dropped and the request sent again.
    async fn round_trip(&self, request: &[u8], started: Instant) -> io::Result<(Conn, Head)> {
        loop {
            let reused = self.check_out();
            let fresh = reused.is_none();
            let mut conn = match reused {
                Some(conn) => conn,
                None => Conn::connect(self.addr).await?,
            };
            let sent = conn.stream.write_all(request).await;
            let head = match sent {
                Ok(()) => conn.read_head(started).await,
                Err(error) => Err((error, true)),
            };
            match head {
                Ok(head) => return Ok((conn, head)),
                Err((_, nothing_back)) if nothing_back && !fresh => continue,
                Err((error, _)) => return Err(error),
            }
        }
    }

    fn check_out(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    fn check_in(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
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

fn bad_reply(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// An open reply body (an event stream).
pub struct Stream {
    conn: Conn,
    reader: BodyReader,
}

impl Stream {
    /// Appends the body's next bytes to `out`: `false` once it has ended
    /// (an error if it broke off inside a chunk).
    pub async fn next(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            let before = out.len();
            self.reader.take(&mut self.conn, out)?;
            if out.len() > before {
                return Ok(true);
            }
            if self.reader.done() {
                return Ok(false);
            }
            if self.conn.fill().await? == 0 {
                return match self.reader {
                    BodyReader::UntilClose => Ok(false),
                    _ => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside the body",
                    )),
                };
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// Read from the socket; `buf[pos..]` not yet used.
    buf: Vec<u8>,
    pos: usize,
}

/// A reply's head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    retry_after: Option<u64>,
    /// The connection cannot carry another request.
    close: bool,
    took: Duration,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            pos: 0,
        })
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more from the socket; 0 at its end.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// The reply's head; on failure also whether nothing at all came back.
    async fn read_head(&mut self, started: Instant) -> Result<Head, (io::Error, bool)> {
        let mut searched = 0;
        loop {
            let unread = self.unread();
            if let Some(end) = find_blank_line(unread, searched) {
                let mut head = parse_head(&unread[..end]).map_err(|e| (e, false))?;
                head.took = started.elapsed();
                self.pos += end + 4;
                return Ok(head);
            }
            if unread.len() > MAX_HEAD {
                return Err((bad_reply("reply head too long"), false));
            }
            searched = unread.len().saturating_sub(3);
            let nothing_yet = unread.is_empty();
            match self.fill().await {
                Ok(0) => {
                    let error = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the reply",
                    );
                    return Err((error, nothing_yet));
                }
                Ok(_) => {}
                Err(error) => return Err((error, nothing_yet)),
            }
        }
    }
}

/// Where `\r\n\r\n` starts in `bytes` (searching from `from`).
fn find_blank_line(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + from)
}

/// The status line and the headers that matter here (without the blank
/// line that ends them).
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| bad_reply("reply head is not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad_reply("not an HTTP/1 reply"));
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad_reply("no status code"))?;
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
        retry_after: None,
        close: version == "HTTP/1.0",
        took: Duration::ZERO,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| bad_reply("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("retry-after") {
            head.retry_after = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',') {
                let option = option.trim();
                if option.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if option.eq_ignore_ascii_case("keep-alive") && version == "HTTP/1.0" {
                    head.close = false;
                }
            }
        }
    }
    Ok(head)
}

/// How a reply's body is delimited, and how much of it is left.
#[derive(Debug)]
enum BodyReader {
    Length(u64),
    Chunked(Chunked),
    /// Until the server closes the connection.
    UntilClose,
}

impl BodyReader {
    fn for_head(head: &Head) -> BodyReader {
        if matches!(head.status, 100..=199 | 204 | 304) {
            BodyReader::Length(0)
        } else if head.chunked {
            BodyReader::Chunked(Chunked::default())
        } else if let Some(length) = head.content_length {
            BodyReader::Length(length)
        } else {
            BodyReader::UntilClose
        }
    }

    fn done(&self) -> bool {
        match self {
            BodyReader::Length(left) => *left == 0,
            BodyReader::Chunked(chunked) => chunked.done(),
            BodyReader::UntilClose => false,
        }
    }

    /// Moves what the connection has read of the body into `out`.
    fn take(&mut self, conn: &mut Conn, out: &mut Vec<u8>) -> io::Result<()> {
        let unread = conn.unread();
        let used = match self {
            BodyReader::Length(left) => {
                let n = unread
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&unread[..n]);
                *left -= n as u64;
                n
            }
            BodyReader::Chunked(chunked) => chunked.decode(unread, out)?,
            BodyReader::UntilClose => {
                out.extend_from_slice(unread);
                unread.len()
            }
        };
        conn.pos += used;
        Ok(())
    }

    async fn read_to_end(&mut self, conn: &mut Conn, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            self.take(conn, out)?;
            if self.done() {
                return Ok(());
            }
            if conn.fill().await? == 0 {
                return match self {
                    BodyReader::UntilClose => Ok(()),
                    _ => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside the body",
                    )),
                };
            }
        }
    }
}

/// A `Transfer-Encoding: chunked` decoder, fed bytes however they were cut.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// The size line's hex digits so far (and whether there was one).
    Size(u64, bool),
    /// After the size: an extension, up to the line's end.
    Extension(u64),
    /// The size line's `\r` seen.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// A trailer line, of this many bytes so far (0: the last line).
    Trailer(u64),
    TrailerLf(u64),
    Done,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size(0, false)
    }
}

impl Chunked {
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending the data to `out`; returns the bytes
    /// used (all of them, unless the body ended inside `input`).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            self.state = match self.state {
                ChunkState::Done => return Ok(at),
                ChunkState::Data(left) => {
                    let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[at..at + n]);
                    at += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                    continue;
                }
                ChunkState::Size(size, digits) => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or_else(|| bad_reply("chunk size too large"))?;
                        ChunkState::Size(size, true)
                    }
                    _ if !digits => return Err(bad_reply("chunk size expected")),
                    b'\r' => ChunkState::SizeLf(size),
                    b'\n' => after_size(size),
                    _ => ChunkState::Extension(size),
                },
                ChunkState::Extension(size) => match byte {
                    b'\r' => ChunkState::SizeLf(size),
                    b'\n' => after_size(size),
                    _ => ChunkState::Extension(size),
                },
                ChunkState::SizeLf(size) => match byte {
                    b'\n' => after_size(size),
                    _ => return Err(bad_reply("chunk size line")),
                },
                ChunkState::DataCr => match byte {
                    b'\r' => ChunkState::DataLf,
                    b'\n' => ChunkState::Size(0, false),
                    _ => return Err(bad_reply("chunk not ended by CRLF")),
                },
                ChunkState::DataLf => match byte {
                    b'\n' => ChunkState::Size(0, false),
                    _ => return Err(bad_reply("chunk not ended by CRLF")),
                },
                ChunkState::Trailer(len) => match byte {
                    b'\r' => ChunkState::TrailerLf(len),
                    b'\n' if len == 0 => ChunkState::Done,
                    b'\n' => ChunkState::Trailer(0),
                    _ => ChunkState::Trailer(len + 1),
                },
                ChunkState::TrailerLf(len) => match byte {
                    b'\n' if len == 0 => ChunkState::Done,
                    b'\n' => ChunkState::Trailer(0),
                    _ => return Err(bad_reply("trailer line")),
                },
            };
            at += 1;
        }
        Ok(at)
    }
}

fn after_size(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::Trailer(0)
    } else {
        ChunkState::Data(size)
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
    use super::*;

    fn decode_cut(body: &[u8], cuts: &[usize]) -> (Vec<u8>, bool, usize) {
        let mut chunked = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        let mut last = 0;
        for &cut in cuts.iter().chain([body.len()].iter()) {
            used += chunked.decode(&body[last..cut], &mut out).expect("valid");
            last = cut;
        }
        (out, chunked.done(), used)
    }

    #[test]
    fn chunked_bodies_decode_however_cut() {
        let body = b"7\r\nevent: \r\n16;x=y\r\nstatus\ndata: {\"a\":1}\n\n\r\n0\r\n\r\nNEXT";
        let whole = decode_cut(body, &[]);
        assert_eq!(whole.0, b"event: status\ndata: {\"a\":1}\n\n".to_vec());
        assert!(whole.1);
        assert_eq!(whole.2, body.len() - 4, "stops where the body ends");
        for cut in 0..body.len() {
            assert_eq!(decode_cut(body, &[cut]), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (1..body.len()).collect();
        assert_eq!(decode_cut(body, &every), whole);
        // Trailers, and an unfinished body.
        let (out, done, _) = decode_cut(b"3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n", &[]);
        assert_eq!((out, done), (b"abc".to_vec(), true));
        let (out, done, _) = decode_cut(b"3\r\nab", &[]);
        assert_eq!((out, done), (b"ab".to_vec(), false));
        assert!(Chunked::default()
            .decode(b"zz\r\n", &mut Vec::new())
            .is_err());
        assert!(Chunked::default()
            .decode(b"1\r\nab\r\n", &mut Vec::new())
            .is_err());
    }

    #[test]
    fn reply_heads() {
        let head = parse_head(
            b"HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\nContent-Length: 12\r\nretry-after: 2",
        )
        .expect("a head");
        assert_eq!(
            (
                head.status,
                head.content_length,
                head.retry_after,
                head.chunked,
                head.close
            ),
            (409, Some(12), Some(2), false, false)
        );
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close")
                .expect("a head");
        assert!(head.chunked && head.close);
        assert!(parse_head(b"HTTP/1.0 200 OK").expect("a head").close);
        assert!(parse_head(b"SSH-2.0").is_err());
        assert_eq!(find_blank_line(b"ab\r\n\r\ncd", 0), Some(2));
        assert_eq!(find_blank_line(b"ab\r\n\r\ncd", 3), None);
    }

    #[test]
    fn query_values_are_escaped() {
        let mut out = String::new();
        push_query_value(&mut out, "vu000001@stress.test a+b/é");
        assert_eq!(out, "vu000001%40stress.test%20a%2Bb%2F%C3%A9");
    }

    /// A tiny server: each connection answers the requests it gets with the
    /// canned replies, in turn, then closes.
    async fn serve(replies: Vec<&'static [u8]>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/api/", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut replies = replies.into_iter().peekable();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    match replies.next() {
                        Some(reply) if !reply.is_empty() => {
                            let _ = socket.write_all(reply).await;
                            if replies.peek().is_none() {
                                return seen;
                            }
                        }
                        // An empty reply: close without answering.
                        Some(_) => break,
                        None => return seen,
                    }
                }
            }
            seen
        });
        (url, task)
    }

    #[tokio::test]
    async fn requests_reuse_connections_and_streams_come_in_pieces() {
        let (url, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\nretry-after: 1\r\n\r\nnope!",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ])
        .await;
        let client = Client::new(&url, 4, Duration::from_secs(5))
            .await
            .expect("client");
        let body = br#"{"a":1}"#;
        let request = client.request("POST", "/orders/buy", &[("x-buyer-token", "t")], Some(body));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"{}"[..]));
        let reply = client.exchange(&request).await.expect("a reply");
        assert_eq!((reply.status, reply.retry_after), (409, Some(1)));
        assert_eq!(reply.text(), "nope!");
        let request = client.request("GET", "/orders/events?x=1", &[], None);
        let Opened::Stream(mut stream, _) = client
            .open(&request, Duration::from_secs(5))
            .await
            .expect("opened")
        else {
            panic!("a stream")
        };
        let mut got = Vec::new();
        while stream.next(&mut got).await.expect("the body") {}
        assert_eq!(got, b"hello world");
        drop(stream);
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 3, "one connection carried all three: {seen:?}");
        assert_eq!(
            seen[0],
            "POST /api/orders/buy HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-buyer-token: t\r\n\
             content-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
                .replace(
                    "{port}",
                    url.trim_start_matches("http://127.0.0.1:")
                        .trim_end_matches("/api/")
                )
        );
        assert!(seen[2].starts_with("GET /api/orders/events?x=1 HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        // First connection: one reply, then closed on the next request.
        let (url, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na",
            b"",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb",
        ])
        .await;
        let client = Client::new(&url, 1, Duration::from_secs(5))
            .await
            .expect("client");
        let request = client.request("GET", "/x", &[], None);
        let first = client.exchange(&request).await.expect("first");
        let second = client
            .exchange(&request)
            .await
            .expect("second, on a new connection");
        assert_eq!((first.body, second.body), (b"a".to_vec(), b"b".to_vec()));
        server.abort();
    }
}
