// A workspace member with two binaries and a feature: the service ships `api`,
// an axum server.
use axum::{routing::get, Json, Router};
use serde_json::{json, Value};

#[cfg(feature = "greeting")]
const GREETING: &str = "greeting-feature-enabled";
#[cfg(not(feature = "greeting"))]
const GREETING: &str = "greeting-feature-disabled";

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "greeting": GREETING }))
}

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await.expect("bind");
    eprintln!("api listening on {port} ({GREETING})");
    axum::serve(listener, Router::new().route("/health", get(health))).await.expect("serve");
}
