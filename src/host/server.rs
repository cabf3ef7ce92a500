//! Running the HTTP server until shutdown.
//!
//! Owns: the listener, the per-connection HTTP/1 server, graceful draining and the drain
//! deadline, and handing each request to its route: forwarded function calls (`/api/...`)
//! straight to `routes::forwarded_step`, everything else to warp.
//! Must not: build state or read configuration (callers pass both in, so tests run the
//! same server on `127.0.0.1:0`), or match routes itself (`routes` does).
//!
//! This is `warp::serve` written out (see BENCHMARKS.md). The header map and the body of a
//! request are moved, never copied: for `/api/...` straight into the function's request
//! context, without warp's filters, which were the largest cost left on a cached
//! `/api/cert-info`; for the rest into a task-local that `routes` takes while warp, which
//! sees only the method and the URI, runs its filters.

use crate::host::app::{RequestBody, Step};
use crate::host::function::AppState;
use crate::host::routes::{api_tail, forwarded_step, served_routes, Lifted, LIFTED};
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
    let service = warp::service(served_routes(state.clone()));
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
        let (service, state) = (service.clone(), state.clone());
        let per_request =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (mut parts, body) = req.into_parts();
                let headers = std::mem::take(&mut parts.headers);
                // Forwarded function calls, the hot path, skip warp's filters.
                let routed = match api_tail(parts.uri.path()) {
                    Some(tail) => {
                        let body = RequestBody::incoming(body);
                        let query = parts.uri.query();
                        let step =
                            forwarded_step(&state, &parts.method, tail, query, headers, body);
                        Routed::Direct(state.clone(), step)
                    }
                    None => {
                        let query = parts.uri.query().map(str::to_owned);
                        let req = hyper::Request::from_parts(
                            parts,
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        );
                        let lifted = std::cell::RefCell::new(Some(Lifted {
                            headers,
                            body,
                            query,
                        }));
                        let mut service = service.clone();
                        Routed::Warp(LIFTED.scope(lifted, service.call(req)))
                    }
                };
                async move {
                    match routed {
                        Routed::Direct(state, step) => Ok(warp::Reply::into_response(
                            state.complete(step).await.into_response(),
                        )),
                        Routed::Warp(future) => future.await,
                    }
                }
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

/// Where one request went: answered here, or handed to warp.
enum Routed<W> {
    Direct(Arc<AppState>, Step),
    Warp(W),
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
