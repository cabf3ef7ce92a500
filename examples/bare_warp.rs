//! The load benchmark's baseline: a bare warp route returning fixed JSON, on the same
//! runtime settings as the handler. `benches/load.sh` compares `/api/cert-info` with it.
//!
//! Run: `cargo run --release --example bare_warp -- PORT`.

use warp::Filter;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let route = warp::path!("api" / "fixed").and(warp::get()).map(|| {
        warp::http::Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .header("x-content-type-options", "nosniff")
            .body(r#"{"status":"ok","thumbprint":"0000000000000000000000000000000000000000"}"#)
            .unwrap_or_default()
    });
    warp::serve(route)
        .run(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await;
}
