// A workspace member with two binaries and a feature: the service ships `api`.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

#[cfg(feature = "greeting")]
const GREETING: &str = "greeting-feature-enabled";
#[cfg(not(feature = "greeting"))]
const GREETING: &str = "greeting-feature-disabled";

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    eprintln!("api listening on {port} ({GREETING})");
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let (status, body) = if line.starts_with("GET /health ") { ("200 OK", GREETING) } else { ("404 Not Found", "") };
        let mut s = &stream;
        let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    }
}
