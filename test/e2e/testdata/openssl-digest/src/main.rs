// A service that links OpenSSL (openssl-sys, a C library found with
// pkg-config): its health answer is a SHA-256 computed by libcrypto.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    eprintln!("digest listening on {port} with {}", openssl::version::version());
    for stream in listener.incoming().flatten() {
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let digest = openssl::sha::sha256(line.as_bytes());
        let body = format!("{}\n{}", openssl::version::version(), digest.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let status = if line.starts_with("GET /health ") { "200 OK" } else { "404 Not Found" };
        let mut s = &stream;
        let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    }
}
