//! Running the HTTP server until shutdown.
//!
//! Owns: the listener, graceful draining and the drain deadline.
//! Must not: build state or read configuration (callers pass both in, so tests run the
//! same server on `127.0.0.1:0`).

use crate::app::AppState;
use crate::routes::routes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
/// (at most [`DRAIN_DEADLINE`]) and returns.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutdown signal received; draining in-flight requests");
        let _ = signalled_tx.send(());
    };
    let server = warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run();
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => return,
        _ = signalled_rx => {}
    }
    if tokio::time::timeout(DRAIN_DEADLINE, server).await.is_err() {
        tracing::warn!(
            deadline_secs = DRAIN_DEADLINE.as_secs(),
            "drain deadline passed; closing remaining connections"
        );
    }
}

/// Completes on SIGTERM (what the Functions host sends) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
