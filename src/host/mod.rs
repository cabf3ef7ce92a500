//! Serving the Functions host.

pub mod answer;
pub mod app;
pub mod folders;
pub mod function;
pub mod http_error;
pub mod invocation;
pub mod routes;
pub mod server;
pub mod start;
