//! Serving the Functions host.
//!
//! Owns: the request path, top to bottom: [`start`] (start-up order and exit codes),
//! [`server`] (accept loop and draining), [`routes`] (paths and methods),
//! [`invocation`] (the host's JSON invocation protocol), [`app`] (what each function
//! answers, in either protocol), [`answer`] (status + JSON body) and [`http_error`] (the
//! only place where domain errors become status codes and messages). [`config`] reads every
//! part's settings at start-up.
//! Must not: decide about certificates (that is `inbound`) or load identities (that is
//! `outbound`); nothing below `host` uses it.

pub mod answer;
pub mod app;
pub mod config;
pub mod folders;
pub mod function;
pub mod http_error;
pub mod invocation;
pub mod routes;
pub mod server;
pub mod start;
