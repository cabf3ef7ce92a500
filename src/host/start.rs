//! Process start-up for the `serve` command, as the Functions host runs it.
//!
//! Owns: the order of start-up (logs, settings, runtime, state, socket) and the exit
//! codes the host acts on: 0 after a clean shutdown (the host does not restart us), 1 for
//! a bad setting or a port that cannot be bound (the host restarts and reports stderr).
//! Must not: hold request logic.

use crate::clock::system_clock;
use crate::host::app::AppState;
use crate::host::config::Config;
use crate::inbound::InboundGate;
use crate::outbound::Outbound;
use crate::settings::{ConfigError, EnvSource, ProcessEnv};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the handler until SIGTERM or Ctrl-C.
pub fn serve() -> ExitCode {
    let env = ProcessEnv;
    let log_format = env.get("LOG_FORMAT").map(|f| f.trim().to_ascii_lowercase());
    crate::telemetry::init(log_format.as_deref() == Some("json"));
    if let Some(other) = log_format.filter(|f| f != "json" && f != "text") {
        return fatal(&ConfigError::invalid(
            "LOG_FORMAT",
            format!("{other:?} is neither text nor json"),
        ));
    }
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fatal: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let state = match build_state(&config) {
            Ok(s) => s,
            Err(e) => return fatal(&e),
        };
        // The host only ever connects to 127.0.0.1; nothing else should reach us directly.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                eprintln!("fatal: cannot listen on {addr} (FUNCTIONS_CUSTOMHANDLER_PORT): {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "listening");
        // Keeps the CRLs current; ends with the runtime.
        if let Some(revocation) = &config.inbound.revocation {
            crate::inbound::crl_store::spawn(state.gate.clone(), state.clock, revocation);
        }
        crate::host::server::run(listener, state, crate::host::server::shutdown_signal()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// The shared state for `config`. Reads the files the settings name; starts the outbound
/// identity loading in the background (needs a Tokio runtime).
pub fn build_state(config: &Config) -> Result<Arc<AppState>, ConfigError> {
    Ok(Arc::new(AppState {
        gate: Arc::new(InboundGate::from_config(&config.inbound)?),
        cert_headers: crate::host::app::CertHeaderNames::from_config(&config.inbound.header),
        outbound: Outbound::start(config.outbound.clone()),
        clock: system_clock,
    }))
}

fn fatal(e: &ConfigError) -> ExitCode {
    tracing::error!(setting = e.setting(), error = %e, "invalid configuration");
    eprintln!("fatal: {e}");
    ExitCode::FAILURE
}
