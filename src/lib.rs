//! mtls-handler: an Azure Functions custom handler that accepts partners by their client
//! certificate (forwarded by App Service in `X-ARR-ClientCert`) and calls partners with
//! the app's own certificate.
//!
//! # Layout
//!
//! Requests flow one way: `routes` → `app` → {`inbound` → `client_cert`, `outbound`}, and
//! every error becomes HTTP in `http_error` only.
//!
//! - [`cli`], [`start`]: the binary's commands, start-up order and exit codes.
//! - [`config`]: every setting, read once and typed.
//! - [`server`], [`routes`]: the warp server and the paths the Functions host calls.
//! - [`functions_host`]: the host's JSON invocation protocol.
//! - [`functions`]: the app's own functions (what a fork edits); [`host::function`]: what
//!   a function is (declaration, request context, registry); [`host::folders`]: the
//!   start-up check of the function folders against them.
//! - [`app`], [`answer`]: running one invocation (method, gate, body limit, handler), in
//!   either protocol.
//! - [`http_error`]: the single mapping from domain errors to status, code and message.
//! - [`inbound`], [`cache`]: the per-request gate and its validation cache.
//! - [`crl_store`]: CRL files and downloads, refreshed in the background.
//! - [`client_cert`]: the pure certificate rules (no I/O, no clock).
//! - [`outbound`]: the app's own identity and the partner call.
//! - [`pki`], [`pki_files`]: generating certificates; reading them from disk.
//! - [`telemetry`]: structured logs to stdout.
//! - [`dev_certs`], [`front_end`], [`inspect`]: local tooling: the demo PKI, an App
//!   Service-like TLS front end, and explaining one certificate's decision.

#![forbid(unsafe_code)]

pub mod cli;
pub mod functions;
pub mod host;
pub mod inbound;
pub mod outbound;
pub mod pki_files;
pub mod settings;
pub mod telemetry;
pub mod tools;
