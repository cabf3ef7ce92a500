//! Serving the Functions host.

pub mod answer;
pub mod app;
pub mod config;
pub mod http_error;
pub mod invocation;
pub mod routes;
pub mod server;
pub mod start;
