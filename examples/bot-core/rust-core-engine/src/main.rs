//! rust-core-engine: a small, dependency-free HTTP/1.1 service.
//!
//! `rust-core-engine`             serve on 0.0.0.0:$PORT (default 8080)
//! `rust-core-engine healthcheck` probe 127.0.0.1:$PORT/health; exit 0 on 200, else 1
//!
//! It is meant for a distroless image without a shell or curl, so the
//! healthcheck lives in the same binary.

use std::env;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const SERVICE: &str = "rust-core-engine";
const DEFAULT_PORT: u16 = 8080;
/// Largest request head (request line + headers) we accept.
const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once; beyond this new ones get a 503.
const MAX_CONNECTIONS: usize = 256;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let port = match port_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{SERVICE}: {e}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        None | Some("serve") => match serve(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{SERVICE}: {e}");
                ExitCode::FAILURE
            }
        },
        Some("healthcheck") => match healthcheck(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("healthcheck failed: {e}");
                ExitCode::FAILURE
            }
        },
        Some("version" | "--version" | "-V") => {
            println!("{SERVICE} {}", version());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("usage: {SERVICE} [serve|healthcheck|version] (unknown argument {other:?})");
            ExitCode::from(2)
        }
    }
}

fn port_from_env() -> Result<u16, String> {
    match env::var("PORT") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid PORT {s:?}")),
        _ => Ok(DEFAULT_PORT),
    }
}

/// The VERSION environment variable if set, else the crate version.
fn version() -> String {
    env::var("VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

// ---------------------------------------------------------------------------
// Server

fn serve(port: u16) -> io::Result<()> {
    install_signal_handlers();
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = TcpListener::bind(addr)?;
    let version: Arc<str> = version().into();
    println!(
        "{SERVICE} {version} listening on http://{}",
        listener.local_addr()?
    );
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = stream.write_all(&Response::error(503, "too many connections").to_bytes(false));
            continue;
        }
        let active = Arc::clone(&active);
        let version = Arc::clone(&version);
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            if let Err(e) = handle_connection(stream, &version) {
                if !is_benign(&e) {
                    eprintln!("connection: {e}");
                }
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            // The closure (and with it the counter decrement) was dropped.
            eprintln!("spawn: {e}");
        }
    }
    Ok(())
}

fn is_benign(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn handle_connection(mut stream: TcpStream, version: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (response, head_only) = match read_head(&mut stream) {
        Ok(Some(head)) => match parse_request(&head) {
            Ok(req) => (route(&req, version), req.method == "HEAD"),
            Err(e) => (Response::error(400, e.message()), false),
        },
        // Client connected and closed without sending anything.
        Ok(None) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            (Response::error(431, "request header too large"), false)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            (Response::error(408, "request timeout"), false)
        }
        Err(e) => return Err(e),
    };
    stream.write_all(&response.to_bytes(head_only))?;
    stream.flush()?;
    linger_close(stream);
    Ok(())
}

/// Half-closes the connection and drains what the client still sends (an
/// ignored body, the rest of an oversized head) for a short while. Closing a
/// socket with unread input makes the kernel send a reset, which can destroy
/// the response before the client has read it.
fn linger_close(mut stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 256 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Reads until the blank line that ends the request head. Returns `None`
/// if the peer closed the connection before sending a byte. A request body,
/// if any, is ignored: no route takes one and the connection is closed.
fn read_head<R: Read>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            // Truncated head: let the parser reject it.
            return Ok(Some(buf));
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf[scan_from..]) {
            buf.truncate(scan_from + end);
            return Ok(Some(buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
}

/// Offset just past the first "\r\n\r\n" (or bare "\n\n").
fn find_head_end(buf: &[u8]) -> Option<usize> {
    for i in 0..buf.len() {
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf[i..].starts_with(b"\n\n") {
            return Some(i + 2);
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Parsing

#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    /// Path without the query string.
    path: String,
    query: Option<String>,
    version: String,
    headers: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    NotUtf8,
    Empty,
    BadRequestLine,
    BadMethod,
    BadTarget,
    BadVersion,
    BadHeader,
    Incomplete,
}

impl ParseError {
    fn message(&self) -> &'static str {
        match self {
            ParseError::NotUtf8 => "request head is not valid UTF-8",
            ParseError::Empty => "empty request",
            ParseError::BadRequestLine => "malformed request line",
            ParseError::BadMethod => "malformed method",
            ParseError::BadTarget => "malformed request target",
            ParseError::BadVersion => "unsupported HTTP version",
            ParseError::BadHeader => "malformed header",
            ParseError::Incomplete => "incomplete request head",
        }
    }
}

fn parse_request(head: &[u8]) -> Result<Request, ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    if !(text.ends_with("\r\n\r\n") || text.ends_with("\n\n")) {
        return Err(ParseError::Incomplete);
    }
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let request_line = lines.next().ok_or(ParseError::Empty)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::BadMethod);
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(ParseError::BadTarget);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ParseError::BadVersion);
    }

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::BadHeader)?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::BadHeader);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }

    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Ok(Request {
        method: method.to_string(),
        path,
        query,
        version: version.to_string(),
        headers,
    })
}

// ---------------------------------------------------------------------------
// Routing and responses

#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    extra_headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Self {
        Response {
            status,
            content_type: "application/json",
            extra_headers: Vec::new(),
            body,
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Response::json(
            status,
            format!(
                "{{\"error\":\"{}\",\"status\":{status}}}",
                json_escape(message)
            ),
        )
    }

    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.extra_headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        if !head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

fn route(req: &Request, version: &str) -> Response {
    let known = matches!(req.path.as_str(), "/" | "/health");
    if !known {
        return Response::error(404, "not found");
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, "method not allowed");
        r.extra_headers.push(("Allow", "GET, HEAD".to_string()));
        return r;
    }
    let version = json_escape(version);
    match req.path.as_str() {
        "/health" => Response::json(
            200,
            format!("{{\"status\":\"ok\",\"service\":\"{SERVICE}\",\"version\":\"{version}\"}}"),
        ),
        _ => Response::json(
            200,
            format!(
                "{{\"service\":\"{SERVICE}\",\"version\":\"{version}\",\"endpoints\":[\"/\",\"/health\"]}}"
            ),
        ),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Healthcheck client

fn healthcheck(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: rust-core-engine-healthcheck\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    // The status line is all we need; read at most a little more than it.
    stream
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| format!("read: {e}"))?;
    let status = parse_status(&head).ok_or("malformed response")?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

fn parse_status(response: &[u8]) -> Option<u16> {
    let line_end = response.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

// ---------------------------------------------------------------------------
// Signals: as PID 1 in a container, SIGTERM has no default action, so
// without a handler `docker stop` would wait for its SIGKILL timeout.
// Nothing is buffered that needs flushing, so exiting at once is fine.

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }
    extern "C" fn on_signal(_: i32) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { _exit(0) }
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: installing a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> Result<Request, ParseError> {
        parse_request(raw.as_bytes())
    }

    fn get(path: &str) -> Response {
        let r = req(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
        route(&r, "1.2.3")
    }

    #[test]
    fn parses_a_simple_get() {
        let r =
            req("GET /health?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/health");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(
            r.headers,
            vec![
                ("host".to_string(), "localhost".to_string()),
                ("user-agent".to_string(), "t".to_string())
            ]
        );
    }

    #[test]
    fn accepts_bare_newlines_and_http10() {
        let r = req("GET / HTTP/1.0\n\n").unwrap();
        assert_eq!(r.path, "/");
        assert_eq!(r.version, "HTTP/1.0");
    }

    #[test]
    fn rejects_malformed_requests() {
        assert_eq!(req(""), Err(ParseError::Empty));
        assert_eq!(req("\r\n\r\n"), Err(ParseError::Empty));
        assert_eq!(req("GET /\r\n\r\n"), Err(ParseError::BadRequestLine));
        assert_eq!(
            req("GET  / HTTP/1.1\r\n\r\n"),
            Err(ParseError::BadRequestLine)
        );
        assert_eq!(req("get / HTTP/1.1\r\n\r\n"), Err(ParseError::BadMethod));
        assert_eq!(
            req("GET health HTTP/1.1\r\n\r\n"),
            Err(ParseError::BadTarget)
        );
        assert_eq!(req("GET / HTTP/2.0\r\n\r\n"), Err(ParseError::BadVersion));
        assert_eq!(
            req("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(ParseError::BadHeader)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Err(ParseError::BadHeader)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: x\r\n"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn health_route() {
        let r = get("/health");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(
            r.body,
            r#"{"status":"ok","service":"rust-core-engine","version":"1.2.3"}"#
        );
        let r = get("/health?probe=1");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn root_and_unknown_routes() {
        let r = get("/");
        assert_eq!(r.status, 200);
        assert!(r.body.contains(r#""service":"rust-core-engine""#));
        assert_eq!(get("/nope").status, 404);
        assert_eq!(get("/health/extra").status, 404);
    }

    #[test]
    fn wrong_method_on_known_path_is_405() {
        let r = req("POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
        let resp = route(&r, "x");
        assert_eq!(resp.status, 405);
        let text = String::from_utf8(resp.to_bytes(false)).unwrap();
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
    }

    #[test]
    fn response_serialisation() {
        let text = String::from_utf8(get("/health").to_bytes(false)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        let head_only = String::from_utf8(get("/health").to_bytes(true)).unwrap();
        assert!(head_only.ends_with("\r\n\r\n"));
        assert!(head_only.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn version_is_json_escaped() {
        let r = req("GET /health HTTP/1.1\r\n\r\n").unwrap();
        let body = route(&r, "a\"b\\c\n").body;
        assert!(body.contains(r#""version":"a\"b\\c\n""#), "{body}");
    }

    #[test]
    fn read_head_stops_at_blank_line_and_limits_size() {
        let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        let head = read_head(&mut input).unwrap().unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");

        let mut empty: &[u8] = b"";
        assert!(read_head(&mut empty).unwrap().is_none());

        let big = vec![b'a'; MAX_HEAD + 2048];
        let mut input: &[u8] = &big;
        let err = read_head(&mut input).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"HTTP/1.1 200"), None);
        assert_eq!(parse_status(b"garbage\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn end_to_end_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            for _ in 0..3 {
                let (s, _) = listener.accept().unwrap();
                handle_connection(s, "test").unwrap();
            }
        });
        assert_eq!(healthcheck(port), Ok(()));

        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"BROKEN\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");

        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /missing HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 404 "), "{out}");

        server.join().unwrap();
    }
}
