//! The load benchmark's baseline: a bare warp route returning fixed JSON, on the same
//! runtime settings as the handler. `benches/load.sh` compares `/api/cert-info` with it,
//! passing a real cert-info answer as the fixed body so both send the same bytes.
//!
//! Run: `cargo run --release --example bare_warp -- PORT [BODY_FILE]`.

use warp::Filter;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let body: &'static [u8] = match std::env::args().nth(2) {
        Some(path) => std::fs::read(path).unwrap_or_default().leak(),
        None => br#"{"status":"ok"}"#,
    };
    let route = warp::path!("api" / "fixed").and(warp::get()).map(move || {
        warp::http::Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .header("x-content-type-options", "nosniff")
            .body(body)
            .unwrap_or_default()
    });
    warp::serve(route)
        .run(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await;
}
