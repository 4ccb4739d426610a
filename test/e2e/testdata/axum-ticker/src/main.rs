// An async HTTP service on axum and tokio, the shape of a real Rust server.
use axum::{extract::Path, routing::get, Json, Router};
use serde_json::{json, Value};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "service": "ticker" }))
}

async fn tick(Path(symbol): Path<String>) -> Json<Value> {
    Json(json!({ "symbol": symbol.to_uppercase(), "price": 100.0 }))
}

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new().route("/health", get(health)).route("/ticks/:symbol", get(tick));
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await.expect("bind");
    eprintln!("ticker listening on {port}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
        .await
        .expect("serve");
}
