//! Structured logs to stdout, one line per event (the Functions host collects stdout).
//!
//! Owns: the subscriber set-up. `RUST_LOG` filters (default `info`); `LOG_FORMAT=json`
//! switches to one JSON object per line. Must not: log secrets; callers log thumbprints
//! and subjects, never keys, passwords, tokens or whole certificates.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
