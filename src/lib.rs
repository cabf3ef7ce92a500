//! mtls-handler: an Azure Functions custom handler that accepts partners by their client
//! certificate (forwarded by App Service in `X-ARR-ClientCert`, or by another Azure front
//! end in its own header format) and calls partners with
//! the app's own certificate.
//!
//! # Layout
//!
//! Five parts, and uses point one way (`tests/architecture.rs` fails on a cycle between
//! sibling modules and on a module that reaches up into the one containing it):
//!
//! ```text
//! cli ──► tools ──► host ──► inbound ─┐
//!                     └────► outbound ─┴─► settings, clock, pki_files, telemetry
//! ```
//!
//! - [`host`]: serving the Functions host: start-up and exit codes, the server and its
//!   routes, the JSON invocation protocol, what each function answers, and the one map from
//!   domain errors to HTTP ([`host::http_error`]).
//! - [`inbound`]: the decision about the caller: the gate with its cache and CRL store,
//!   above [`inbound::client_cert`], the pure certificate rules (no I/O, no clock).
//! - [`outbound`]: the app's own identity and the partner call.
//! - [`settings`]: reading app settings and [`settings::ConfigError`]; each part's own
//!   settings type lives in that part (`host::config`, `inbound::config`,
//!   `outbound::config`).
//! - [`tools`]: local tooling, never on the request path: the demo PKI, an App Service-like
//!   TLS front end, explaining one certificate's decision, and certificate generation.
//! - Shared below everything: [`clock`] (the wall clock), [`pki_files`] (reading
//!   certificates from disk), [`telemetry`] (structured logs to stdout).
//! - [`cli`]: the binary's commands.

#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod host;
pub mod inbound;
pub mod outbound;
pub mod pki_files;
pub mod settings;
pub mod telemetry;
pub mod tools;
