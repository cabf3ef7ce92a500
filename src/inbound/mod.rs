//! The inbound decision.

pub mod cache;
pub mod client_cert;
pub mod config;
pub mod crl_store;
pub mod gate;

pub use gate::InboundGate;
