//! The load client's own HTTP/1.1 transport for streamed POSTs over plain TCP.
//!
//! A general-purpose client (reqwest on hyper) reads the socket in a connection task and
//! hands each body frame to the request's task through a channel: two task wake-ups, a
//! frame allocation and a timer per chunk, and a timestamp taken after the hand-over, late
//! by however long the runtime's queue is. At a thousand concurrent streams that overhead
//! is both the client's main CPU cost and a timing error. Here the request's own task owns
//! the socket: one `read` per readiness into a reused buffer, the time taken right after
//! it, and the chunked framing decoded in place, so SSE lines are split straight out of the
//! bytes the kernel returned. Like the reference (a new aiohttp session per request), every
//! request opens its own connection. `https://` targets go through reqwest instead.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// Bytes read per `read` call; also the most a response head may take. A thousand streams
/// keep a thousand of these, and a stream's socket rarely holds more between two reads.
const READ_BUF: usize = 16 << 10;
/// Headers parsed in a response head.
const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (with extensions) accepted.
const MAX_SIZE_LINE: u32 = 4096;

/// The response could not be read as HTTP/1.1.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// No connection could be made.
    #[error("cannot connect to {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before the message was complete.
    #[error("connection closed before message completed")]
    Closed,
    /// The bytes are not an HTTP/1.1 response.
    #[error("invalid HTTP response: {0}")]
    Protocol(String),
}

/// Where plain-HTTP requests go: parsed once per run, resolved once on first use.
pub struct Endpoint {
    /// Host to resolve and connect to (an IPv6 literal without brackets).
    host: String,
    /// Port to connect to (the scheme's default when the URL has none).
    port: u16,
    /// The request head up to (not including) `Content-Length`: request line, `Host`,
    /// fixed headers and the bearer token; the same for every request of the run.
    head: Vec<u8>,
    /// Resolved addresses (resolution is per run, not per request: a resolver call per
    /// request would put the blocking pool on the request path).
    addrs: OnceCell<Vec<SocketAddr>>,
}

/// Never shows the request head: it carries the bearer token.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `None` unless `url` is a valid `http://` URL (other schemes go through reqwest).
    pub fn parse(url: &str, api_key: Option<&str>) -> Option<Endpoint> {
        let u = reqwest::Url::parse(url).ok()?;
        if u.scheme() != "http" {
            return None;
        }
        if api_key.is_some_and(|k| k.bytes().any(|b| b < 0x20 || b == 0x7f)) {
            // Not a valid header value: reqwest refuses it per request with a clear error.
            return None;
        }
        let host = u
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u.port_or_known_default()?;
        let authority = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str()?),
            None => u.host_str()?.to_owned(),
        };
        let mut target = u.path().to_owned();
        if let Some(q) = u.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: infmax/{}\r\nAccept: */*\r\nContent-Type: application/json\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(k) = api_key {
            head.push_str("Authorization: Bearer ");
            head.push_str(k);
            head.push_str("\r\n");
        }
        Some(Endpoint {
            host,
            port,
            head: head.into_bytes(),
            addrs: OnceCell::new(),
        })
    }

    async fn connect(&self) -> Result<TcpStream, Http1Error> {
        let addrs = self
            .addrs
            .get_or_try_init(|| async {
                tokio::net::lookup_host((self.host.as_str(), self.port))
                    .await
                    .map(|a| a.collect::<Vec<_>>())
                    .map_err(|source| Http1Error::Resolve {
                        host: self.host.clone(),
                        source,
                    })
            })
            .await?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(Http1Error::Connect {
            host: format!("{}:{}", self.host, self.port),
            source: last,
        })
    }

    /// Connect, send the POST and read the response head.
    pub async fn post(&self, body: &[u8]) -> Result<Response, Http1Error> {
        self.post_with(&[], body).await
    }

    /// [`Endpoint::post`] with extra headers (names and values must be valid header text;
    /// callers pass fixed names and generated ids).
    pub async fn post_with(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Http1Error> {
        let mut stream = self.connect().await?;
        let mut req = Vec::with_capacity(self.head.len() + 96 + body.len());
        req.extend_from_slice(&self.head);
        for (k, v) in headers {
            req.extend_from_slice(k.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(v.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        stream.write_all(&req).await?;
        // On the load's ordered multi-threaded loop the next request may start now.
        crate::client::driver::request_written();
        Response::read_head(stream).await
    }
}

/// How the body's end is known.
#[derive(Debug)]
enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// `Content-Length`: bytes still to come.
    Length(u64),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

/// A response whose head has been read; its body is read with [`Response::fill`] and
/// [`Response::drain`].
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The request's own connection, dropped with the response.
    stream: TcpStream,
    /// Reused for every read; bytes read and not yet decoded are `buf[pos..end]`.
    buf: Box<[u8]>,
    /// Start of the undecoded bytes.
    pos: usize,
    /// End of the bytes read.
    end: usize,
    /// How the body's end is known (and the chunked decoder's state).
    framing: Framing,
    /// The body has ended.
    done: bool,
}

impl Response {
    async fn read_head(mut stream: TcpStream) -> Result<Response, Http1Error> {
        let mut buf = vec![0u8; READ_BUF].into_boxed_slice();
        let mut end = 0;
        loop {
            if end == buf.len() {
                return Err(Http1Error::Protocol("response head too large".into()));
            }
            let n = stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err(Http1Error::Closed);
            }
            end += n;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut headers);
            let len = match r.parse(&buf[..end]) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(Http1Error::Protocol(e.to_string())),
            };
            let status = r.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // An interim response (100 Continue): the real one follows.
                buf.copy_within(len..end, 0);
                end -= len;
                continue;
            }
            let framing = framing(r.headers)?;
            let done = matches!(framing, Framing::Length(0));
            return Ok(Response {
                status,
                stream,
                buf,
                pos: len,
                end,
                framing,
                done,
            });
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether bytes read from the socket wait for [`Response::drain`].
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// Wait for more bytes from the socket (cancel-safe), once everything read before has
    /// been drained. `Ok(false)`: the peer closed the connection, which ends a body without
    /// framing and is an error for any other.
    pub async fn fill(&mut self) -> Result<bool, Http1Error> {
        debug_assert!(!self.has_buffered(), "fill before drain");
        let n = self.stream.read(&mut self.buf).await?;
        (self.pos, self.end) = (0, n);
        if n == 0 {
            if !matches!(self.framing, Framing::UntilClose) {
                return Err(Http1Error::Closed);
            }
            self.done = true;
        }
        Ok(n > 0)
    }

    /// Decode what has been read; `on_data` gets each piece of body payload in order.
    pub fn drain(&mut self, mut on_data: impl FnMut(&[u8])) -> Result<(), Http1Error> {
        let bytes = &self.buf[self.pos..self.end];
        self.pos = self.end;
        if self.done {
            return Ok(());
        }
        match &mut self.framing {
            Framing::UntilClose => on_data(bytes),
            Framing::Length(left) => {
                let n = bytes.len().min(*left as usize);
                on_data(&bytes[..n]);
                *left -= n as u64;
                self.done = *left == 0;
            }
            Framing::Chunked(c) => self.done = c.decode(bytes, &mut on_data)?,
        }
        Ok(())
    }
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, Http1Error> {
    let mut length = None;
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| Http1Error::Protocol(format!("{} is not text", h.name)))?
            .trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides; anything but chunked is read until close.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked(Chunked::default())
            } else {
                Framing::UntilClose
            });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| Http1Error::Protocol(format!("bad content-length `{value}`")))?;
            if length.is_some_and(|m| m != n) {
                return Err(Http1Error::Protocol("conflicting content-length".into()));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Where the chunked decoder is.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    /// Reading the hexadecimal size.
    #[default]
    Size,
    /// After the size: extensions up to the line's end.
    SizeLine,
    /// Inside a chunk's data.
    Data,
    /// After a chunk's data: its line end.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailer,
    Done,
}

/// An incremental decoder of `Transfer-Encoding: chunked`, fed whatever each read returns.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Where in the framing the next byte falls.
    state: ChunkState,
    /// Size being read, then data bytes left in the current chunk.
    n: u64,
    /// Hex digits read (then: size-line bytes), to refuse absurd lines.
    seen: u32,
    /// A trailer line has content (so the next line end does not end the message).
    line_has_content: bool,
}

impl Chunked {
    /// Decode `bytes`, handing payload slices to `on_data`; `Ok(true)` once the message ends.
    pub fn decode(
        &mut self,
        mut bytes: &[u8],
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<bool, Http1Error> {
        let bad = |m: &str| Err(Http1Error::Protocol(format!("chunked encoding: {m}")));
        while let Some((&b, rest)) = bytes.split_first() {
            match self.state {
                ChunkState::Data => {
                    let n = bytes.len().min(self.n as usize);
                    on_data(&bytes[..n]);
                    self.n -= n as u64;
                    bytes = &bytes[n..];
                    if self.n == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    continue;
                }
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        if self.seen >= 16 {
                            return bad("chunk size too large");
                        }
                        self.n = self.n * 16 + u64::from(d);
                        self.seen += 1;
                    }
                    None if self.seen == 0 => return bad("missing chunk size"),
                    None => {
                        self.state = ChunkState::SizeLine;
                        self.seen = 0;
                        continue;
                    }
                },
                ChunkState::SizeLine => {
                    self.seen += 1;
                    if self.seen > MAX_SIZE_LINE {
                        return bad("chunk size line too long");
                    }
                    if b == b'\n' {
                        self.seen = 0;
                        if self.n == 0 {
                            self.state = ChunkState::Trailer;
                            self.line_has_content = false;
                        } else {
                            self.state = ChunkState::Data;
                        }
                    }
                }
                ChunkState::DataEnd => match b {
                    b'\r' => {}
                    b'\n' => self.state = ChunkState::Size,
                    _ => return bad("missing line end after chunk data"),
                },
                ChunkState::Trailer => match b {
                    b'\r' => {}
                    b'\n' if !self.line_has_content => {
                        self.state = ChunkState::Done;
                        return Ok(true);
                    }
                    b'\n' => self.line_has_content = false,
                    _ => self.line_has_content = true,
                },
                ChunkState::Done => return Ok(true),
            }
            bytes = rest;
        }
        Ok(self.state == ChunkState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut c = Chunked::default();
        let mut out = vec![];
        let mut done = false;
        for p in parts {
            done = c.decode(p, &mut |d| out.extend_from_slice(d)).unwrap();
        }
        (out, done)
    }

    #[test]
    fn chunked_body_split_at_every_byte() {
        let wire: &[u8] =
            b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(
            decode_all(&[wire]),
            (b"helloabcdefghijklmnopqrstuvwxyz".to_vec(), true)
        );
        for cut in 0..wire.len() {
            let (out, done) = decode_all(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "cut at {cut}");
            assert!(done);
            let (_, early) = decode_all(&[&wire[..cut]]);
            assert!(!early, "cut at {cut} must not end the body");
        }
        // Bare LF line ends are accepted; upper-case hex too.
        assert_eq!(
            decode_all(&[b"A\nxxxxxxxxxx\n0\n\n"]),
            (b"xxxxxxxxxx".to_vec(), true)
        );
    }

    #[test]
    fn chunked_errors_are_named() {
        let mut c = Chunked::default();
        let e = c.decode(b"zz\r\n", &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("missing chunk size"), "{e}");
        let mut c = Chunked::default();
        let e = c.decode(b"3\r\nabcX", &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("line end after chunk data"), "{e}");
        let mut c = Chunked::default();
        let e = c.decode(b"11111111111111111\r\n", &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn endpoints_keep_path_prefix_query_and_ipv6() {
        let e = Endpoint::parse("http://[::1]:8000/prefix/v1/completions?x=1", Some("k")).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8000));
        let head = String::from_utf8(e.head.clone()).unwrap();
        assert!(
            head.starts_with("POST /prefix/v1/completions?x=1 HTTP/1.1\r\nHost: [::1]:8000\r\n")
        );
        assert!(head.contains("Authorization: Bearer k\r\n"));
        let e = Endpoint::parse("http://localhost/v1/completions", None).unwrap();
        assert_eq!(e.port, 80);
        assert!(String::from_utf8(e.head)
            .unwrap()
            .contains("Host: localhost\r\n"));
        assert!(Endpoint::parse("https://example.com/v1/completions", None).is_none());
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        use crate::client::request::{Target, Timeouts};
        let t = Target::new(
            "http://127.0.0.1:8000/v1/completions".into(),
            Some("sk-secret-42".into()),
            false,
            Timeouts {
                total: std::time::Duration::from_secs(1),
                stall: std::time::Duration::from_secs(1),
            },
        );
        let shown = format!("{t:?} {:?}", t.endpoint);
        assert!(
            shown.contains("127.0.0.1") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("sk-secret-42"), "{shown}");
    }
}
