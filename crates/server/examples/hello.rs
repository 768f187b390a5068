//! The benchmark ceiling: the smallest axum server that answers `POST /` with a fixed small JSON body
//! (the size of a Tessera envelope), on the same runtime and HTTP stack as Tessera. `bench/run` measures
//! it with the same wrk settings as the real operations, so "is_session_token_valid = N % of hello"
//! says how much of the budget the service, the store and SQLite take.
//!
//!   cargo build --release -p tessera-server --example hello
//!   target/release/examples/hello 127.0.0.1:18081      (or HELLO_LISTEN=...; default 127.0.0.1:18081)

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

const BODY: &str = r#"{"type":"is_session_token_valid","errorCode":0,"errorMessage":"OK","expiresAt":"2030-01-01T00:00:00Z"}"#;

async fn hello(_body: axum::body::Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], BODY)
}

async fn healthz() -> &'static str {
    "ok"
}

/// The same allocator as `tessera` (crates/cli/src/main.rs), so the ceiling is measured like the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).or_else(|| std::env::var("HELLO_LISTEN").ok()).unwrap_or_else(|| "127.0.0.1:18081".to_string());
    // The same runtime flavour as `tessera serve` (multi-thread, one worker per core).
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let app = Router::new().route("/", post(hello)).route("/healthz", get(healthz));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("hello listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await
    })
}
