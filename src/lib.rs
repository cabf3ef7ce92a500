//! mtls-handler: an Azure Functions custom handler that accepts partners by their client
//! certificate (forwarded by App Service in `X-ARR-ClientCert`, or by another Azure front
//! end in its own header format) and calls partners with
//! the app's own certificate.
//!
//! # Layout
//!
//! Six parts, and uses point one way (`tests/architecture.rs` fails on a cycle between
//! sibling modules and on a module that reaches up into the one containing it):
//!
//! ```text
//! cli ──► functions ──► host ──► inbound ─┐
//!  └───► tools ─────────┘  └───► outbound ─┴─► settings, clock, pki_files, telemetry
//! ```
//!
//! A request goes top to bottom: [`host::server`] → [`host::routes`] (forwarded HTTP) or
//! [`host::invocation`] (the JSON protocol) → [`host::app`] (method, the gate, body limit)
//! → the function in [`functions`] → an [`host::answer::Answer`].
//!
//! - [`functions`]: the app's own functions, one module each, and the one list that
//!   registers them: the part a fork edits.
//! - [`host`]: serving the Functions host: start-up and exit codes, the server and its
//!   routes, the JSON invocation protocol, what a function is ([`host::function`]: its
//!   declaration, request context and the state it runs with), running one invocation, the
//!   check of the function folders, and the one map from domain errors to HTTP
//!   ([`host::http_error`]).
//! - [`inbound`]: the decision about the caller: the gate with its cache, CRL store and
//!   partners document, above [`inbound::client_cert`], the pure certificate rules (no
//!   I/O, no clock; the partners document's parser and matcher are among them).
//! - [`outbound`]: the app's own identity, the Azure credential, and partner calls.
//! - [`settings`]: reading app settings and [`settings::ConfigError`]; each part's own
//!   settings type lives in that part (`host::config`, `inbound::config`,
//!   `outbound::config`).
//! - [`tools`]: local tooling, never on the request path: the demo PKI, an App Service-like
//!   TLS front end, explaining one certificate's decision, and certificate generation.
//! - Shared below everything: [`clock`] (the wall clock), [`pki_files`] (reading
//!   certificates from disk), [`telemetry`] (structured logs to stdout).
//! - [`cli`]: the binary's commands; it hands [`functions::all`] to [`host::start::serve`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod functions;
pub mod host;
pub mod inbound;
pub mod outbound;
pub mod pki_files;
pub mod settings;
pub mod telemetry;
pub mod tools;
