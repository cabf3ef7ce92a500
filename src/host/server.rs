//! Running the HTTP server until shutdown.
//!
//! Owns: the listener, the per-connection HTTP/1 server, graceful draining and the drain
//! deadline, and lifting the certificate headers (`CLIENT_CERT_HEADER`, and
//! `CLIENT_CERT_CHAIN_HEADER` for `rfc9440`) out of each request before routing.
//! Must not: build state or read configuration (callers pass both in, so tests run the
//! same server on `127.0.0.1:0`).
//!
//! This is `warp::serve` written out: warp offers no filter that reads every value of one
//! header without cloning the whole header map, and that clone was the largest cost left
//! on a cached `/api/cert-info` (see BENCHMARKS.md). Here the values are copied (reference
//! counted, no byte copies) into a task-local that `routes` reads while the request runs.

use crate::host::app::AppState;
use crate::host::routes::{routes, ClientCertHeaders, CLIENT_CERT_HEADERS};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_service::Service as _;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
/// (at most [`DRAIN_DEADLINE`]) and returns.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let names = state.cert_headers.clone();
    let service = warp::service(routes(state));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (service, names) = (service.clone(), names.clone());
        let per_request =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let headers = ClientCertHeaders::from_headers(req.headers(), &names);
                let mut service = service.clone();
                CLIENT_CERT_HEADERS.scope(headers, service.call(req))
            });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), per_request);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutdown signal received; draining in-flight requests");
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
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
